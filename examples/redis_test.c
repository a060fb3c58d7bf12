/*
 * redis_test.c: the Redis client (redis.h) against a real redis-server.
 *
 *     redis_test [REDIS_SERVER]
 *
 * Starts redis-server (REDIS_SERVER, default "redis-server" on PATH) on a
 * free loopback port without persistence, runs the tests against it, and
 * kills it at the end. The tests: URL parsing; commands and reply types
 * (binary-safe arguments); error replies and misuse; pipelining from 100
 * tasks on 4 workers, each checking that every reply is its own; EVALSHA
 * with its NOSCRIPT fallback; a cancelled caller that leaves the pipeline
 * in step; the server killed and restarted under the client, which
 * reports it, fails commands with a connection error and carries on.
 *
 * The code in tasks uses the harness's CHECK macros (tests/harness.h).
 */
#define _GNU_SOURCE

#include "../tests/harness.h"
#include "redis.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static const char *g_server = "redis-server";
static int g_port;
static pid_t g_pid = -1;
static char g_url[64];

/* ---- the server --------------------------------------------------------- */

static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
      getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
    perror("free_port");
    exit(1);
  }
  close(fd);
  return ntohs(a.sin_port);
}

static int can_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons((uint16_t)port);
  int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
  if (fd >= 0)
    close(fd);
  return ok;
}

/* Start redis-server on g_port and wait until it accepts connections. */
static void server_start(void) {
  char port[16];
  snprintf(port, sizeof port, "%d", g_port);
  char *argv[] = {(char *)g_server, "--port", port, "--bind", "127.0.0.1",
                  "--save", "", "--appendonly", "no", "--daemonize", "no",
                  "--loglevel", "warning", NULL};
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  int rc = posix_spawnp(&g_pid, g_server, &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    fprintf(stderr, "cannot start %s: %s\n", g_server, strerror(rc));
    exit(1);
  }
  for (int i = 0; i < 1000; i++) { /* up to 20 s */
    if (can_connect(g_port))
      return;
    usleep(20000);
  }
  fprintf(stderr, "%s did not start on port %d\n", g_server, g_port);
  kill(g_pid, SIGKILL);
  exit(1);
}

static void server_kill(void) {
  if (g_pid > 0) {
    kill(g_pid, SIGKILL);
    waitpid(g_pid, NULL, 0);
    g_pid = -1;
  }
}

/* ---- URLs --------------------------------------------------------------- */

static void test_url(void **state) {
  (void)state;
  redis_url_t u;
  assert_int_equal(redis_url_parse("redis://h.example:6380/crawl1", &u), 0);
  assert_string_equal(u.host, "h.example");
  assert_int_equal(u.port, 6380);
  assert_string_equal(u.path, "crawl1");
  assert_int_equal(redis_url_parse("redis://10.0.0.1", &u), 0);
  assert_string_equal(u.host, "10.0.0.1");
  assert_int_equal(u.port, 6379);
  assert_string_equal(u.path, "");
  assert_int_equal(redis_url_parse("redis://[::1]:7000/3", &u), 0);
  assert_string_equal(u.host, "::1");
  assert_int_equal(u.port, 7000);
  assert_string_equal(u.path, "3");
  assert_int_equal(redis_url_parse("localhost:1234", &u), 0);
  assert_string_equal(u.host, "localhost");
  assert_int_equal(u.port, 1234);
  assert_int_equal(redis_url_parse("redis://:99/", &u), 0);
  assert_string_equal(u.host, "127.0.0.1");
  assert_int_equal(redis_url_parse("http://h/", &u), WEFT_EINVAL);
  assert_int_equal(redis_url_parse("redis://h:0", &u), WEFT_EINVAL);
  assert_int_equal(redis_url_parse("redis://h:70000", &u), WEFT_EINVAL);
  assert_int_equal(redis_url_parse("redis://h:12x", &u), WEFT_EINVAL);
  assert_int_equal(redis_url_parse("redis://h:", &u), WEFT_EINVAL);
  assert_int_equal(redis_url_parse("redis://u:p@h", &u), WEFT_EINVAL);
  assert_int_equal(redis_url_parse("redis://[::1", &u), WEFT_EINVAL);
  assert_int_equal(redis_url_parse(NULL, &u), WEFT_EINVAL);
  char big[400];
  memset(big, 'a', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  assert_int_equal(redis_url_parse(big, &u), WEFT_ENAMETOOLONG);
}

/* ---- commands ----------------------------------------------------------- */

static void *commands_main(void *arg) {
  (void)arg;
  redis_client_t *c = NULL;
  CHECK_OK(redis_client_new_url(g_url, NULL, &c));
  if (!c)
    return NULL;
  redisReply *r = NULL;
  CHECK_OK(redis_command(c, &r, "FLUSHDB", NULL));
  CHECK(r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0);
  redis_reply_free(r);
  CHECK_OK(redis_command(c, &r, "GET", "nothing", NULL));
  CHECK(r && r->type == REDIS_REPLY_NIL);
  redis_reply_free(r);
  /* binary-safe: NUL and CRLF inside a value */
  const char val[] = "a\0b\r\nc";
  const char *av[] = {"SET", "bin", val};
  size_t al[] = {3, 3, sizeof val - 1};
  CHECK_OK(redis_commandv(c, NULL, 3, av, al));
  CHECK_OK(redis_command(c, &r, "GET", "bin", NULL));
  CHECK(r && r->type == REDIS_REPLY_STRING && r->len == sizeof val - 1 &&
        memcmp(r->str, val, sizeof val - 1) == 0);
  redis_reply_free(r);
  CHECK_OK(redis_command(c, &r, "INCRBY", "n", "41", NULL));
  CHECK(r && r->type == REDIS_REPLY_INTEGER && r->integer == 41);
  redis_reply_free(r);
  CHECK_OK(redis_command(c, NULL, "RPUSH", "l", "x", "y", "z", NULL));
  CHECK_OK(redis_command(c, &r, "LRANGE", "l", "0", "-1", NULL));
  CHECK(r && r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
        strcmp(r->element[2]->str, "z") == 0);
  redis_reply_free(r);
  /* a db from the URL: keys of db 0 are not seen in db 1 */
  char url1[80];
  snprintf(url1, sizeof url1, "redis://127.0.0.1:%d/1", g_port);
  redis_client_t *c1 = NULL;
  CHECK_OK(redis_client_new_url(url1, NULL, &c1));
  if (c1) {
    CHECK_OK(redis_command(c1, &r, "EXISTS", "n", NULL));
    CHECK(r && r->type == REDIS_REPLY_INTEGER && r->integer == 0);
    redis_reply_free(r);
    redis_client_free(c1);
  }
  CHECK(redis_client_connected(c) >= 1);
  redis_client_free(c);
  return NULL;
}

static void test_commands(void **state) {
  (void)state;
  run_in_weft(commands_main, NULL, 2);
}

/* ---- errors and misuse -------------------------------------------------- */

static void *errors_main(void *arg) {
  (void)arg;
  redis_client_t *c = NULL;
  CHECK_OK(redis_client_new_url(g_url, NULL, &c));
  if (!c)
    return NULL;
  redisReply *r = NULL;
  CHECK_OK(redis_command(c, NULL, "SET", "s", "v", NULL));
  CHECK_RC(redis_command(c, &r, "LPUSH", "s", "x", NULL), REDIS_ESERVER);
  CHECK(r && r->type == REDIS_REPLY_ERROR &&
        strncmp(r->str, "WRONGTYPE", 9) == 0);
  redis_reply_free(r);
  CHECK_RC(redis_command(c, &r, "NOSUCHCOMMAND", NULL), REDIS_ESERVER);
  CHECK(r && r->type == REDIS_REPLY_ERROR);
  redis_reply_free(r);
  /* the connection is still in step after errors */
  CHECK_OK(redis_command(c, &r, "ECHO", "still", NULL));
  CHECK(r && r->type == REDIS_REPLY_STRING && strcmp(r->str, "still") == 0);
  redis_reply_free(r);
  r = (redisReply *)1;
  CHECK_RC(redis_command(NULL, &r, "PING", NULL), WEFT_EINVAL);
  CHECK(r == NULL);
  CHECK_RC(redis_command(c, &r, NULL), WEFT_EINVAL);
  CHECK_RC(redis_commandv(c, &r, 0, NULL, NULL), WEFT_EINVAL);
  const char *many[65];
  for (int i = 0; i < 65; i++)
    many[i] = "x";
  CHECK_RC(redis_command(c, &r, many[0], many[1], many[2], many[3], many[4],
                         many[5], many[6], many[7], many[8], many[9], many[10],
                         many[11], many[12], many[13], many[14], many[15],
                         many[16], many[17], many[18], many[19], many[20],
                         many[21], many[22], many[23], many[24], many[25],
                         many[26], many[27], many[28], many[29], many[30],
                         many[31], many[32], many[33], many[34], many[35],
                         many[36], many[37], many[38], many[39], many[40],
                         many[41], many[42], many[43], many[44], many[45],
                         many[46], many[47], many[48], many[49], many[50],
                         many[51], many[52], many[53], many[54], many[55],
                         many[56], many[57], many[58], many[59], many[60],
                         many[61], many[62], many[63], many[64], NULL),
           WEFT_E2BIG);
  redis_client_t *bad = NULL;
  CHECK_RC(redis_client_new_url("redis://127.0.0.1:1/notadb", NULL, &bad),
           WEFT_EINVAL);
  CHECK_RC(redis_client_new_url("http://x", NULL, &bad), WEFT_EINVAL);
  CHECK_RC(redis_client_new("h", 0, NULL, &bad), WEFT_EINVAL);
  /* nothing listens: the connect error */
  int port = free_port();
  CHECK_OK(redis_client_new("127.0.0.1", port, NULL, &bad));
  if (bad) {
    CHECK_RC(redis_command(bad, &r, "PING", NULL), WEFT_ECONNREFUSED);
    CHECK(r == NULL);
    CHECK_RC(redis_command(bad, &r, "PING", NULL), WEFT_ECONNREFUSED);
    redis_client_free(bad);
  }
  redis_client_free(c);
  return NULL;
}

static void test_errors(void **state) {
  (void)state;
  run_in_weft(errors_main, NULL, 1);
}

/* ---- pipelining --------------------------------------------------------- */

#define PIPE_TASKS 100
#define PIPE_OPS 50

typedef struct pipe_arg {
  redis_client_t *c;
  int id;
} pipe_arg_t;

static void *pipe_task(void *arg) {
  pipe_arg_t *p = arg;
  for (int j = 0; j < PIPE_OPS; j++) {
    char msg[32];
    snprintf(msg, sizeof msg, "t%d-%d", p->id, j);
    redisReply *r = NULL;
    CHECK_OK(redis_command(p->c, &r, "ECHO", msg, NULL));
    CHECK(r && r->type == REDIS_REPLY_STRING && strcmp(r->str, msg) == 0);
    redis_reply_free(r);
    CHECK_OK(redis_command(p->c, &r, "INCR", "pipe", NULL));
    CHECK(r && r->type == REDIS_REPLY_INTEGER && r->integer >= 1);
    redis_reply_free(r);
  }
  return NULL;
}

static void *pipeline_main(void *arg) {
  (void)arg;
  redis_client_t *c = NULL;
  CHECK_OK(redis_client_new_url(g_url, NULL, &c));
  if (!c)
    return NULL;
  CHECK_OK(redis_command(c, NULL, "DEL", "pipe", NULL));
  static pipe_arg_t pa[PIPE_TASKS];
  weft_task_t *t[PIPE_TASKS];
  for (int i = 0; i < PIPE_TASKS; i++) {
    pa[i].c = c;
    pa[i].id = i;
    CHECK_OK(harness_spawn_pinned(pipe_task, &pa[i], i % weft_worker_count(),
                                  &t[i]));
  }
  CHECK_OK(weft_gather(t, PIPE_TASKS, NULL));
  for (int i = 0; i < PIPE_TASKS; i++)
    weft_task_unref(t[i]);
  redisReply *r = NULL;
  CHECK_OK(redis_command(c, &r, "GET", "pipe", NULL));
  CHECK(r && r->type == REDIS_REPLY_STRING &&
        atoi(r->str) == PIPE_TASKS * PIPE_OPS);
  redis_reply_free(r);
  /* one connection per worker, all used */
  CHECK_OK(redis_command(c, &r, "CLIENT", "LIST", NULL));
  if (r && r->type == REDIS_REPLY_STRING) {
    int lines = 0;
    for (const char *q = r->str; *q; q++)
      lines += *q == '\n';
    CHECK(lines >= weft_worker_count());
  }
  redis_reply_free(r);
  redis_client_free(c);
  return NULL;
}

static void test_pipeline(void **state) {
  (void)state;
  run_in_weft(pipeline_main, NULL, 4);
}

/* ---- scripts ------------------------------------------------------------ */

static void *eval_main(void *arg) {
  (void)arg;
  redis_client_t *c = NULL;
  CHECK_OK(redis_client_new_url(g_url, NULL, &c));
  if (!c)
    return NULL;
  redis_script_t s;
  redis_script_init(&s, "return redis.call('INCRBY', KEYS[1], ARGV[1])");
  CHECK_OK(redis_command(c, NULL, "DEL", "ev", NULL));
  const char *args[] = {"ev", "5"};
  redisReply *r = NULL;
  CHECK_OK(redis_eval(c, &s, &r, 1, 2, args, NULL));
  CHECK(r && r->type == REDIS_REPLY_INTEGER && r->integer == 5);
  redis_reply_free(r);
  CHECK(strlen(s.sha) == 40);
  /* the server forgets it: EVALSHA answers NOSCRIPT, EVAL runs it */
  CHECK_OK(redis_command(c, NULL, "SCRIPT", "FLUSH", NULL));
  CHECK_OK(redis_eval(c, &s, &r, 1, 2, args, NULL));
  CHECK(r && r->type == REDIS_REPLY_INTEGER && r->integer == 10);
  redis_reply_free(r);
  /* ...which also cached it again */
  const char *ex[] = {"SCRIPT", "EXISTS", s.sha};
  CHECK_OK(redis_commandv(c, &r, 3, ex, NULL));
  CHECK(r && r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
        r->element[0]->integer == 1);
  redis_reply_free(r);
  /* a script error is a server error */
  redis_script_t bad;
  redis_script_init(&bad, "return redis.call('NOSUCH')");
  CHECK_RC(redis_eval(c, &bad, &r, 0, 0, NULL, NULL), REDIS_ESERVER);
  CHECK(r && r->type == REDIS_REPLY_ERROR);
  redis_reply_free(r);
  CHECK_RC(redis_eval(c, &s, &r, 3, 2, args, NULL), WEFT_EINVAL);
  redis_script_destroy(&bad);
  redis_script_destroy(&s);
  redis_client_free(c);
  return NULL;
}

static void test_eval(void **state) {
  (void)state;
  run_in_weft(eval_main, NULL, 2);
}

/* ---- cancellation ------------------------------------------------------- */

typedef struct cancel_arg {
  redis_client_t *c;
  atomic_int started;
  int rc;
} cancel_arg_t;

static void *blpop_task(void *arg) {
  cancel_arg_t *a = arg;
  redisReply *r = (redisReply *)1;
  atomic_store(&a->started, 1);
  /* blocks the connection on the server for 1 s */
  a->rc = redis_command(a->c, &r, "BLPOP", "cq", "1", NULL);
  CHECK(r == NULL);
  return NULL;
}

static void *echo_n(void *arg) {
  cancel_arg_t *a = arg;
  redisReply *r = NULL;
  atomic_store(&a->started, 1);
  a->rc = redis_command(a->c, &r, "ECHO", "n", NULL);
  if (a->rc == 0)
    CHECK(r && strcmp(r->str, "n") == 0);
  redis_reply_free(r);
  return NULL;
}

static void *cancel_main(void *arg) {
  (void)arg;
  redis_client_t *c = NULL;
  CHECK_OK(redis_client_new_url(g_url, NULL, &c));
  if (!c)
    return NULL;
  CHECK_OK(redis_command(c, NULL, "DEL", "cq", NULL));
  cancel_arg_t a = {.c = c};
  atomic_init(&a.started, 0);
  weft_task_t *t = NULL;
  CHECK_OK(weft_spawn(blpop_task, &a, &t));
  if (!HARNESS_WAIT_PARKED(a.started))
    return NULL;
  CHECK_EQ(weft_task_cancel(t), 1);
  weft_task_await(t, NULL);
  weft_task_unref(t);
  CHECK_EQ(a.rc, WEFT_ECANCELED);
  /* the BLPOP's nil reply comes first and is dropped; ours is ours */
  redisReply *r = NULL;
  CHECK_OK(redis_command(c, &r, "ECHO", "after", NULL));
  CHECK(r && r->type == REDIS_REPLY_STRING && strcmp(r->str, "after") == 0);
  redis_reply_free(r);
  /* many callers, every other one cancelled at once */
  static cancel_arg_t e[200];
  weft_task_t *ts[200];
  for (int i = 0; i < 200; i++) {
    e[i].c = c;
    atomic_init(&e[i].started, 0);
    CHECK_OK(weft_spawn(echo_n, &e[i], &ts[i]));
    if (i % 2)
      weft_task_cancel(ts[i]);
    else if (i % 3 == 0)
      weft_yield();
  }
  for (int i = 0; i < 200; i++) {
    weft_task_await(ts[i], NULL);
    weft_task_unref(ts[i]);
    if (i % 2 == 0)
      CHECK_EQ(e[i].rc, 0);
  }
  for (int i = 0; i < 20; i++) {
    char msg[16];
    snprintf(msg, sizeof msg, "m%d", i);
    CHECK_OK(redis_command(c, &r, "ECHO", msg, NULL));
    CHECK(r && strcmp(r->str, msg) == 0);
    redis_reply_free(r);
  }
  redis_client_free(c);
  return NULL;
}

static void test_cancel(void **state) {
  (void)state;
  run_in_weft(cancel_main, NULL, 1);
}

/* ---- the server going away ---------------------------------------------- */

typedef struct states {
  atomic_int down, up, last_err;
} states_t;

static void on_state(int up, int err, void *arg) {
  states_t *s = arg;
  if (up) {
    atomic_fetch_add(&s->up, 1);
  } else {
    atomic_fetch_add(&s->down, 1);
    atomic_store(&s->last_err, err);
  }
}

static int is_conn_error(int rc) {
  return rc == WEFT_ECONNRESET || rc == WEFT_ENOTCONN ||
         rc == WEFT_ECONNREFUSED || rc == WEFT_EPIPE;
}

static void *restart_main(void *arg) {
  (void)arg;
  static states_t st;
  atomic_init(&st.down, 0);
  atomic_init(&st.up, 0);
  atomic_init(&st.last_err, 0);
  redis_opts_t o;
  redis_opts_init(&o);
  o.backoff_ms = 10;
  o.backoff_max_ms = 100;
  o.on_state = on_state;
  o.on_state_arg = &st;
  redis_client_t *c = NULL;
  CHECK_OK(redis_client_new_url(g_url, &o, &c));
  if (!c)
    return NULL;
  redis_script_t s;
  redis_script_init(&s, "return redis.call('SET', KEYS[1], ARGV[1])");
  const char *args[] = {"rk", "1"};
  CHECK_OK(redis_eval(c, &s, NULL, 1, 2, args, NULL));
  server_kill();
  /* the first command may be sent before the close is seen: it fails with
   * a connection error all the same; then while reconnecting, too */
  redisReply *r = NULL;
  int rc = redis_command(c, &r, "GET", "rk", NULL);
  CHECK(is_conn_error(rc));
  CHECK(r == NULL);
  rc = redis_command(c, &r, "GET", "rk", NULL);
  CHECK(is_conn_error(rc));
  if (!HARNESS_WAIT(atomic_load(&st.down) >= 1))
    return NULL;
  server_start();
  /* callers retry until it is back */
  harness_wait_t w = harness_wait_begin(HARNESS_WAIT_MS);
  while ((rc = redis_eval(c, &s, NULL, 1, 2, args, NULL)) != 0) {
    CHECK(is_conn_error(rc));
    if (!harness_wait_step(&w, __FILE__, __LINE__, "reconnected"))
      break;
  }
  CHECK_OK(rc); /* also: NOSCRIPT after the restart was handled */
  CHECK_OK(redis_command(c, &r, "GET", "rk", NULL));
  CHECK(r && r->type == REDIS_REPLY_STRING && strcmp(r->str, "1") == 0);
  redis_reply_free(r);
  CHECK(atomic_load(&st.up) >= 1);
  redis_script_destroy(&s);
  redis_client_free(c);
  return NULL;
}

static void test_restart(void **state) {
  (void)state;
  run_in_weft(restart_main, NULL, 1);
}

int main(int argc, char **argv) {
  if (argc > 1)
    g_server = argv[1];
  g_port = free_port();
  snprintf(g_url, sizeof g_url, "redis://127.0.0.1:%d", g_port);
  server_start();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_url),      cmocka_unit_test(test_commands),
      cmocka_unit_test(test_errors),   cmocka_unit_test(test_pipeline),
      cmocka_unit_test(test_eval),     cmocka_unit_test(test_cancel),
      cmocka_unit_test(test_restart),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  server_kill();
  return rc;
}

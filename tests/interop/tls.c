/*
 * interop_tls: weft's TLS against TLS implementations nobody here wrote:
 *
 *  - `openssl s_server -rev` (Debian's openssl) as the server of a weft
 *    client, in TLS 1.3 and 1.2, with ALPN;
 *  - `openssl s_client` as a client of a weft server, verifying its chain
 *    and name, also with a client certificate (mutual TLS) and without one
 *    (refused);
 *  - Python's ssl module through asyncio (tests/interop/tls_peer.py) as a
 *    client of a weft server and as the server of a weft client.
 *
 * Each peer is started here on a loopback port of its own choosing (port
 * 0, read back from its output) and stopped here, also when a check fails:
 * the children read their standard input, which closes when this process
 * ends, and are killed after a bound. A test whose program is missing is
 * skipped with a message saying which (scripts/setup.sh installs both).
 */
#include "harness.h"
#include "tls_common.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

extern char **environ;

#define HARNESS_STR_(x) #x
#define HARNESS_STR(x) HARNESS_STR_(x)
#define HARNESS_TIMEOUT_STR HARNESS_STR(HARNESS_TIMEOUT_S)

#ifndef TLS_PEER_PY
#error "TLS_PEER_PY (the path of tests/interop/tls_peer.py) must be defined"
#endif

/* ---- child processes --------------------------------------------------------
 */

typedef struct child {
  pid_t pid;
  int in;  /* its standard input (we write) */
  int out; /* its standard output (we read) */
  char buf[1 << 16];
  size_t len; /* bytes of output read so far into buf */
} child_t;

/* Whether name is an executable on PATH. */
static int have_tool(const char *name) {
  const char *path = getenv("PATH");
  char dir[4096];

  while (path != NULL && *path) {
    const char *end = strchr(path, ':');
    size_t n = end ? (size_t)(end - path) : strlen(path);
    if (n > 0 && n < sizeof dir - 64) {
      memcpy(dir, path, n);
      snprintf(dir + n, sizeof dir - n, "/%s", name);
      if (access(dir, X_OK) == 0)
        return 1;
    }
    path = end ? end + 1 : NULL;
  }
  return 0;
}

/* Start argv[0] (looked up on PATH) with pipes on its standard input and
 * output; its standard error is ours, or (merge_stderr) goes to the same
 * pipe as its output. 0 or -1. */
static int child_start_ex(child_t *c, char *const argv[], int merge_stderr) {
  posix_spawn_file_actions_t fa;
  int inp[2], outp[2], rc;

  memset(c, 0, sizeof *c);
  c->pid = -1;
  if (pipe(inp) != 0)
    return -1;
  if (pipe(outp) != 0) {
    close(inp[0]);
    close(inp[1]);
    return -1;
  }
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, inp[0], 0);
  posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
  if (merge_stderr)
    posix_spawn_file_actions_adddup2(&fa, outp[1], 2);
  posix_spawn_file_actions_addclose(&fa, inp[1]);
  posix_spawn_file_actions_addclose(&fa, outp[0]);
  rc = posix_spawnp(&c->pid, argv[0], &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(inp[0]);
  close(outp[1]);
  fcntl(inp[1], F_SETFD, FD_CLOEXEC);
  fcntl(outp[0], F_SETFD, FD_CLOEXEC);
  c->in = inp[1];
  c->out = outp[0];
  if (rc != 0) {
    fprintf(stderr, "interop: cannot start %s: %s\n", argv[0], strerror(rc));
    close(c->in);
    close(c->out);
    c->pid = -1;
    return -1;
  }
  return 0;
}

static int child_start(child_t *c, char *const argv[]) {
  return child_start_ex(c, argv, 0);
}

/* Read some of the child's output within ms: 1 if bytes came, 0 at its
 * end, on the bound, or with the buffer full. */
static int child_read_some(child_t *c, double ms) {
  ssize_t n;

  if (ms <= 0 || c->len + 1 >= sizeof c->buf || !raw_readable(c->out, (int)ms))
    return 0;
  n = read(c->out, c->buf + c->len, sizeof c->buf - 1 - c->len);
  if (n <= 0)
    return 0;
  c->len += (size_t)n;
  c->buf[c->len] = '\0';
  return 1;
}

/* Read the child's output until it contains `want` (1), or its end or ms
 * pass (0). want NULL: until its end (or ms). */
static int child_expect(child_t *c, const char *want, double ms) {
  double end = harness_now_ms() + ms;

  c->buf[c->len] = '\0';
  while (want == NULL || strstr(c->buf, want) == NULL)
    if (!child_read_some(c, end - harness_now_ms()))
      return 0;
  return 1;
}

/* The number after `key` in a whole line of the child's output, or -1. */
static int child_port(child_t *c, const char *key) {
  double end = harness_now_ms() + HARNESS_WAIT_MS;

  c->buf[c->len] = '\0';
  for (;;) {
    const char *p = strstr(c->buf, key);
    if (p != NULL && strchr(p + strlen(key), '\n') != NULL)
      return atoi(p + strlen(key));
    if (!child_read_some(c, end - harness_now_ms()))
      return -1;
  }
}

/* Close the child's input and wait up to ms for it to exit; kill it past
 * that. Returns its exit status, or -1 if it had to be killed. */
static int child_finish(child_t *c, double ms) {
  double end = harness_now_ms() + ms;
  struct timespec t = {0, 2 * 1000 * 1000};
  int status = 0;

  if (c->pid < 0)
    return -1;
  if (c->in >= 0)
    close(c->in);
  c->in = -1;
  for (;;) {
    pid_t r = waitpid(c->pid, &status, WNOHANG);
    if (r == c->pid)
      break;
    if (harness_now_ms() > end) {
      /* TERM first: `timeout` passes it on to the program it runs. */
      kill(c->pid, SIGTERM);
      for (int i = 0; i < 500 && waitpid(c->pid, &status, WNOHANG) == 0; i++)
        nanosleep(&t, NULL);
      if (waitpid(c->pid, &status, WNOHANG) == 0) {
        kill(c->pid, SIGKILL);
        waitpid(c->pid, &status, 0);
      }
      status = -1;
      break;
    }
    /* Keep its output pipe from filling. */
    if (raw_readable(c->out, 0)) {
      ssize_t n = read(c->out, c->buf + c->len, sizeof c->buf - 1 - c->len);
      if (n > 0) {
        c->len += (size_t)n;
        c->buf[c->len] = '\0';
      }
    }
    nanosleep(&t, NULL);
  }
  /* The rest of its output. */
  for (;;) {
    ssize_t n;
    if (c->len + 1 >= sizeof c->buf)
      break;
    n = read(c->out, c->buf + c->len, sizeof c->buf - 1 - c->len);
    if (n <= 0)
      break;
    c->len += (size_t)n;
  }
  c->buf[c->len] = '\0';
  close(c->out);
  c->pid = -1;
  if (status == -1)
    return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

#define SKIP_UNLESS(tool)                                                      \
  do {                                                                         \
    if (!have_tool(tool)) {                                                    \
      printf("SKIP: %s is not installed (scripts/setup.sh installs it)\n",     \
             tool);                                                            \
      skip();                                                                  \
    }                                                                          \
  } while (0)

/* ---- openssl s_server, weft client
 * ------------------------------------------- */

typedef struct to_server {
  int port;
  int version;     /* expected */
  int client_cert; /* present the client certificate */
} to_server_t;

static void *s_server_client_main(void *arg) {
  to_server_t *ts = arg;
  weft_tls_opts_t o;
  weft_tls_ctx_t *cctx;
  weft_stream_opts_t so;
  weft_stream_t *s = NULL;
  weft_tls_info_t info;
  char buf[64];
  size_t len;

  weft_tls_opts_init(&o);
  o.alpn = "weft/1";
  if (ts->client_cert) {
    o.cert_file = tls_certs_cert_file(certs, TLS_CERT_CLIENT);
    o.key_file = tls_certs_key_file(certs, TLS_CERT_CLIENT);
  }
  cctx = client_ctx_ex(&o);
  weft_stream_opts_init(&so);
  so.tls.ctx = cctx;
  so.tls.server_hostname = "localhost";
  so.tls.handshake_timeout_ms = (uint64_t)HARNESS_WAIT_MS;
  CHECK_OK(weft_open_connection("127.0.0.1", ts->port, &so, &s));
  if (s != NULL) {
    CHECK_OK(weft_stream_tls_info(s, &info));
    CHECK_EQ(info.version, ts->version);
    CHECK(strcmp(info.alpn, "weft/1") == 0);
    CHECK_OK(weft_stream_write(s, "hello weft\n", 11));
    CHECK_RC(weft_stream_readline(s, buf, sizeof buf, &len), 0);
    CHECK(len == 11 && memcmp(buf, "tfew olleh\n", 11) == 0);
    CHECK_OK(weft_stream_write(s, "second\n", 7));
    CHECK_RC(weft_stream_readline(s, buf, sizeof buf, &len), 0);
    CHECK(len == 7 && memcmp(buf, "dnoces\n", 7) == 0);
    CHECK_OK(weft_stream_close(s));
    CHECK_OK(weft_stream_wait_closed(s));
    CHECK_OK(weft_stream_free(s));
  }
  weft_tls_ctx_free(cctx);
  return NULL;
}

static void test_openssl_s_server(void **state) {
  /* TLS 1.3, TLS 1.2, and 1.3 with a client certificate required
   * (-Verify) and verified against the test CA. */
  static const char *const variants[3][4] = {
      {"-tls1_3", NULL},
      {"-tls1_2", NULL},
      {"-tls1_3", "-Verify", "1", "-verify_return_error"},
  };

  (void)state;
  SKIP_UNLESS("openssl");
  for (int v = 0; v < 3; v++) {
    /* Under `timeout`: an s_server left waiting for its connection by a
     * test that died goes at the test's own timeout. */
    char *argv[32] = {
        "timeout", "-k",
        "5",       HARNESS_TIMEOUT_STR,
        "openssl", "s_server",
        "-accept", "127.0.0.1:0",
        "-cert",   (char *)tls_certs_chain_file(certs, TLS_CERT_SERVER),
        "-key",    (char *)tls_certs_key_file(certs, TLS_CERT_SERVER),
        "-CAfile", (char *)tls_certs_cert_file(certs, TLS_CERT_CA),
        "-rev",    "-naccept",
        "1",       "-alpn",
        "weft/1",  NULL};
    int n = 19;
    to_server_t ts;
    child_t c;
    int status;

    for (int k = 0; k < 4 && variants[v][k] != NULL; k++)
      argv[n++] = (char *)variants[v][k];
    argv[n] = NULL;
    /* Its report of the connection goes to its standard error. */
    assert_int_equal(child_start_ex(&c, argv, 1), 0);
    ts.port = child_port(&c, "ACCEPT 127.0.0.1:");
    ts.version = v == 1 ? WEFT_TLS_VERSION_1_2 : WEFT_TLS_VERSION_1_3;
    ts.client_cert = v == 2;
    if (ts.port <= 0) {
      child_finish(&c, 1000);
      fail_msg("s_server printed no port: %s", c.buf);
    }
    run_in_weft(s_server_client_main, &ts, 2);
    status = child_finish(&c, HARNESS_WAIT_MS); /* -naccept 1: it ends */
    if (status != 0)
      fail_msg("s_server exited with %d: %s", status, c.buf);
    assert_non_null(strstr(c.buf, "ALPN protocols selected: weft/1"));
    if (v == 2) { /* it saw and verified our certificate */
      assert_non_null(strstr(c.buf, "Peer certificate: O = " TLS_CERTS_ORG
                                    ", CN = " TLS_CERTS_CLIENT_CN));
      assert_non_null(strstr(c.buf, "Verification: OK"));
    }
  }
}

/* ---- openssl s_client, weft server
 * -------------------------------------------- */

typedef struct line_server {
  atomic_int calls;
  atomic_int version;
  atomic_int end_rc; /* the last read: 0 for a clean end */
  atomic_int peer_cert;
} line_server_t;

/* Echo lines until "quit\n" (then return: close with close_notify) or the
 * end of stream. */
static void line_handler(weft_stream_t *s, void *arg) {
  line_server_t *ls = arg;
  weft_tls_info_t info;
  char line[256];
  size_t len;
  int rc;

  atomic_fetch_add(&ls->calls, 1);
  if (weft_stream_tls_info(s, &info) == 0) {
    atomic_store(&ls->version, info.version);
    atomic_store(&ls->peer_cert, info.peer_cert);
  }
  while ((rc = weft_stream_readline(s, line, sizeof line, &len)) == 0 &&
         len > 0) {
    if (len == 5 && memcmp(line, "quit\n", 5) == 0)
      break;
    if (weft_stream_write(s, line, len) != 0)
      break;
  }
  atomic_store(&ls->end_rc, rc);
}

typedef struct s_client_run {
  int mutual; /* the server requires a client certificate */
  int send_cert;
} s_client_run_t;

typedef struct spawn_job {
  char **argv;
  const char *input;
  child_t c;
  int status;
} spawn_job_t;

/* On the thread pool: run a child with input, collect its output. */
static void *spawn_job(void *arg) {
  spawn_job_t *j = arg;

  j->status = -2;
  if (child_start(&j->c, j->argv) != 0)
    return NULL;
  if (j->input != NULL) {
    size_t n = strlen(j->input);
    if (write(j->c.in, j->input, n) != (ssize_t)n)
      j->status = -3;
  }
  /* s_client -quiet ignores the end of its input: it ends when the server
   * closes; the bound covers a server that never does. */
  child_expect(&j->c, NULL, HARNESS_WAIT_MS); /* read until it exits */
  j->status = child_finish(&j->c, HARNESS_WAIT_MS);
  return NULL;
}

static void *s_client_main(void *arg) {
  s_client_run_t *r = arg;
  weft_tls_opts_t o;
  weft_tls_ctx_t *sctx;
  weft_server_t *srv;
  line_server_t ls;
  char port[32];
  spawn_job_t j;

  memset(&ls, 0, sizeof ls);
  atomic_store(&ls.end_rc, 1);
  weft_tls_opts_init(&o);
  o.alpn = "weft/1";
  if (r->mutual) {
    o.client_cert = WEFT_TLS_CLIENT_CERT_REQUIRED;
    o.ca_file = tls_certs_cert_file(certs, TLS_CERT_CA);
  }
  sctx = server_ctx_ex(TLS_CERT_CHAINED, &o); /* a chain to send */
  srv = tls_start(line_handler, &ls, sctx, 0, (uint64_t)HARNESS_WAIT_MS);
  snprintf(port, sizeof port, "127.0.0.1:%d", weft_server_port(srv));
  {
    char *argv[32];
    int n = 0;
    argv[n++] = "timeout"; /* as s_server above */
    argv[n++] = "-k";
    argv[n++] = "5";
    argv[n++] = HARNESS_TIMEOUT_STR;
    argv[n++] = "openssl";
    argv[n++] = "s_client";
    argv[n++] = "-connect";
    argv[n++] = port;
    argv[n++] = "-CAfile";
    argv[n++] = (char *)tls_certs_cert_file(certs, TLS_CERT_CA);
    argv[n++] = "-verify_return_error";
    argv[n++] = "-verify_hostname";
    argv[n++] = "localhost";
    argv[n++] = "-servername";
    argv[n++] = "localhost";
    argv[n++] = "-alpn";
    argv[n++] = "weft/1";
    argv[n++] = "-quiet";
    if (r->send_cert) {
      argv[n++] = "-cert";
      argv[n++] = (char *)tls_certs_cert_file(certs, TLS_CERT_CLIENT);
      argv[n++] = "-key";
      argv[n++] = (char *)tls_certs_key_file(certs, TLS_CERT_CLIENT);
    }
    argv[n] = NULL;
    memset(&j, 0, sizeof j);
    j.argv = argv;
    j.input = "ping over tls\nsecond ping\nquit\n";
    CHECK_OK(weft_to_thread(spawn_job, &j, NULL));
  }
  if (r->mutual && !r->send_cert) {
    /* Refused: no echo, and the handler never ran. */
    CHECK(strstr(j.c.buf, "ping over tls") == NULL);
    CHECK_EQ(atomic_load(&ls.calls), 0);
    HARNESS_WAIT(weft_server_tls_failures(srv) == 1);
  } else {
    if (j.status != 0 || strcmp(j.c.buf, "ping over tls\nsecond ping\n") != 0)
      harness_fail(__FILE__, __LINE__, "s_client exited %d with \"%s\"",
                   j.status, j.c.buf);
    CHECK_EQ(atomic_load(&ls.calls), 1);
    CHECK_EQ(atomic_load(&ls.version), WEFT_TLS_VERSION_1_3);
    CHECK_EQ(atomic_load(&ls.peer_cert), r->send_cert);
    CHECK_RC(atomic_load(&ls.end_rc), 0);
    CHECK_EQ(weft_server_tls_failures(srv), 0);
  }
  stop(srv);
  weft_tls_ctx_free(sctx);
  return NULL;
}

static void test_openssl_s_client(void **state) {
  s_client_run_t r;

  (void)state;
  SKIP_UNLESS("openssl");
  r.mutual = 0;
  r.send_cert = 0;
  run_in_weft(s_client_main, &r, 2);
  r.mutual = 1;
  r.send_cert = 1;
  run_in_weft(s_client_main, &r, 2);
  r.mutual = 1;
  r.send_cert = 0;
  run_in_weft(s_client_main, &r, 2);
}

/* ---- Python's ssl: client of a weft server
 * ------------------------------------ */

static int python_has_ssl(void) {
  char *argv[] = {"python3", "-c", "import ssl, asyncio", NULL};
  child_t c;

  if (!have_tool("python3") || child_start(&c, argv) != 0)
    return 0;
  return child_finish(&c, HARNESS_WAIT_MS) == 0;
}

#define SKIP_UNLESS_PYTHON()                                                   \
  do {                                                                         \
    if (!python_has_ssl()) {                                                   \
      printf("SKIP: python3 with its ssl and asyncio modules is not "          \
             "installed (scripts/setup.sh installs it)\n");                    \
      skip();                                                                  \
    }                                                                          \
  } while (0)

/* Echo everything until the end of stream; record how it ended. */
static void bulk_echo_handler(weft_stream_t *s, void *arg) {
  line_server_t *ls = arg;
  char buf[16384];
  int n;

  atomic_fetch_add(&ls->calls, 1);
  while ((n = weft_stream_read(s, buf, sizeof buf)) > 0)
    if (weft_stream_write(s, buf, (size_t)n) != 0 || weft_stream_drain(s) != 0)
      break;
  atomic_store(&ls->end_rc, n);
}

static void *python_client_main(void *arg) {
  weft_tls_opts_t o;
  weft_tls_ctx_t *sctx;
  weft_server_t *srv;
  line_server_t ls;
  char port[16];
  spawn_job_t j;

  (void)arg;
  memset(&ls, 0, sizeof ls);
  atomic_store(&ls.end_rc, 1);
  weft_tls_opts_init(&o);
  o.alpn = "weft/1";
  sctx = server_ctx_ex(TLS_CERT_CHAINED, &o);
  srv = tls_start(bulk_echo_handler, &ls, sctx, 0, (uint64_t)HARNESS_WAIT_MS);
  snprintf(port, sizeof port, "%d", weft_server_port(srv));
  {
    char *argv[] = {"python3",
                    TLS_PEER_PY,
                    "client",
                    port,
                    (char *)tls_certs_cert_file(certs, TLS_CERT_CA),
                    "weft/1",
                    NULL};
    memset(&j, 0, sizeof j);
    j.argv = argv;
    j.input = NULL;
    CHECK_OK(weft_to_thread(spawn_job, &j, NULL));
  }
  if (j.status != 0 || strncmp(j.c.buf, "OK TLSv1.3 TLS_", 15) != 0 ||
      strstr(j.c.buf, " weft/1\n") == NULL)
    harness_fail(__FILE__, __LINE__, "python client exited %d with \"%s\"",
                 j.status, j.c.buf);
  CHECK_EQ(atomic_load(&ls.calls), 1);
  HARNESS_WAIT(atomic_load(&ls.end_rc) != 1);
  CHECK_RC(atomic_load(&ls.end_rc), 0); /* Python sent close_notify */
  stop(srv);
  weft_tls_ctx_free(sctx);
  return NULL;
}

static void test_python_client(void **state) {
  (void)state;
  SKIP_UNLESS_PYTHON();
  run_in_weft(python_client_main, NULL, 2);
}

/* ---- Python's ssl: server of a weft client
 * ------------------------------------ */

static void *python_server_main(void *arg) {
  int port = *(int *)arg;
  weft_tls_opts_t o;
  weft_tls_ctx_t *cctx;
  weft_stream_opts_t so;
  weft_stream_t *s = NULL;
  weft_tls_info_t info;
  const size_t total = (size_t)1 << 20;
  unsigned char *out = malloc(total), *back = malloc(total);
  pat_t p;

  CHECK(out != NULL && back != NULL);
  weft_tls_opts_init(&o);
  o.alpn = "h2,weft/1";
  cctx = client_ctx_ex(&o);
  weft_stream_opts_init(&so);
  so.tls.ctx = cctx;
  so.tls.server_hostname = "localhost";
  for (int i = 0; i < 2 && out != NULL && back != NULL; i++) {
    CHECK_OK(weft_open_connection("127.0.0.1", port, &so, &s));
    if (s == NULL)
      break;
    CHECK_OK(weft_stream_tls_info(s, &info));
    CHECK_EQ(info.version, WEFT_TLS_VERSION_1_3);
    CHECK(strcmp(info.alpn, "weft/1") == 0);
    CHECK_EQ(info.resumed, i); /* Python issues tickets */
    if (i == 0)
      check_peer_cert(s, TLS_CERT_SERVER);
    echo_once(s, "hello python\n");
    pat_init(&p, 42 + (uint64_t)i);
    pat_fill(&p, out, total);
    CHECK_OK(weft_stream_write(s, out, total));
    CHECK_RC(weft_stream_readexactly(s, back, total, NULL), 0);
    CHECK(memcmp(out, back, total) == 0);
    /* Our close_notify: Python's reader ends cleanly, it closes with its
     * own, and we read a clean end. */
    CHECK_OK(weft_stream_write_eof(s));
    CHECK_RC(weft_stream_read(s, back, 16), 0);
    CHECK_OK(weft_stream_free(s));
  }
  free(out);
  free(back);
  weft_tls_ctx_free(cctx);
  return NULL;
}

static void test_python_server(void **state) {
  char *argv[] = {"python3",
                  TLS_PEER_PY,
                  "server",
                  (char *)tls_certs_chain_file(certs, TLS_CERT_SERVER),
                  (char *)tls_certs_key_file(certs, TLS_CERT_SERVER),
                  "weft/1",
                  NULL};
  child_t c;
  int port, status;

  (void)state;
  SKIP_UNLESS_PYTHON();
  assert_int_equal(child_start(&c, argv), 0);
  port = child_port(&c, "PORT ");
  if (port <= 0) {
    child_finish(&c, 1000);
    fail_msg("the Python server printed no port: %s", c.buf);
  }
  run_in_weft(python_server_main, &port, 2);
  status = child_finish(&c, HARNESS_WAIT_MS); /* its input closes: it ends */
  if (status != 0)
    fail_msg("the Python server exited with %d: %s", status, c.buf);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_openssl_s_server),
      cmocka_unit_test(test_openssl_s_client),
      cmocka_unit_test(test_python_client),
      cmocka_unit_test(test_python_server),
  };

  signal(SIGPIPE, SIG_IGN);
  return cmocka_run_group_tests(tests, tls_group_setup, tls_group_teardown);
}

/*
 * api_dns: weft_getnameinfo() (weft/stream.h). Numeric forms of IPv4 and
 * IPv6 addresses; names (127.0.0.1 and ::1, ports 80 and 443) equal to what
 * the C library's getnameinfo(3) answers on this machine, whatever its
 * /etc/hosts and /etc/services say; NI_NAMEREQD for an address of the
 * documentation range (the C library's answer again); every argument error
 * and WEFT_ENOSPC; outside a task; a lookup cancelled while queued behind a
 * pool thread that is kept busy (UV_THREADPOOL_SIZE=1), the pool then
 * freed; and many lookups cancelled at every point, with nothing leaked
 * (LSan).
 */
#define _GNU_SOURCE /* NI_MAXHOST, NI_MAXSERV */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

static struct sockaddr_in v4(const char *ip, int port) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  CHECK_EQ(inet_pton(AF_INET, ip, &a.sin_addr), 1);
  return a;
}

static struct sockaddr_in6 v6(const char *ip, int port) {
  struct sockaddr_in6 a;
  memset(&a, 0, sizeof a);
  a.sin6_family = AF_INET6;
  a.sin6_port = htons((uint16_t)port);
  CHECK_EQ(inet_pton(AF_INET6, ip, &a.sin6_addr), 1);
  return a;
}

/* What the C library says, computed outside the runtime (main). */
typedef struct expect {
  int rc; /* getnameinfo(3)'s result */
  char host[NI_MAXHOST];
  char serv[NI_MAXSERV];
} expect_t;

static expect_t e_lo4, e_lo6, e_nameless;

static void libc(expect_t *e, const struct sockaddr *sa, socklen_t len,
                 int flags) {
  e->rc = getnameinfo(sa, len, e->host, sizeof e->host, e->serv, sizeof e->serv,
                      flags);
}

/* ---- results ------------------------------------------------------------ */

static void *lookup_body(void *arg) {
  char host[NI_MAXHOST], serv[NI_MAXSERV];
  struct sockaddr_in a = v4("127.0.0.1", 8080);
  struct sockaddr_in6 b = v6("::1", 443);
  (void)arg;

  CHECK_OK(weft_getnameinfo((struct sockaddr *)&a,
                            NI_NUMERICHOST | NI_NUMERICSERV, host, sizeof host,
                            serv, sizeof serv));
  CHECK(strcmp(host, "127.0.0.1") == 0);
  CHECK(strcmp(serv, "8080") == 0);
  CHECK_OK(weft_getnameinfo((struct sockaddr *)&b,
                            NI_NUMERICHOST | NI_NUMERICSERV, host, sizeof host,
                            serv, sizeof serv));
  CHECK(strcmp(host, "::1") == 0);
  CHECK(strcmp(serv, "443") == 0);

  /* Names, as the C library gives them here ("localhost", "http"). */
  a = v4("127.0.0.1", 80);
  CHECK_OK(e_lo4.rc);
  CHECK_OK(weft_getnameinfo((struct sockaddr *)&a, 0, host, sizeof host, serv,
                            sizeof serv));
  CHECK(strcmp(host, e_lo4.host) == 0);
  CHECK(strcmp(serv, e_lo4.serv) == 0);
  CHECK_OK(e_lo6.rc);
  CHECK_OK(weft_getnameinfo((struct sockaddr *)&b, 0, host, sizeof host, serv,
                            sizeof serv));
  CHECK(strcmp(host, e_lo6.host) == 0);
  CHECK(strcmp(serv, e_lo6.serv) == 0);

  /* Only one of the two. */
  CHECK_OK(weft_getnameinfo((struct sockaddr *)&a, NI_NUMERICHOST, host,
                            sizeof host, NULL, 0));
  CHECK(strcmp(host, "127.0.0.1") == 0);
  CHECK_OK(weft_getnameinfo((struct sockaddr *)&a, NI_NUMERICSERV, NULL, 0,
                            serv, sizeof serv));
  CHECK(strcmp(serv, "80") == 0);

  /* NI_NAMEREQD for 192.0.2.1 (TEST-NET-1, RFC 5737): whatever the C
   * library answers, weft answers the same way. */
  {
    struct sockaddr_in n = v4("192.0.2.1", 0);
    int rc = weft_getnameinfo((struct sockaddr *)&n, NI_NAMEREQD, host,
                              sizeof host, serv, sizeof serv);
    if (e_nameless.rc == 0) {
      CHECK_OK(rc);
      CHECK(strcmp(host, e_nameless.host) == 0);
    } else {
      CHECK(rc < 0);
      CHECK(host[0] == '\0' && serv[0] == '\0');
      if (e_nameless.rc == EAI_NONAME)
        CHECK_RC(rc, WEFT_EAI_NONAME);
      if (e_nameless.rc == EAI_AGAIN)
        CHECK_RC(rc, WEFT_EAI_AGAIN);
    }
  }
  return NULL;
}

static void test_lookup(void **state) {
  (void)state;
  run_in_weft(lookup_body, NULL, 2);
}

/* ---- errors ------------------------------------------------------------- */

static void *errors_body(void *arg) {
  char host[NI_MAXHOST], serv[NI_MAXSERV], tiny[5];
  struct sockaddr_in a = v4("127.0.0.1", 8080);
  struct sockaddr_un {
    sa_family_t family;
    char path[108];
  } un;
  (void)arg;

  memset(&un, 0, sizeof un);
  un.family = AF_UNIX;
  strcpy(host, "old");
  strcpy(serv, "old");
  CHECK_RC(weft_getnameinfo(NULL, 0, host, sizeof host, serv, sizeof serv),
           WEFT_EINVAL);
  CHECK(host[0] == '\0' && serv[0] == '\0');
  CHECK_RC(weft_getnameinfo((struct sockaddr *)&a, 0, NULL, 0, NULL, 0),
           WEFT_EINVAL);
  CHECK_RC(
      weft_getnameinfo((struct sockaddr *)&a, 0, host, 0, serv, sizeof serv),
      WEFT_EINVAL);
  CHECK_RC(
      weft_getnameinfo((struct sockaddr *)&a, 0, host, sizeof host, serv, 0),
      WEFT_EINVAL);
  CHECK_RC(weft_getnameinfo((struct sockaddr *)&a, 0x40000000, host,
                            sizeof host, serv, sizeof serv),
           WEFT_EINVAL);
  CHECK_RC(weft_getnameinfo((struct sockaddr *)&un, 0, host, sizeof host, serv,
                            sizeof serv),
           WEFT_EAFNOSUPPORT);
  /* Too small: "127.0.0.1" needs 10 bytes, "8080" 5. */
  CHECK_RC(weft_getnameinfo((struct sockaddr *)&a,
                            NI_NUMERICHOST | NI_NUMERICSERV, tiny, sizeof tiny,
                            serv, sizeof serv),
           WEFT_ENOSPC);
  CHECK(tiny[0] == '\0' && serv[0] == '\0');
  CHECK_RC(weft_getnameinfo((struct sockaddr *)&a,
                            NI_NUMERICHOST | NI_NUMERICSERV, host, sizeof host,
                            tiny, 4),
           WEFT_ENOSPC);
  CHECK(host[0] == '\0' && tiny[0] == '\0');
  CHECK_OK(weft_getnameinfo((struct sockaddr *)&a,
                            NI_NUMERICHOST | NI_NUMERICSERV, host, 10, tiny,
                            5)); /* exactly enough */
  CHECK(strcmp(host, "127.0.0.1") == 0 && strcmp(tiny, "8080") == 0);
  return NULL;
}

static void test_errors(void **state) {
  char host[64];
  struct sockaddr_in a = v4("127.0.0.1", 80);
  (void)state;
  CHECK_RC(
      weft_getnameinfo((struct sockaddr *)&a, 0, host, sizeof host, NULL, 0),
      WEFT_ENOTTASK);
  harness_assert_clean();
  run_in_weft(errors_body, NULL, 2);
}

/* ---- cancellation ------------------------------------------------------- */

static int block_pipe[2]; /* the pool's only thread waits on [0] */

static void *blocker(void *arg) {
  char c;
  (void)arg;
  while (read(block_pipe[0], &c, 1) < 0 && errno == EINTR)
    ;
  return NULL;
}

static void *blocker_task(void *arg) {
  (void)arg;
  CHECK_OK(weft_to_thread(blocker, NULL, NULL));
  return NULL;
}

static atomic_int lookup_started;

/* A lookup whose result goes to *(int *)arg (await reports only that the
 * task was cancelled). */
static void *lookup_task(void *arg) {
  char host[NI_MAXHOST];
  struct sockaddr_in a = v4("127.0.0.1", 80);
  atomic_store(&lookup_started, 1);
  *(int *)arg =
      weft_getnameinfo((struct sockaddr *)&a, 0, host, sizeof host, NULL, 0);
  return NULL;
}

static void *cancel_queued_body(void *arg) {
  weft_task_t *b = NULL, *l = NULL;
  int lrc = 1;
  (void)arg;

  CHECK_OK(pipe(block_pipe));
  CHECK_OK(weft_spawn(blocker_task, NULL, &b));
  /* One worker: the blocker issues its request when it first runs, which
   * is before this task runs again. */
  CHECK_OK(weft_yield());
  atomic_store(&lookup_started, 0);
  CHECK_OK(weft_spawn(lookup_task, &lrc, &l));
  while (!atomic_load(&lookup_started))
    CHECK_OK(weft_yield());
  /* The lookup is queued behind the blocker (one pool thread). */
  CHECK_EQ(weft_task_cancel(l), 1);
  CHECK_RC(weft_task_await(l, NULL), WEFT_ECANCELED);
  CHECK_RC(lrc, WEFT_ECANCELED);
  CHECK(!weft_task_done(b));
  CHECK_EQ(write(block_pipe[1], "x", 1), 1);
  CHECK_OK(weft_task_await(b, NULL));
  weft_task_unref(b);
  weft_task_unref(l);
  close(block_pipe[0]);
  close(block_pipe[1]);
  return NULL;
}

static void test_cancel_queued(void **state) {
  (void)state;
  run_in_weft(cancel_queued_body, NULL, 1);
}

static void *cancel_race_body(void *arg) {
  enum { N = 64 };
  weft_task_t *t[N];
  int rc[N];
  int done = 0, cancelled = 0;
  (void)arg;

  for (int i = 0; i < N; i++) {
    rc[i] = 1;
    CHECK_OK(weft_spawn(lookup_task, &rc[i], &t[i]));
  }
  for (int i = 0; i < N; i++) {
    if (i % 4)
      weft_yield(); /* let some start, some finish */
    weft_task_cancel(t[i]);
  }
  for (int i = 0; i < N; i++) {
    int arc = weft_task_await(t[i], NULL);
    if (rc[i] == 0)
      done++;
    else if (rc[i] == WEFT_ECANCELED || (rc[i] == 1 && arc == WEFT_ECANCELED))
      cancelled++; /* inside the lookup, or before it started */
    else
      CHECK(0 && "unexpected result");
    weft_task_unref(t[i]);
  }
  CHECK_EQ(done + cancelled, N);
  return NULL;
}

static void test_cancel_racing(void **state) {
  (void)state;
  run_in_weft(cancel_race_body, NULL, 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_lookup),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_cancel_queued),
      cmocka_unit_test(test_cancel_racing),
  };
  struct sockaddr_in a = v4("127.0.0.1", 80);
  struct sockaddr_in6 b = v6("::1", 443);
  struct sockaddr_in n = v4("192.0.2.1", 0);

  /* One pool thread, so that test_cancel_queued can keep it busy. */
  setenv("UV_THREADPOOL_SIZE", "1", 1);
  libc(&e_lo4, (struct sockaddr *)&a, sizeof a, 0);
  libc(&e_lo6, (struct sockaddr *)&b, sizeof b, 0);
  libc(&e_nameless, (struct sockaddr *)&n, sizeof n, NI_NAMEREQD);
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * api_alloc_fail: weft_replace_allocator and the allocation-failure sweep.
 *
 * A counting allocator, installed with weft_replace_allocator, makes the Nth
 * allocation of the library fail. For N = 1, 2, ... a representative program
 * (spawn, gather, a queue, a task group, an offloaded call, an event,
 * weft_wait, a submission with its future, and a TCP echo through a server,
 * written with writev) runs in a fresh runtime, until a run makes fewer than
 * N allocations (nothing was injected: that run must succeed). Every run must
 * end (a monitor bounds each run), weft_run must return 0 with
 * the right result or a clean negative error code, and every block the
 * library allocated must be freed when weft_run returns (counted here; ASan's
 * leak check catches the rest). The sweep runs once with one worker, in
 * deterministic mode (the Nth allocation is the same each run), and once
 * with two workers (a server listening on both).
 *
 * Smaller scenarios are swept each on its own (a sweep costs the square of
 * the allocations its program makes): open_connection by name (the
 * resolver, and the reverse resolver), a Unix-socket server and connection
 * (with a weft_stream_sendfile() through it), the FIFO, LIFO and
 * priority queues growing their stores, the heap-allocated synchronisation
 * objects, a task group growing past what its cancellation sweep keeps on
 * the stack, a task group whose child ends unrun for want of a stack, and
 * weft_wait / as_completed over more tasks than they keep on the stack,
 * files (a handle through every call, and the path calls), a subprocess
 * with three pipes through communicate, and datagrams (two endpoints, a
 * per-worker UDP server and a client). In these, a call
 * that can fail only for want of memory must return WEFT_ENOMEM (leaving
 * *out untouched) and leave nothing half-done: the same call again
 * succeeds, and the scenario checks its whole result.
 * A task may also end unrun with WEFT_ENOMEM when the slab of stacks its
 * worker carves for it cannot be allocated (weft_spawn's documented
 * outcome); the scenarios allow for that where it can happen.
 */
#include "harness.h"

#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <netdb.h>
#include <sys/stat.h>

/* ---- the counting allocator --------------------------------------------- */

static atomic_long alloc_calls; /* allocations asked for in this run */
static atomic_long fail_at;     /* the one that fails (1-based); 0 = none */
static atomic_int injected;     /* 1 once it has failed */
static atomic_long live;        /* blocks allocated and not yet freed */

static int should_fail(void) {
  long n = atomic_fetch_add(&alloc_calls, 1) + 1;

  if (n == atomic_load(&fail_at)) {
    atomic_store(&injected, 1); /* a breakpoint here shows the site */
    return 1;
  }
  return 0;
}

static void *t_malloc(size_t n) {
  void *p = should_fail() ? NULL : malloc(n);

  if (p)
    atomic_fetch_add(&live, 1);
  return p;
}

static void *t_calloc(size_t count, size_t n) {
  void *p = should_fail() ? NULL : calloc(count, n);

  if (p)
    atomic_fetch_add(&live, 1);
  return p;
}

static void *t_realloc(void *old, size_t n) {
  void *p = should_fail() ? NULL : realloc(old, n);

  if (p && !old)
    atomic_fetch_add(&live, 1);
  return p;
}

static void t_free(void *p) {
  if (p)
    atomic_fetch_sub(&live, 1);
  free(p);
}

/* ---- the program under the sweep ---------------------------------------- */

#define NPROD 12 /* producers: with the consumer, a gather of more than 8 */
#define ITEMS 16 /* items each producer puts */
#define NGROUP 3 /* task group children */
#define PAYLOAD (96 * 1024) /* more than a stream's first read buffer */
#define PIECES 20           /* writev buffers: more than fit on the stack */

static uintptr_t expected_sum(void) {
  uintptr_t sum = 0;

  for (uintptr_t p = 0; p < NPROD; p++)
    for (uintptr_t i = 0; i < ITEMS; i++)
      sum += p * 1000 + i + 1;
  return sum;
}

typedef struct prod {
  weft_queue_t *q;
  uintptr_t base;
} prod_t;

static void *producer(void *arg) {
  prod_t *p = arg;

  for (uintptr_t i = 0; i < ITEMS; i++) {
    int rc = weft_queue_put(p->q, (void *)(p->base + i + 1));
    if (rc != 0)
      return weft_task_fail(rc);
  }
  return NULL;
}

static void *consumer(void *arg) {
  weft_queue_t *q = arg;
  uintptr_t sum = 0;

  for (int i = 0; i < NPROD * ITEMS; i++) {
    void *item;
    int rc = weft_queue_get(q, &item);
    if (rc != 0)
      return weft_task_fail(rc);
    sum += (uintptr_t)item;
    weft_queue_task_done(q);
  }
  return (void *)sum;
}

static void *child(void *arg) {
  atomic_int *ran = arg;

  weft_yield();
  atomic_fetch_add(ran, 1);
  return NULL;
}

static void *offloaded(void *arg) { return (void *)((uintptr_t)arg * 2); }

static void echo_handler(weft_stream_t *s, void *arg) {
  char buf[1024];
  int n;

  (void)arg;
  while ((n = weft_stream_read(s, buf, sizeof buf)) > 0)
    if (weft_stream_write(s, buf, (size_t)n) != 0 || weft_stream_drain(s) != 0)
      break;
}

/* Spawn, queue and gather: returns the consumer's sum or an error. */
static int part_queue(uintptr_t *sum) {
  weft_queue_t *q = NULL;
  weft_task_t *tasks[NPROD + 1];
  prod_t args[NPROD];
  void *results[NPROD + 1];
  size_t n = 0;
  int rc = weft_queue_new(4, &q);

  if (rc != 0)
    return rc;
  rc = weft_spawn(consumer, q, &tasks[n]);
  if (rc == 0)
    n++;
  for (size_t i = 0; rc == 0 && i < NPROD; i++) {
    args[i].q = q;
    args[i].base = i * 1000;
    rc = weft_spawn(producer, &args[i], &tasks[n]);
    if (rc == 0)
      n++;
  }
  if (rc == 0)
    rc = weft_gather(tasks, n, results);
  if (rc != 0)
    weft_queue_shutdown(q, 1); /* the others stop waiting on it */
  for (size_t i = 0; i < n; i++) {
    weft_task_await(tasks[i], NULL);
    weft_task_unref(tasks[i]);
  }
  CHECK_OK(weft_queue_free(q));
  if (rc == 0)
    *sum = (uintptr_t)results[0];
  return rc;
}

static int part_group(void) {
  weft_taskgroup_t *g = NULL;
  atomic_int ran;
  int spawned = 0;
  int rc = weft_taskgroup_new(&g);

  if (rc != 0)
    return rc;
  atomic_init(&ran, 0);
  for (int i = 0; rc == 0 && i < NGROUP; i++) {
    rc = weft_taskgroup_spawn(g, child, &ran, NULL);
    if (rc == 0)
      spawned++;
  }
  int wrc = weft_taskgroup_wait(g);
  if (rc == 0)
    rc = wrc;
  if (rc == 0)
    CHECK_EQ(atomic_load(&ran), NGROUP);
  CHECK_OK(weft_taskgroup_free(g));
  return rc;
}

static int part_stream(void) {
  weft_server_opts_t so;
  weft_server_t *srv = NULL;
  weft_stream_t *s = NULL;
  static char out[PAYLOAD];
  static char in[PAYLOAD]; /* one run at a time */

  for (size_t i = 0; i < PAYLOAD; i++)
    out[i] = (char)('a' + i % 26);
  weft_server_opts_init(&so);
  int rc = weft_start_server(echo_handler, NULL, "127.0.0.1", 0, &so, &srv);
  if (rc != 0)
    return rc;
  rc = weft_open_connection("127.0.0.1", weft_server_port(srv), NULL, &s);
  if (rc == 0) {
    weft_iovec_t iov[PIECES];
    for (size_t i = 0; i < PIECES; i++) {
      size_t lo = i * PAYLOAD / PIECES, hi = (i + 1) * PAYLOAD / PIECES;
      iov[i].base = out + lo;
      iov[i].len = hi - lo;
    }
    rc = weft_stream_writev(s, iov, PIECES);
  }
  if (rc == 0)
    rc = weft_stream_readexactly(s, in, PAYLOAD, NULL);
  if (rc == 0)
    CHECK(memcmp(in, out, PAYLOAD) == 0);
  if (s)
    CHECK_OK(weft_stream_free(s));
  CHECK_OK(weft_server_close(srv));
  CHECK_OK(weft_server_abort_clients(srv));
  CHECK_OK(weft_server_wait_closed(srv));
  CHECK_OK(weft_server_free(srv));
  return rc;
}

static void *setter(void *arg) {
  weft_yield();
  weft_event_set(arg);
  return NULL;
}

static void *submitted(void *arg) { return (void *)((uintptr_t)arg + 1); }

/* An event, weft_wait over tasks, and a submission to the runtime with its
 * future. */
static int part_misc(void) {
  weft_event_t *e = NULL;
  weft_task_t *tasks[NPROD];
  size_t n = 0;
  int rc = weft_event_new(&e);

  if (rc != 0)
    return rc;
  for (; rc == 0 && n < NPROD; n++)
    if ((rc = weft_spawn(setter, e, &tasks[n])) != 0)
      break;
  if (rc == 0)
    rc = weft_event_wait(e);
  if (rc == 0) {
    int w = weft_wait(tasks, n, WEFT_ALL_COMPLETED, WEFT_NO_TIMEOUT, NULL);
    if (w < 0)
      rc = w;
    else
      CHECK_EQ(w, (int)n);
  }
  for (size_t i = 0; i < n; i++) {
    weft_task_await(tasks[i], NULL);
    weft_task_unref(tasks[i]);
  }
  CHECK_OK(weft_event_free(e));
  if (rc != 0)
    return rc;

  weft_future_t *f = NULL;
  void *r = NULL;
  rc = weft_runtime_submit(weft_runtime_current(), submitted, (void *)41, &f);
  if (rc != 0)
    return rc;
  rc = weft_future_wait(f, WEFT_NO_TIMEOUT, &r);
  if (rc == 0)
    CHECK_EQ((uintptr_t)r, 42);
  weft_future_free(f);
  return rc;
}

#define SWEEP_OK ((void *)(uintptr_t)0x5eed)

static void *sweep_main(void *arg) {
  uintptr_t sum = 0;
  void *r = NULL;
  int rc;

  (void)arg;
  rc = part_queue(&sum);
  if (rc == 0)
    CHECK_EQ(sum, expected_sum());
  if (rc == 0)
    rc = part_group();
  if (rc == 0)
    rc = weft_to_thread(offloaded, (void *)(uintptr_t)21, &r);
  if (rc == 0)
    CHECK_EQ((uintptr_t)r, 42);
  if (rc == 0)
    rc = part_misc();
  if (rc == 0)
    rc = part_stream();
  return rc == 0 ? SWEEP_OK : weft_task_fail(rc);
}

/* ---- scenarios, each swept on its own ------------------------------------ */

/* A call of a scenario that can fail here only for want of memory: if it
 * fails, it must say WEFT_ENOMEM, for the allocation the sweep failed, and
 * it must have left nothing half-done: the same call again succeeds (no
 * allocation fails twice in a run), and the scenario then checks its whole
 * result (a half-done call shows there as an item too many, a child that
 * never ends, a block not freed). Evaluates to the final result. */
#define RETRY_ENOMEM(expr)                                                     \
  __extension__({                                                              \
    int retry_rc_ = (expr);                                                    \
    if (retry_rc_ != 0) {                                                      \
      CHECK_RC(retry_rc_, WEFT_ENOMEM);                                        \
      CHECK(atomic_load(&injected));                                           \
      retry_rc_ = (expr);                                                      \
      CHECK_OK(retry_rc_);                                                     \
    }                                                                          \
    retry_rc_;                                                                 \
  })

/* RETRY_ENOMEM for a call that stores a new object in *pp: a failed call
 * leaves *pp as it was (NULL). */
#define NEW_ENOMEM(pp, expr)                                                   \
  __extension__({                                                              \
    int new_rc_;                                                               \
    *(pp) = NULL;                                                              \
    new_rc_ = (expr);                                                          \
    if (new_rc_ != 0) {                                                        \
      CHECK_RC(new_rc_, WEFT_ENOMEM);                                          \
      CHECK(atomic_load(&injected));                                           \
      CHECK(*(pp) == NULL);                                                    \
      new_rc_ = (expr);                                                        \
      CHECK_OK(new_rc_);                                                       \
    }                                                                          \
    new_rc_;                                                                   \
  })

/* Write a line through s and read the echo back. Errors come from either
 * side (a failed allocation of the server's, for the accepted stream or the
 * handler task, shows here as an end of stream: WEFT_EINCOMPLETE). */
static int echo_once(weft_stream_t *s) {
  char buf[8];
  int rc = weft_stream_write(s, "weft\n", 5);

  if (rc == 0)
    rc = weft_stream_drain(s);
  if (rc == 0)
    rc = weft_stream_readexactly(s, buf, 5, NULL);
  if (rc == 0)
    CHECK(memcmp(buf, "weft\n", 5) == 0);
  return rc;
}

/* A line through readline on a fresh stream: its first read allocates the
 * stream's read buffer (readline offers no buffer of its own), and a read
 * that found no memory for it returned WEFT_ENOMEM having consumed nothing:
 * the next readline tries again and gets the whole line (the bytes waited
 * in the socket). */
static int line_once(weft_stream_t *s) {
  char buf[8];
  size_t len = 0;
  int rc = weft_stream_write(s, "line\n", 5);

  if (rc == 0)
    rc = weft_stream_drain(s);
  if (rc == 0)
    rc = RETRY_ENOMEM(weft_stream_readline(s, buf, sizeof buf, &len));
  if (rc == 0)
    CHECK(len == 5 && memcmp(buf, "line\n", 5) == 0);
  return rc;
}

static void stop_server(weft_server_t *srv) {
  CHECK_OK(weft_server_close(srv));
  CHECK_OK(weft_server_abort_clients(srv));
  CHECK_OK(weft_server_wait_closed(srv));
  CHECK_OK(weft_server_free(srv));
}

/* A small file through weft_stream_sendfile (a Unix socket: the copying
 * path) and its echo back. A sendfile that failed for want of memory sent
 * nothing: the same call again sends the whole file once. */
static int sendfile_echo(weft_stream_t *s) {
  char path[64], buf[8];
  weft_file_t *f = NULL;
  size_t sent = 0;
  int rc;

  snprintf(path, sizeof path, "/tmp/weft-api-alloc-fail-%d.send",
           (int)getpid());
  rc = NEW_ENOMEM(&f,
                  weft_file_open(path, O_RDWR | O_CREAT | O_TRUNC, 0600, &f));
  if (rc != 0)
    return rc;
  (void)RETRY_ENOMEM(weft_file_write(f, "file\n", 5, NULL));
  (void)RETRY_ENOMEM(weft_stream_sendfile(s, f, 0, 0, &sent));
  CHECK_EQ(sent, 5);
  rc = weft_stream_readexactly(s, buf, 5, NULL);
  if (rc == 0)
    CHECK(memcmp(buf, "file\n", 5) == 0);
  CHECK_OK(weft_file_free(f));
  (void)RETRY_ENOMEM(weft_fs_unlink(path));
  return rc;
}

/* open_connection by name: "localhost" goes through the resolver (dns.c)
 * and every address it gives is tried in turn. */
static void *prog_dns(void *arg) {
  weft_server_t *srv = NULL;
  weft_stream_t *s = NULL;
  int rc;

  (void)arg;
  rc = weft_start_server(echo_handler, NULL, "127.0.0.1", 0, NULL, &srv);
  if (rc != 0)
    return weft_task_fail(rc);
  rc = NEW_ENOMEM(&s, weft_open_connection("localhost",
                                           weft_server_port(srv), NULL, &s));
  if (rc == 0)
    rc = echo_once(s);
  if (rc == 0) { /* the reverse resolver: nothing half-done either */
    struct sockaddr_storage a;
    char host[64];
    CHECK_OK(weft_stream_peername(s, &a, NULL));
    (void)RETRY_ENOMEM(weft_getnameinfo((struct sockaddr *)&a,
                                        NI_NUMERICHOST | NI_NUMERICSERV, host,
                                        sizeof host, NULL, 0));
    CHECK(strcmp(host, "127.0.0.1") == 0 || strcmp(host, "::1") == 0);
  }
  if (s)
    CHECK_OK(weft_stream_free(s));
  stop_server(srv);
  return rc == 0 ? SWEEP_OK : weft_task_fail(rc);
}

/* A Unix-socket server and a connection to it. A start that failed must
 * leave no socket file behind that would stop the retry, and a closed
 * server removes its file. */
static void *prog_unix(void *arg) {
  char path[64];
  weft_server_t *srv = NULL;
  weft_stream_t *s = NULL;
  struct stat st;
  int rc;

  (void)arg;
  snprintf(path, sizeof path, "/tmp/weft-api-alloc-fail-%d.sock",
           (int)getpid());
  rc = NEW_ENOMEM(&srv,
                  weft_start_unix_server(echo_handler, NULL, path, NULL, &srv));
  if (rc != 0)
    return weft_task_fail(rc);
  rc = NEW_ENOMEM(&s, weft_open_unix_connection(path, NULL, &s));
  if (rc == 0)
    rc = line_once(s);
  if (rc == 0)
    rc = echo_once(s);
  if (rc == 0)
    rc = sendfile_echo(s);
  if (s)
    CHECK_OK(weft_stream_free(s));
  stop_server(srv);
  CHECK(stat(path, &st) != 0);
  return rc == 0 ? SWEEP_OK : weft_task_fail(rc);
}

/* Files (io/file.c): a handle through every call, and the path calls.
 * A call that failed for want of memory did nothing: the same call again
 * succeeds and the file holds exactly what was written. */
static void *prog_files(void *arg) {
  char path[64], buf[16];
  weft_file_t *f = NULL;
  struct stat st;
  weft_dirent_t *ents = NULL;
  void *data = NULL;
  size_t n = 0;
  int rc;

  (void)arg;
  snprintf(path, sizeof path, "/tmp/weft-api-alloc-fail-%d.file",
           (int)getpid());
  rc = NEW_ENOMEM(&f, weft_file_open(path, O_RDWR | O_CREAT | O_TRUNC, 0600,
                                     &f));
  if (rc != 0)
    return weft_task_fail(rc);
  (void)RETRY_ENOMEM(weft_file_write(f, "0123456789", 10, &n));
  CHECK_EQ(n, 10);
  (void)RETRY_ENOMEM(weft_file_pwrite(f, "ab", 2, 10, &n));
  (void)RETRY_ENOMEM(weft_file_pread(f, buf, sizeof buf, 0, &n));
  CHECK(n == 12 && memcmp(buf, "0123456789ab", 12) == 0);
  (void)RETRY_ENOMEM(weft_file_read(f, buf, sizeof buf, &n));
  CHECK(n == 2 && memcmp(buf, "ab", 2) == 0);
  (void)RETRY_ENOMEM(weft_file_fstat(f, &st));
  CHECK_EQ(st.st_size, 12);
  (void)RETRY_ENOMEM(weft_file_fsync(f));
  CHECK_OK(weft_file_close(f));
  CHECK_OK(weft_file_free(f));
  (void)RETRY_ENOMEM(weft_fs_stat(path, &st));
  (void)RETRY_ENOMEM(weft_fs_read_file(path, 0, &data, &n));
  CHECK(n == 12 && data && memcmp(data, "0123456789ab", 12) == 0);
  weft_fs_free(data);
  (void)RETRY_ENOMEM(weft_fs_scandir("/tmp", &ents, &n));
  CHECK(n > 0);
  weft_fs_free(ents);
  (void)RETRY_ENOMEM(weft_fs_unlink(path));
  return SWEEP_OK;
}

/* Subprocesses (io/process.c): a spawn with three pipes, and communicate.
 * A spawn that failed for want of memory left nothing (no child, no
 * descriptor, no block); a communicate that failed returned what it read
 * and left the rest in the streams, and its input is queued unless stdin
 * is still open (the documented WEFT_ENOMEM of queueing it), so calling it
 * again completes the exchange: the two outputs together are exactly what
 * the child wrote. */
static void append(char *dst, size_t *len, size_t cap, const char *src,
                   size_t n) {
  CHECK(*len + n <= cap);
  if (src && *len + n <= cap) {
    memcpy(dst + *len, src, n);
    *len += n;
  }
}

static void *prog_process(void *arg) {
  weft_process_opts_t o;
  weft_process_t *p = NULL;
  weft_process_output_t out;
  char got[2][32];
  size_t len[2] = {0, 0};
  int rc;

  (void)arg;
  weft_process_opts_init(&o);
  for (int i = 0; i < 3; i++)
    o.stdio[i].how = WEFT_STDIO_PIPE;
  rc = NEW_ENOMEM(&p, weft_create_subprocess_shell("cat; echo err >&2", &o,
                                                   &p));
  if (rc != 0)
    return weft_task_fail(rc);
  const char *input = "hello\n";
  for (int round = 0; round < 2; round++) {
    int queued = weft_stream_is_closing(weft_process_stdin(p)) == 1;
    rc = weft_process_communicate(p, queued ? NULL : input,
                                  queued ? 0 : strlen(input), &out);
    append(got[0], &len[0], sizeof got[0], out.out, out.out_len);
    append(got[1], &len[1], sizeof got[1], out.err, out.err_len);
    weft_process_output_free(&out);
    if (rc == 0)
      break;
    CHECK_RC(rc, WEFT_ENOMEM);
    CHECK(atomic_load(&injected));
  }
  CHECK_OK(rc);
  CHECK(len[0] == 6 && memcmp(got[0], "hello\n", 6) == 0);
  CHECK(len[1] == 4 && memcmp(got[1], "err\n", 4) == 0);
  int code = -1;
  CHECK_EQ(weft_process_returncode(p, &code), 1);
  CHECK_EQ(code, 0);
  CHECK_OK(weft_process_free(p));
  return rc == 0 ? SWEEP_OK : weft_task_fail(rc);
}

/* Datagrams (io/udp.c): two endpoints, and a per-worker UDP server with a
 * connected client. A datagram whose queue entry could not be allocated is
 * dropped and reported once (WEFT_ENOBUFS), as the kernel drops one for
 * want of buffer space: the client sends again until the echo comes. */
static void udp_echo_handler(weft_udp_t *u, void *arg) {
  char buf[16];
  weft_udp_info_t info;
  (void)arg;
  for (;;) {
    int n = weft_udp_recv(u, buf, sizeof buf, &info);
    if (n == WEFT_ENOBUFS) {
      CHECK(atomic_load(&injected));
      continue;
    }
    if (n < 0)
      break;
    (void)weft_udp_send(u, buf, (size_t)n, (struct sockaddr *)&info.addr);
  }
}

static int udp_round_trip(weft_udp_t *c) {
  char buf[16];
  for (int tries = 0; tries < 1000; tries++) {
    weft_timeout_t scope;
    int rc = RETRY_ENOMEM(weft_udp_send(c, "weft", 4, NULL));
    if (rc == 0)
      rc = weft_timeout_enter(&scope, 100);
    if (rc == 0)
      rc = weft_timeout_exit(&scope, weft_udp_recv(c, buf, sizeof buf, NULL));
    if (rc == 4)
      return memcmp(buf, "weft", 4) == 0 ? 0 : WEFT_EIO;
    if (rc == WEFT_ENOBUFS)
      CHECK(atomic_load(&injected));
    else if (rc != WEFT_ETIMEDOUT)
      return rc;
  }
  return WEFT_ETIMEDOUT;
}

static void *prog_udp(void *arg) {
  weft_udp_opts_t o;
  weft_udp_t *a = NULL, *b = NULL, *c = NULL;
  weft_udp_server_t *srv = NULL;
  struct sockaddr_storage to;
  char buf[16];
  int rc;

  (void)arg;
  weft_udp_opts_init(&o);
  o.local_host = "127.0.0.1";
  rc = NEW_ENOMEM(&a, weft_udp_open(&o, &a));
  if (rc == 0)
    rc = NEW_ENOMEM(&b, weft_udp_open(&o, &b));
  if (rc == 0) {
    CHECK_OK(weft_udp_sockname(b, &to, NULL));
    rc = RETRY_ENOMEM(weft_udp_send(a, "abc", 3, (struct sockaddr *)&to));
  }
  if (rc == 0) {
    rc = weft_udp_recv(b, buf, sizeof buf, NULL);
    if (rc == WEFT_ENOBUFS) { /* the datagram was dropped: send another */
      CHECK(atomic_load(&injected));
      rc = RETRY_ENOMEM(weft_udp_send(a, "abc", 3, (struct sockaddr *)&to));
      if (rc == 0)
        rc = weft_udp_recv(b, buf, sizeof buf, NULL);
    }
    if (rc == 3)
      rc = memcmp(buf, "abc", 3) == 0 ? 0 : WEFT_EIO;
  }
  if (rc == 0)
    rc = NEW_ENOMEM(&srv, weft_udp_server_start(udp_echo_handler, NULL, NULL,
                                                &srv));
  if (rc == 0) {
    weft_udp_opts_init(&o);
    o.remote_host = "127.0.0.1";
    o.remote_port = weft_udp_server_port(srv);
    rc = NEW_ENOMEM(&c, weft_udp_open(&o, &c));
  }
  if (rc == 0)
    rc = udp_round_trip(c);
  CHECK_OK(weft_udp_free(c));
  CHECK_OK(weft_udp_server_free(srv));
  CHECK_OK(weft_udp_free(b));
  CHECK_OK(weft_udp_free(a));
  return rc == 0 ? SWEEP_OK : weft_task_fail(rc);
}

/* The three queue kinds, each growing its store from 8 to 64 slots (FIFO
 * by copying around the ring, LIFO and priority by realloc). A put that
 * failed stored nothing and counted no unfinished task. */
#define QITEMS 40

static int by_value(const void *a, const void *b, void *arg) {
  (void)arg;
  return (uintptr_t)a < (uintptr_t)b ? -1 : (uintptr_t)a > (uintptr_t)b;
}

static void *prog_queue_kinds(void *arg) {
  static const weft_queue_kind_t kinds[] = {
      WEFT_QUEUE_FIFO, WEFT_QUEUE_LIFO, WEFT_QUEUE_PRIORITY};

  (void)arg;
  for (size_t k = 0; k < HARNESS_COUNT(kinds); k++) {
    weft_queue_opts_t o;
    weft_queue_t *q;

    weft_queue_opts_init(&o);
    o.kind = kinds[k];
    o.cmp = by_value;
    if (NEW_ENOMEM(&q, weft_queue_new_ex(&o, &q)) != 0)
      return weft_task_fail(WEFT_ENOMEM);
    for (uintptr_t i = 0; i < QITEMS; i++) {
      /* Priority: a permutation of 1..QITEMS (7 is prime to 40). */
      uintptr_t v = kinds[k] == WEFT_QUEUE_PRIORITY ? (i * 7) % QITEMS + 1
                                                     : i + 1;
      int rc = weft_queue_put(q, (void *)v);
      if (rc != 0) {
        CHECK_RC(rc, WEFT_ENOMEM);
        CHECK(atomic_load(&injected));
        CHECK_EQ(weft_queue_size(q), (int)i);
        CHECK_EQ(weft_queue_unfinished(q), (int)i);
        CHECK_OK(weft_queue_put(q, (void *)v));
      }
    }
    CHECK_EQ(weft_queue_size(q), QITEMS);
    for (uintptr_t i = 0; i < QITEMS; i++) {
      void *item = NULL;
      uintptr_t want = kinds[k] == WEFT_QUEUE_LIFO ? QITEMS - i : i + 1;
      CHECK_OK(weft_queue_try_get(q, &item));
      CHECK_EQ((uintptr_t)item, want);
      CHECK_OK(weft_queue_task_done(q));
    }
    CHECK_EQ(weft_queue_unfinished(q), 0);
    CHECK_OK(weft_queue_free(q));
  }
  return SWEEP_OK;
}

/* The heap-allocated synchronisation objects, each used once. */
static void *prog_sync_new(void *arg) {
  weft_lock_t *l;
  weft_event_t *e;
  weft_semaphore_t *s, *bs;
  weft_cond_t *c;
  weft_barrier_t *b;
  int rc = 0;

  (void)arg;
  rc |= NEW_ENOMEM(&l, weft_lock_new(&l));
  rc |= NEW_ENOMEM(&e, weft_event_new(&e));
  rc |= NEW_ENOMEM(&s, weft_semaphore_new(2, &s));
  rc |= NEW_ENOMEM(&bs, weft_bounded_semaphore_new(1, &bs));
  rc |= NEW_ENOMEM(&c, weft_cond_new(l, &c));
  rc |= NEW_ENOMEM(&b, weft_barrier_new(1, &b));
  if (rc != 0)
    return weft_task_fail(WEFT_ENOMEM);
  CHECK_OK(weft_lock_acquire(l));
  CHECK_EQ(weft_cond_notify(c, 1), 0);
  CHECK_OK(weft_lock_release(l));
  CHECK_OK(weft_event_set(e));
  CHECK_OK(weft_event_wait(e));
  CHECK_OK(weft_semaphore_acquire(s));
  CHECK_EQ(weft_semaphore_value(s), 1);
  CHECK_OK(weft_semaphore_release(s));
  CHECK_OK(weft_semaphore_acquire(bs));
  CHECK_OK(weft_semaphore_release(bs));
  CHECK_RC(weft_semaphore_release(bs), WEFT_EOVERFLOW);
  CHECK_EQ(weft_barrier_wait(b), 0);
  CHECK_OK(weft_barrier_free(b));
  CHECK_OK(weft_cond_free(c));
  CHECK_OK(weft_semaphore_free(bs));
  CHECK_OK(weft_semaphore_free(s));
  CHECK_OK(weft_event_free(e));
  CHECK_OK(weft_lock_free(l));
  return SWEEP_OK;
}

/* A task group growing past the 32 children its sweep holds on the stack:
 * GROW_CHILDREN children block on a gate that never opens, then one fails,
 * and the group cancels all the others (taskgroup.c protocol step 5, with
 * its array on the heap, or, when that allocation fails, cancelling under
 * the lock). */
#define GROW_CHILDREN 40

static void *gated_child(void *arg) {
  int rc = weft_event_wait(arg);
  return rc == 0 ? NULL : weft_task_fail(rc);
}

static void *failing_child(void *arg) {
  (void)arg;
  return weft_task_fail(WEFT_EIO);
}

/* A spawn into the growing group: 0 once spawned (retried once after an
 * injected WEFT_ENOMEM), 1 if the group is shutting down. That happens when
 * a gated child already spawned ended without running for want of a stack
 * (with 2 workers, the first on the other worker may be the one whose slab
 * fails): the group shuts down at once, and later spawns get
 * WEFT_ETASKGROUP_SHUTDOWN. */
static int grow_spawn(weft_taskgroup_t *g, weft_task_fn fn, void *arg,
                      const weft_spawn_opts_t *o) {
  int rc = weft_taskgroup_spawn_ex(g, fn, arg, o, NULL);
  if (rc == WEFT_ENOMEM) {
    CHECK(atomic_load(&injected));
    rc = weft_taskgroup_spawn_ex(g, fn, arg, o, NULL);
  }
  if (rc == WEFT_ETASKGROUP_SHUTDOWN) {
    CHECK(atomic_load(&injected));
    return 1;
  }
  CHECK_OK(rc);
  return 0;
}

static void *prog_group_grow(void *arg) {
  weft_taskgroup_t *g;
  weft_event_t gate;
  weft_spawn_opts_t o;
  int rc, shut = 0, eio = 0, enomem = 0;

  (void)arg;
  CHECK_OK(weft_event_init(&gate));
  if (NEW_ENOMEM(&g, weft_taskgroup_new(&g)) != 0)
    return weft_task_fail(WEFT_ENOMEM);
  for (int i = 0; i < GROW_CHILDREN && !shut; i++)
    shut = grow_spawn(g, gated_child, &gate, NULL);
  /* On worker 0, where the owner (the main task) started: the slab of
   * stacks carved for it has room for every task here, so the failing child
   * runs unless a gated child's failure shut the group down first. */
  weft_spawn_opts_init(&o);
  o.pin = 0;
  if (!shut)
    shut = grow_spawn(g, failing_child, NULL, &o);
  rc = weft_taskgroup_wait(g);
  /* The failures: the failing child's WEFT_EIO, unless the group was shut
   * down before it ran, and a gated child that got no stack, which may come
   * first; at least one of them, each at most once (one allocation fails). */
  CHECK(weft_taskgroup_error_count(g) >= 1 &&
        weft_taskgroup_error_count(g) <= 2);
  for (int i = 0; i < weft_taskgroup_error_count(g); i++) {
    int status = 0;
    CHECK_OK(weft_taskgroup_error(g, (size_t)i, NULL, &status));
    if (i == 0)
      CHECK_RC(rc, status);
    eio += status == WEFT_EIO;
    enomem += status == WEFT_ENOMEM;
  }
  CHECK(eio <= 1 && enomem <= 1);
  CHECK_EQ(eio + enomem, weft_taskgroup_error_count(g));
  CHECK(enomem == 0 || atomic_load(&injected));
  CHECK(!shut || enomem == 1);
  CHECK_OK(weft_taskgroup_free(g));
  CHECK_OK(weft_event_destroy(&gate));
  return SWEEP_OK;
}

static void *gate_opener(void *arg) {
  for (int i = 0; i < 4; i++)
    weft_yield();
  CHECK_OK(weft_event_set(arg));
  return NULL;
}

/* An opener that could not get a stack still opens the gate. */
static void gate_open(void *arg) { CHECK_OK(weft_event_set(arg)); }

/* A group child that ends without running for want of a stack is a
 * failure like any other, and shuts its group down at once: here it is the
 * child that would open the gate its siblings wait on. With one worker it
 * is the 65th task alive (the owner and UNRUN_GATED children before it),
 * the first for which the worker carves a second slab of 64 stacks, whose
 * allocation the sweep fails in one run. The group used to learn of that
 * failure only when the owner reaped the child, in spawn order, after the
 * siblings, which nothing cancelled: that run hung. */
#define UNRUN_GATED 63

static void *prog_group_unrun(void *arg) {
  weft_taskgroup_t g;
  weft_event_t gate;
  int rc, status = 0;

  (void)arg;
  CHECK_OK(weft_event_init(&gate));
  CHECK_OK(weft_taskgroup_init(&g));
  for (int i = 0; i < UNRUN_GATED; i++)
    RETRY_ENOMEM(weft_taskgroup_spawn(&g, gated_child, &gate, NULL));
  RETRY_ENOMEM(weft_taskgroup_spawn(&g, gate_opener, &gate, NULL));
  rc = weft_taskgroup_wait(&g);
  if (rc != 0) {
    /* The opener got no stack: the siblings were cancelled. */
    CHECK_RC(rc, WEFT_ENOMEM);
    CHECK(atomic_load(&injected));
    CHECK_EQ(weft_taskgroup_error_count(&g), 1);
    CHECK_OK(weft_taskgroup_error(&g, 0, NULL, &status));
    CHECK_RC(status, WEFT_ENOMEM);
  } else {
    CHECK_EQ(weft_taskgroup_error_count(&g), 0);
  }
  CHECK_OK(weft_taskgroup_destroy(&g));
  CHECK_OK(weft_event_destroy(&gate));
  return SWEEP_OK;
}

/* weft_wait and as_completed over more tasks than weft_wait keeps on the
 * stack (8), all blocked on a gate that a setter opens once the waiter
 * waits. */
#define NWAIT 12

/* Spawn NWAIT tasks blocked on gate, and its opener. */
static void spawn_gated(weft_event_t *gate, weft_task_t **tasks,
                        weft_task_t **opener) {
  weft_spawn_opts_t o;

  for (int i = 0; i < NWAIT; i++)
    RETRY_ENOMEM(weft_spawn(gated_child, gate, &tasks[i]));
  weft_spawn_opts_init(&o);
  o.discard = gate_open;
  RETRY_ENOMEM(weft_spawn_ex(gate_opener, gate, &o, opener));
}

/* Await and release tasks that ran to the end, or ended without running
 * for want of a stack (the slab the sweep failed). */
static void reap(weft_task_t **tasks, size_t n) {
  for (size_t i = 0; i < n; i++) {
    int rc = weft_task_await(tasks[i], NULL);
    if (rc != 0) {
      CHECK_RC(rc, WEFT_ENOMEM);
      CHECK(atomic_load(&injected));
    }
    weft_task_unref(tasks[i]);
  }
}

static void *prog_waitset(void *arg) {
  weft_event_t gate;
  weft_task_t *tasks[NWAIT], *opener;
  int done[NWAIT];
  int rc;

  (void)arg;
  /* weft_wait: a failure leaves no waiter linked, and the tasks run on. */
  CHECK_OK(weft_event_init(&gate));
  spawn_gated(&gate, tasks, &opener);
  memset(done, 0, sizeof done);
  rc = weft_wait(tasks, NWAIT, WEFT_ALL_COMPLETED, WEFT_NO_TIMEOUT, done);
  if (rc < 0) {
    CHECK_RC(rc, WEFT_ENOMEM);
    CHECK(atomic_load(&injected));
    rc = weft_wait(tasks, NWAIT, WEFT_ALL_COMPLETED, WEFT_NO_TIMEOUT, done);
  }
  CHECK_EQ(rc, NWAIT);
  for (int i = 0; i < NWAIT; i++)
    CHECK_EQ(done[i], 1);
  reap(tasks, NWAIT);
  reap(&opener, 1);
  CHECK_OK(weft_event_destroy(&gate));

  /* as_completed: every task comes out once, then WEFT_EOF. */
  weft_as_completed_t it;
  int seen[NWAIT];

  CHECK_OK(weft_event_init(&gate));
  spawn_gated(&gate, tasks, &opener);
  memset(seen, 0, sizeof seen);
  RETRY_ENOMEM(weft_as_completed_init(&it, tasks, NWAIT, WEFT_NO_TIMEOUT));
  for (int k = 0; k < NWAIT; k++) {
    weft_task_t *t = NULL;
    CHECK_OK(weft_as_completed_next(&it, &t));
    for (int i = 0; i < NWAIT; i++)
      if (tasks[i] == t)
        seen[i]++;
  }
  for (int i = 0; i < NWAIT; i++)
    CHECK_EQ(seen[i], 1);
  weft_task_t *none = NULL;
  CHECK_RC(weft_as_completed_next(&it, &none), WEFT_EOF);
  CHECK_OK(weft_as_completed_destroy(&it));
  reap(tasks, NWAIT);
  reap(&opener, 1);
  CHECK_OK(weft_event_destroy(&gate));
  return SWEEP_OK;
}

/* A run that does not end within RUN_BOUND_MS is a hang: the monitor names
 * the failed allocation and ends the test (well before the harness
 * watchdog, which only knows the whole test's CTest TIMEOUT). */
#define RUN_BOUND_MS (20000.0 * HARNESS_SLOWDOWN)
static atomic_long running_n; /* the step whose weft_run runs; 0 = none */
static atomic_int monitor_stop;

static void *monitor_main(void *arg) {
  long last = 0;
  double since = harness_now_ms();
  struct timespec ms = {0, 10 * 1000 * 1000};

  (void)arg;
  while (!atomic_load(&monitor_stop)) {
    long n = atomic_load(&running_n);
    if (n != last) {
      last = n;
      since = harness_now_ms();
    } else if (n != 0 && harness_now_ms() - since > RUN_BOUND_MS) {
      fprintf(stderr,
              "api_alloc_fail: with allocation %ld failing, weft_run "
              "has not returned after %.0f ms\n",
              n, RUN_BOUND_MS);
      fflush(stderr);
      _exit(1);
    }
    nanosleep(&ms, NULL);
  }
  return NULL;
}

/* Run the sweep of program (which returns SWEEP_OK when it completes);
 * returns the number of runs. */
static long sweep(const char *name, weft_task_fn program, unsigned workers) {
  weft_config_t cfg;
  int verbose = getenv("WEFT_SWEEP_VERBOSE") != NULL;
  double t0 = harness_now_ms();
  long n;

  weft_config_init(&cfg);
  if (workers == 1)
    cfg.deterministic = 1;
  else
    cfg.workers = workers;
  pthread_t monitor;
  atomic_store(&monitor_stop, 0);
  assert_int_equal(pthread_create(&monitor, NULL, monitor_main, NULL), 0);
  assert_int_equal(
      weft_replace_allocator(t_malloc, t_realloc, t_calloc, t_free), 0);
  /* WEFT_SWEEP_VERBOSE prints each step, WEFT_SWEEP_FROM=N starts at N
   * (to debug one step). */
  n = getenv("WEFT_SWEEP_FROM") ? atol(getenv("WEFT_SWEEP_FROM")) : 1;
  for (; n > 0; n++) {
    void *result = NULL;

    atomic_store(&alloc_calls, 0);
    atomic_store(&fail_at, n);
    atomic_store(&injected, 0);
    atomic_store(&live, 0);
    if (verbose)
      fprintf(stderr, "sweep %s (%u): allocation %ld fails\n", name, workers,
              n);
    harness_reset();
    atomic_store(&running_n, n);
    int rc = weft_run(program, NULL, &cfg, &result);
    atomic_store(&running_n, 0);
    harness_assert_clean();
    if (atomic_load(&live) != 0)
      fail_msg("%s: allocation %ld failed: %ld block(s) not freed (rc %s)",
               name, n, atomic_load(&live), weft_err_name(rc));
    if (rc > 0 || (rc < 0 && strcmp(weft_err_name(rc), "UNKNOWN") == 0))
      fail_msg("%s: allocation %ld failed: weft_run returned %d", name, n, rc);
    if (rc == 0 && result != SWEEP_OK)
      fail_msg("%s: allocation %ld failed: success without the result", name,
               n);
    if (!atomic_load(&injected)) {
      if (rc != 0)
        fail_msg("%s: no allocation failed, yet weft_run returned %s", name,
                 weft_err_name(rc));
      break;
    }
  }
  assert_int_equal(weft_replace_allocator(malloc, realloc, calloc, free), 0);
  atomic_store(&monitor_stop, 1);
  pthread_join(monitor, NULL);
  printf("sweep %s, %u worker(s): %ld runs, %.0f ms\n", name, workers, n,
         harness_now_ms() - t0);
  fflush(stdout);
  return n;
}

static void test_sweep_one_worker(void **state) {
  (void)state;
  long n = sweep("program", sweep_main, 1);
  assert_true(n > 20); /* the program allocates: the sweep swept */
}

static void test_sweep_two_workers(void **state) {
  (void)state;
  long n = sweep("program", sweep_main, 2);
  assert_true(n > 20);
}

/* Under TSan a one-worker run of dozens of tasks takes 200-300 ms (a
 * sweep of one, 10-20 s); those sweeps run in the other two trees, and the
 * two-worker ones, where TSan has something to look at, run in all three. */
#define SKIP_UNDER_TSAN HARNESS_SIZE(0, 1, 0)

/* Each scenario below is swept on its own (the cost of a sweep grows with
 * the square of the allocations a program makes). Their lower bounds on
 * the number of runs say that the scenario reached the allocations it is
 * about. */

static void test_sweep_dns(void **state) {
  (void)state;
  assert_true(sweep("dns", prog_dns, 1) > 8);
  assert_true(sweep("dns", prog_dns, 2) > 8);
}

static void test_sweep_unix(void **state) {
  (void)state;
  assert_true(sweep("unix", prog_unix, 1) > 8);
  assert_true(sweep("unix", prog_unix, 2) > 8);
}

static void test_sweep_process(void **state) {
  (void)state;
  assert_true(sweep("process", prog_process, 1) > 5);
  assert_true(sweep("process", prog_process, 2) > 5);
}

static void test_sweep_files(void **state) {
  (void)state;
  /* A handle, a request per call, read_file's buffer, scandir's block. */
  assert_true(sweep("files", prog_files, 1) > 12);
  assert_true(sweep("files", prog_files, 2) > 12);
}

static void test_sweep_udp(void **state) {
  (void)state;
  /* Each endpoint's record and buffer, the server's record, socket array,
   * endpoints and tasks. */
  assert_true(sweep("udp", prog_udp, 1) > 8);
  assert_true(sweep("udp", prog_udp, 2) > 8);
}

static void test_sweep_queue_kinds(void **state) {
  (void)state;
  /* Three queues, each growing 8 -> 16 -> 32 -> 64. */
  assert_true(sweep("queue kinds", prog_queue_kinds, 1) > 3 * 5);
}

static void test_sweep_sync_new(void **state) {
  (void)state;
  assert_true(sweep("sync new", prog_sync_new, 1) > 6);
}

static void test_sweep_group_grow(void **state) {
  (void)state;
  /* The group, an entry for each child, and the sweep's array. */
  if (!SKIP_UNDER_TSAN)
    assert_true(sweep("group grow", prog_group_grow, 1) > GROW_CHILDREN + 3);
  assert_true(sweep("group grow", prog_group_grow, 2) > GROW_CHILDREN + 3);
}

static void test_sweep_group_unrun(void **state) {
  (void)state;
  /* Two stack slabs, a task record slab and the group's entries. */
  if (!SKIP_UNDER_TSAN)
    assert_true(sweep("group unrun", prog_group_unrun, 1) > UNRUN_GATED + 3);
}

static void test_sweep_waitset(void **state) {
  (void)state;
  /* weft_wait's two arrays and the iterator's. */
  assert_true(sweep("waitset", prog_waitset, 1) > 3);
  assert_true(sweep("waitset", prog_waitset, 2) > 3);
}

/* ---- argument and state errors ------------------------------------------ */

static void *busy_main(void *arg) {
  (void)arg;
  CHECK_RC(weft_replace_allocator(malloc, realloc, calloc, free), WEFT_EBUSY);
  return NULL;
}

static void test_replace_errors(void **state) {
  (void)state;
  assert_int_equal(weft_replace_allocator(NULL, realloc, calloc, free),
                   WEFT_EINVAL);
  assert_int_equal(weft_replace_allocator(malloc, NULL, calloc, free),
                   WEFT_EINVAL);
  assert_int_equal(weft_replace_allocator(malloc, realloc, NULL, free),
                   WEFT_EINVAL);
  assert_int_equal(weft_replace_allocator(malloc, realloc, calloc, NULL),
                   WEFT_EINVAL);
  run_in_weft(busy_main, NULL, 2);
  assert_int_equal(weft_replace_allocator(malloc, realloc, calloc, free), 0);
}

/* The allocator really is used: a run with the counting allocator makes
 * allocations and frees them all. */
static void test_replaced_is_used(void **state) {
  (void)state;
  atomic_store(&alloc_calls, 0);
  atomic_store(&fail_at, 0);
  atomic_store(&live, 0);
  assert_int_equal(
      weft_replace_allocator(t_malloc, t_realloc, t_calloc, t_free), 0);
  assert_ptr_equal(run_in_weft(sweep_main, NULL, 2), SWEEP_OK);
  assert_int_equal(weft_replace_allocator(malloc, realloc, calloc, free), 0);
  assert_true(atomic_load(&alloc_calls) > 0);
  assert_int_equal(atomic_load(&live), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_replace_errors),
      cmocka_unit_test(test_replaced_is_used),
      cmocka_unit_test(test_sweep_one_worker),
      cmocka_unit_test(test_sweep_two_workers),
      cmocka_unit_test(test_sweep_dns),
      cmocka_unit_test(test_sweep_unix),
      cmocka_unit_test(test_sweep_files),
      cmocka_unit_test(test_sweep_process),
      cmocka_unit_test(test_sweep_udp),
      cmocka_unit_test(test_sweep_queue_kinds),
      cmocka_unit_test(test_sweep_sync_new),
      cmocka_unit_test(test_sweep_group_grow),
      cmocka_unit_test(test_sweep_group_unrun),
      cmocka_unit_test(test_sweep_waitset),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

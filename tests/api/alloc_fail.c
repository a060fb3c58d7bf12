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
 */
#include "harness.h"

#include <stdlib.h>
#include <string.h>

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

/* Run the sweep; returns the number of runs. */
static long sweep(unsigned workers) {
  weft_config_t cfg;
  int verbose = getenv("WEFT_SWEEP_VERBOSE") != NULL;
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
      fprintf(stderr, "sweep(%u): allocation %ld fails\n", workers, n);
    harness_reset();
    atomic_store(&running_n, n);
    int rc = weft_run(sweep_main, NULL, &cfg, &result);
    atomic_store(&running_n, 0);
    harness_assert_clean();
    if (atomic_load(&live) != 0)
      fail_msg("allocation %ld failed: %ld block(s) not freed (rc %s)", n,
               atomic_load(&live), weft_err_name(rc));
    if (rc > 0 || (rc < 0 && strcmp(weft_err_name(rc), "UNKNOWN") == 0))
      fail_msg("allocation %ld failed: weft_run returned %d", n, rc);
    if (rc == 0 && result != SWEEP_OK)
      fail_msg("allocation %ld failed: success without the result", n);
    if (!atomic_load(&injected)) {
      if (rc != 0)
        fail_msg("no allocation failed, yet weft_run returned %s",
                 weft_err_name(rc));
      break;
    }
  }
  assert_int_equal(weft_replace_allocator(malloc, realloc, calloc, free), 0);
  atomic_store(&monitor_stop, 1);
  pthread_join(monitor, NULL);
  return n;
}

static void test_sweep_one_worker(void **state) {
  (void)state;
  long n = sweep(1);
  assert_true(n > 20); /* the program allocates: the sweep swept */
}

static void test_sweep_two_workers(void **state) {
  (void)state;
  long n = sweep(2);
  assert_true(n > 20);
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
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

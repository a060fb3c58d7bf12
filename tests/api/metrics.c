/*
 * api_metrics: weft/metrics.h. Counters move as a known workload says
 * (spawn N, yield M, sleep), every poll is in the histogram when every
 * poll is sampled, busy time grows by at least a spin's length and stays
 * small while the runtime idles, gauges (queue depths, timers, tasks
 * alive) follow the tasks, a foreign thread takes snapshots while the
 * runtime runs (and gets WEFT_ESTATE once it ended), the Prometheus text
 * parses, and bad arguments get their errors.
 */
#include "harness.h"

#include <pthread.h>
#include <stdlib.h>

#define N_TASKS 50
#define N_YIELDS 10

static weft_worker_metrics_t wm(unsigned index) {
  weft_worker_metrics_t m;
  memset(&m, 0xab, sizeof m);
  CHECK_EQ(weft_metrics_worker(NULL, index, &m, sizeof m), (int)sizeof m);
  return m;
}

static weft_runtime_metrics_t rtm(void) {
  weft_runtime_metrics_t m;
  memset(&m, 0xab, sizeof m);
  CHECK_EQ(weft_metrics_runtime(NULL, &m, sizeof m), (int)sizeof m);
  return m;
}

static void *yielder(void *arg) {
  (void)arg;
  for (int i = 0; i < N_YIELDS; i++)
    CHECK_OK(weft_yield());
  return NULL;
}

static void *sleeper(void *arg) {
  (void)arg;
  CHECK_RC(weft_sleep(100000), WEFT_ECANCELED);
  return NULL;
}

static void *nop(void *arg) {
  (void)arg;
  return NULL;
}

/* One worker, every poll sampled: exact counts. */
static void *counters_main(void *arg) {
  (void)arg;
  weft_task_t *t[N_TASKS];
  weft_worker_metrics_t a = wm(0);
  weft_runtime_metrics_t ra = rtm();

  CHECK_EQ(ra.workers, 1);
  CHECK_EQ(ra.tasks_alive, 1); /* main */
  /* The histogram holds every ended poll: all but main's current one. */
  CHECK_EQ(a.poll_time_count, a.polls - 1);

  for (int i = 0; i < N_TASKS; i++)
    CHECK_OK(weft_spawn(yielder, NULL, &t[i]));
  /* Nothing ran yet: all of them wait in the ring and the LIFO slot. */
  weft_worker_metrics_t q = wm(0);
  CHECK_EQ(q.local_queue_depth, N_TASKS);
  CHECK_EQ(rtm().tasks_alive, N_TASKS + 1);
  CHECK_OK(weft_gather(t, N_TASKS, NULL));
  for (int i = 0; i < N_TASKS; i++)
    weft_task_unref(t[i]);
  HARNESS_WAIT(rtm().tasks_alive == 1);

  weft_worker_metrics_t b = wm(0);
  CHECK_EQ(b.tasks_spawned - a.tasks_spawned, N_TASKS);
  CHECK_EQ(b.tasks_finished - a.tasks_finished, N_TASKS);
  /* Each task: a first run and one resumption per yield. */
  CHECK(b.polls - a.polls >= (uint64_t)N_TASKS * (N_YIELDS + 1));
  CHECK_EQ(b.poll_time_count, b.polls - 1);
  uint64_t sum = 0;
  for (unsigned i = 0; i < WEFT_METRICS_POLL_BUCKETS; i++)
    sum += b.poll_time_buckets[i];
  CHECK_EQ(sum, b.poll_time_count);
  CHECK(b.poll_time_sum_ns > a.poll_time_sum_ns);
  CHECK_EQ(b.local_queue_depth, 0);
  CHECK_EQ(b.inbox_depth, 0);
  /* Alone, nobody steals. */
  CHECK_EQ(b.steal_ops, 0);
  /* The finished tasks' stacks are pooled somewhere. */
  weft_runtime_metrics_t rb = rtm();
  CHECK(b.stacks_cached + rb.stacks_pooled > 0);
  CHECK(rb.stack_size >= WEFT_STACK_SIZE_MIN);
  CHECK_EQ(rb.tasks_spawned - ra.tasks_spawned, N_TASKS);
  CHECK(rb.uptime_ns > ra.uptime_ns);

  /* Timers: one per sleeper, gone when they are cancelled. */
  for (int i = 0; i < N_TASKS; i++)
    CHECK_OK(weft_spawn(sleeper, NULL, &t[i]));
  HARNESS_WAIT(wm(0).timers_pending == N_TASKS);
  CHECK(wm(0).parks >= b.parks);
  for (int i = 0; i < N_TASKS; i++)
    CHECK_RC(weft_task_cancel(t[i]), 1);
  CHECK_RC(weft_gather(t, N_TASKS, NULL), WEFT_ECANCELED);
  for (int i = 0; i < N_TASKS; i++)
    weft_task_unref(t[i]);
  HARNESS_WAIT(wm(0).timers_pending == 0);

  /* More tasks than the ring holds: half of it overflows to the inject
   * queue. */
  weft_worker_metrics_t c = wm(0);
  for (int i = 0; i < 600; i++)
    CHECK_OK(weft_spawn(nop, NULL, NULL));
  weft_worker_metrics_t d = wm(0);
  CHECK(d.overflows > c.overflows);
  CHECK(rtm().inject_depth > 0);
  CHECK_EQ(d.local_queue_depth + rtm().inject_depth, 600);
  HARNESS_WAIT(rtm().tasks_alive == 1);
  CHECK(wm(0).inject_pops - c.inject_pops >= rtm().inject_depth);
  return NULL;
}

static void test_counters(void **state) {
  (void)state;
  weft_config_t cfg;
  weft_config_init(&cfg);
  cfg.workers = 1;
  cfg.metrics_poll_sample = 1;
  run_in_weft_cfg(counters_main, NULL, &cfg);
}

/* Busy time: at least the length of a spin; far less than the wall time
 * while the runtime only sleeps. The spin is one poll of >= 50 ms. */
static void *busy_main(void *arg) {
  (void)arg;
  weft_worker_metrics_t a = wm(0);
  harness_spin_us(50000);
  CHECK_OK(weft_yield()); /* ends the poll */
  weft_worker_metrics_t b = wm(0);
  CHECK(b.busy_ns - a.busy_ns >= 50000000u);
  uint64_t long_polls = 0;
  for (unsigned i = 0; i < WEFT_METRICS_POLL_BUCKETS; i++)
    if (weft_metrics_poll_bucket_le(i) > 50000000u)
      long_polls += b.poll_time_buckets[i] - a.poll_time_buckets[i];
  CHECK(long_polls >= 1);

  double t0 = harness_now_ms();
  weft_worker_metrics_t c = wm(0);
  CHECK_OK(weft_sleep(300));
  weft_worker_metrics_t d = wm(0);
  double wall_ns = (harness_now_ms() - t0) * 1e6;
  CHECK(wall_ns >= 300e6);
  CHECK((double)(d.busy_ns - c.busy_ns) < wall_ns / 2);
  CHECK(d.parks > c.parks);
  return NULL;
}

static void test_busy_time(void **state) {
  (void)state;
  weft_config_t cfg;
  weft_config_init(&cfg);
  cfg.workers = 1;
  cfg.metrics_poll_sample = 1;
  run_in_weft_cfg(busy_main, NULL, &cfg);
}

/* ---- Prometheus text ----------------------------------------------------- */

/* Check the text: every sample line belongs to the family of the last
 * # TYPE line, each # TYPE follows its # HELP, values parse, histogram
 * buckets are cumulative and end with +Inf == _count. Returns the value of
 * the sample line `want` (exact text before the value), or -1. */
static double parse_prometheus(const char *text, const char *want) {
  char family[128] = "", helped[128] = "";
  double found = -1, last_bucket = -1;
  uint64_t last_inf = 0;
  int in_hist = 0, lines = 0;
  const char *p = text;
  CHECK(*text != '\0');
  while (*p) {
    const char *nl = strchr(p, '\n');
    CHECK(nl != NULL); /* every line ends with \n */
    if (!nl)
      break;
    char line[512];
    size_t n = (size_t)(nl - p);
    CHECK(n < sizeof line);
    if (n >= sizeof line)
      break;
    memcpy(line, p, n);
    line[n] = '\0';
    p = nl + 1;
    lines++;
    if (strncmp(line, "# HELP ", 7) == 0) {
      CHECK(sscanf(line + 7, "%127s", helped) == 1);
      continue;
    }
    if (strncmp(line, "# TYPE ", 7) == 0) {
      char type[32];
      CHECK(sscanf(line + 7, "%127s %31s", family, type) == 2);
      CHECK(strcmp(family, helped) == 0);
      CHECK(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0 ||
            strcmp(type, "histogram") == 0);
      in_hist = strcmp(type, "histogram") == 0;
      last_bucket = -1;
      continue;
    }
    CHECK(line[0] != '#');
    char *sp = strrchr(line, ' ');
    CHECK(sp != NULL);
    if (!sp)
      continue;
    *sp = '\0';
    char *end;
    double v = strtod(sp + 1, &end);
    CHECK(*end == '\0' && end != sp + 1);
    CHECK(v >= 0);
    CHECK(strncmp(line, family, strlen(family)) == 0);
    const char *rest = line + strlen(family);
    if (!in_hist) {
      CHECK(*rest == '\0' || *rest == '{');
    } else if (strncmp(rest, "_bucket{", 8) == 0) {
      CHECK(strstr(rest, "le=\"") != NULL);
      if (last_bucket >= 0)
        CHECK(v >= last_bucket);
      last_bucket = v;
      if (strstr(rest, "le=\"+Inf\"")) {
        last_inf = (uint64_t)v;
        last_bucket = -1;
      }
    } else if (strncmp(rest, "_count{", 7) == 0) {
      CHECK_EQ((uint64_t)v, last_inf);
    } else {
      CHECK(strncmp(rest, "_sum{", 5) == 0);
    }
    if (*rest == '{')
      CHECK(strstr(rest, "worker=\"") == rest + 1);
    if (strcmp(line, want) == 0)
      found = v;
  }
  CHECK(lines > 50);
  return found;
}

static char *prometheus_text(weft_runtime_t *rt) {
  long need = weft_metrics_write_prometheus(rt, NULL, 0);
  CHECK(need > 0);
  if (need <= 0)
    return NULL;
  size_t cap = (size_t)need + 4096; /* the counters may grow meanwhile */
  char *buf = malloc(cap);
  CHECK(buf != NULL);
  if (!buf)
    return NULL;
  long got = weft_metrics_write_prometheus(rt, buf, cap);
  CHECK(got > 0 && (size_t)got < cap);
  CHECK_EQ(strlen(buf), (size_t)got);
  return buf;
}

static void *prom_main(void *arg) {
  (void)arg;
  weft_task_t *t[N_TASKS];
  for (int i = 0; i < N_TASKS; i++)
    CHECK_OK(weft_spawn(yielder, NULL, &t[i]));
  CHECK_OK(weft_gather(t, N_TASKS, NULL));
  for (int i = 0; i < N_TASKS; i++)
    weft_task_unref(t[i]);

  char *text = prometheus_text(NULL);
  if (!text)
    return NULL;
  CHECK_EQ(parse_prometheus(text, "weft_workers"), 2.0);
  CHECK(parse_prometheus(text, "weft_tasks_spawned_total") >= N_TASKS + 1);
  double polls0 = parse_prometheus(text, "weft_worker_polls_total{worker=\"0\"}");
  double polls1 = parse_prometheus(text, "weft_worker_polls_total{worker=\"1\"}");
  CHECK(polls0 >= 0 && polls1 >= 0);
  CHECK(polls0 + polls1 >= N_TASKS * (N_YIELDS + 1));
  CHECK(parse_prometheus(text, "weft_poll_time_seconds_count{worker=\"0\"}") >=
        0);
  CHECK(strstr(text, "# TYPE weft_poll_time_seconds histogram\n") != NULL);
  CHECK(strstr(text, "weft_poll_time_seconds_bucket{worker=\"1\",le=\"0.000001024\"} ") !=
        NULL);
  free(text);

  /* Truncation: a prefix, NUL-terminated, and the whole length. */
  char small[16];
  long need = weft_metrics_write_prometheus(NULL, small, sizeof small);
  CHECK(need > (long)sizeof small);
  CHECK_EQ(strlen(small), sizeof small - 1);
  CHECK(strncmp(small, "# HELP weft_wor", sizeof small - 1) == 0);
  return NULL;
}

static void test_prometheus(void **state) {
  (void)state;
  run_in_weft(prom_main, NULL, 2);
}

/* ---- a foreign thread --------------------------------------------------- */

typedef struct foreign {
  weft_runtime_t *rt;
  atomic_int stop;
  atomic_int rounds;
} foreign_t;

static void *foreign_reader(void *arg) {
  foreign_t *f = arg;
  uint64_t last_polls = 0;
  while (!atomic_load(&f->stop)) {
    weft_worker_metrics_t m;
    weft_runtime_metrics_t r;
    CHECK_EQ(weft_metrics_worker(f->rt, WEFT_METRICS_ALL_WORKERS, &m,
                                 sizeof m),
             (int)sizeof m);
    CHECK(m.polls >= last_polls); /* counters only grow */
    last_polls = m.polls;
    CHECK_EQ(weft_metrics_runtime(f->rt, &r, sizeof r), (int)sizeof r);
    CHECK_EQ(r.workers, 2);
    char *text = prometheus_text(f->rt);
    if (text) {
      CHECK(parse_prometheus(text, "weft_workers") == 2.0);
      free(text);
    }
    atomic_fetch_add(&f->rounds, 1);
  }
  return NULL;
}

static void *foreign_main(void *arg) {
  foreign_t *f = arg;
  pthread_t th;
  f->rt = weft_runtime_ref(weft_runtime_current());
  CHECK_OK(pthread_create(&th, NULL, foreign_reader, f));
  /* Work on both workers while the thread reads. */
  for (int r = 0; r < 20 || atomic_load(&f->rounds) < 3; r++) {
    weft_task_t *t[N_TASKS];
    for (int i = 0; i < N_TASKS; i++)
      CHECK_OK(weft_spawn(yielder, NULL, &t[i]));
    CHECK_OK(weft_gather(t, N_TASKS, NULL));
    for (int i = 0; i < N_TASKS; i++)
      weft_task_unref(t[i]);
    if (r > 100000)
      break;
  }
  atomic_store(&f->stop, 1);
  CHECK_OK(pthread_join(th, NULL));
  CHECK(atomic_load(&f->rounds) >= 3);
  return NULL;
}

static void test_foreign_thread(void **state) {
  (void)state;
  foreign_t f;
  memset(&f, 0, sizeof f);
  run_in_weft(foreign_main, &f, 2);
  /* The runtime ended: its handle lives on, its workers are gone. */
  weft_runtime_metrics_t r;
  weft_worker_metrics_t m;
  assert_int_equal(weft_metrics_runtime(f.rt, &r, sizeof r), WEFT_ESTATE);
  assert_int_equal(weft_metrics_worker(f.rt, 0, &m, sizeof m), WEFT_ESTATE);
  assert_int_equal(weft_metrics_write_prometheus(f.rt, NULL, 0), WEFT_ESTATE);
  weft_runtime_unref(f.rt);
}

/* ---- errors and sizes --------------------------------------------------- */

static void *errors_main(void *arg) {
  (void)arg;
  weft_worker_metrics_t m;
  weft_runtime_metrics_t r;
  char buf[8];
  CHECK_RC(weft_metrics_worker(NULL, 0, NULL, sizeof m), WEFT_EINVAL);
  CHECK_RC(weft_metrics_worker(NULL, 0, &m, 0), WEFT_EINVAL);
  CHECK_RC(weft_metrics_worker(NULL, 1, &m, sizeof m), WEFT_EINVAL);
  CHECK_RC(weft_metrics_runtime(NULL, NULL, sizeof r), WEFT_EINVAL);
  CHECK_RC(weft_metrics_runtime(NULL, &r, 0), WEFT_EINVAL);
  CHECK_EQ(weft_metrics_write_prometheus(NULL, NULL, sizeof buf),
           (long)WEFT_EINVAL);

  /* An older caller's smaller struct: only its fields are written. */
  memset(&m, 0xab, sizeof m);
  CHECK_EQ(weft_metrics_worker(NULL, 0, &m, sizeof(uint64_t)),
           (int)sizeof(uint64_t));
  CHECK(m.polls > 0);
  CHECK_EQ(m.tasks_spawned, 0xababababababababull);
  /* A newer caller's bigger struct: the library's part, zeros after. */
  struct {
    weft_worker_metrics_t m;
    uint64_t future[4];
  } big;
  memset(&big, 0xab, sizeof big);
  CHECK_EQ(weft_metrics_worker(NULL, 0, &big.m, sizeof big), (int)sizeof m);
  CHECK_EQ(big.future[0], 0);
  CHECK_EQ(big.future[3], 0);

  /* The sum over the workers of one worker is that worker. */
  CHECK_EQ(weft_metrics_worker(NULL, WEFT_METRICS_ALL_WORKERS, &m, sizeof m),
           (int)sizeof m);
  CHECK(m.polls > 0);
  return NULL;
}

static void test_errors(void **state) {
  (void)state;
  weft_worker_metrics_t m;
  weft_runtime_metrics_t r;
  char buf[8];
  /* Outside a task, rt NULL names no runtime. */
  assert_int_equal(weft_metrics_worker(NULL, 0, &m, sizeof m), WEFT_ENOTTASK);
  assert_int_equal(weft_metrics_runtime(NULL, &r, sizeof r), WEFT_ENOTTASK);
  assert_int_equal(weft_metrics_write_prometheus(NULL, buf, sizeof buf),
                   WEFT_ENOTTASK);
  assert_int_equal(weft_metrics_poll_bucket_le(0), 1024);
  assert_int_equal(weft_metrics_poll_bucket_le(1), 2048);
  assert_true(weft_metrics_poll_bucket_le(WEFT_METRICS_POLL_BUCKETS - 1) ==
              UINT64_MAX);
  assert_int_equal(weft_metrics_poll_bucket_le(WEFT_METRICS_POLL_BUCKETS), 0);

  weft_config_t cfg;
  weft_config_init(&cfg);
  cfg.metrics_poll_sample = (1u << 24) + 1;
  assert_int_equal(weft_run(nop, NULL, &cfg, NULL), WEFT_EINVAL);

  weft_config_init(&cfg);
  cfg.workers = 1;
  run_in_weft_cfg(errors_main, NULL, &cfg);
}

/* The default sampling: some polls are timed, never more than ran. */
static void *sampled_main(void *arg) {
  (void)arg;
  weft_task_t *t[N_TASKS];
  for (int round = 0; round < 10; round++) {
    for (int i = 0; i < N_TASKS; i++)
      CHECK_OK(weft_spawn(yielder, NULL, &t[i]));
    CHECK_OK(weft_gather(t, N_TASKS, NULL));
    for (int i = 0; i < N_TASKS; i++)
      weft_task_unref(t[i]);
  }
  weft_worker_metrics_t m;
  CHECK_EQ(weft_metrics_worker(NULL, WEFT_METRICS_ALL_WORKERS, &m, sizeof m),
           (int)sizeof m);
  /* 5,500+ polls, of which one in 128 on average is sampled (no interval
   * between two samples is longer than 255 polls). */
  CHECK(m.poll_time_count > 0);
  CHECK(m.poll_time_count * 2 < m.polls);
  return NULL;
}

static void test_default_sampling(void **state) {
  (void)state;
  run_in_weft(sampled_main, NULL, 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_counters),
      cmocka_unit_test(test_busy_time),
      cmocka_unit_test(test_prometheus),
      cmocka_unit_test(test_foreign_thread),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_default_sampling),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

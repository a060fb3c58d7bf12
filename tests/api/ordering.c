/*
 * api_ordering: deterministic mode (config.deterministic = 1: one worker, no
 * LIFO slot) reproduces asyncio's order exactly.
 *
 * Each test is the C transcription of a small asyncio program; the expected
 * lines are what CPython's asyncio prints for that program (the Python is
 * quoted above each test, with `log` appending to a list). The programs that
 * examples/ transcribes (docs/asyncio.md) come first, with their 1 s and 2 s
 * sleeps scaled down to U and 2U.
 *
 * Deliberately absent: bounded queues with waiting getters, where weft hands
 * an item straight to the getter (see weft/queue.h) while asyncio leaves it
 * in the queue until the getter runs, so a producer may run further ahead.
 */
#include "harness.h"

/* ms: one "second" of the seed programs. Sanitizer builds start each task
 * several times slower, so a unit there is longer, keeping every deadline
 * gap far above the time the tasks take to start. */
#define U (40 * HARNESS_SLOWDOWN)
#define REPEAT 3

static harness_log_t lg;

#define LOG(...) harness_log(&lg, __VA_ARGS__)

/* Where a trace depends on timers, the order comes from deadlines at least
 * U/2 apart, taken from the real clock as each task reaches its sleep; a
 * worker thread that loses its core for longer than that between two tasks
 * (a loaded machine) can reorder them without any defect. So a run whose
 * trace differs is run again, up to TRIES times in all: the scheduler is
 * deterministic, so a defect shows in every try and still fails. */
#define TRIES 5

/* The first line where the log differs from want. */
static size_t first_diff(const harness_log_t *log, const char *const *want,
                         size_t n) {
  size_t i;

  for (i = 0; i < n && i < log->n && i < HARNESS_LOG_MAX; i++)
    if (strcmp(log->lines[i], want[i]) != 0)
      break;
  return i;
}

static void expect_trace(weft_task_fn main_fn, const char *const *want,
                         size_t n) {
  int i, k;

  for (i = 0; i < REPEAT; i++) {
    for (k = 1;; k++) {
      harness_log_init(&lg);
      run_in_weft_deterministic(main_fn, NULL);
      if (k == TRIES || harness_log_matches(&lg, want, n))
        break;
      fprintf(stderr, "ordering: try %d of %d differs (line %zu of %zu: %s), "
              "running again\n", k, TRIES, first_diff(&lg, want, n),
              lg.n, first_diff(&lg, want, n) < lg.n && lg.n <= HARNESS_LOG_MAX
                  ? lg.lines[first_diff(&lg, want, n)] : "-");
      harness_log_destroy(&lg);
    }
    harness_log_expect(&lg, want, n);
    harness_log_destroy(&lg);
  }
}

static void unref_all(weft_task_t **t, size_t n) {
  size_t i;

  for (i = 0; i < n; i++)
    weft_task_unref(t[i]);
}

/* ---- deterministic mode forces one worker ------------------------------------- */

static void *count_main(void *arg) {
  (void)arg;
  CHECK_EQ(weft_worker_count(), 1);
  CHECK_EQ(weft_worker_index(), 0);
  return NULL;
}

static void test_deterministic_forces_one_worker(void **state) {
  weft_config_t cfg;

  (void)state;
  weft_config_init(&cfg);
  cfg.deterministic = 1;
  cfg.workers = 4;
  run_in_weft_cfg(count_main, NULL, &cfg);
}

/* ---- seed 1: awaiting a coroutine ---------------------------------------------------
 *
 *   async def say_hello():
 *       log("Hello!"); await asyncio.sleep(1); log("Hello again after 1 second!")
 *   async def main():
 *       log("Start"); await say_hello(); log("End")
 */
static void say_hello_1(void) {
  LOG("Hello!");
  CHECK_OK(weft_sleep(U));
  LOG("Hello again after 1 second!");
}

static void *seed_basic_main(void *arg) {
  (void)arg;
  LOG("Start");
  say_hello_1();
  LOG("End");
  return NULL;
}

static void test_seed_basic(void **state) {
  static const char *const want[] = {"Start", "Hello!",
                                     "Hello again after 1 second!", "End"};

  (void)state;
  expect_trace(seed_basic_main, want, HARNESS_COUNT(want));
}

/* ---- seed 2: gather ---------------------------------------------------------------------
 *
 *   async def say_hello():
 *       log("Hello!"); await asyncio.sleep(2); log("Hello again after 2 seconds!")
 *   async def say_goodbye():
 *       log("Goodbye!"); await asyncio.sleep(1); log("Goodbye again after 1 second!")
 *   async def main():
 *       await asyncio.gather(say_hello(), say_goodbye())
 */
static void *say_hello_2(void *arg) {
  (void)arg;
  LOG("Hello!");
  CHECK_OK(weft_sleep(2 * U));
  LOG("Hello again after 2 seconds!");
  return NULL;
}

static void *say_goodbye(void *arg) {
  (void)arg;
  LOG("Goodbye!");
  CHECK_OK(weft_sleep(U));
  LOG("Goodbye again after 1 second!");
  return NULL;
}

static void *seed_gather_main(void *arg) {
  weft_task_t *t[2];

  (void)arg;
  CHECK_OK(weft_spawn(say_hello_2, NULL, &t[0]));
  CHECK_OK(weft_spawn(say_goodbye, NULL, &t[1]));
  CHECK_OK(weft_gather(t, 2, NULL));
  unref_all(t, 2);
  return NULL;
}

static void test_seed_gather(void **state) {
  static const char *const want[] = {"Hello!", "Goodbye!",
                                     "Goodbye again after 1 second!",
                                     "Hello again after 2 seconds!"};

  (void)state;
  expect_trace(seed_gather_main, want, HARNESS_COUNT(want));
}

/* ---- seed 3: create_task, then await each -------------------------------------------------
 *
 *   async def task_1():
 *       log("Task 1 running"); await asyncio.sleep(1); log("Task 1 complete")
 *   async def task_2():
 *       log("Task 2 running"); await asyncio.sleep(2); log("Task 2 complete")
 *   async def main():
 *       t1 = asyncio.create_task(task_1()); t2 = asyncio.create_task(task_2())
 *       await t1; await t2
 */
static void *task_n(void *arg) {
  int n = (int)(uintptr_t)arg;

  LOG("Task %d running", n);
  CHECK_OK(weft_sleep((uint64_t)n * U));
  LOG("Task %d complete", n);
  return NULL;
}

static void *seed_tasks_main(void *arg) {
  weft_task_t *t1, *t2;

  (void)arg;
  CHECK_OK(weft_spawn(task_n, (void *)(uintptr_t)1, &t1));
  CHECK_OK(weft_spawn(task_n, (void *)(uintptr_t)2, &t2));
  CHECK_OK(weft_task_await(t1, NULL));
  CHECK_OK(weft_task_await(t2, NULL));
  weft_task_unref(t1);
  weft_task_unref(t2);
  return NULL;
}

static void test_seed_tasks(void **state) {
  static const char *const want[] = {"Task 1 running", "Task 2 running",
                                     "Task 1 complete", "Task 2 complete"};

  (void)state;
  expect_trace(seed_tasks_main, want, HARNESS_COUNT(want));
}

/* ---- seed 4: say_after ---------------------------------------------------------------------
 *
 *   async def say_after(delay, what):
 *       await asyncio.sleep(delay); log(what)
 *   async def main():
 *       log("started")
 *       task1 = asyncio.create_task(say_after(1, 'hello'))
 *       task2 = asyncio.create_task(say_after(2, 'world'))
 *       log("waiting for tasks to complete...")
 *       await task1; await task2
 *       log("finished")
 *       await asyncio.gather(say_after(1, 'hello'), say_after(2, 'world'))
 *       log("gathered")
 */
typedef struct say_after {
  uint64_t delay;
  const char *what;
} say_after_t;

static void *say_after(void *arg) {
  const say_after_t *s = arg;

  CHECK_OK(weft_sleep(s->delay));
  LOG("%s", s->what);
  return NULL;
}

static void *seed_say_after_main(void *arg) {
  static const say_after_t hello = {U, "hello"}, world = {2 * U, "world"};
  weft_task_t *t[2];

  (void)arg;
  LOG("started");
  CHECK_OK(weft_spawn(say_after, (void *)&hello, &t[0]));
  CHECK_OK(weft_spawn(say_after, (void *)&world, &t[1]));
  LOG("waiting for tasks to complete...");
  CHECK_OK(weft_task_await(t[0], NULL));
  CHECK_OK(weft_task_await(t[1], NULL));
  LOG("finished");
  unref_all(t, 2);
  CHECK_OK(weft_spawn(say_after, (void *)&hello, &t[0]));
  CHECK_OK(weft_spawn(say_after, (void *)&world, &t[1]));
  CHECK_OK(weft_gather(t, 2, NULL));
  LOG("gathered");
  unref_all(t, 2);
  return NULL;
}

static void test_seed_say_after(void **state) {
  static const char *const want[] = {
      "started", "waiting for tasks to complete...",
      "hello",   "world",
      "finished", "hello",
      "world",   "gathered"};

  (void)state;
  expect_trace(seed_say_after_main, want, HARNESS_COUNT(want));
}

/* ---- round robin -----------------------------------------------------------------------------
 *
 *   async def rr(name):
 *       for i in range(1, 5):
 *           log(f"{name}{i}"); await asyncio.sleep(0)
 *   async def main():
 *       ts = [asyncio.create_task(rr(n)) for n in "ABC"]
 *       log("main"); await asyncio.gather(*ts); log("end")
 */
static void *rr(void *arg) {
  const char *name = arg;
  int i;

  for (i = 1; i <= 4; i++) {
    LOG("%s%d", name, i);
    CHECK_OK(i % 2 ? weft_yield() : weft_sleep(0));
  }
  return NULL;
}

static void *rr_main(void *arg) {
  static const char *const names[] = {"A", "B", "C"};
  weft_task_t *t[3];
  int i;

  (void)arg;
  for (i = 0; i < 3; i++)
    CHECK_OK(weft_spawn(rr, (void *)names[i], &t[i]));
  LOG("main");
  CHECK_OK(weft_gather(t, 3, NULL));
  LOG("end");
  unref_all(t, 3);
  return NULL;
}

static void test_round_robin(void **state) {
  static const char *const want[] = {"main", "A1", "B1", "C1", "A2",
                                     "B2",   "C2", "A3", "B3", "C3",
                                     "A4",   "B4", "C4", "end"};

  (void)state;
  expect_trace(rr_main, want, HARNESS_COUNT(want));
}

/* ---- spawn order -------------------------------------------------------------------------------
 *
 *   async def child(i): log(f"C{i}")
 *   async def parent(i):
 *       log(f"T{i}"); asyncio.create_task(child(i)); log(f"T{i}'")
 *   async def main():
 *       ts = [asyncio.create_task(parent(i)) for i in range(4)]
 *       log("main"); await asyncio.sleep(0); log("main2")
 *       for t in ts: await t
 *       log("joined"); await asyncio.sleep(0); log("end")
 *
 * (Not gather: asyncio's gather suspends even when every task is done,
 * weft_gather() does not, as weft/task.h says.)
 */
static void *spawn_child(void *arg) {
  LOG("C%d", (int)(uintptr_t)arg);
  return NULL;
}

static void *spawn_parent(void *arg) {
  int i = (int)(uintptr_t)arg;

  LOG("T%d", i);
  CHECK_OK(weft_spawn(spawn_child, arg, NULL));
  LOG("T%d'", i);
  return NULL;
}

static void *spawn_order_main(void *arg) {
  weft_task_t *t[4];
  int i;

  (void)arg;
  for (i = 0; i < 4; i++)
    CHECK_OK(weft_spawn(spawn_parent, (void *)(uintptr_t)i, &t[i]));
  LOG("main");
  CHECK_OK(weft_sleep(0));
  LOG("main2");
  for (i = 0; i < 4; i++)
    CHECK_OK(weft_task_await(t[i], NULL));
  LOG("joined");
  CHECK_OK(weft_sleep(0));
  LOG("end");
  unref_all(t, 4);
  return NULL;
}

static void test_spawn_order(void **state) {
  static const char *const want[] = {
      "main", "T0",     "T0'", "T1", "T1'", "T2", "T2'", "T3",
      "T3'",  "main2", "joined", "C0", "C1",  "C2", "C3",  "end"};

  (void)state;
  expect_trace(spawn_order_main, want, HARNESS_COUNT(want));
}

/* ---- timers --------------------------------------------------------------------------------------
 *
 *   async def sleeper(d): await asyncio.sleep(d); log(f"wake {d}")
 *   async def main():
 *       ts = [asyncio.create_task(sleeper(d)) for d in (5, 1, 4, 2, 3)]
 *       ts += [asyncio.create_task(eq(i)) for i in range(6)]   # each sleeps 2.5
 *       await asyncio.gather(*ts)
 *
 * Different deadlines wake in deadline order, equal ones in FIFO order.
 */
static void *timer_sleeper(void *arg) {
  int d = (int)(uintptr_t)arg;

  CHECK_OK(weft_sleep((uint64_t)d * U));
  LOG("wake %d", d);
  return NULL;
}

static void *equal_sleeper(void *arg) {
  CHECK_OK(weft_sleep(5 * U / 2));
  LOG("eq %d", (int)(uintptr_t)arg);
  return NULL;
}

static void *timers_main(void *arg) {
  static const int delays[] = {5, 1, 4, 2, 3};
  weft_task_t *t[11];
  size_t i, n = 0;

  (void)arg;
  for (i = 0; i < 5; i++)
    CHECK_OK(weft_spawn(timer_sleeper, (void *)(uintptr_t)delays[i], &t[n++]));
  for (i = 0; i < 6; i++)
    CHECK_OK(weft_spawn(equal_sleeper, (void *)(uintptr_t)i, &t[n++]));
  CHECK_OK(weft_gather(t, n, NULL));
  unref_all(t, n);
  return NULL;
}

static void test_timers(void **state) {
  static const char *const want[] = {
      "wake 1", "wake 2", "eq 0", "eq 1", "eq 2", "eq 3",
      "eq 4",   "eq 5",   "wake 3", "wake 4", "wake 5"};

  (void)state;
  expect_trace(timers_main, want, HARNESS_COUNT(want));
}

/* ---- a queue with two consumers -------------------------------------------------------------------
 *
 *   async def producer(q):
 *       for i in range(5):
 *           await q.put(i); log(f"put {i}"); await asyncio.sleep(0)
 *       await q.put(None); await q.put(None)
 *   async def consumer(q, name):
 *       while True:
 *           item = await q.get()
 *           if item is None: log(f"{name} done"); break
 *           log(f"{name} got {item}")
 *   async def main():
 *       q = asyncio.Queue()
 *       c = [asyncio.create_task(consumer(q, n)) for n in ("c1", "c2")]
 *       p = asyncio.create_task(producer(q))
 *       await asyncio.gather(p, *c)
 */
static weft_queue_t *oq;

static void *q_producer(void *arg) {
  uintptr_t i;

  (void)arg;
  for (i = 0; i < 5; i++) {
    CHECK_OK(weft_queue_put(oq, (void *)(i + 1)));
    LOG("put %d", (int)i);
    CHECK_OK(weft_sleep(0));
  }
  CHECK_OK(weft_queue_put(oq, NULL));
  CHECK_OK(weft_queue_put(oq, NULL));
  return NULL;
}

static void *q_consumer(void *arg) {
  const char *name = arg;
  void *item;

  for (;;) {
    CHECK_OK(weft_queue_get(oq, &item));
    if (item == NULL) {
      LOG("%s done", name);
      break;
    }
    LOG("%s got %d", name, (int)((uintptr_t)item - 1));
  }
  return NULL;
}

static void *queue_main(void *arg) {
  weft_task_t *t[3];

  (void)arg;
  CHECK_OK(weft_queue_new(0, &oq));
  CHECK_OK(weft_spawn(q_consumer, (void *)"c1", &t[1]));
  CHECK_OK(weft_spawn(q_consumer, (void *)"c2", &t[2]));
  CHECK_OK(weft_spawn(q_producer, NULL, &t[0]));
  CHECK_OK(weft_gather(t, 3, NULL));
  unref_all(t, 3);
  CHECK_OK(weft_queue_free(oq));
  return NULL;
}

static void test_queue_two_consumers(void **state) {
  static const char *const want[] = {
      "put 0", "c1 got 0", "put 1", "c2 got 1", "put 2",   "c1 got 2",
      "put 3", "c2 got 3", "put 4", "c1 got 4", "c2 done", "c1 done"};

  (void)state;
  expect_trace(queue_main, want, HARNESS_COUNT(want));
}

/* ---- awaiters wake in the order they began to wait ------------------------------------------------
 *
 *   async def sleeper():
 *       log("X start"); await asyncio.sleep(1); log("X done"); return 7
 *   async def waiter(t, n):
 *       log(f"{n} await"); r = await t; log(f"{n} woke {r}")
 *   async def main():
 *       x = asyncio.create_task(sleeper())
 *       w = [asyncio.create_task(waiter(x, n)) for n in ("W1", "W2", "W3")]
 *       await asyncio.gather(*w); log("end")
 */
static weft_task_t *awaited_x;

static void *x_sleeper(void *arg) {
  (void)arg;
  LOG("X start");
  CHECK_OK(weft_sleep(U));
  LOG("X done");
  return (void *)(uintptr_t)7;
}

static void *x_waiter(void *arg) {
  void *r = NULL;

  LOG("%s await", (const char *)arg);
  CHECK_OK(weft_task_await(awaited_x, &r));
  LOG("%s woke %d", (const char *)arg, (int)(uintptr_t)r);
  return NULL;
}

static void *awaiters_main(void *arg) {
  static const char *const names[] = {"W1", "W2", "W3"};
  weft_task_t *w[3];
  int i;

  (void)arg;
  CHECK_OK(weft_spawn(x_sleeper, NULL, &awaited_x));
  for (i = 0; i < 3; i++)
    CHECK_OK(weft_spawn(x_waiter, (void *)names[i], &w[i]));
  CHECK_OK(weft_gather(w, 3, NULL));
  LOG("end");
  unref_all(w, 3);
  weft_task_unref(awaited_x);
  return NULL;
}

static void test_awaiters_fifo(void **state) {
  static const char *const want[] = {"X start",   "W1 await",  "W2 await",
                                     "W3 await",  "X done",    "W1 woke 7",
                                     "W2 woke 7", "W3 woke 7", "end"};

  (void)state;
  expect_trace(awaiters_main, want, HARNESS_COUNT(want));
}

/* ---- a cancelled task becomes ready at once, behind those already ready ----------------------------
 *
 *   async def victim():
 *       try: await asyncio.sleep(100)
 *       except asyncio.CancelledError: log("T cancelled")
 *   async def other(): log("O ran")
 *   async def main():
 *       t = asyncio.create_task(victim()); await asyncio.sleep(0)
 *       o = asyncio.create_task(other())
 *       t.cancel(); log("main cancelled T")
 *       await asyncio.sleep(0); log("main resumed")
 *       await t; await o
 */
static void *victim(void *arg) {
  (void)arg;
  if (weft_sleep(100 * 1000) == WEFT_ECANCELED)
    LOG("T cancelled");
  weft_task_uncancel(); /* asyncio's task swallowed the CancelledError */
  return NULL;
}

static void *other(void *arg) {
  (void)arg;
  LOG("O ran");
  return NULL;
}

static void *cancel_order_main(void *arg) {
  weft_task_t *t, *o;

  (void)arg;
  CHECK_OK(weft_spawn(victim, NULL, &t));
  CHECK_OK(weft_sleep(0));
  CHECK_OK(weft_spawn(other, NULL, &o));
  CHECK_EQ(weft_task_cancel(t), 1);
  LOG("main cancelled T");
  CHECK_OK(weft_sleep(0));
  LOG("main resumed");
  CHECK_OK(weft_task_await(t, NULL));
  CHECK_OK(weft_task_await(o, NULL));
  weft_task_unref(t);
  weft_task_unref(o);
  return NULL;
}

static void test_cancel_order(void **state) {
  static const char *const want[] = {"main cancelled T", "O ran",
                                     "T cancelled", "main resumed"};

  (void)state;
  expect_trace(cancel_order_main, want, HARNESS_COUNT(want));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_deterministic_forces_one_worker),
      cmocka_unit_test(test_seed_basic),
      cmocka_unit_test(test_seed_gather),
      cmocka_unit_test(test_seed_tasks),
      cmocka_unit_test(test_seed_say_after),
      cmocka_unit_test(test_round_robin),
      cmocka_unit_test(test_spawn_order),
      cmocka_unit_test(test_timers),
      cmocka_unit_test(test_queue_two_consumers),
      cmocka_unit_test(test_awaiters_fifo),
      cmocka_unit_test(test_cancel_order),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * stress_million: one million tasks alive at once, when configured for it
 * (cfg.stack_size = WEFT_STACK_SIZE_MIN, guarded stacks by default: the
 * first 8192 get a guard page, the rest come from unguarded slabs).
 *
 * Every task blocks on one weft_queue_get of a shared queue, so all of them
 * hold a stack at the same time; main waits until all have started, then
 * releases them with a million weft_queue_try_put and waits until all have
 * finished. Prints the time of each phase and the peak RSS. Normal builds
 * only: the sanitizers' per-fiber state does not scale to a million.
 */
#include "harness.h"

#include <sys/resource.h>

#define MILLION 1000000L

typedef struct million {
  weft_queue_t *q;      /* the tasks wait here */
  atomic_long started;  /* tasks that reached their get */
  atomic_long finished; /* tasks whose get returned */
  double t_spawned, t_started, t_released, t_finished; /* ms from start */
} million_t;

static million_t m;

static void *waiter(void *arg) {
  void *item = NULL;

  (void)arg;
  atomic_fetch_add_explicit(&m.started, 1, memory_order_relaxed);
  CHECK_OK(weft_queue_get(m.q, &item));
  CHECK(item == &m);
  atomic_fetch_add_explicit(&m.finished, 1, memory_order_relaxed);
  return NULL;
}

static void *million_main(void *arg) {
  double t0 = harness_now_ms();
  long i;

  (void)arg;
  CHECK_OK(weft_queue_new(0, &m.q));
  for (i = 0; i < MILLION; i++) {
    int rc = weft_spawn(waiter, NULL, NULL);
    if (rc != 0) {
      CHECK_OK(rc);
      break;
    }
  }
  m.t_spawned = harness_now_ms() - t0;
  /* Bounded by the watchdog's CTest margin rather than HARNESS_WAIT_MS:
   * a million starts take long on a loaded machine. */
  HARNESS_WAIT_UNTIL(atomic_load(&m.started) >= i, 240000.0);
  m.t_started = harness_now_ms() - t0;
  /* Everyone is parked in get: all stacks are held at once. */
  CHECK_EQ(atomic_load(&m.finished), 0);
  for (long k = 0; k < i; k++)
    CHECK_OK(weft_queue_try_put(m.q, &m));
  m.t_released = harness_now_ms() - t0;
  HARNESS_WAIT_UNTIL(atomic_load(&m.finished) >= i, 240000.0);
  m.t_finished = harness_now_ms() - t0;
  CHECK_EQ(atomic_load(&m.started), MILLION);
  CHECK_EQ(atomic_load(&m.finished), MILLION);
  CHECK_EQ(weft_queue_size(m.q), 0);
  return NULL;
}

static void test_million(void **state) {
  weft_config_t cfg;
  struct rusage ru;
  double t0, total;

  (void)state;
#if defined(WEFT_SANITIZE_ADDRESS) || defined(WEFT_SANITIZE_THREAD)
  skip();
#endif
  weft_config_init(&cfg);
  cfg.stack_size = WEFT_STACK_SIZE_MIN;
  atomic_init(&m.started, 0);
  atomic_init(&m.finished, 0);
  t0 = harness_now_ms();
  run_in_weft_cfg(million_main, NULL, &cfg);
  total = harness_now_ms() - t0;
  assert_int_equal(weft_queue_free(m.q), 0);
  getrusage(RUSAGE_SELF, &ru);
  print_message("stress_million: spawned %.0f ms, all started %.0f ms, "
                "released %.0f ms, all finished %.0f ms, weft_run %.0f ms, "
                "peak RSS %ld MiB\n",
                m.t_spawned, m.t_started, m.t_released, m.t_finished, total,
                ru.ru_maxrss / 1024);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_million),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * migration: tasks move between workers at suspension points, and what a
 * task sees stays right when they do (compiled with -O2, see CMakeLists.txt).
 *
 *  1. One task pinned to each worker records that worker's thread, so the
 *     test knows which thread is which worker.
 *  2. "Hog" tasks, one pinned to each worker, take turns keeping their
 *     worker busy, so that the ready tasks queued behind a hog are stolen by
 *     another worker: the tasks under test bounce between workers.
 *  3. The tasks under test sleep or yield in a loop. After every resumption
 *     they check that weft_worker_index() names the worker whose thread they
 *     now run on (read by a noinline function in another translation unit),
 *     that errno holds the value they set before suspending (weft saves
 *     errno with the task), that their task-local value and
 *     weft_task_current() are unchanged.
 *  4. At least one task must have been seen on two different workers.
 */
#include "harness.h"

#include "migration_tu.h"

#define MAX_WORKERS 4
#define N_MOVERS 8
#define MIN_ROUNDS 300
#define PHASE_MS 10
#define DEADLINE_MS (8000.0 * HARNESS_SLOWDOWN)

typedef struct mig {
  unsigned workers;
  pthread_t thread_of[MAX_WORKERS]; /* each worker's thread */
  atomic_int stop;                  /* the hogs stop */
  double t0;                        /* the hogs' phases are timed from here */
  atomic_int multi;                 /* movers seen on 2+ workers */
  atomic_long moves;                /* resumptions on another worker */
  atomic_long resumes;              /* resumptions checked */
} mig_t;

typedef struct mig_arg {
  mig_t *m;
  int id;
} mig_arg_t;

static void *record_thread(void *arg) {
  mig_arg_t *a = arg;

  CHECK_EQ(weft_worker_index(), a->id);
  a->m->thread_of[a->id] = mig_thread_self();
  return NULL;
}

/* The worker whose thread is the calling one, by thread identity. */
static int worker_of_this_thread(const mig_t *m) {
  pthread_t self = mig_thread_self();
  unsigned w;

  for (w = 0; w < m->workers; w++)
    if (pthread_equal(self, m->thread_of[w]))
      return (int)w;
  return -1;
}

static void *hog(void *arg) {
  mig_arg_t *a = arg;
  mig_t *m = a->m;

  while (!atomic_load(&m->stop)) {
    long phase = (long)((harness_now_ms() - m->t0) / PHASE_MS);

    if (phase % (long)m->workers == a->id) {
      harness_spin_us(1500);
      CHECK_OK(weft_yield());
    } else {
      CHECK_OK(weft_sleep(1));
    }
  }
  return NULL;
}

static int count_bits(unsigned x) {
  int n = 0;

  for (; x != 0; x &= x - 1)
    n++;
  return n;
}

static void *mover(void *arg) {
  mig_arg_t *a = arg;
  mig_t *m = a->m;
  weft_task_t *self = weft_task_current();
  int marker = 0;
  unsigned seen = 0;
  int last = weft_worker_index();
  double deadline = harness_now_ms() + DEADLINE_MS;
  int i, rc;

  CHECK_OK(weft_task_set_local(&marker));
  for (i = 0; i < MIN_ROUNDS || (count_bits(seen) < 2 &&
                                  harness_now_ms() < deadline);
       i++) {
    int want_errno = 1000000 * (a->id + 1) + i;
    int idx, idx2, w, got_errno;

    mig_errno_set(want_errno);
    if (i % 4 == 3)
      rc = weft_sleep(1);
    else if (i % 4 == 1)
      rc = weft_sleep(0);
    else
      rc = weft_yield();
    got_errno = mig_errno_get();
    CHECK_OK(rc);

    idx = weft_worker_index();
    w = worker_of_this_thread(m);
    idx2 = weft_worker_index();
    CHECK_EQ(got_errno, want_errno);
    CHECK(idx >= 0 && idx < (int)m->workers);
    CHECK_EQ(idx, w);
    CHECK_EQ(idx, idx2);
    CHECK(weft_task_local() == &marker);
    CHECK(weft_task_current() == self);
    if (idx >= 0 && idx < 32)
      seen |= 1u << idx;
    if (idx != last)
      atomic_fetch_add(&m->moves, 1);
    last = idx;
    atomic_fetch_add(&m->resumes, 1);
    /* Some work, so that queues build up behind the running task. */
    harness_spin_us(50);
  }
  if (count_bits(seen) >= 2)
    atomic_fetch_add(&m->multi, 1);
  return NULL;
}

static void *migration_main(void *arg) {
  mig_t *m = arg;
  mig_arg_t rec[MAX_WORKERS], hogs[MAX_WORKERS], movers[N_MOVERS];
  weft_task_t *rt[MAX_WORKERS], *ht[MAX_WORKERS], *mt[N_MOVERS];
  weft_spawn_opts_t opts;
  unsigned w, v;
  int i;

  CHECK_EQ(weft_worker_count(), m->workers);
  weft_spawn_opts_init(&opts);
  for (w = 0; w < m->workers; w++) {
    rec[w].m = m;
    rec[w].id = (int)w;
    opts.pin = (int)w;
    CHECK_OK(weft_spawn_ex(&opts, record_thread, &rec[w], &rt[w]));
  }
  CHECK_OK(weft_gather(rt, m->workers, NULL));
  for (w = 0; w < m->workers; w++) {
    weft_task_unref(rt[w]);
    for (v = 0; v < w; v++)
      CHECK(!pthread_equal(m->thread_of[v], m->thread_of[w]));
  }

  m->t0 = harness_now_ms();
  for (w = 0; w < m->workers; w++) {
    hogs[w].m = m;
    hogs[w].id = (int)w;
    opts.pin = (int)w;
    CHECK_OK(weft_spawn_ex(&opts, hog, &hogs[w], &ht[w]));
  }
  for (i = 0; i < N_MOVERS; i++) {
    movers[i].m = m;
    movers[i].id = i;
    CHECK_OK(weft_spawn(mover, &movers[i], &mt[i]));
  }
  CHECK_OK(weft_gather(mt, N_MOVERS, NULL));
  atomic_store(&m->stop, 1);
  CHECK_OK(weft_gather(ht, m->workers, NULL));
  for (w = 0; w < m->workers; w++)
    weft_task_unref(ht[w]);
  for (i = 0; i < N_MOVERS; i++)
    weft_task_unref(mt[i]);
  return NULL;
}

static void run_migration(unsigned workers) {
  mig_t m;

  memset(&m, 0, sizeof m);
  m.workers = workers;
  run_in_weft(migration_main, &m, workers);
  print_message("%u workers: %ld resumptions, %ld on another worker, "
                "%d/%d tasks seen on 2+ workers\n",
                workers, atomic_load(&m.resumes), atomic_load(&m.moves),
                atomic_load(&m.multi), N_MOVERS);
  assert_true(atomic_load(&m.resumes) >= (long)N_MOVERS * MIN_ROUNDS);
  assert_true(atomic_load(&m.multi) >= 1);
  assert_true(atomic_load(&m.moves) >= 1);
}

static void test_migration_2_workers(void **state) {
  (void)state;
  run_migration(2);
}

static void test_migration_4_workers(void **state) {
  (void)state;
  run_migration(4);
}

/* errno survives a suspension even when the task stays on its worker and
 * other tasks there change errno meanwhile. */
static void *errno_clobber(void *arg) {
  int i;

  (void)arg;
  for (i = 0; i < 200; i++) {
    mig_errno_set(-1 - i);
    CHECK_OK(weft_yield());
    CHECK_EQ(mig_errno_get(), -1 - i);
  }
  return NULL;
}

static void *errno_main(void *arg) {
  weft_task_t *t[4];
  int i;

  (void)arg;
  for (i = 0; i < 4; i++)
    CHECK_OK(weft_spawn(errno_clobber, NULL, &t[i]));
  for (i = 0; i < 200; i++) {
    mig_errno_set(4242 + i);
    CHECK_OK(i % 2 ? weft_yield() : weft_sleep(0));
    CHECK_EQ(mig_errno_get(), 4242 + i);
  }
  CHECK_OK(weft_gather(t, 4, NULL));
  for (i = 0; i < 4; i++)
    weft_task_unref(t[i]);
  return NULL;
}

static void test_errno_saved_on_one_worker(void **state) {
  (void)state;
  run_in_weft(errno_main, NULL, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_migration_2_workers),
      cmocka_unit_test(test_migration_4_workers),
      cmocka_unit_test(test_errno_saved_on_one_worker),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}

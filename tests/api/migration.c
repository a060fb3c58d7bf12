/*
 * api_migration: tasks move between workers at suspension points, and what a
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
 *     that their task-local value and weft_task_current() are unchanged,
 *     and the errno pattern task.h documents: a failing libc call whose
 *     errno is read right away, by an out-of-line helper of this file, gives
 *     that call's errno, although the thread's errno was set to something
 *     else before the suspension (on whichever thread that was). Before
 *     each suspension errno is set to garbage, and the suspending call must
 *     succeed all the same.
 *  4. At least one task must have been seen on two different workers.
 *
 * What task.h says does not hold, errno across a suspension point, is not
 * tested: weft makes no promise about it.
 */
#include "harness.h"

#include "migration_tu.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

/* The documented errno pattern: make the call, read errno right away, in a
 * function that does not suspend and is not inlined into one that does. */
static __attribute__((noinline)) int close_bad_fd(void) {
  if (close(-1) == 0)
    return 0;
  return errno; /* EBADF */
}

static __attribute__((noinline)) int open_missing(void) {
  int fd = open("/nonexistent-weft-dir/x", O_RDONLY);
  if (fd >= 0) {
    close(fd);
    return 0;
  }
  return errno; /* ENOENT */
}

static __attribute__((noinline)) int strtol_overflow(void) {
  errno = 0;
  (void)strtol("999999999999999999999999999999", NULL, 10);
  return errno; /* ERANGE */
}

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
    int idx, idx2, w;

    /* This thread's errno: a failing call's, then garbage, which the
     * suspending call below must not care about. */
    CHECK_EQ(open_missing(), ENOENT);
    mig_errno_set(1000000 * (a->id + 1) + i);
    if (i % 4 == 3)
      rc = weft_sleep(1);
    else if (i % 4 == 1)
      rc = weft_sleep(0);
    else
      rc = weft_yield();
    CHECK_OK(rc);
    /* Perhaps on another thread now: errno read right after the call that
     * set it is that call's. */
    CHECK_EQ(close_bad_fd(), EBADF);
    CHECK_EQ(strtol_overflow(), ERANGE);

    idx = weft_worker_index();
    w = worker_of_this_thread(m);
    idx2 = weft_worker_index();
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
    CHECK_OK(weft_spawn_ex(record_thread, &rec[w], &opts, &rt[w]));
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
    CHECK_OK(weft_spawn_ex(hog, &hogs[w], &opts, &ht[w]));
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

/* weft's calls do not depend on errno: whatever garbage errno holds when
 * they are called (set out of line, so that it really is this thread's),
 * they return what they would return anyway, and they report through their
 * result only. Several tasks on each worker set errno meanwhile. */
static const int errno_garbage[] = {0,      EINTR,  EAGAIN,  ECANCELED,
                                    EINVAL, ENOMEM, ETIMEDOUT, 0x7fffffff,
                                    -1};

static void *errno_noop(void *arg) { return arg; }

static void *errno_clobber(void *arg) {
  int i;

  (void)arg;
  for (i = 0; i < 200; i++) {
    mig_errno_set(errno_garbage[i % HARNESS_COUNT(errno_garbage)]);
    CHECK_OK(i % 3 ? weft_yield() : weft_sleep(i % 2));
    CHECK_EQ(close_bad_fd(), EBADF);
  }
  return NULL;
}

static void *errno_main(void *arg) {
  weft_task_t *t[4], *c;
  weft_queue_t *q;
  weft_lock_t *l;
  void *item, *r;
  size_t i;

  (void)arg;
  for (i = 0; i < 4; i++)
    CHECK_OK(weft_spawn(errno_clobber, NULL, &t[i]));
  CHECK_OK(weft_queue_new(1, &q));
  CHECK_OK(weft_lock_new(&l));
  for (i = 0; i < 4 * HARNESS_COUNT(errno_garbage); i++) {
    int g = errno_garbage[i % HARNESS_COUNT(errno_garbage)];

    mig_errno_set(g);
    CHECK_OK(weft_yield());
    mig_errno_set(g);
    CHECK_OK(weft_sleep(i % 2));
    mig_errno_set(g);
    CHECK_RC(weft_queue_try_get(q, &item), WEFT_EAGAIN);
    mig_errno_set(g);
    CHECK_OK(weft_queue_put(q, q));
    mig_errno_set(g);
    CHECK_RC(weft_queue_try_put(q, q), WEFT_EAGAIN);
    mig_errno_set(g);
    CHECK_OK(weft_queue_get(q, &item));
    CHECK(item == q);
    mig_errno_set(g);
    CHECK_OK(weft_lock_acquire(l));
    mig_errno_set(g);
    CHECK_OK(weft_lock_release(l));
    mig_errno_set(g);
    CHECK_OK(weft_spawn(errno_noop, (void *)i, &c));
    mig_errno_set(g);
    r = NULL;
    CHECK_OK(weft_task_await(c, &r));
    CHECK(r == (void *)i);
    mig_errno_set(g);
    CHECK_EQ(weft_task_cancel(c), 0); /* finished */
    weft_task_unref(c);
    mig_errno_set(g);
    CHECK_RC(weft_task_await(NULL, NULL), WEFT_EINVAL);
  }
  CHECK_OK(weft_gather(t, 4, NULL));
  for (i = 0; i < 4; i++)
    weft_task_unref(t[i]);
  CHECK_OK(weft_lock_free(l));
  CHECK_OK(weft_queue_free(q));
  return NULL;
}

static void test_weft_calls_ignore_errno(void **state) {
  (void)state;
  run_in_weft(errno_main, NULL, 1);
  run_in_weft(errno_main, NULL, 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_migration_2_workers),
      cmocka_unit_test(test_migration_4_workers),
      cmocka_unit_test(test_weft_calls_ignore_errno),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}

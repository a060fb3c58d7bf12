/*
 * api_task: spawning and awaiting tasks, handles and their references,
 * detached tasks, names, task-local storage, done/result/fail, spawn errors,
 * max_tasks and pinned tasks (weft/task.h).
 */
#include "harness.h"

static void *add_one(void *arg) { return (void *)((uintptr_t)arg + 1); }

/* The tasks below that must not finish before the spawner has looked at
 * them wait for this gate (polling it, so they suspend), then sleep: how
 * long the spawner takes to look does not matter. */
static atomic_int gate;

static void *sleep_then_add_one(void *arg) {
  HARNESS_WAIT(atomic_load(&gate));
  CHECK_OK(weft_sleep(20));
  return (void *)((uintptr_t)arg + 1);
}

/* ---- spawn and await ----------------------------------------------------- */

static void *spawn_await_main(void *arg) {
  weft_task_t *t, *u;
  void *r = NULL;

  (void)arg;
  CHECK_OK(weft_spawn(add_one, (void *)(uintptr_t)41, &t));
  CHECK(t != NULL);
  CHECK_OK(weft_task_await(t, &r));
  CHECK(r == (void *)(uintptr_t)42);
  /* Await twice: same status, same result, at once. */
  r = NULL;
  CHECK_OK(weft_task_await(t, &r));
  CHECK(r == (void *)(uintptr_t)42);
  CHECK_OK(weft_task_await(t, NULL));
  weft_task_unref(t);

  /* A task that suspends before finishing. */
  atomic_store(&gate, 0);
  CHECK_OK(weft_spawn(sleep_then_add_one, (void *)(uintptr_t)9, &u));
  CHECK_EQ(weft_task_done(u), 0);
  atomic_store(&gate, 1);
  CHECK_OK(weft_task_await(u, &r));
  CHECK(r == (void *)(uintptr_t)10);
  CHECK_EQ(weft_task_done(u), 1);
  weft_task_unref(u);
  return (void *)(uintptr_t)7;
}

static void test_spawn_and_await(void **state) {
  unsigned w;

  (void)state;
  for (w = 1; w <= 3; w++)
    assert_ptr_equal(run_in_weft(spawn_await_main, NULL, w),
                     (void *)(uintptr_t)7);
}

/* ---- detached tasks ------------------------------------------------------ */

#define N_DETACHED 200

typedef struct detached {
  weft_queue_t *done;
  atomic_int count;
} detached_t;

static void *detached_child(void *arg) {
  detached_t *d = arg;

  CHECK_OK(weft_sleep(1));
  CHECK_OK(weft_yield());
  atomic_fetch_add(&d->count, 1);
  CHECK_OK(weft_queue_put(d->done, d));
  return NULL;
}

static void *detached_main(void *arg) {
  detached_t *d = arg;
  void *item;
  int i;

  CHECK_OK(weft_queue_new(0, &d->done));
  for (i = 0; i < N_DETACHED; i++)
    CHECK_OK(weft_spawn(detached_child, d, NULL));
  for (i = 0; i < N_DETACHED; i++) {
    CHECK_OK(weft_queue_get(d->done, &item));
    CHECK(item == d);
  }
  CHECK_EQ(atomic_load(&d->count), N_DETACHED);
  CHECK_EQ(weft_queue_size(d->done), 0);
  /* The queue is freed after weft_run(): the last children may still be
   * returning from their puts. */
  return NULL;
}

static void test_detached_tasks_run_to_completion(void **state) {
  detached_t d;

  (void)state;
  atomic_init(&d.count, 0);
  run_in_weft(detached_main, &d, 2);
  assert_int_equal(atomic_load(&d.count), N_DETACHED);
  assert_int_equal(weft_queue_free(d.done), 0);
}

/* Dropping the last reference of a running task detaches it. */
static atomic_int unref_finished;

static void *unref_child(void *arg) {
  (void)arg;
  CHECK_OK(weft_sleep(20));
  atomic_fetch_add(&unref_finished, 1);
  return NULL;
}

static void *unref_main(void *arg) {
  weft_task_t *t;
  int i;

  (void)arg;
  for (i = 0; i < 10; i++) {
    CHECK_OK(weft_spawn(unref_child, NULL, &t));
    weft_task_unref(t);
  }
  HARNESS_WAIT(atomic_load(&unref_finished) == 10);
  CHECK_EQ(atomic_load(&unref_finished), 10);
  return NULL;
}

static void test_unref_detaches_running_task(void **state) {
  (void)state;
  atomic_store(&unref_finished, 0);
  run_in_weft(unref_main, NULL, 2);
  assert_int_equal(atomic_load(&unref_finished), 10);
}

/* ---- references and awaiting from several tasks ---------------------------- */

static void *await_other(void *arg) {
  weft_task_t *t = arg;
  void *r = NULL;

  CHECK_OK(weft_task_await(t, &r));
  return r;
}

static void *handles_main(void *arg) {
  weft_task_t *t, *t2, *a[2];
  void *r[2] = {NULL, NULL};
  void *x = NULL;
  int i;

  (void)arg;
  atomic_store(&gate, 0);
  CHECK_OK(weft_spawn(sleep_then_add_one, (void *)(uintptr_t)99, &t));
  t2 = weft_task_ref(t);
  CHECK(t2 == t);
  /* Two tasks await t at the same time. */
  for (i = 0; i < 2; i++)
    CHECK_OK(weft_spawn(await_other, t, &a[i]));
  atomic_store(&gate, 1);
  for (i = 0; i < 2; i++)
    CHECK_OK(weft_task_await(a[i], &r[i]));
  CHECK(r[0] == (void *)(uintptr_t)100);
  CHECK(r[1] == (void *)(uintptr_t)100);
  /* Releasing one of two references leaves the handle usable. */
  weft_task_unref(t2);
  CHECK_OK(weft_task_await(t, &x));
  CHECK(x == (void *)(uintptr_t)100);
  CHECK_EQ(weft_task_done(t), 1);
  weft_task_unref(t);
  weft_task_unref(a[0]);
  weft_task_unref(a[1]);
  return NULL;
}

static void test_refs_and_concurrent_awaiters(void **state) {
  (void)state;
  run_in_weft(handles_main, NULL, 1);
  run_in_weft(handles_main, NULL, 4);
}

static void *finished_main(void *arg) {
  weft_task_t *t;
  void *r = NULL;

  (void)arg;
  CHECK_OK(weft_spawn(add_one, (void *)(uintptr_t)1, &t));
  HARNESS_WAIT(weft_task_done(t) == 1);
  CHECK_EQ(weft_task_done(t), 1);
  CHECK_OK(weft_task_result(t, &r));
  CHECK(r == (void *)(uintptr_t)2);
  r = NULL;
  CHECK_OK(weft_task_await(t, &r));
  CHECK(r == (void *)(uintptr_t)2);
  /* Cancelling a finished task is refused and changes nothing. */
  CHECK_EQ(weft_task_cancel(t), 0);
  CHECK_OK(weft_task_await(t, &r));
  CHECK(r == (void *)(uintptr_t)2);
  weft_task_unref(t);
  return NULL;
}

static void test_await_finished_task(void **state) {
  (void)state;
  run_in_weft(finished_main, NULL, 2);
}

static void *await_self_main(void *arg) {
  void *r = (void *)(uintptr_t)0x5;
  weft_task_t *self = weft_task_current();

  (void)arg;
  CHECK(self != NULL);
  CHECK_RC(weft_task_await(self, &r), WEFT_EDEADLK);
  CHECK_RC(weft_task_wait_for(self, 10, &r), WEFT_EDEADLK);
  CHECK_EQ(weft_task_done(self), 0);
  CHECK_RC(weft_task_result(self, &r), WEFT_EAGAIN);
  return NULL;
}

static void test_await_self_deadlocks(void **state) {
  (void)state;
  run_in_weft(await_self_main, NULL, 2);
}

static void *block_until_cancelled(void *arg);

static void *cancel_return_main(void *arg) {
  weft_task_t *t;

  (void)arg;
  CHECK_OK(weft_spawn(block_until_cancelled, NULL, &t));
  CHECK_EQ(weft_task_cancel(t), 1);
  CHECK_RC(weft_task_await(t, NULL), WEFT_ECANCELED);
  CHECK_EQ(weft_task_cancel(t), 0);
  weft_task_unref(t);
  return NULL;
}

static void test_cancel_return_values(void **state) {
  (void)state;
  run_in_weft(cancel_return_main, NULL, 2);
}

/* ---- names ---------------------------------------------------------------- */

static int is_default_name(const char *name) {
  size_t i;

  if (name == NULL || strncmp(name, "task-", 5) != 0 || name[5] == '\0')
    return 0;
  for (i = 5; name[i] != '\0'; i++)
    if (name[i] < '0' || name[i] > '9')
      return 0;
  return 1;
}

static void *name_child(void *arg) {
  const char *want = arg;

  if (want != NULL)
    CHECK(strcmp(weft_task_name(NULL), want) == 0);
  else
    CHECK(is_default_name(weft_task_name(NULL)));
  CHECK(strcmp(weft_task_name(NULL), weft_task_name(weft_task_current())) == 0);
  CHECK_OK(weft_sleep(5));
  CHECK_OK(weft_task_set_name(NULL, "renamed"));
  CHECK(strcmp(weft_task_name(NULL), "renamed") == 0);
  CHECK_OK(weft_sleep(5));
  CHECK(strcmp(weft_task_name(NULL), "renamed") == 0);
  return NULL;
}

static void *names_main(void *arg) {
  static const char long_name[] =
      "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJ"; /* 46 bytes */
  weft_spawn_opts_t opts;
  weft_task_t *t[3];
  char want[WEFT_TASK_NAME_MAX + 1];
  int i;

  (void)arg;
  CHECK(weft_task_name(NULL) != NULL);
  CHECK_OK(weft_spawn(name_child, NULL, &t[0]));
  CHECK_OK(weft_spawn(name_child, NULL, &t[1]));
  CHECK(is_default_name(weft_task_name(t[0])));
  CHECK(is_default_name(weft_task_name(t[1])));
  /* Two default names differ ("task-N" counts). */
  CHECK(strcmp(weft_task_name(t[0]), weft_task_name(t[1])) != 0);

  weft_spawn_opts_init(&opts);
  opts.name = "worker-a";
  CHECK_OK(weft_spawn_ex(name_child, "worker-a", &opts, &t[2]));
  CHECK(strcmp(weft_task_name(t[2]), "worker-a") == 0);
  CHECK_OK(weft_gather(t, 3, NULL));
  for (i = 0; i < 3; i++) {
    CHECK(strcmp(weft_task_name(t[i]), "renamed") == 0);
    weft_task_unref(t[i]);
  }

  /* Truncation at WEFT_TASK_NAME_MAX bytes, on spawn and on rename. */
  memcpy(want, long_name, WEFT_TASK_NAME_MAX);
  want[WEFT_TASK_NAME_MAX] = '\0';
  opts.name = long_name;
  CHECK_OK(weft_spawn_ex(add_one, NULL, &opts, &t[0]));
  CHECK_EQ(strlen(weft_task_name(t[0])), WEFT_TASK_NAME_MAX);
  CHECK(strcmp(weft_task_name(t[0]), want) == 0);
  CHECK_OK(weft_task_await(t[0], NULL));
  /* Renaming another task (here a finished one) through its handle. */
  CHECK_OK(weft_task_set_name(t[0], "short"));
  CHECK(strcmp(weft_task_name(t[0]), "short") == 0);
  weft_task_unref(t[0]);
  CHECK_OK(weft_task_set_name(NULL, long_name));
  CHECK(strcmp(weft_task_name(NULL), want) == 0);
  /* Exactly WEFT_TASK_NAME_MAX bytes are kept whole. */
  CHECK_OK(weft_task_set_name(NULL, want));
  CHECK(strcmp(weft_task_name(NULL), want) == 0);
  CHECK_OK(weft_task_set_name(NULL, ""));
  CHECK(strcmp(weft_task_name(NULL), "") == 0);
  CHECK_RC(weft_task_set_name(NULL, NULL), WEFT_EINVAL);
  CHECK_RC(weft_task_set_name(weft_task_current(), NULL), WEFT_EINVAL);
  CHECK(strcmp(weft_task_name(NULL), "") == 0);
  return NULL;
}

static void test_names(void **state) {
  (void)state;
  run_in_weft(names_main, NULL, 2);
}

/* Renames racing readers on other threads (issue 11): every copy made with
 * weft_task_name_copy() is one whole name of the renamer's set, never a
 * mix of two. Readers are plain threads and a task on the other worker. */
static const char *const race_names[] = {
    "a", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "cccccccccccccccc",
    "dddddddd-dddddddd-ddddd"};

typedef struct name_race {
  weft_task_t *renamer;   /* referenced by main until the end */
  atomic_int stop;        /* readers stop */
  atomic_long reads;      /* copies made, all readers */
  atomic_int bad;         /* copies that were no whole name */
  atomic_int alive;       /* readers still running */
  char badname[64];       /* the first bad copy (under harness_mutex) */
} name_race_t;

static int whole_name(const char *buf, int len) {
  size_t i;

  if (len < 0 || (size_t)len != strlen(buf))
    return 0;
  for (i = 0; i < sizeof(race_names) / sizeof(race_names[0]); i++)
    if (strcmp(buf, race_names[i]) == 0)
      return 1;
  return 0;
}

static void name_race_read_once(name_race_t *r) {
  char buf[WEFT_TASK_NAME_MAX + 1];
  int len = weft_task_name_copy(r->renamer, buf, sizeof(buf));

  if (!whole_name(buf, len) && atomic_fetch_add(&r->bad, 1) == 0) {
    pthread_mutex_lock(&harness_mutex);
    snprintf(r->badname, sizeof(r->badname), "%s (%d)", buf, len);
    pthread_mutex_unlock(&harness_mutex);
  }
  atomic_fetch_add(&r->reads, 1);
}

static void *name_race_thread(void *arg) {
  name_race_t *r = arg;

  while (!atomic_load(&r->stop))
    name_race_read_once(r);
  atomic_fetch_sub(&r->alive, 1);
  return NULL;
}

static void *name_race_reader_task(void *arg) {
  name_race_t *r = arg;
  int i = 0;

  while (!atomic_load(&r->stop)) {
    name_race_read_once(r);
    if (++i % 256 == 0)
      CHECK_OK(weft_yield());
  }
  return NULL;
}

static void *name_race_renamer(void *arg) {
  name_race_t *r = arg;
  long renames = HARNESS_SIZE(200000, 20000, 50000);
  long want_reads = HARNESS_SIZE(200000, 20000, 50000);
  long i;

  /* Until enough renames and reads overlapped (bounded: the reads come
   * from threads that run on their own). */
  for (i = 0; i < renames || (atomic_load(&r->reads) < want_reads &&
                              i < 1000 * renames);
       i++) {
    CHECK_OK(weft_task_set_name(NULL, race_names[i % 4]));
    if (i % 1024 == 0)
      CHECK_OK(weft_yield());
  }
  return NULL;
}

static void *name_race_main(void *arg) {
  name_race_t *r = arg;
  weft_spawn_opts_t opts;
  weft_task_t *reader;
  pthread_t th[2];
  int i;

  weft_spawn_opts_init(&opts);
  opts.name = race_names[0];
  opts.pin = 0;
  CHECK_OK(weft_spawn_ex(name_race_renamer, r, &opts, &r->renamer));
  opts.name = NULL;
  opts.pin = 1;
  CHECK_OK(weft_spawn_ex(name_race_reader_task, r, &opts, &reader));
  atomic_store(&r->alive, 2);
  for (i = 0; i < 2; i++)
    CHECK_OK(pthread_create(&th[i], NULL, name_race_thread, r));
  CHECK_OK(weft_task_await(r->renamer, NULL));
  atomic_store(&r->stop, 1);
  CHECK_OK(weft_task_await(reader, NULL));
  /* The threads read through the renamer's handle: wait for them to stop
   * before the runtime (and the handle) can end. */
  for (i = 0; i < 100000 && atomic_load(&r->alive) > 0; i++)
    CHECK_OK(weft_sleep(1));
  CHECK_EQ(atomic_load(&r->alive), 0);
  for (i = 0; i < 2; i++)
    pthread_join(th[i], NULL);
  weft_task_unref(reader);
  weft_task_unref(r->renamer);
  return NULL;
}

static void test_name_renamed_while_read(void **state) {
  name_race_t r;

  (void)state;
  memset(&r, 0, sizeof(r));
  run_in_weft(name_race_main, &r, 2);
  if (atomic_load(&r.bad) != 0)
    fail_msg("%d of %ld copies were no whole name, first: %s",
             atomic_load(&r.bad), atomic_load(&r.reads), r.badname);
  assert_true(atomic_load(&r.reads) > 0);
}

static void *name_copy_main(void *arg) {
  char buf[WEFT_TASK_NAME_MAX + 1];
  char small[4];

  (void)arg;
  CHECK_OK(weft_task_set_name(NULL, "abcdefg"));
  CHECK_EQ(weft_task_name_copy(NULL, buf, sizeof(buf)), 7);
  CHECK(strcmp(buf, "abcdefg") == 0);
  /* Truncated like snprintf: the full length comes back. */
  CHECK_EQ(weft_task_name_copy(weft_task_current(), small, sizeof(small)), 7);
  CHECK(strcmp(small, "abc") == 0);
  CHECK_EQ(weft_task_name_copy(NULL, NULL, 0), 7);
  CHECK_RC(weft_task_name_copy(NULL, NULL, 1), WEFT_EINVAL);
  /* A default name, formatted on this first read. */
  {
    weft_task_t *t;
    CHECK_OK(weft_spawn(add_one, NULL, &t));
    CHECK(weft_task_name_copy(t, buf, sizeof(buf)) > 5);
    CHECK(strncmp(buf, "task-", 5) == 0);
    CHECK(strcmp(buf, weft_task_name(t)) == 0);
    CHECK_OK(weft_task_await(t, NULL));
    weft_task_unref(t);
  }
  return NULL;
}

static void test_name_copy(void **state) {
  (void)state;
  run_in_weft(name_copy_main, NULL, 1);
}

/* A default name is written on its first read: many tasks on both workers
 * reading it at once all see the same complete name. */
#define NAME_READERS 16

static void *name_reader(void *arg) {
  weft_task_t *target = arg;
  const char *name = weft_task_name(target);
  CHECK(is_default_name(name));
  return (void *)(uintptr_t)strtoul(name + 5, NULL, 10);
}

static void *names_race_main(void *arg) {
  (void)arg;
  for (int round = 0; round < 200; round++) {
    weft_task_t *target, *r[NAME_READERS];
    void *ids[NAME_READERS];
    CHECK_OK(weft_spawn(add_one, NULL, &target));
    for (int i = 0; i < NAME_READERS; i++)
      CHECK_OK(weft_spawn(name_reader, target, &r[i]));
    CHECK_OK(weft_gather(r, NAME_READERS, ids));
    for (int i = 1; i < NAME_READERS; i++)
      CHECK(ids[i] == ids[0]);
    CHECK(is_default_name(weft_task_name(target)));
    CHECK_OK(weft_task_await(target, NULL));
    weft_task_unref(target);
    for (int i = 0; i < NAME_READERS; i++)
      weft_task_unref(r[i]);
  }
  return NULL;
}

static void test_names_lazy_race(void **state) {
  (void)state;
  run_in_weft(names_race_main, NULL, 2);
}

/* ---- current task and task-local storage ----------------------------------- */

static void *local_child(void *arg) {
  weft_task_t *parent = arg;
  int mine = 0;
  int i;

  CHECK(weft_task_current() != NULL);
  CHECK(weft_task_current() != parent);
  CHECK(weft_task_local() != NULL); /* local_main's, inherited */
  CHECK_OK(weft_task_set_local(&mine));
  for (i = 0; i < 20; i++) {
    CHECK(weft_task_local() == &mine);
    CHECK_OK(i % 2 ? weft_yield() : weft_sleep(1));
  }
  CHECK_OK(weft_task_set_local(NULL));
  CHECK(weft_task_local() == NULL);
  return NULL;
}

static void *local_main(void *arg) {
  weft_task_t *self = weft_task_current();
  weft_task_t *t[4];
  int mine = 0;
  int i;

  (void)arg;
  CHECK(self != NULL);
  CHECK(weft_task_current() == self);
  CHECK(weft_task_local() == NULL);
  CHECK_OK(weft_task_set_local(&mine));
  for (i = 0; i < 4; i++)
    CHECK_OK(weft_spawn(local_child, self, &t[i]));
  CHECK_OK(weft_gather(t, 4, NULL));
  for (i = 0; i < 4; i++)
    weft_task_unref(t[i]);
  CHECK(weft_task_current() == self);
  CHECK(weft_task_local() == &mine);
  return NULL;
}

static void test_current_and_local(void **state) {
  (void)state;
  run_in_weft(local_main, NULL, 3);
}

/* contextvars: a spawned task starts with a copy of its parent's slot, and
 * later changes on either side do not reach the other. */
typedef struct inherit_state {
  weft_event_t parent_changed; /* set once the parent changed its slot */
  int a, b, c;                 /* addresses used as slot values */
} inherit_state_t;

static void *inherit_grandchild(void *arg) {
  inherit_state_t *s = arg;

  CHECK(weft_task_local() == &s->c);
  return NULL;
}

static void *inherit_null_child(void *arg) {
  (void)arg;
  CHECK(weft_task_local() == NULL);
  return NULL;
}

static void *inherit_child(void *arg) {
  inherit_state_t *s = arg;
  weft_task_t *g;

  CHECK(weft_task_local() == &s->a); /* the parent's value at the spawn */
  CHECK_OK(weft_event_wait(&s->parent_changed));
  CHECK(weft_task_local() == &s->a); /* the parent's change stayed there */
  CHECK_OK(weft_task_set_local(&s->c));
  CHECK_OK(weft_spawn(inherit_grandchild, s, &g));
  CHECK_OK(weft_task_set_local(NULL)); /* after the spawn: not seen */
  CHECK_OK(weft_task_await(g, NULL));
  weft_task_unref(g);
  CHECK_OK(weft_spawn(inherit_null_child, NULL, &g));
  CHECK_OK(weft_task_await(g, NULL));
  weft_task_unref(g);
  return NULL;
}

static void *inherit_main(void *arg) {
  inherit_state_t *s = arg;
  weft_task_t *t[4];
  int i;

  CHECK_OK(weft_event_init(&s->parent_changed));
  CHECK_OK(weft_task_set_local(&s->a));
  for (i = 0; i < 4; i++)
    CHECK_OK(weft_spawn(inherit_child, s, &t[i]));
  CHECK_OK(weft_task_set_local(&s->b));
  CHECK_OK(weft_event_set(&s->parent_changed));
  CHECK_OK(weft_gather(t, 4, NULL));
  for (i = 0; i < 4; i++)
    weft_task_unref(t[i]);
  CHECK(weft_task_local() == &s->b); /* the children's changes stayed there */
  CHECK_OK(weft_event_destroy(&s->parent_changed));
  return NULL;
}

static void test_local_inherited(void **state) {
  inherit_state_t s;

  (void)state;
  run_in_weft(inherit_main, &s, 3);
}

/* ---- done, result, fail ---------------------------------------------------- */

static void *fail_eio_after_sleep(void *arg) {
  (void)arg;
  HARNESS_WAIT(atomic_load(&gate));
  CHECK_OK(weft_sleep(10));
  return weft_task_fail(WEFT_EIO);
}

static void *fail_ignored(void *arg) {
  (void)arg;
  CHECK(weft_task_fail(0) == NULL);
  CHECK(weft_task_fail(5) == NULL);
  return (void *)(uintptr_t)3;
}

static void *fail_then_return_value(void *arg) {
  (void)arg;
  weft_task_fail(WEFT_ECONNRESET);
  return (void *)(uintptr_t)3; /* a result, but the status wins */
}

static void *result_main(void *arg) {
  weft_task_t *t;
  void *r;

  (void)arg;
  atomic_store(&gate, 0);
  CHECK_OK(weft_spawn(fail_eio_after_sleep, NULL, &t));
  r = (void *)(uintptr_t)0x9;
  CHECK_RC(weft_task_result(t, &r), WEFT_EAGAIN);
  CHECK_EQ(weft_task_done(t), 0);
  atomic_store(&gate, 1);
  CHECK_RC(weft_task_await(t, &r), WEFT_EIO);
  CHECK(r == NULL);
  CHECK_EQ(weft_task_done(t), 1);
  r = (void *)(uintptr_t)0x9;
  CHECK_RC(weft_task_result(t, &r), WEFT_EIO);
  CHECK(r == NULL);
  CHECK_RC(weft_task_result(t, NULL), WEFT_EIO);
  weft_task_unref(t);

  CHECK_OK(weft_spawn(fail_ignored, NULL, &t));
  CHECK_OK(weft_task_await(t, &r));
  CHECK(r == (void *)(uintptr_t)3);
  CHECK_OK(weft_task_result(t, &r));
  weft_task_unref(t);

  CHECK_OK(weft_spawn(fail_then_return_value, NULL, &t));
  r = (void *)(uintptr_t)0x9;
  CHECK_RC(weft_task_await(t, &r), WEFT_ECONNRESET);
  CHECK(r == NULL);
  weft_task_unref(t);
  return NULL;
}

static void test_done_result_fail(void **state) {
  (void)state;
  run_in_weft(result_main, NULL, 2);
}

/* ---- spawn errors, max_tasks ------------------------------------------------ */

static void *spawn_errors_main(void *arg) {
  weft_spawn_opts_t opts;
  weft_task_t *t = NULL;
  int n = weft_worker_count();

  (void)arg;
  CHECK_RC(weft_spawn(NULL, NULL, &t), WEFT_EINVAL);
  CHECK_RC(weft_spawn_ex(NULL, NULL, NULL, NULL), WEFT_EINVAL);
  weft_spawn_opts_init(&opts);
  opts.pin = n;
  CHECK_RC(weft_spawn_ex(add_one, NULL, &opts, &t), WEFT_EINVAL);
  opts.pin = n + 100;
  CHECK_RC(weft_spawn_ex(add_one, NULL, &opts, NULL), WEFT_EINVAL);
  opts.pin = -5;
  CHECK_RC(weft_spawn_ex(add_one, NULL, &opts, NULL), WEFT_EINVAL);
  /* The last valid worker and "not pinned" work. */
  opts.pin = n - 1;
  CHECK_OK(weft_spawn_ex(add_one, NULL, &opts, &t));
  CHECK_OK(weft_task_await(t, NULL));
  weft_task_unref(t);
  opts.pin = -1;
  CHECK_OK(weft_spawn_ex(add_one, NULL, &opts, &t));
  CHECK_OK(weft_task_await(t, NULL));
  weft_task_unref(t);
  CHECK_OK(weft_spawn_ex(add_one, NULL, NULL, &t));
  CHECK_OK(weft_task_await(t, NULL));
  weft_task_unref(t);
  return NULL;
}

static void test_spawn_errors(void **state) {
  (void)state;
  run_in_weft(spawn_errors_main, NULL, 3);
}

static void *block_until_cancelled(void *arg) {
  (void)arg;
  CHECK_RC(weft_sleep(3600 * 1000), WEFT_ECANCELED);
  return NULL;
}

#define MAX_TASKS 8

static void *max_tasks_main(void *arg) {
  weft_task_t *t[MAX_TASKS + 1];
  int n = 0, rc = 0, i;

  (void)arg;
  while (n <= MAX_TASKS) {
    rc = weft_spawn(block_until_cancelled, NULL, &t[n]);
    if (rc != 0)
      break;
    n++;
  }
  CHECK_RC(rc, WEFT_ENOMEM);
  /* Live tasks: main (perhaps counted) plus the n spawned ones. */
  CHECK(n == MAX_TASKS || n == MAX_TASKS - 1);
  CHECK_RC(weft_spawn(add_one, NULL, NULL), WEFT_ENOMEM);
  for (i = 0; i < n; i++) {
    CHECK_EQ(weft_task_cancel(t[i]), 1);
    CHECK_RC(weft_task_await(t[i], NULL), WEFT_ECANCELED);
    weft_task_unref(t[i]);
  }
  /* Freed tasks make room again (freeing may lag a little). */
  HARNESS_WAIT((rc = weft_spawn(add_one, NULL, &t[0])) != WEFT_ENOMEM);
  CHECK_OK(rc);
  if (rc == 0) {
    CHECK_OK(weft_task_await(t[0], NULL));
    weft_task_unref(t[0]);
  }
  return NULL;
}

static void test_max_tasks(void **state) {
  weft_config_t cfg;

  (void)state;
  weft_config_init(&cfg);
  cfg.workers = 2;
  cfg.max_tasks = MAX_TASKS;
  run_in_weft_cfg(max_tasks_main, NULL, &cfg);
}

/* ---- pinned tasks ------------------------------------------------------------ */

#define PIN_ROUNDS 300

static void *pinned_child(void *arg) {
  int pin = (int)(uintptr_t)arg;
  int i, bad = 0;

  for (i = 0; i < PIN_ROUNDS; i++) {
    if (weft_worker_index() != pin)
      bad++;
    if (i % 3 == 0)
      CHECK_OK(weft_sleep(1));
    else
      CHECK_OK(weft_yield());
    if (weft_worker_index() != pin)
      bad++;
    /* A little work so that the other workers have something to steal. */
    harness_spin_us(20);
  }
  CHECK_EQ(bad, 0);
  return NULL;
}

static void *busy_unpinned(void *arg) {
  int i;

  (void)arg;
  for (i = 0; i < 100; i++) {
    harness_spin_us(50);
    CHECK_OK(weft_yield());
  }
  return NULL;
}

static void *pinned_main(void *arg) {
  weft_spawn_opts_t opts;
  weft_task_t *t[24];
  int n = weft_worker_count();
  size_t k = 0;
  int i;

  (void)arg;
  weft_spawn_opts_init(&opts);
  for (i = 0; i < 12; i++) {
    opts.pin = i % n;
    CHECK_OK(weft_spawn_ex(pinned_child, (void *)(uintptr_t)opts.pin, &opts,
                           &t[k++]));
    CHECK_OK(weft_spawn(busy_unpinned, NULL, &t[k++]));
  }
  CHECK_OK(weft_gather(t, k, NULL));
  for (i = 0; i < (int)k; i++)
    weft_task_unref(t[i]);
  return NULL;
}

static void test_pinned_task_stays(void **state) {
  (void)state;
  run_in_weft(pinned_main, NULL, 4);
  run_in_weft(pinned_main, NULL, 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_spawn_and_await),
      cmocka_unit_test(test_detached_tasks_run_to_completion),
      cmocka_unit_test(test_unref_detaches_running_task),
      cmocka_unit_test(test_refs_and_concurrent_awaiters),
      cmocka_unit_test(test_await_finished_task),
      cmocka_unit_test(test_await_self_deadlocks),
      cmocka_unit_test(test_cancel_return_values),
      cmocka_unit_test(test_names),
      cmocka_unit_test(test_names_lazy_race),
      cmocka_unit_test(test_current_and_local),
      cmocka_unit_test(test_local_inherited),
      cmocka_unit_test(test_done_result_fail),
      cmocka_unit_test(test_spawn_errors),
      cmocka_unit_test(test_max_tasks),
      cmocka_unit_test(test_pinned_task_stays),
      cmocka_unit_test(test_name_copy),
      cmocka_unit_test(test_name_renamed_while_read),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}

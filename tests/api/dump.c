/*
 * api_dump: task dumps (weft/dump.h). Tasks in every state (sleeping,
 * awaiting a task, lock, event, semaphore, queue get and put, stream read,
 * a server's accept, an offloaded job, a subprocess, a signal, running on
 * another worker, ready but not run) are each found in a snapshot with
 * their state and wait object, and a suspended task's backtrace names its
 * function; 10,000 sleeping tasks (2,000 under TSan) are dumped in a loose
 * bound (the time is printed); the text dump, the dump on a signal (read back from a pipe),
 * and the errors.
 *
 * The task bodies have distinct names, external linkage and noinline, so
 * that a backtrace can name them (symbolised from the executable's symbol
 * table with libunwind, or its dynamic one: the target exports them).
 */
#include "harness.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

/* Exported (for the symbol lookups), so declared. */
void *dump_t_sleeper(void *arg);
void *dump_t_awaiter(void *arg);
void *dump_t_locker(void *arg);
void *dump_t_eventer(void *arg);
void *dump_t_semer(void *arg);
void *dump_t_getter(void *arg);
void *dump_t_putter(void *arg);
void *dump_t_job(void *arg);
void *dump_t_offloader(void *arg);
void *dump_t_procwaiter(void *arg);
void *dump_t_sigwaiter(void *arg);
void *dump_t_spinner(void *arg);
void *dump_t_ready(void *arg);
void dump_t_handler(weft_stream_t *s, void *arg);
void *dump_t_marker(void *arg);
void *dump_t_foreigner(void *arg);
void *dump_t_many_sleeper(void *arg);
void *dump_t_churner(void *arg);
int dump_t_here(void **pcs, int max);
/* src/backtrace.h's, for the watchdog (linked from the static library). */
int weft__backtrace_here(void **pcs, int max);
void *dump_t_leaf(void *arg);
void *dump_t_yielder(void *arg);
void *dump_t_hog(void *arg);
void *dump_t_gate(void *arg);

/* A snapshot entry by task name, or NULL. */
static const weft_task_snapshot_t *find(const weft_task_snapshot_t *v,
                                        size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(v[i].name, name) == 0)
      return &v[i];
  return NULL;
}

/* 1 if a fresh snapshot shows task `name` in state st waiting on kind. */
static int shows(const char *name, weft_task_run_state_t st,
                 weft_wait_kind_t kind) {
  weft_task_snapshot_t *v;
  size_t n;
  if (weft_task_snapshot(0, &v, &n) != 0)
    return 0;
  const weft_task_snapshot_t *s = find(v, n, name);
  int ok = s && s->state == st && s->wait == kind;
  weft_task_snapshot_free(v);
  return ok;
}

/* How many tasks a fresh snapshot shows waiting on kind. */
static size_t count_waiting(weft_wait_kind_t kind) {
  weft_task_snapshot_t *v;
  size_t n, k = 0;
  if (weft_task_snapshot(0, &v, &n) != 0)
    return 0;
  for (size_t i = 0; i < n; i++)
    k += v[i].state == WEFT_TASK_WAITING && v[i].wait == kind;
  weft_task_snapshot_free(v);
  return k;
}

/* 1 if one of s's frames symbolises to a name containing fn. */
static int frames_name(const weft_task_snapshot_t *s, const char *fn) {
  char buf[512];
  for (unsigned i = 0; i < s->nframes; i++) {
    CHECK(weft_symbolize(s->frames[i], buf, sizeof buf) > 0);
    if (strstr(buf, fn))
      return 1;
  }
  return 0;
}

/* ---- every state ---------------------------------------------------------- */

typedef struct world {
  weft_lock_t *lock;
  weft_event_t *event;
  weft_semaphore_t *sem;
  weft_queue_t *empty_q, *full_q;
  weft_task_t *sleeper;
  weft_signal_t *sig;
  weft_process_t *proc;
  atomic_int spinning, stop_spin, job_started, stop_job;
} world_t;

NOINLINE void *dump_t_sleeper(void *arg) {
  (void)arg;
  (void)weft_sleep(600000);
  return NULL;
}

NOINLINE void *dump_t_awaiter(void *arg) {
  world_t *w = arg;
  (void)weft_task_await(w->sleeper, NULL);
  return NULL;
}

NOINLINE void *dump_t_locker(void *arg) {
  world_t *w = arg;
  if (weft_lock_acquire(w->lock) == 0)
    (void)weft_lock_release(w->lock);
  return NULL;
}

NOINLINE void *dump_t_eventer(void *arg) {
  world_t *w = arg;
  (void)weft_event_wait(w->event);
  return NULL;
}

NOINLINE void *dump_t_semer(void *arg) {
  world_t *w = arg;
  (void)weft_semaphore_acquire(w->sem);
  return NULL;
}

NOINLINE void *dump_t_getter(void *arg) {
  world_t *w = arg;
  void *item;
  (void)weft_queue_get(w->empty_q, &item);
  return NULL;
}

NOINLINE void *dump_t_putter(void *arg) {
  world_t *w = arg;
  (void)weft_queue_put(w->full_q, (void *)1);
  return NULL;
}

NOINLINE void *dump_t_job(void *arg) {
  world_t *w = arg;
  atomic_store(&w->job_started, 1);
  while (!atomic_load(&w->stop_job))
    {
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
  return NULL;
}

NOINLINE void *dump_t_offloader(void *arg) {
  (void)weft_to_thread(dump_t_job, arg, NULL);
  return NULL;
}

NOINLINE void *dump_t_procwaiter(void *arg) {
  world_t *w = arg;
  int code;
  (void)weft_process_wait(w->proc, &code);
  return NULL;
}

NOINLINE void *dump_t_sigwaiter(void *arg) {
  world_t *w = arg;
  int signum;
  (void)weft_signal_wait(w->sig, WEFT_NO_TIMEOUT, &signum);
  return NULL;
}

NOINLINE void *dump_t_spinner(void *arg) {
  world_t *w = arg;
  atomic_store(&w->spinning, 1);
  while (!atomic_load(&w->stop_spin))
    ; /* never suspends: RUNNING on its worker */
  return NULL;
}

NOINLINE void *dump_t_foreigner(void *arg) {
  world_t *w = arg;
  (void)weft_event_wait(w->event);
  return NULL;
}

NOINLINE void *dump_t_ready(void *arg) {
  (void)arg;
  return NULL;
}

NOINLINE void dump_t_handler(weft_stream_t *s, void *arg) {
  char buf[16];
  (void)arg;
  while (weft_stream_read(s, buf, sizeof buf) > 0)
    ;
}

static weft_task_t *spawn_named(weft_task_fn fn, void *arg, const char *name,
                                int pin) {
  weft_spawn_opts_t o;
  weft_task_t *t = NULL;
  weft_spawn_opts_init(&o);
  o.name = name;
  o.pin = pin;
  CHECK_OK(weft_spawn_ex(fn, arg, &o, &t));
  return t;
}

static void expect(const weft_task_snapshot_t *v, size_t n, const char *name,
                   weft_task_run_state_t st, weft_wait_kind_t kind,
                   const void *obj) {
  const weft_task_snapshot_t *s = find(v, n, name);
  CHECK(s != NULL);
  if (!s) {
    fprintf(stderr, "task %s not in the snapshot\n", name);
    return;
  }
  CHECK_EQ((int)s->state, (int)st);
  CHECK_EQ((int)s->wait, (int)kind);
  if (obj)
    CHECK(s->wait_obj == obj);
  if (s->state != st || s->wait != kind)
    fprintf(stderr, "task %s: %s on %s\n", name,
            weft_task_run_state_name((int)s->state),
            weft_wait_kind_name((int)s->wait));
}

static void *states_main(void *arg) {
  world_t w;
  weft_task_t *t[16];
  int nt = 0;
  weft_server_t *srv = NULL;
  weft_stream_t *client = NULL;

  (void)arg;
  memset(&w, 0, sizeof w);
  CHECK_OK(weft_lock_new(&w.lock));
  CHECK_OK(weft_lock_acquire(w.lock));
  CHECK_OK(weft_event_new(&w.event));
  CHECK_OK(weft_semaphore_new(0, &w.sem));
  CHECK_OK(weft_queue_new(0, &w.empty_q));
  CHECK_OK(weft_queue_new(1, &w.full_q));
  CHECK_OK(weft_queue_put(w.full_q, (void *)1));
  int signums[1] = {SIGUSR2};
  CHECK_OK(weft_signal_new(signums, 1, &w.sig));
  const char *argv[] = {"sleep", "600", NULL};
  CHECK_OK(weft_create_subprocess_exec(argv, NULL, &w.proc));

  /* Worker 2 is taken by the spinner; everything else runs on 0 and 1. */
  t[nt++] = w.sleeper = spawn_named(dump_t_sleeper, &w, "sleeper", 0);
  t[nt++] = spawn_named(dump_t_awaiter, &w, "awaiter", 1);
  t[nt++] = spawn_named(dump_t_locker, &w, "locker", 0);
  t[nt++] = spawn_named(dump_t_eventer, &w, "eventer", 1);
  t[nt++] = spawn_named(dump_t_semer, &w, "semer", 0);
  t[nt++] = spawn_named(dump_t_getter, &w, "getter", 1);
  t[nt++] = spawn_named(dump_t_putter, &w, "putter", 0);
  t[nt++] = spawn_named(dump_t_offloader, &w, "offloader", 1);
  t[nt++] = spawn_named(dump_t_procwaiter, &w, "procwaiter", 0);
  t[nt++] = spawn_named(dump_t_sigwaiter, &w, "sigwaiter", 0);
  /* Submitted "from outside" (any thread may): its record is foreign.c's. */
  weft_future_t *fut = NULL;
  CHECK_OK(weft_runtime_submit(weft_runtime_current(), dump_t_foreigner, &w,
                               &fut));
  /* Listeners on workers 0 and 1 only: worker 2 will be busy. */
  weft_server_opts_t so;
  weft_server_opts_init(&so);
  so.workers = 2;
  CHECK_OK(weft_start_server(dump_t_handler, NULL, "127.0.0.1", 0, &so,
                             &srv));
  CHECK_OK(weft_open_connection("127.0.0.1", weft_server_port(srv), NULL,
                                &client));
  weft_task_t *spinner = spawn_named(dump_t_spinner, &w, "spinner", 2);
  if (!HARNESS_WAIT(atomic_load(&w.spinning)))
    goto out;
  /* Pinned behind the spinner: queued, never run. */
  weft_task_t *ready = spawn_named(dump_t_ready, NULL, "ready", 2);

  /* Wait until every task has reached its suspension point. */
  static const struct {
    const char *name;
    weft_wait_kind_t kind;
  } want[] = {{"sleeper", WEFT_WAIT_SLEEP},
              {"awaiter", WEFT_WAIT_TASK},
              {"locker", WEFT_WAIT_LOCK},
              {"eventer", WEFT_WAIT_EVENT},
              {"semer", WEFT_WAIT_SEMAPHORE},
              {"getter", WEFT_WAIT_QUEUE_GET},
              {"putter", WEFT_WAIT_QUEUE_PUT},
              {"offloader", WEFT_WAIT_OFFLOAD},
              {"procwaiter", WEFT_WAIT_SUBPROCESS},
              {"sigwaiter", WEFT_WAIT_SIGNAL},
              {"foreign", WEFT_WAIT_EVENT}};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
    if (!HARNESS_WAIT(shows(want[i].name, WEFT_TASK_WAITING, want[i].kind)))
      goto out;
  if (!HARNESS_WAIT(atomic_load(&w.job_started)))
    goto out;
  /* The server's connection task reads; an acceptor waits. */
  if (!HARNESS_WAIT(count_waiting(WEFT_WAIT_STREAM_READ) >= 1 &&
                    count_waiting(WEFT_WAIT_ACCEPT) >= 1))
    goto out;

  weft_task_snapshot_t *v;
  const weft_task_snapshot_t *s;
  size_t n;
  CHECK_OK(weft_task_snapshot(WEFT_SNAPSHOT_BACKTRACE, &v, &n));
  expect(v, n, "sleeper", WEFT_TASK_WAITING, WEFT_WAIT_SLEEP, NULL);
  expect(v, n, "awaiter", WEFT_TASK_WAITING, WEFT_WAIT_TASK, w.sleeper);
  expect(v, n, "locker", WEFT_TASK_WAITING, WEFT_WAIT_LOCK, w.lock);
  expect(v, n, "eventer", WEFT_TASK_WAITING, WEFT_WAIT_EVENT, w.event);
  expect(v, n, "semer", WEFT_TASK_WAITING, WEFT_WAIT_SEMAPHORE, w.sem);
  expect(v, n, "getter", WEFT_TASK_WAITING, WEFT_WAIT_QUEUE_GET, w.empty_q);
  expect(v, n, "putter", WEFT_TASK_WAITING, WEFT_WAIT_QUEUE_PUT, w.full_q);
  expect(v, n, "offloader", WEFT_TASK_WAITING, WEFT_WAIT_OFFLOAD, NULL);
  expect(v, n, "procwaiter", WEFT_TASK_WAITING, WEFT_WAIT_SUBPROCESS,
         w.proc);
  expect(v, n, "sigwaiter", WEFT_TASK_WAITING, WEFT_WAIT_SIGNAL, w.sig);
  expect(v, n, "foreign", WEFT_TASK_WAITING, WEFT_WAIT_EVENT, w.event);
  s = find(v, n, "foreign");
  if (s)
    CHECK(s->home == -1 && s->has_parent == 0);
  expect(v, n, "spinner", WEFT_TASK_RUNNING, WEFT_WAIT_NONE, NULL);
  expect(v, n, "ready", WEFT_TASK_READY, WEFT_WAIT_NONE, NULL);
  expect(v, n, "main", WEFT_TASK_RUNNING, WEFT_WAIT_NONE, NULL);

  s = find(v, n, "spinner");
  if (s)
    CHECK_EQ(s->worker, 2);
  s = find(v, n, "ready");
  if (s) {
    CHECK_EQ(s->worker, -1); /* never ran */
    CHECK_EQ(s->nframes, 0u);
  }
  s = find(v, n, "sleeper");
  if (s) {
    CHECK(s->wait_deadline_ms != WEFT_NO_TIMEOUT);
    CHECK(s->wait_deadline_ms > weft_time_ms() + 500000);
    CHECK_EQ(s->worker, 0);
    CHECK_EQ(s->has_parent, 1);
    const weft_task_snapshot_t *m = find(v, n, "main");
    CHECK(m != NULL);
    if (m) {
      CHECK(s->parent_id == m->id);
      CHECK_EQ(m->has_parent, 0);
    }
    CHECK(s->nframes > 0);
#if defined(WEFT_TEST_LIBUNWIND)
    /* With libunwind the walk crosses weft's own frames (no frame
     * pointers needed) and names the test's function. */
    CHECK(frames_name(s, "dump_t_sleeper"));
#else
    /* Frame pointers: weft's own frames may have none, so the walk may
     * stop early; every frame it found must still symbolise. */
    (void)frames_name(s, "dump_t_sleeper");
#endif
  }
#if defined(WEFT_TEST_LIBUNWIND)
  s = find(v, n, "locker");
  if (s)
    CHECK(frames_name(s, "dump_t_locker"));
  s = find(v, n, "getter");
  if (s)
    CHECK(frames_name(s, "dump_t_getter"));
#endif
  /* The server's connection task reads; some task waits in accept. */
  int reading = 0, accepting = 0;
  for (size_t i = 0; i < n; i++) {
    reading += v[i].state == WEFT_TASK_WAITING &&
               v[i].wait == WEFT_WAIT_STREAM_READ;
    accepting += v[i].state == WEFT_TASK_WAITING &&
                 v[i].wait == WEFT_WAIT_ACCEPT;
  }
  CHECK(reading >= 1);
  CHECK(accepting >= 1);
  weft_task_snapshot_free(v);

  /* The text form, from inside a task. */
  char path[] = "/tmp/weft-dump-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  if (fd >= 0) {
    unlink(path);
    int k = weft_dump_tasks_fd(fd);
    CHECK(k >= 14);
    char text[65536];
    ssize_t len = pread(fd, text, sizeof text - 1, 0);
    CHECK(len > 0);
    text[len > 0 ? len : 0] = 0;
    CHECK(strstr(text, "\"sleeper\"") != NULL);
    CHECK(strstr(text, "waiting on sleep") != NULL);
    CHECK(strstr(text, "running on worker 2") != NULL);
#if defined(WEFT_TEST_LIBUNWIND)
    CHECK(strstr(text, "dump_t_sleeper") != NULL);
#endif
    close(fd);
  }

out:
  atomic_store(&w.stop_spin, 1);
  atomic_store(&w.stop_job, 1);
  if (w.proc)
    (void)weft_process_kill(w.proc);
  for (int i = 0; i < nt; i++)
    (void)weft_task_cancel(t[i]);
  /* All awaited before any handle goes: the awaiter reads the sleeper. */
  for (int i = 0; i < nt; i++)
    (void)weft_task_await(t[i], NULL);
  for (int i = 0; i < nt; i++)
    weft_task_unref(t[i]);
  if (fut) {
    (void)weft_future_cancel(fut);
    (void)weft_future_wait(fut, WEFT_NO_TIMEOUT, NULL);
    weft_future_free(fut);
  }
  (void)weft_task_await(spinner, NULL);
  weft_task_unref(spinner);
  if (client) {
    (void)weft_stream_close(client);
    (void)weft_stream_free(client);
  }
  if (srv) {
    (void)weft_server_close(srv);
    (void)weft_server_wait_closed(srv);
    (void)weft_server_free(srv);
  }
  /* `ready` ran once the spinner stopped. */
  (void)weft_lock_release(w.lock);
  CHECK_OK(weft_lock_free(w.lock));
  CHECK_OK(weft_event_free(w.event));
  CHECK_OK(weft_semaphore_free(w.sem));
  CHECK_OK(weft_queue_free(w.empty_q));
  void *item;
  CHECK_OK(weft_queue_try_get(w.full_q, &item));
  CHECK_OK(weft_queue_free(w.full_q));
  CHECK_OK(weft_signal_free(w.sig));
  if (w.proc) {
    int code;
    (void)weft_process_wait(w.proc, &code);
    CHECK_OK(weft_process_free(w.proc));
  }
  (void)ready;
  return NULL;
}

static void test_states(void **state) {
  (void)state;
  (void)run_in_weft(states_main, NULL, 3);
}

/* ---- 10,000 tasks ----------------------------------------------------------- */

/* TSan keeps a large state per fiber (harness.h): fewer there. */
#define MANY HARNESS_SIZE(10000, 2000, 10000)

static atomic_int many_arrived;

NOINLINE void *dump_t_many_sleeper(void *arg) {
  (void)arg;
  atomic_fetch_add(&many_arrived, 1);
  (void)weft_sleep(600000);
  return NULL;
}

static void *many_main(void *arg) {
  weft_task_t **t = calloc(MANY, sizeof *t);
  (void)arg;
  CHECK(t != NULL);
  if (!t)
    return NULL;
  atomic_store(&many_arrived, 0);
  for (int i = 0; i < MANY; i++)
    CHECK_OK(weft_spawn(dump_t_many_sleeper, NULL, &t[i]));
  /* All of them asleep: each has run to its sleep. */
  weft_task_snapshot_t *v = NULL;
  size_t n = 0;
  if (HARNESS_WAIT(atomic_load(&many_arrived) == MANY))
    (void)HARNESS_WAIT(count_waiting(WEFT_WAIT_SLEEP) == MANY);
  CHECK_EQ(count_waiting(WEFT_WAIT_SLEEP), (size_t)MANY);

  double tb = harness_now_ms();
  CHECK_OK(weft_task_snapshot(0, &v, &n));
  double te = harness_now_ms();
  weft_task_snapshot_free(v);
  double t0 = harness_now_ms();
  CHECK_OK(weft_task_snapshot(WEFT_SNAPSHOT_BACKTRACE, &v, &n));
  double t1 = harness_now_ms();
  CHECK(n >= MANY + 1);
  weft_task_snapshot_free(v);
  FILE *f = fopen("/dev/null", "w");
  CHECK(f != NULL);
  double t2 = harness_now_ms();
  int k = f ? weft_dump_tasks(f) : 0;
  double t3 = harness_now_ms();
  if (f)
    fclose(f);
  CHECK(k >= MANY + 1);
  printf("api_dump: %d tasks: snapshot %.1f ms, with backtraces %.1f ms, "
         "text dump (with symbols) %.1f ms\n",
         MANY, te - tb, t1 - t0, t3 - t2);
  /* Loose bounds (a loaded 2-core machine, sanitizers): the aim is well
   * under a second. */
  CHECK(t1 - t0 < 5000);
  CHECK(t3 - t2 < 10000);
  for (int i = 0; i < MANY; i++)
    (void)weft_task_cancel(t[i]);
  for (int i = 0; i < MANY; i++) {
    (void)weft_task_await(t[i], NULL);
    weft_task_unref(t[i]);
  }
  free(t);
  return NULL;
}

static void test_many(void **state) {
  (void)state;
  (void)run_in_weft(many_main, NULL, 2);
}

/* ---- a yield's note ------------------------------------------------------ */

/* A yield notes only its kind and time (src/waitnote.h): the object and
 * deadline of the task's previous wait stay in its record, and a dump must
 * not show them. The yielder first awaits a gate task with a deadline
 * (weft_task_wait_for: an object and a deadline), then starts a hog pinned
 * to its own worker and yields behind it: it stays READY, with a yield as
 * its last wait, until the hog stops. */
typedef struct {
  weft_event_t *event;
  weft_task_t *gate;
  atomic_int hogging, stop;
} yield_world_t;

NOINLINE void *dump_t_gate(void *arg) {
  yield_world_t *y = arg;
  CHECK_OK(weft_event_wait(y->event));
  return NULL;
}

NOINLINE void *dump_t_hog(void *arg) {
  yield_world_t *y = arg;
  atomic_store(&y->hogging, 1);
  while (!atomic_load(&y->stop))
    ; /* never suspends: the yielder stays queued behind it */
  return NULL;
}

NOINLINE void *dump_t_yielder(void *arg) {
  yield_world_t *y = arg;
  CHECK_OK(weft_task_wait_for(y->gate, 600000, NULL));
  weft_task_t *hog = spawn_named(dump_t_hog, y, "hog", 1);
  (void)HARNESS_WAIT(atomic_load(&y->hogging));
  (void)weft_yield(); /* queued behind the hog until it stops */
  if (hog) {
    CHECK_OK(weft_task_await(hog, NULL));
    weft_task_unref(hog);
  }
  return NULL;
}

static void *yield_note_main(void *arg) {
  yield_world_t y;
  (void)arg;
  memset(&y, 0, sizeof y);
  CHECK_OK(weft_event_new(&y.event));
  y.gate = spawn_named(dump_t_gate, &y, "gate", 0);
  weft_task_t *t = spawn_named(dump_t_yielder, &y, "yielder", 1);
  /* First its wait for the gate, with the object and a deadline. */
  if (HARNESS_WAIT(shows("yielder", WEFT_TASK_WAITING, WEFT_WAIT_TASK))) {
    weft_task_snapshot_t *v;
    size_t n;
    CHECK_OK(weft_task_snapshot(0, &v, &n));
    expect(v, n, "yielder", WEFT_TASK_WAITING, WEFT_WAIT_TASK, y.gate);
    const weft_task_snapshot_t *s = find(v, n, "yielder");
    if (s)
      CHECK(s->wait_deadline_ms != WEFT_NO_TIMEOUT);
    weft_task_snapshot_free(v);
  }
  CHECK_OK(weft_event_set(y.event));
  /* Then its yield, behind the hog. */
  if (HARNESS_WAIT(shows("yielder", WEFT_TASK_READY, WEFT_WAIT_YIELD))) {
    weft_task_snapshot_t *v;
    size_t n;
    CHECK_OK(weft_task_snapshot(0, &v, &n));
    const weft_task_snapshot_t *s = find(v, n, "yielder");
    CHECK(s != NULL);
    if (s) {
      CHECK_EQ((int)s->wait, (int)WEFT_WAIT_YIELD);
      CHECK(s->wait_obj == NULL);
      CHECK(s->wait_deadline_ms == WEFT_NO_TIMEOUT);
      CHECK(s->state_ms < 60000); /* noted at the yield, not at spawn */
    }
    weft_task_snapshot_free(v);
  }
  atomic_store(&y.stop, 1);
  if (t) {
    CHECK_OK(weft_task_await(t, NULL));
    weft_task_unref(t);
  }
  if (y.gate) {
    CHECK_OK(weft_task_await(y.gate, NULL));
    weft_task_unref(y.gate);
  }
  CHECK_OK(weft_event_free(y.event));
  return NULL;
}

static void test_yield_note(void **state) {
  (void)state;
  (void)run_in_weft(yield_note_main, NULL, 2);
}

/* ---- dumps racing a busy runtime ------------------------------------------ */

/* Tasks that yield, sleep, spawn and finish children without pause while a
 * thread that is no worker snapshots with backtraces again and again: every
 * record is caught in every phase (resumed while claimed, finishing,
 * freed, reused). TSan and ASan builds check the protocol; every build
 * checks that each entry is sane. */
#define CHURNERS 8

typedef struct churn {
  atomic_int stop;
  atomic_int snaps;
  int workers;
} churn_t;

NOINLINE void *dump_t_leaf(void *arg) {
  (void)arg;
  (void)weft_yield();
  return NULL;
}

NOINLINE void *dump_t_churner(void *arg) {
  churn_t *c = arg;
  unsigned i = 0;
  while (!atomic_load(&c->stop)) {
    weft_task_t *t;
    if (weft_spawn(dump_t_leaf, NULL, &t) == 0) {
      (void)weft_task_await(t, NULL);
      weft_task_unref(t);
    }
    if (++i % 3 == 0)
      (void)weft_sleep(1);
    else
      (void)weft_yield();
  }
  return NULL;
}

static void *snapshotter(void *arg) {
  churn_t *c = arg;
  int rounds = HARNESS_SIZE(200, 40, 100);
  for (int r = 0; r < rounds; r++) {
    weft_task_snapshot_t *v;
    size_t n;
    CHECK_OK(weft_task_snapshot(WEFT_SNAPSHOT_BACKTRACE, &v, &n));
    for (size_t i = 0; i < n; i++) {
      CHECK(v[i].state >= WEFT_TASK_RUNNING &&
            v[i].state <= WEFT_TASK_WAITING);
      CHECK(v[i].worker >= -1 && v[i].worker < c->workers);
      CHECK(v[i].nframes <= WEFT_BACKTRACE_MAX);
      if (v[i].state == WEFT_TASK_RUNNING)
        CHECK_EQ(v[i].nframes, 0u);
    }
    weft_task_snapshot_free(v);
    atomic_fetch_add(&c->snaps, 1);
  }
  return NULL;
}

static void *churn_main(void *arg) {
  churn_t *c = arg;
  weft_task_t *t[CHURNERS];
  pthread_t th;
  for (int i = 0; i < CHURNERS; i++)
    CHECK_OK(weft_spawn(dump_t_churner, c, &t[i]));
  CHECK_EQ(pthread_create(&th, NULL, snapshotter, c), 0);
  /* Joined below once its rounds are done: the join then blocks the
   * worker only for the thread to return. */
  int rounds = HARNESS_SIZE(200, 40, 100);
  (void)HARNESS_WAIT(atomic_load(&c->snaps) == rounds);
  atomic_store(&c->stop, 1);
  for (int i = 0; i < CHURNERS; i++) {
    CHECK_OK(weft_task_await(t[i], NULL));
    weft_task_unref(t[i]);
  }
  pthread_join(th, NULL);
  return NULL;
}

static void test_churn(void **state) {
  churn_t c;
  (void)state;
  memset(&c, 0, sizeof c);
  c.workers = 3;
  (void)run_in_weft(churn_main, &c, 3);
}

/* ---- the dump on a signal ------------------------------------------------- */

typedef struct sigdump {
  int rfd;
  char text[65536];
  size_t len;
} sigdump_t;

NOINLINE void *dump_t_marker(void *arg) {
  (void)arg;
  (void)weft_sleep(600000);
  return NULL;
}

static void *signal_main(void *arg) {
  sigdump_t *d = arg;
  weft_task_t *t = spawn_named(dump_t_marker, NULL, "marker", -1);
  if (!HARNESS_WAIT(shows("marker", WEFT_TASK_WAITING, WEFT_WAIT_SLEEP)))
    goto out;
  CHECK_OK(raise(SIGUSR1));
  /* The dumper thread writes it: read until the last task's line. */
  double deadline = harness_now_ms() + HARNESS_WAIT_MS;
  while (!strstr(d->text, "\"marker\"") && harness_now_ms() < deadline) {
    ssize_t k = read(d->rfd, d->text + d->len, sizeof d->text - 1 - d->len);
    if (k > 0) {
      d->len += (size_t)k;
      d->text[d->len] = 0;
    } else {
      (void)weft_sleep(2);
    }
  }
  CHECK(strstr(d->text, "weft task dump") != NULL);
  CHECK(strstr(d->text, "\"marker\"") != NULL);
out:
  weft_task_cancel(t);
  (void)weft_task_await(t, NULL);
  weft_task_unref(t);
  return NULL;
}

static void test_signal(void **state) {
  int p[2];
  static sigdump_t d;
  (void)state;
  assert_int_equal(pipe(p), 0);
  fcntl(p[0], F_SETFL, O_NONBLOCK);
  fcntl(p[1], F_SETFL, O_NONBLOCK); /* a full pipe must not block it */
  d.rfd = p[0];
  assert_int_equal(weft_dump_on_signal(SIGUSR1, p[1]), 0);
  assert_int_equal(weft_dump_on_signal(SIGUSR1, p[1]), 0); /* again: same */
  (void)run_in_weft(signal_main, &d, 2);
  assert_int_equal(weft_dump_on_signal(0, -1), 0);
  assert_int_equal(weft_dump_on_signal(0, -1), 0); /* off twice */
  /* Off: the previous disposition is back (ignore it for the check). */
  struct sigaction sa;
  assert_int_equal(sigaction(SIGUSR1, NULL, &sa), 0);
  assert_true(sa.sa_handler == SIG_DFL);
  close(p[0]);
  close(p[1]);
}

/* ---- the current thread's stack (backtrace.h, for the watchdog) ------------ */

NOINLINE int dump_t_here(void **pcs, int max) {
  int n = weft__backtrace_here(pcs, max);
  __asm__ volatile("" ::: "memory"); /* no tail call: keep this frame */
  return n;
}

static void test_backtrace_here(void **state) {
  void *pcs[WEFT_BACKTRACE_MAX];
  char buf[512];
  (void)state;
  assert_int_equal(weft__backtrace_here(NULL, 4), 0);
  assert_int_equal(weft__backtrace_here(pcs, 0), 0);
  int n = dump_t_here(pcs, WEFT_BACKTRACE_MAX);
  assert_true(n >= 1 && n <= WEFT_BACKTRACE_MAX);
  /* The first frame is in the caller of weft__backtrace_here. Under
   * ThreadSanitizer (no libunwind there: CMakeLists.txt) glibc's
   * backtrace() is TSan's interceptor, which leaves one more frame of
   * weft's own first. */
  assert_true(weft_symbolize(pcs[0], buf, sizeof buf) > 0);
#if defined(WEFT_SANITIZE_THREAD)
  if (!strstr(buf, "dump_t_here") && n > 1)
    assert_true(weft_symbolize(pcs[1], buf, sizeof buf) > 0);
#endif
  if (!strstr(buf, "dump_t_here"))
    fail_msg("first frame symbolised as %s", buf);
  assert_int_equal(dump_t_here(pcs, 1), 1);
}

/* ---- errors, outside any runtime --------------------------------------------- */

static void test_errors(void **state) {
  weft_task_snapshot_t *v = (weft_task_snapshot_t *)1;
  size_t n = 7;
  char buf[64];
  (void)state;
  assert_int_equal(weft_task_snapshot(0, NULL, &n), WEFT_EINVAL);
  assert_int_equal(weft_task_snapshot(0, &v, NULL), WEFT_EINVAL);
  assert_int_equal(weft_task_snapshot(0x80, &v, &n), WEFT_EINVAL);
  /* No runtime: an empty snapshot. */
  assert_int_equal(weft_task_snapshot(WEFT_SNAPSHOT_BACKTRACE, &v, &n), 0);
  assert_null(v);
  assert_int_equal(n, 0);
  weft_task_snapshot_free(NULL);
  assert_int_equal(weft_dump_tasks(NULL), WEFT_EINVAL);
  assert_int_equal(weft_dump_tasks_fd(-1), WEFT_EINVAL);
  int devnull = open("/dev/null", O_WRONLY);
  assert_true(devnull >= 0);
  assert_int_equal(weft_dump_tasks_fd(devnull), 0); /* no task */
  close(devnull);
  int p[2];
  assert_int_equal(pipe(p), 0);
  close(p[0]);
  signal(SIGPIPE, SIG_IGN);
  assert_int_equal(weft_dump_tasks_fd(p[1]), WEFT_EIO); /* write fails */
  close(p[1]);
  assert_int_equal(weft_dump_on_signal(-1, 1), WEFT_EINVAL);
  assert_int_equal(weft_dump_on_signal(SIGKILL, 1), WEFT_EINVAL);
  assert_int_equal(weft_dump_on_signal(SIGSEGV, 1), WEFT_EINVAL);
  assert_int_equal(weft_dump_on_signal(65, 1), WEFT_EINVAL);
  assert_int_equal(weft_dump_on_signal(SIGUSR1, -1), WEFT_EINVAL);
  assert_int_equal(weft_symbolize(&devnull, NULL, 1), WEFT_EINVAL);
  assert_true(weft_symbolize(&devnull, NULL, 0) > 0);
  /* A code address, taken from a function pointer without the cast ISO C
   * forbids. */
  weft_task_fn fn = dump_t_ready;
  const void *code;
  memcpy(&code, &fn, sizeof code);
  assert_true(weft_symbolize(code, buf, sizeof buf) > 0);
#if defined(WEFT_TEST_LIBUNWIND)
  if (!strstr(buf, "dump_t_ready"))
    fail_msg("symbolised as %s", buf);
#endif
  assert_string_equal(weft_wait_kind_name(WEFT_WAIT_LOCK), "lock");
  assert_string_equal(weft_wait_kind_name(-1), "?");
  assert_string_equal(weft_wait_kind_name(WEFT_WAIT_KIND_COUNT), "?");
  assert_string_equal(weft_task_run_state_name(WEFT_TASK_READY), "ready");
  assert_string_equal(weft_task_run_state_name(0), "?");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_backtrace_here),
      cmocka_unit_test(test_states),
      cmocka_unit_test(test_yield_note),
      cmocka_unit_test(test_many),
      cmocka_unit_test(test_churn),
      cmocka_unit_test(test_signal),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

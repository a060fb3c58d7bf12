/*
 * parked.c: the program tests/gdb/check.sh debugs. Main spawns tasks that
 * park in distinctly named noinline functions (a sleep, a lock, an event),
 * one task that never gets to run and one that awaits another, submits one
 * through weft_runtime_submit (a record outside the worker pools), then calls
 * gdbt_checkpoint(), where the check's gdb stops it to run
 * `info weft-tasks` and `weft-bt`. Then main wakes every task, awaits them
 * and checks their outcomes: if the debugger's register juggling had left
 * anything behind, the program would not finish cleanly and print
 * "parked: ok".
 *
 * Deterministic mode (one worker, FIFO): after main's yield every spawned
 * task has run up to its park before main resumes, so gdb sees each task
 * parked where the check expects it, with no timing involved.
 *
 * Usage: parked; exits 0 and prints "parked: ok" on success.
 */
#include <weft.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

/* noipa (gcc): neither inlined nor folded with an identical function
 * (-fipa-icf would merge gdbt_foreign_wait into gdbt_wait_event). */
#if defined(__GNUC__) && !defined(__clang__)
#define NOINLINE __attribute__((noinline, noipa))
#else
#define NOINLINE __attribute__((noinline))
#endif
/* A compiler barrier after a call keeps it from being a tail call, so that
 * the caller's frame stays on the stack for the backtrace to show. */
#define KEEP_FRAME() __asm__ volatile("" ::: "memory")

static weft_lock_t lock = WEFT_LOCK_INITIALIZER;
static weft_event_t event = WEFT_EVENT_INITIALIZER;

NOINLINE static int gdbt_sleep_forever(void) {
  int err = weft_sleep(3600u * 1000u);
  KEEP_FRAME();
  return err;
}

NOINLINE static int gdbt_wait_lock(weft_lock_t *l) {
  int err = weft_lock_acquire(l);
  KEEP_FRAME();
  return err;
}

NOINLINE static int gdbt_wait_event(weft_event_t *e) {
  int err = weft_event_wait(e);
  KEEP_FRAME();
  return err;
}

NOINLINE static int gdbt_await_task(weft_task_t *t) {
  int err = weft_task_await(t, NULL);
  KEEP_FRAME();
  return err;
}

NOINLINE static int gdbt_foreign_wait(weft_event_t *e) {
  int err = weft_event_wait(e);
  KEEP_FRAME();
  return err;
}

/* gdb's breakpoint: every task but main is parked when main gets here. */
NOINLINE void gdbt_checkpoint(void);
NOINLINE void gdbt_checkpoint(void) { KEEP_FRAME(); }

static void *sleeper_body(void *arg) {
  (void)arg;
  int err = gdbt_sleep_forever();
  KEEP_FRAME();
  return err == WEFT_ECANCELED ? NULL : weft_task_fail(err ? err : -1);
}

static void *locker_body(void *arg) {
  (void)arg;
  int err = gdbt_wait_lock(&lock);
  if (err == 0)
    err = weft_lock_release(&lock);
  KEEP_FRAME();
  return err ? weft_task_fail(err) : NULL;
}

static void *eventer_body(void *arg) {
  (void)arg;
  int err = gdbt_wait_event(&event);
  KEEP_FRAME();
  return err ? weft_task_fail(err) : NULL;
}

/* arg: a reference to the eventer of its own, dropped here. */
static void *awaiter_body(void *arg) {
  int err = gdbt_await_task(arg);
  weft_task_unref(arg);
  /* The awaited task (the eventer) ends with status 0. */
  return err ? weft_task_fail(err) : NULL;
}

/* Set by the submitted task right before it waits (one worker: main sees
 * it only once that task has parked). */
static atomic_int foreign_arrived;

static void *foreign_body(void *arg) {
  (void)arg;
  /* relaxed: one worker runs both tasks; this is only a flag. */
  atomic_store_explicit(&foreign_arrived, 1, memory_order_relaxed);
  int err = gdbt_foreign_wait(&event);
  KEEP_FRAME();
  return err ? weft_task_fail(err) : NULL;
}

static void *fresh_body(void *arg) {
  (void)arg;
  return NULL;
}

static int spawn_named(weft_task_fn fn, void *arg, const char *name,
                       weft_task_t **out) {
  int err = weft_spawn(fn, arg, out);
  if (err == 0 && name)
    err = weft_task_set_name(*out, name);
  if (err)
    fprintf(stderr, "parked: spawn %s: %s\n", name ? name : "?",
            weft_strerror(err));
  return err;
}

static void *async_main(void *arg) {
  (void)arg;
  weft_task_t *t[5] = {NULL};
  int err = weft_task_set_name(weft_task_current(), "gdb-main");
  if (!err)
    err = weft_lock_acquire(&lock);
  if (!err)
    err = spawn_named(sleeper_body, NULL, "gdb-sleeper", &t[0]);
  if (!err)
    err = spawn_named(locker_body, NULL, "gdb-locker", &t[1]);
  if (!err)
    err = spawn_named(eventer_body, NULL, "gdb-eventer", &t[2]);
  if (!err) {
    weft_task_t *ref = weft_task_ref(t[2]);
    err = spawn_named(awaiter_body, ref, "gdb-awaiter", &t[3]);
    if (err && !t[3])
      weft_task_unref(ref); /* not spawned: the reference is still ours */
  }
  if (err)
    return weft_task_fail(err);
  /* A task submitted as from another thread (named "foreign"). */
  weft_future_t *fut = NULL;
  err = weft_runtime_submit(weft_runtime_current(), foreign_body, NULL, &fut);
  if (err)
    return weft_task_fail(err);
  /* Run every spawned task up to its park (deterministic FIFO order), and
   * the submitted one, which comes through the global queue. */
  if ((err = weft_yield()) != 0)
    return weft_task_fail(err);
  /* relaxed: as in foreign_body. */
  while (!atomic_load_explicit(&foreign_arrived, memory_order_relaxed))
    if ((err = weft_yield()) != 0)
      return weft_task_fail(err);
  /* A task that has not run yet: spawned after the yield, so it is still
   * queued at the checkpoint. Unnamed: it shows as task-N. */
  if ((err = weft_spawn(fresh_body, NULL, &t[4])) != 0)
    return weft_task_fail(err);

  gdbt_checkpoint();

  int bad = 0;
  bad |= weft_task_cancel(t[0]) != 1;
  bad |= weft_event_set(&event) != 0;
  bad |= weft_lock_release(&lock) != 0;
  for (int i = 0; i < 5; i++) {
    int st = weft_task_await(t[i], NULL);
    /* The sleeper was cancelled; every other task ends with status 0. */
    if (st != (i == 0 ? WEFT_ECANCELED : 0)) {
      fprintf(stderr, "parked: task %d ended with %s\n", i, weft_strerror(st));
      bad = 1;
    }
    weft_task_unref(t[i]);
  }
  int st = weft_future_wait(fut, WEFT_NO_TIMEOUT, NULL);
  if (st != 0) {
    fprintf(stderr, "parked: submitted task ended with %s\n",
            weft_strerror(st));
    bad = 1;
  }
  weft_future_free(fut);
  if (bad)
    return weft_task_fail(WEFT_EINVAL);
  return NULL;
}

int main(void) {
  weft_config_t cfg;
  weft_config_init(&cfg);
  cfg.deterministic = 1;
  int err = weft_run(async_main, NULL, &cfg, NULL);
  if (err) {
    fprintf(stderr, "parked: weft_run: %s\n", weft_strerror(err));
    return 1;
  }
  printf("parked: ok\n");
  return 0;
}

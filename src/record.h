/*
 * The task record (struct weft_task): the one structure every layer touches.
 * A leaf: it needs only the other leaves (ctx, list, spinlock, stack,
 * task_state.h). Who may touch each field is said beside it; each field's
 * protocol is at the top of the file named there.
 */
#ifndef WEFT_RECORD_H
#define WEFT_RECORD_H

#include "weft.h"

#include "ctx/ctx.h"
#include "list.h"
#include "spinlock.h"
#include "stack.h"
#include "task_state.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(WEFT_SANITIZE_ADDRESS)
#include <sanitizer/asan_interface.h>
#endif

typedef struct weft__worker weft__worker_t;
typedef struct weft_runtime weft_runtime_t;

/* A kind of task record: how a finished task completes and how its record
 * is given back. The layer that creates the records of a kind defines its
 * hooks (task.c: spawned tasks; runtime.c: the main task; foreign.c: tasks
 * submitted from outside), so the scheduler and task.c need no branch on
 * the kind of a record. */
typedef struct weft__task_kind {
  /* The task finished and its stack is released (the scheduler calls it,
   * on its worker w, after the final switch): publish the outcome
   * (weft__task_publish), count it finished (weft__count_finished), do the
   * kind's own part, and drop the task's own reference
   * (weft__task_drop_own_ref), in the order the kind needs. */
  void (*complete)(weft__worker_t *w, struct weft_task *t);
  /* The last reference was dropped; NULL for a pooled record, which goes
   * back to its home worker's free list (task.c). */
  void (*release)(struct weft_task *t);
  /* 1: when the task finishes it switches to the scheduler, never straight
   * to the next task (the main task: its end starts the shutdown). */
  int done_via_sched;
} weft__task_kind_t;

/* tools/gdb/weft-gdb.py reads these fields by name (state, freed, started,
 * ctx, stack, worker, home, id, name_state, name, and any field named wait*
 * or parent): rename one there too. */
struct weft_task {
  /* --- line 0: everything a suspend/resume touches (weft_yield, the run
   * loop, weft__task_run), so that a switch costs one task cache line. --- */
  _Alignas(64) atomic_uint state; /* task_state.h; shared */
  atomic_uchar freed;     /* 0 while a task, 1 while free (task.c) */
  uint8_t wait_kind;      /* weft_wait_kind_t (weft/dump.h): what it waits
                             on, noted before it suspends (waitnote.h);
                             here so that a yield's note stays on this line */
  /* Poll epoch at the last yield, truncated (worker.c, yield_mark); 0 =
   * none. */
  uint16_t yield_mark;
  /* Link in whichever single queue holds the task (overflow batch, inject,
   * inbox, remote-free stack); only the SCHEDULED owner writes it. */
  struct weft_task *next;
  /* If set, the task must resume on this worker: pinned tasks, and tasks
   * with a timer registered there. Written by the task itself, read by
   * whoever dequeues it (ordered by the queue). */
  weft__worker_t *route;
  struct weft__worker *worker; /* worker running the task; valid while it
                                  runs (set by weft__task_run) */
  weft_runtime_t *rt;     /* owning runtime */
  /* Timeout scopes (wait.c), owner-only: the earliest deadline among the
   * scopes not yet expired (the innermost scope is `scope`, below). */
  uint64_t scope_deadline; /* monotonic ns; WEFT__NO_DEADLINE if none */
  /* When it last suspended (waitnote.h): the low 32 bits of its worker's
   * loop clock in ms (uv_now, weft_time_ms's epoch); dumps take the time
   * since as a difference modulo 2^32 (right for 49 days). */
  uint32_t wait_since_ms;
  uint16_t budget;        /* cooperative budget left (sched/switch.c) */
  uint8_t started;        /* 1 once the task has a stack and a context */
  uint8_t check_canary;   /* 1 if its stack has no guard page (stack.h) */
#if !defined(WEFT_CTX_ucontext)
  weft__ctx_t ctx;        /* saved context while not running (one word) */
#endif

  /* --- the rest: spawn, join, completion, cancellation --- */
  /* refs and cancels stay readable while the record is free in ASan builds
   * (record.c step 3), as state, freed and next do. The fields a spawn
   * writes all lie on this line and the next (always_start and name_state
   * fill holes), so that a spawn touches three of the record's four
   * lines. */
  _Alignas(64) atomic_uint refs; /* handles + 1 while not complete */
  atomic_int cancels; /* cancellation requests not withdrawn (uncancel) */
  weft__spinlock_t joinq_lock; /* guards joinq and the COMPLETE transition */
  uint8_t always_start;   /* 1: runs even if cancelled before its first run
                             (the library's own tasks that must clean up,
                             weft__spawn_always); its stack is taken at
                             spawn, so it cannot fail to start */
  atomic_uchar status_read; /* 1 once an owner of a handle read the status
                               (weft__task_status_read): debug mode
                               reports failures nobody read (task.c) */
  weft__list_t joinq;          /* weft__waiter_t of tasks awaiting this one */
#if defined(WEFT_CTX_ucontext)
  weft__ctx_t ctx;        /* saved context while not running */
#endif
  weft__stack_t *stack;   /* NULL until the task first runs */
  weft_task_fn fn;        /* body */
  void *arg;              /* its argument */
  void (*discard)(void *arg); /* called if the body never runs (task.c) */
  void *result;           /* its return value */
  int status;             /* set by weft_task_fail, 0 otherwise */
  /* Default names ("task-ID") are written on first read, not at spawn:
   * 0 = not yet, 1 = being written, 2 = name valid (task.c). */
  atomic_int name_state;
  void *local;            /* task-local storage slot */
  weft_timeout_t *scope;  /* innermost entered timeout scope (wait.c) */
  weft__worker_t *pin;    /* pinned worker or NULL */
  weft__worker_t *home;   /* worker whose pool holds the record */
  uint64_t id;            /* sequence number, for default names */
  /* What kind of record this is (spawned, main, foreign): the hooks its
   * completion and release go through. Set at creation, never changed. */
  const struct weft__task_kind *kind;
#if defined(WEFT_SANITIZE_THREAD)
  void *tsan_fiber;       /* ThreadSanitizer fiber of this task */
#endif
#if defined(WEFT_SANITIZE_ADDRESS)
  void *asan_fake_stack;  /* ASan fake-stack handle while switched out */
#endif
  /* Renames (task.c): a sequence lock, odd while weft_task_set_name writes
   * the words below, which it stores and copying readers load atomically
   * (relaxed). Never reset: it stays even between renames. */
  atomic_uint name_seq;
  union {
    char name[WEFT_TASK_NAME_MAX + 1];
    uint64_t name_words[(WEFT_TASK_NAME_MAX + 1) / 8];
  };
  /* Task dumps (dump.c, protocol at its top). Plain fields: parent_id and
   * born_ms are written by the spawner before it publishes the task, the
   * wait_* ones (and wait_kind, wait_since_ms on line 0) by the task
   * itself before it suspends (weft__wait_note, waitnote.h; a yield notes
   * only the two on line 0, and its wait_obj and wait_deadline_ms mean
   * nothing); a dumper reads them only while it holds the record
   * (DUMPING) and, for the wait_* ones, while the task is not running.
   * Times are the low 32 bits of a worker's loop clock (uv_now: ms, the
   * epoch of weft_time_ms), so that the record stays 256 bytes: a bigger
   * one costs a page fault per 64 more tasks (spawn_many: +25% here,
   * docs/design.md). Kept plain and named for tools/gdb. */
  uint64_t parent_id;     /* id of the task that spawned it; 0: none */
  const void *wait_obj;   /* the object it waits on, NULL if none */
  uint32_t born_ms;       /* when it was spawned */
  uint32_t wait_deadline_ms; /* its wait's own deadline; 0: none */
};

#if !defined(WEFT_SANITIZE_THREAD) && !defined(WEFT_SANITIZE_ADDRESS) &&     \
    !defined(WEFT_CTX_ucontext) && UINTPTR_MAX == UINT64_MAX
/* Four cache lines: a fifth costs a page fault per 64 spawned tasks. */
_Static_assert(sizeof(struct weft_task) == 256, "the task record grew");
/* A yield writes only line 0 of its record (weft_yield, weft__coop_tick). */
_Static_assert(offsetof(struct weft_task, wait_kind) < 64 &&
                   offsetof(struct weft_task, wait_since_ms) + 4 <= 64 &&
                   offsetof(struct weft_task, yield_mark) + 2 <= 64 &&
                   offsetof(struct weft_task, budget) + 2 <= 64,
               "a yield's fields left the record's first line");
#endif

_Static_assert((WEFT_TASK_NAME_MAX + 1) % 8 == 0,
               "task names are copied in whole words");

/* v in decimal at dst, NUL-terminated (at most 21 bytes); returns the
 * length. No snprintf: async-signal-safe. */
static inline size_t weft__put_u64(char *dst, uint64_t v) {
  char digits[20];
  size_t n = 0, i = 0;
  do {
    digits[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  while (n)
    dst[i++] = digits[--n];
  dst[i] = 0;
  return i;
}

/* "task-N", a task's default name, without snprintf (async-signal-safe). */
static inline void weft__task_default_name(char *dst, uint64_t id) {
  memcpy(dst, "task-", 5);
  weft__put_u64(dst + 5, id);
}

/* t's name without writing to t (async-signal-safe): the name itself, or
 * its default formatted into buf. Names are task.c's (protocol there). */
static inline const char *
weft__task_name_peek(const weft_task_t *t, char buf[WEFT_TASK_NAME_MAX + 1]) {
  /* acquire: as in task.c's name_of (pairs with the release of 2). */
  if (atomic_load_explicit(&t->name_state, memory_order_acquire) == 2)
    return t->name;
  weft__task_default_name(buf, t->id);
  return buf;
}

/* A worker's pool of task records (record.c, protocol at its top): its
 * free list and slabs, touched by the worker's thread only, and a pointer
 * to its remote-free stack, which lives with the worker's fields other
 * threads write (weft__worker_t.remote), off the owner's cache lines. */
/* tools/gdb/weft-gdb.py walks `slabs` (record.c's struct task_slab). */
typedef struct weft__record_pool {
  weft_task_t *free;                  /* free records homed here */
  unsigned nfree;
  /* Record slabs allocated here: pushed by the owner (release), walked
   * by any thread (acquire: task dumps, weft__record_each_slab); freed only
   * when the runtime ends. */
  _Atomic(void *) slabs;
  unsigned nslabs;                    /* slabs allocated (owner) */
  unsigned chunk_left;                /* slabs left in chunks' head */
  void *chunks;                       /* 2 MiB chunks slabs are cut from
                                         once the pool is large (record.c) */
  _Atomic(weft_task_t *) *remote_free; /* records freed on other threads */
} weft__record_pool_t;

void weft__record_pool_init(weft__record_pool_t *p,
                            _Atomic(weft_task_t *) *remote_free);
/* What outlives a task in a record, once per record (pooled or not); home
 * is the worker whose pool holds it, NULL if none. */
void weft__record_once(weft_task_t *t, weft__worker_t *home);
/* ASan: what of a free record stays readable (record.c protocol step 3).
 * The two ranges are whole 8-byte granules, as poisoning needs. */
#define WEFT__REC_KEEP0_END 16u /* state, freed, next */
#define WEFT__REC_COLD offsetof(weft_task_t, refs)
#define WEFT__REC_KEEP1_END (WEFT__REC_COLD + 8u) /* refs, cancels */
_Static_assert(offsetof(weft_task_t, state) < WEFT__REC_KEEP0_END &&
                   offsetof(weft_task_t, freed) < WEFT__REC_KEEP0_END &&
                   offsetof(weft_task_t, next) + sizeof(void *) <=
                       WEFT__REC_KEEP0_END,
               "record fields read while free: first 16 bytes");
_Static_assert(offsetof(weft_task_t, cancels) + sizeof(atomic_int) <=
                   WEFT__REC_KEEP1_END && WEFT__REC_COLD % 8 == 0,
               "record fields read while free: refs, cancels");

static inline void weft__record_poison(weft_task_t *t) {
#if defined(WEFT_SANITIZE_ADDRESS)
  char *b = (char *)t;
  ASAN_POISON_MEMORY_REGION(b + WEFT__REC_KEEP0_END,
                            WEFT__REC_COLD - WEFT__REC_KEEP0_END);
  ASAN_POISON_MEMORY_REGION(b + WEFT__REC_KEEP1_END,
                            sizeof(weft_task_t) - WEFT__REC_KEEP1_END);
#else
  (void)t;
#endif
}

static inline void weft__record_unpoison(weft_task_t *t) {
#if defined(WEFT_SANITIZE_ADDRESS)
  ASAN_UNPOISON_MEMORY_REGION(t, sizeof(weft_task_t));
#else
  (void)t;
#endif
}

/* weft__record_alloc's and weft__record_free's slow paths (record.c). */
weft_task_t *weft__record_alloc_slow(weft__record_pool_t *p,
                                    weft__worker_t *home);
void weft__record_free_remote(_Atomic(weft_task_t *) *remote_free,
                              weft_task_t *t);

/* A free record of p (home: p's worker), taking back the remote frees or
 * carving a new slab when the free list is empty; NULL without memory.
 * Owner only. The pop is inline: it is every spawn's. */
static inline weft_task_t *weft__record_alloc(weft__record_pool_t *p,
                                              weft__worker_t *home) {
  weft_task_t *t = p->free;
  if (__builtin_expect(t == NULL, 0))
    return weft__record_alloc_slow(p, home);
  p->free = t->next;
  p->nfree--;
  weft__record_unpoison(t);
  return t;
}

/* Give t back to home, its home worker's pool: on_home (the caller runs on
 * that worker) to its free list, else to its remote-free stack, home_remote
 * (protocol step 2). The caller passes home_remote itself rather than let
 * this read home->remote_free: another thread must not touch the owner's
 * cache line of the pool. */
static inline void weft__record_free(weft__record_pool_t *home,
                                     _Atomic(weft_task_t *) *home_remote,
                                     weft_task_t *t, int on_home) {
  /* relaxed: read by home's shutdown walk, which only skips the record. */
  atomic_store_explicit(&t->freed, 1, memory_order_relaxed);
  /* Before the push: home may reuse (and unpoison) it right after. */
  weft__record_poison(t);
  if (on_home) {
    t->next = home->free;
    home->free = t;
    home->nfree++;
    return;
  }
  weft__record_free_remote(home_remote, t);
}
/* Take back the records freed on other threads. Owner only. */
void weft__record_reclaim(weft__record_pool_t *p);
/* fn(t) for every record of p that is a task (freed 0), after a reclaim:
 * the shutdown walk. Owner only. */
void weft__record_each_live(weft__record_pool_t *p,
                            void (*fn)(weft_task_t *t));
/* fn(recs, n, arg) for every slab of p, from any thread while p's runtime
 * is registered (registry.h): the task dump's walk (dump.c). The records
 * may be in any state: fn reads them under dump.c's protocol. */
void weft__record_each_slab(weft__record_pool_t *p,
                            void (*fn)(weft_task_t *recs, unsigned n,
                                       void *arg),
                            void *arg);
/* Free every slab of p (the runtime's end: every task has finished). */
void weft__record_free_all(weft__record_pool_t *p);

#endif /* WEFT_RECORD_H */

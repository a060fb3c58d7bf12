/*
 * The idle coordinator: which workers are searching for work and which are
 * parked (the Go/tokio protocol: docs/design.md §3, "Searching and parking").
 *
 * State: `state` packs SEARCHING (low 16 bits: workers stealing right now)
 * and UNPARKED (high 16 bits: workers not parked). The set of parked workers
 * is a stack under `mu` (`sleepers`), mirrored in an atomic flag per worker
 * (weft__worker_t's `parked`, sched/worker.h) so that directed wakes can test it
 * without the lock.
 *
 * Protocol:
 *  1. A worker out of local work may search (steal) only if fewer than half
 *     of the workers are searching: at most half search at once.
 *  2. A worker that pushes work to its own queue wakes one parked worker only
 *     when nobody is searching and somebody is parked (notify). The woken
 *     worker starts out searching, so a burst of pushes wakes one worker,
 *     not all of them.
 *  3. A searcher that finds work stops searching; if it was the last
 *     searcher it wakes one more parked worker, which continues the search
 *     (work tends to come in batches).
 *  4. A worker parks by (under mu) decrementing UNPARKED (and SEARCHING if it
 *     was searching) and pushing itself on the stack. If it was the last
 *     searcher, it then re-checks every run queue and the inject queue after
 *     that sequentially consistent transition and notifies if it finds work:
 *     a push that raced with the transition is seen by one side or the other.
 *  5. A parked worker blocks in uv_run(UV_RUN_ONCE). It is woken with
 *     uv_async_send, sent only to a worker that is on the parked stack, so a
 *     busy worker is never sent a (system-call costly) wake.
 *  6. On waking, a worker takes itself off the stack if nobody did: if a
 *     notifier removed it, it was counted as searching (2, 3); otherwise it
 *     woke for its own timers or I/O and is counted as merely unparked.
 *  7. The slot watcher (the LIFO slot's bound, worker.c). A task in a busy
 *     worker's LIFO slot wakes nobody (a wake per slot fill would cost
 *     ping_pong a system call per message), so one parked worker watches
 *     instead: a worker that parks while another worker is unparked takes
 *     the `watching` flag if nobody holds it (CAS 0 -> 1, after its park
 *     transition: it reads UNPARKED seq_cst after its seq_cst park RMW) and
 *     parks with a timer of WEFT__SLOT_WATCH_MS; when the timer wakes it, it
 *     drops the flag and searches (which looks at the slots) before parking
 *     again. A worker that fills its empty slot reads `watching` and then
 *     `state` (both seq_cst) and, if nobody watches, somebody is parked and
 *     nobody searches, notifies (step 2). Both sides' reads follow a seq_cst
 *     RMW on `state` (the parker's park transition; the filler's last unpark,
 *     its own or its notifier's, which happens before it runs): either the
 *     filler reads the parker parked (and wakes a worker, which parks again
 *     as the watcher), or the parker reads the filler unparked (and
 *     watches). A searcher seen by the filler either parks later (and
 *     watches) or finds work and, as the last searcher, wakes one more
 *     (step 3), which does the same. So while a worker with a filled slot
 *     runs, some parked worker wakes every WEFT__SLOT_WATCH_MS, unless no
 *     worker is parked (then the first to park watches).
 */
#ifndef WEFT_IDLE_H
#define WEFT_IDLE_H

#include <pthread.h>
#include <stdatomic.h>

typedef struct weft__idle {
  atomic_uint state;     /* SEARCHING | UNPARKED << 16 */
  atomic_uint watching;  /* 1 while a parked worker watches the LIFO
                            slots (step 7) */
  pthread_mutex_t mu;    /* guards sleepers, nsleepers, listed */
  unsigned *sleepers;    /* stack of parked worker indices */
  unsigned char *listed; /* listed[i]: worker i is on the stack */
  unsigned nsleepers;    /* entries on the stack */
  unsigned nworkers;     /* number of workers of the runtime */
} weft__idle_t;

#define WEFT__IDLE_UNPARKED_ONE (1u << 16)

static inline unsigned weft__idle_searching(unsigned s) { return s & 0xffff; }
static inline unsigned weft__idle_unparked(unsigned s) { return s >> 16; }

int weft__idle_init(weft__idle_t *idle, unsigned nworkers);
void weft__idle_destroy(weft__idle_t *idle);

/* Protocol step 1. Returns 1 if the caller is now searching. */
int weft__idle_try_search(weft__idle_t *idle);

/* Stop searching; returns 1 if the caller was the last searcher. */
int weft__idle_end_search(weft__idle_t *idle);

/* Protocol step 4: returns 1 if the caller was the last searcher. */
int weft__idle_park(weft__idle_t *idle, unsigned index, int was_searching);

/* Protocol step 6: returns 1 if the caller was woken by a notifier (and is
 * counted as searching), 0 otherwise. */
int weft__idle_unpark_self(weft__idle_t *idle, unsigned index);

/* Protocol step 2: pick a parked worker to wake (counted as searching and
 * unparked). Returns its index, or -1 if none should be woken. Set `force`
 * to skip the "nobody searching" condition (work pushed from outside the
 * runtime must not wait for a searcher that may already have looked). */
int weft__idle_pick_to_notify(weft__idle_t *idle, int force);

/* Protocol step 7, after weft__idle_park: returns 1 if the caller is now
 * the watcher (it must then park with a timer and call weft__idle_unwatch
 * when it wakes). */
int weft__idle_try_watch(weft__idle_t *idle);
void weft__idle_unwatch(weft__idle_t *idle);

/* Protocol step 7, after filling an empty LIFO slot: returns 1 if the
 * caller should notify (nobody watches, somebody is parked, nobody
 * searches). Two seq_cst loads, no write: cheap enough for every fill. */
static inline int weft__idle_slot_needs_watcher(weft__idle_t *idle) {
  /* seq_cst: ordered after the caller's last unpark RMW on `state` (step 7's
   * pairing with weft__idle_try_watch). */
  if (atomic_load_explicit(&idle->watching, memory_order_seq_cst))
    return 0;
  /* seq_cst: as above. */
  unsigned s = atomic_load_explicit(&idle->state, memory_order_seq_cst);
  return weft__idle_unparked(s) < idle->nworkers &&
         weft__idle_searching(s) == 0;
}

/* Take worker `index` off the stack if it is parked (counted as unparked and
 * searching, as after a notify). Returns 1 if it was parked and the caller
 * must wake it. */
int weft__idle_claim(weft__idle_t *idle, unsigned index);

#endif /* WEFT_IDLE_H */

/*
 * The idle coordinator: which workers are searching for work and which are
 * parked (the Go/tokio protocol of design-brief §3).
 *
 * State: `state` packs SEARCHING (low 16 bits: workers stealing right now)
 * and UNPARKED (high 16 bits: workers not parked). The set of parked workers
 * is a stack under `mu`, with `parked[i]` mirrored in an atomic per worker
 * (worker.h) so that directed wakes can test it without the lock.
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
 */
#ifndef WEFT_IDLE_H
#define WEFT_IDLE_H

#include <pthread.h>
#include <stdatomic.h>

typedef struct weft__idle {
  atomic_uint state;     /* SEARCHING | UNPARKED << 16 */
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

/* Take worker `index` off the stack if it is parked (counted as unparked and
 * searching, as after a notify). Returns 1 if it was parked and the caller
 * must wake it. */
int weft__idle_claim(weft__idle_t *idle, unsigned index);

#endif /* WEFT_IDLE_H */

/*
 * The runtime struct: the state every worker shares (configuration, the
 * workers, the inject queue, the idle coordinator, the stack pool, the
 * shutdown flags), and the lifecycle fields runtime.c and foreign.c own.
 * Defined in the scheduler layer because every worker reads it; runtime.c
 * (the top layer) creates it and fills it in. Data only: the functions
 * that work on it are declared by the file that owns each field.
 */
#ifndef WEFT_SCHED_RUNTIME_H
#define WEFT_SCHED_RUNTIME_H

#include "weft.h"

#include "list.h"
#include "record.h"
#include "sched/idle.h"
#include "sched/inject.h"
#include "stack.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

/* Tasks submitted from any thread (foreign.c, protocol at its top). Lives
 * in the runtime struct, which outlives weft_run while handles remain. */
typedef struct weft__foreign {
  pthread_mutex_t mu;     /* guards the fields below, and is held across
                             every wake sent from outside the runtime */
  int closed;             /* 1 once main finished: submission fails */
  atomic_uint_fast64_t spawned; /* tasks submitted; written under mu, read
                                   by the quiescence check (sched/worker.c) */
  weft__list_t tasks;     /* records of submitted tasks not yet freed */
} weft__foreign_t;

/* tools/gdb/weft-gdb.py reads nworkers, workers, main, foreign.tasks and
 * reg_link by name. */
struct weft_runtime {
  /* Read on hot paths by every worker and written (almost) never: kept
   * off the cache lines of the shared queues below, whose writes would
   * otherwise invalidate them in every worker's cache. */
  weft_config_t cfg;          /* resolved configuration */
  unsigned nworkers;
  weft__worker_t *workers;    /* nworkers, cache-line aligned */
  atomic_int shutdown;        /* main finished: cancel everything */
  atomic_int stop;            /* every task finished: workers exit */
  _Alignas(64) weft__inject_t inject; /* global queue */
  _Alignas(64) weft__idle_t idle;     /* searching/parking coordinator */
  _Alignas(64) weft__stack_pool_t stacks; /* stack slabs and free stacks */
  _Alignas(64) atomic_size_t live; /* live records, only with max_tasks */
  weft_task_t *main;          /* the main task (malloc'ed, not pooled) */
  int main_status;
  void *main_result;
  pthread_mutex_t start_mu;   /* start-up handshake */
  pthread_cond_t start_cv;
  unsigned started;           /* workers that initialised their loop */
  unsigned exited;            /* workers that left their run loop */
  int start_err;              /* first start-up error */
  atomic_uint refs;           /* handles (foreign.h) + 1 for weft_run; the
                                 last one frees this struct (foreign.c) */
  weft__foreign_t foreign;    /* submissions from any thread (foreign.c) */
  struct weft__sigint *sigint; /* SIGINT cancels main (io/signal.c), or
                                  NULL when cfg.sigint_cancels_main is 0 */
  weft__list_t reg_link;      /* in weft__registry (registry.h protocol) */
  struct weft__watchdog *watchdog; /* NULL unless cfg.watchdog_ms; set
                                      before the worker threads start
                                      (watchdog.c) */
};

#endif /* WEFT_SCHED_RUNTIME_H */

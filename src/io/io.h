/*
 * weft internals of the I/O layer (streams, servers, resolver): the home
 * worker of a handle, moving a task there, waiting for a libuv callback,
 * and the per-worker list of open objects that shutdown reaps.
 *
 * Every I/O object has a home worker whose loop owns its libuv handles. Its
 * state is owner-only: it is touched only on the home worker's thread, by
 * tasks running there (between switches) and by libuv callbacks (in the
 * scheduler context, during uv_run), which never run at the same time. A
 * task on another worker first moves itself there (weft__io_enter). See
 * home.c for the protocol.
 */
#ifndef WEFT_IO_H
#define WEFT_IO_H

#include "list.h"
#include "record.h"

typedef struct weft__io_obj weft__io_obj_t;

/* Runtime teardown of an object the program never freed: close its handles
 * and arrange for its memory to be freed by their close callbacks (the
 * worker runs its loop out afterwards). Called on the home thread, after
 * every task has finished. */
typedef void (*weft__io_reap_fn)(weft__io_obj_t *o);

/* The header of every object on a worker's io.objs list. */
struct weft__io_obj {
  weft__list_t link;     /* in home->io.objs; home owner only */
  weft__worker_t *home;  /* the worker whose loop owns the handles */
  weft__io_reap_fn reap; /* teardown (see above) */
};

/* One task waiting on the home worker for a libuv callback or another
 * task's action; lives on the waiting task's stack. Owner-only, so no
 * handshake is needed: the waker and the waiter share one thread. */
typedef struct weft__io_waiter {
  weft__list_t link; /* in the object's wait list */
  weft_task_t *task; /* the waiting task */
  int fired;         /* set by the waker before it wakes task */
} weft__io_waiter_t;

/* Link o into home's list; call on home's thread. */
void weft__io_register(weft__io_obj_t *o, weft__worker_t *home,
                       weft__io_reap_fn reap);
/* Unlink o; call on home's thread (no-op when not linked). */
void weft__io_unregister(weft__io_obj_t *o);

/* 0 if t may use o (same runtime), else WEFT_EOTHER_RUNTIME (home.c step 6).
 * Every operation that moves to an object's home checks it first. */
int weft__io_check(const weft_task_t *t, const weft__io_obj_t *o);

/* Make the calling task t run on `home` until weft__io_leave(): its route
 * is set there (so every wake-up resumes it there), and it is moved there
 * now if it runs elsewhere. Not a cancellation point. */
void weft__io_enter(weft_task_t *t, weft__worker_t *home);

/* End of an operation: the route goes back to the pin (or none); a pinned
 * task is moved back to its pin. Not a cancellation point. */
void weft__io_leave(weft_task_t *t);

/* Move the calling task to worker `to` (its route is left pointing there). */
void weft__io_hop(weft_task_t *t, weft__worker_t *to);

/* Park until *flag is non-zero (0), or a cancellation (WEFT_ECANCELED, the
 * request consumed; never when `uncancellable`). A flag set at the same time
 * as a cancellation wins and the request stays pending. The task must be on
 * its home worker with its route set there (weft__io_enter). */
int weft__io_wait_flag(weft_task_t *t, const int *flag, int uncancellable);

/* Waiter lists (owner-only). Wait once in list (a waiter on the stack,
 * woken by weft__io_wake_all): as weft__io_wait_flag(), and the waiter is
 * off the list when this returns. Callers loop on their own condition. */
int weft__io_wait_in(weft__list_t *list, weft_task_t *t);
/* Wake every waiter of list and empty it; a waiter whose task has a
 * cancellation pending is unlinked without being woken or fired. */
void weft__io_wake_all(weft__list_t *list);
/* 1 if t has a cancellation pending: a waker on home must hand it nothing
 * (home.c step 3). */
int weft__io_task_cancelled(const weft_task_t *t);

/* The fork guard (process.c): a process-wide lock whose write side
 * uv_spawn's fork runs under. Code that opens descriptors it cannot make
 * close-on-exec (OpenSSL's file reads when a TLS context is made, in
 * tls_ctx.c) holds the read side meanwhile, so no child inherits them.
 * Callable from any thread; never held across a suspension. */
void weft__fork_guard_rdlock(void);
void weft__fork_guard_unlock(void);

/* Ignore SIGPIPE process-wide if it still has its default disposition
 * (once per process; see weft/stream.h). */
void weft__io_ignore_sigpipe(void);

/* Resolve host:port into an array of *n socket addresses (malloc'ed, freed
 * with weft__free()); literals are converted without the thread pool, names go
 * through uv_getaddrinfo on the calling task's worker. host NULL with
 * `passive` = the IPv4 wildcard. Suspends; cancellable (dns.c). */
int weft__io_resolve(const char *host, int port, int passive,
                     struct sockaddr_storage **addrs, size_t *n);

/* Close and free the streams and servers still homed on w (home.c);
 * runtime.c's worker_close calls it on w's thread before running the loop
 * out. */
void weft__io_worker_close(weft__worker_t *w);
/* Offload (offload.c): run w's loop, after its handles were closed,
 * until no pool work is out or cfg.offload_grace_ms passed. 0: nothing is
 * out (run the loop out and close it); 1: work is still running (reported
 * on stderr): the loop must be left behind, never closed nor freed. */
int weft__offload_drain(weft__worker_t *w);
/* Files (file.c): a descriptor of its own (close-on-exec) on f's open file
 * and that file's st_mode, for weft_stream_sendfile(); the calling task
 * visits f's home (not a cancellation point). 0, WEFT_EBADF (closed or
 * closing handle), WEFT_EMFILE..., WEFT_EOTHER_RUNTIME, WEFT_ENOTTASK. */
int weft__file_dup(weft_file_t *f, int *fd, unsigned *mode);
/* Files (file.c): report on stderr each file-system request still on
 * w->io.fsreqs when the grace period (ms) ran out; for
 * weft__offload_drain. */
void weft__file_report(weft__worker_t *w, uint64_t grace);

/* weft_run()'s SIGINT (signal.c, cfg.sigint_cancels_main), all on worker
 * 0's thread. install: after worker 0's loop is open and before it runs
 * (0, or WEFT_ENOMEM / libuv's error; not owning SIGINT is no error);
 * uninstall: after every worker left its run loop, before worker 0 closes
 * its handles; finish: after worker 0's loop was run out, maps main's
 * status (WEFT_EINTR for a main cancelled by SIGINT) and frees the state.
 * Each is a no-op when the option is off. */
int weft__sigint_install(weft_runtime_t *rt);
void weft__sigint_uninstall(weft_runtime_t *rt);
int weft__sigint_finish(weft_runtime_t *rt, int status);

#endif /* WEFT_IO_H */

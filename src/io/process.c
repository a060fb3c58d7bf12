/*
 * Subprocesses (weft/process.h): asyncio's create_subprocess_exec/_shell
 * and Process, on libuv's uv_spawn.
 *
 * Threading: owner-only (io/home.c protocol). A process's uv_process_t and
 * its pipe streams live on the loop of its home worker, the spawning
 * task's worker; every call enters home first, and libuv's exit callback
 * runs there too. The fields read from anywhere are `pid` and `pipes`
 * (written before the process is handed to the program) and the exit
 * status (`code`, published by `exited`).
 *
 * Protocol:
 *  1. Spawn (on home): the pipes are socket pairs made here (both ends
 *     close-on-exec; ours non-blocking), each parent end opened into a
 *     weft stream registered on home like any stream, each child end given
 *     to uv_spawn as an inherited descriptor, which the child's libuv code
 *     dup2()s onto 0, 1 or 2 (clearing close-on-exec on the copy only).
 *     Making the pairs here, rather than with UV_CREATE_PIPE, lets stderr
 *     share stdout's pipe (WEFT_STDIO_STDOUT). uv_spawn forks, and returns
 *     once the child has executed the program or reported why it could
 *     not; the child ends are then closed in the parent. The pairs and
 *     the fork are made under the write side of the fork guard (io.h),
 *     so descriptors that OpenSSL opens without O_CLOEXEC while a TLS
 *     context is made are never inherited.
 *  2. Reaping: libuv's SIGCHLD watcher on home's loop calls waitpid() for
 *     the loop's own process handles, and on_child_exit records the status,
 *     publishes it (release store of `exited`) and wakes the waiters. The
 *     handle must stay open until then: a closed uv_process_t is no longer
 *     waited for. So the handle is closed only by on_child_exit, or by the
 *     shutdown (step 5); weft_process_free() before the exit only marks
 *     the record `freed`, and the close callback frees it.
 *  3. Waiting: a waiting task links a weft__io_waiter_t in `waiters` and
 *     parks (weft__io_wait_in). A cancelled wait sends `cancel_signal`, if
 *     any, while the child has not been reaped; never after, since its pid
 *     may then be reused. send_signal() checks the same on home, where no
 *     reap can happen between the check and kill(2) (the loop does not run
 *     while a task does).
 *  4. communicate(): stdin gets the whole input queued (a stream write
 *     never waits) and a flushing close; stdout and stderr are each read to
 *     their end by a task of its own (weft__spawn_always), into a growing
 *     buffer whose record (comm_half_t) is on the caller's stack. The caller
 * awaits both readers: a cancellation of the caller is passed on to the reader
 * it awaits (weft_task_await), and a reader that fails or is cancelled gets the
 * other cancelled, so both have finished, and no reader touches the caller's
 * stack, when it returns; the await orders their writes before the caller's
 * reads. Readers consume only what they hand to the caller: a cancelled read
 *     consumed nothing.
 *  5. Shutdown (weft__io_worker_close, after every task has finished): the
 *     pipe streams are reaped as streams. A child still running is handed
 *     to a detached thread that blocks in waitpid() for it, and the handle
 *     is closed (the loop then forgets the child); the child keeps running
 *     and is reaped when it exits.
 */
#include "waitnote.h"
#include "alloc.h"
#include "io/io.h"
#include "io/stream_int.h"
#include "list.h"
#include "record.h"
#include "sched/worker.h"
#include "task_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define SIG_MAX 64                       /* Linux's signal numbers */
#define COMM_CHUNK ((size_t)64 * 1024)   /* communicate() reads at least */
#define REAPER_STACK ((size_t)64 * 1024) /* stack of a shutdown reaper */

struct weft_process {
  weft__io_obj_t obj;      /* home worker, io.objs link, reap */
  uv_process_t h;          /* the child's handle on home's loop */
  int pid;                 /* set before the process is handed out */
  weft_stream_t *pipes[3]; /* stdin/stdout/stderr streams, or NULL */
  int cancel_signal;       /* opts.cancel_signal */
  atomic_int exited;       /* 1 once `code` is set (release/acquire) */
  int code;                /* exit status, or -signal */
  weft__list_t waiters;    /* weft__io_waiter_t in wait() */
  int freed;               /* the program released it (step 2) */
  int handle_closing;      /* uv_close called */
  int handle_closed;       /* its close callback ran */
};

/* ------------------------------------------------------------------------ */
/* Life cycle                                                                */

void weft_process_opts_init(weft_process_opts_t *opts) {
  if (!opts)
    return;
  memset(opts, 0, sizeof(*opts));
  for (int i = 0; i < 3; i++) {
    opts->stdio[i].how = WEFT_STDIO_INHERIT;
    opts->stdio[i].fd = -1;
  }
}

static void process_destroy(weft_process_t *p) {
  weft__io_unregister(&p->obj);
  weft__free(p);
}

static void on_handle_close(uv_handle_t *h) {
  weft_process_t *p = h->data;
  p->handle_closed = 1;
  if (p->freed)
    process_destroy(p);
}

static void close_handle(weft_process_t *p) {
  if (p->handle_closing)
    return;
  p->handle_closing = 1;
  uv_close((uv_handle_t *)&p->h, on_handle_close);
}

/* Step 2 (home's loop, callback context). */
static void on_child_exit(uv_process_t *h, int64_t status, int term_signal) {
  weft_process_t *p = h->data;
  p->code = term_signal ? -term_signal : (int)status;
  /* release: a reader of `exited` on any thread sees `code`. */
  atomic_store_explicit(&p->exited, 1, memory_order_release);
  weft__io_wake_all(&p->waiters);
  close_handle(p);
}

static void *reaper_main(void *arg) {
  pid_t pid = (pid_t)(intptr_t)arg;
  int st;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
    ;
  return NULL;
}

/* Step 5: reap pid from a detached thread; 0 or an errno value. */
static int reap_later(int pid) {
  pthread_attr_t a;
  pthread_t th;
  int rc = pthread_attr_init(&a);
  if (rc)
    return rc;
  pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
  size_t ss = REAPER_STACK;
  if (ss < (size_t)PTHREAD_STACK_MIN)
    ss = (size_t)PTHREAD_STACK_MIN;
  pthread_attr_setstacksize(&a, ss);
  /* The thread only waits; block every signal in it so that none is
   * delivered to it instead of a thread that handles it. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  rc = pthread_create(&th, &a, reaper_main, (void *)(intptr_t)pid);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&a);
  return rc;
}

/* Step 5 (home's thread, every task finished). */
static void process_reap(weft__io_obj_t *o) {
  weft_process_t *p = weft__container_of(o, weft_process_t, obj);
  p->freed = 1;
  if (p->handle_closed) {
    process_destroy(p);
    return;
  }
  /* The handle still open means no exit was seen: only on_child_exit
   * closes it before the shutdown. */
  if (!p->handle_closing) {
    int rc = reap_later(p->pid);
    if (rc)
      fprintf(stderr,
              "weft: cannot start a thread to reap child %d (%s); it will "
              "stay a zombie when it exits\n",
              p->pid, strerror(rc));
  }
  close_handle(p);
}

/* ------------------------------------------------------------------------ */
/* Spawning                                                                  */

/* io.h: the fork runs under the write side. A reader-preferring lock: a
 * spawn waits for TLS contexts being made, which are rare and short. */
static pthread_rwlock_t fork_guard = PTHREAD_RWLOCK_INITIALIZER;

void weft__fork_guard_rdlock(void) { pthread_rwlock_rdlock(&fork_guard); }

void weft__fork_guard_unlock(void) { pthread_rwlock_unlock(&fork_guard); }

/* A WEFT_STDIO_FD descriptor must be open. */
static int fd_check(int fd) {
  if (fd < 0 || fcntl(fd, F_GETFD) == -1)
    return WEFT_EBADF;
  return 0;
}

static int opts_check(const weft_process_opts_t *o) {
  for (int i = 0; i < 3; i++) {
    weft_stdio_t how = o->stdio[i].how;
    if ((int)how < (int)WEFT_STDIO_INHERIT || (int)how > (int)WEFT_STDIO_STDOUT)
      return WEFT_EINVAL;
    if (how == WEFT_STDIO_STDOUT && i != 2)
      return WEFT_EINVAL;
  }
  if (o->cancel_signal < 0 || o->cancel_signal > SIG_MAX)
    return WEFT_EINVAL;
  for (int i = 0; i < 3; i++)
    if (o->stdio[i].how == WEFT_STDIO_FD && fd_check(o->stdio[i].fd))
      return WEFT_EBADF;
  return 0;
}

/* Open the parent end of a socket pair into a new stream on home (step 1).
 * On success the stream owns fd. */
static int pipe_stream(weft__worker_t *home, int fd,
                       const weft_stream_opts_t *sopts, weft_stream_t **out) {
  weft_stream_t *s = weft__stream_alloc(home, 1, sopts);
  if (!s)
    return WEFT_ENOMEM;
  s->owned = 1;
  int rc = uv_pipe_open(&s->u.pipe, fd);
  if (rc) {
    s->free_on_close = 1;
    weft__stream_close(s, 1);
    return rc;
  }
  *out = s;
  return 0;
}

static int spawn(const char *file, const char *const *argv,
                 const weft_process_opts_t *opts, weft_process_t **out) {
  weft_process_opts_t defaults;
  if (!opts) {
    weft_process_opts_init(&defaults);
    opts = &defaults;
  }
  int rc = opts_check(opts);
  if (rc)
    return rc;
  weft_task_t *t = weft__task_current();
  if (!t)
    return WEFT_ENOTTASK;
  weft__worker_t *home = weft__worker_current();
  weft__io_enter(t, home);
  weft__io_ignore_sigpipe(); /* a write to a gone child: WEFT_EPIPE */

  weft_process_t *p = weft__calloc(1, sizeof(*p));
  if (!p) {
    weft__io_leave(t);
    return WEFT_ENOMEM;
  }
  atomic_init(&p->exited, 0);
  weft__list_init(&p->waiters);
  weft__list_init(&p->obj.link);
  p->cancel_signal = opts->cancel_signal;
  p->h.data = p;

  weft_stream_opts_t sopts;
  weft_stream_opts_init(&sopts);
  if (opts->limit)
    sopts.limit = opts->limit;

  /* Step 1: the pipes, child ends in child[]. The fork guard is taken
   * here already: the pairs need no guard (they are close-on-exec), but libuv
   * closes descriptors with a raw close system call that ThreadSanitizer
   * does not see, so it would take the reuse of a number by socketpair()
   * on another worker for a race; under one lock, every descriptor a spawn
   * creates is ordered after the previous spawn's. */
  pthread_rwlock_wrlock(&fork_guard);
  int child[3] = {-1, -1, -1};
  uv_stdio_container_t io[3];
  memset(io, 0, sizeof(io));
  for (int i = 0; i < 3 && rc == 0; i++) {
    weft_stdio_t how = opts->stdio[i].how;
    int fd = opts->stdio[i].fd;
    if (how == WEFT_STDIO_STDOUT) { /* stderr: as stdout */
      how = opts->stdio[1].how;
      fd = how == WEFT_STDIO_PIPE ? child[1] : opts->stdio[1].fd;
      if (how == WEFT_STDIO_INHERIT)
        fd = 1;
      if (how == WEFT_STDIO_PIPE)
        how = WEFT_STDIO_FD;
    }
    switch (how) {
    case WEFT_STDIO_INHERIT:
      io[i].flags = UV_INHERIT_FD;
      io[i].data.fd = i;
      break;
    case WEFT_STDIO_DEVNULL: /* libuv opens /dev/null in the child */
      io[i].flags = UV_IGNORE;
      break;
    case WEFT_STDIO_FD:
      io[i].flags = UV_INHERIT_FD;
      io[i].data.fd = fd;
      break;
    case WEFT_STDIO_PIPE: {
      uv_os_sock_t sv[2];
      rc = uv_socketpair(SOCK_STREAM, 0, sv, UV_NONBLOCK_PIPE, 0);
      if (rc)
        break;
      child[i] = sv[1];
      rc = pipe_stream(home, sv[0], &sopts, &p->pipes[i]);
      if (rc) {
        close(sv[0]);
        break;
      }
      io[i].flags = UV_INHERIT_FD;
      io[i].data.fd = sv[1];
      break;
    }
    default:
      rc = WEFT_EINVAL;
      break;
    }
  }

  if (rc == 0) {
    uv_process_options_t po;
    memset(&po, 0, sizeof(po));
    po.exit_cb = on_child_exit;
    po.file = file;
    po.args = (char **)argv;
    po.env = (char **)opts->env;
    po.cwd = opts->cwd;
    po.flags = opts->start_new_session ? UV_PROCESS_DETACHED : 0;
    po.stdio_count = 3;
    po.stdio = io;
    rc = uv_spawn(&home->own.loop, &p->h, &po);
    if (rc) {
      /* libuv initialised the handle: it must be closed (and frees p). */
      p->freed = 1;
      close_handle(p);
    }
  }
  pthread_rwlock_unlock(&fork_guard);
  for (int i = 0; i < 3; i++)
    if (child[i] >= 0)
      close(child[i]);
  if (rc) {
    for (int i = 0; i < 3; i++)
      if (p->pipes[i]) {
        p->pipes[i]->free_on_close = 1;
        weft__stream_close(p->pipes[i], 1);
      }
    if (!p->handle_closing)
      weft__free(p);
    weft__io_leave(t);
    return rc;
  }

  p->pid = p->h.pid;
  weft__io_register(&p->obj, home, process_reap);
  for (int i = 0; i < 3; i++) {
    weft_stream_t *s = p->pipes[i];
    if (!s)
      continue;
    if (i == 0)
      s->eof = 1; /* write-only: no reading, reads see end of stream */
    else
      s->shut = 1; /* read-only: writes fail with WEFT_EPIPE */
    /* A failure to start reading is recorded as the stream's error, which
     * its reader gets; the child runs, so the process is still handed out. */
    (void)weft__stream_start(s, &sopts);
  }
  *out = p;
  weft__io_leave(t);
  return 0;
}

int weft_create_subprocess_exec(const char *const *argv,
                                const weft_process_opts_t *opts,
                                weft_process_t **out) {
  if (out)
    *out = NULL;
  if (!argv || !argv[0] || !out)
    return WEFT_EINVAL;
  return spawn(argv[0], argv, opts, out);
}

int weft_create_subprocess_shell(const char *cmd,
                                 const weft_process_opts_t *opts,
                                 weft_process_t **out) {
  if (out)
    *out = NULL;
  if (!cmd || !out)
    return WEFT_EINVAL;
  const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
  return spawn(argv[0], argv, opts, out);
}

/* ------------------------------------------------------------------------ */
/* Accessors (anywhere)                                                      */

int weft_process_pid(const weft_process_t *p) {
  return p ? p->pid : WEFT_EINVAL;
}

int weft_process_returncode(const weft_process_t *p, int *code) {
  if (!p)
    return WEFT_EINVAL;
  /* acquire: pairs with on_child_exit's release, so `code` is complete. */
  if (!atomic_load_explicit(&p->exited, memory_order_acquire))
    return 0;
  if (code)
    *code = p->code;
  return 1;
}

weft_stream_t *weft_process_stdin(const weft_process_t *p) {
  return p ? p->pipes[0] : NULL;
}

weft_stream_t *weft_process_stdout(const weft_process_t *p) {
  return p ? p->pipes[1] : NULL;
}

weft_stream_t *weft_process_stderr(const weft_process_t *p) {
  return p ? p->pipes[2] : NULL;
}

/* ------------------------------------------------------------------------ */
/* Waiting and signals                                                       */

static int process_begin(weft_process_t *p, weft_task_t **tp) {
  if (!p)
    return WEFT_EINVAL;
  weft_task_t *t = weft__task_current();
  if (!t)
    return WEFT_ENOTTASK;
  int rc = weft__io_check(t, &p->obj);
  if (rc)
    return rc;
  weft__io_enter(t, p->obj.home);
  *tp = t;
  return 0;
}

/* On home: 1 once the exit was seen (the pid is no longer ours). */
static int reaped(const weft_process_t *p) {
  /* relaxed: written on this thread (on_child_exit runs on home). */
  return atomic_load_explicit(&p->exited, memory_order_relaxed);
}

/* Step 3: a cancelled wait. */
static void cancel_signal(weft_process_t *p) {
  if (p->cancel_signal && !reaped(p))
    (void)uv_process_kill(&p->h, p->cancel_signal);
}

/* Wait on home until the exit was seen. */
static int wait_exit(weft_process_t *p, weft_task_t *t) {
  while (!reaped(p)) {
    weft__wait_note(t, WEFT_WAIT_SUBPROCESS, p);
    int rc = weft__io_wait_in(&p->waiters, t);
    if (rc) {
      cancel_signal(p);
      return rc;
    }
  }
  return 0;
}

int weft_process_wait(weft_process_t *p, int *code) {
  weft_task_t *t;
  int rc = process_begin(p, &t);
  if (rc)
    return rc;
  rc = wait_exit(p, t);
  if (rc == 0 && code)
    *code = p->code;
  weft__io_leave(t);
  return rc;
}

int weft_process_send_signal(weft_process_t *p, int sig) {
  weft_task_t *t;
  if (sig < 1 || sig > SIG_MAX || sig >= NSIG)
    return WEFT_EINVAL;
  int rc = process_begin(p, &t);
  if (rc)
    return rc;
  rc = reaped(p) ? WEFT_ESRCH : uv_process_kill(&p->h, sig);
  weft__io_leave(t);
  return rc;
}

int weft_process_terminate(weft_process_t *p) {
  return weft_process_send_signal(p, SIGTERM);
}

int weft_process_kill(weft_process_t *p) {
  return weft_process_send_signal(p, SIGKILL);
}

int weft_process_free(weft_process_t *p) {
  weft_task_t *t;
  if (!p)
    return 0;
  int rc = process_begin(p, &t);
  if (rc)
    return rc;
  for (int i = 0; i < 3; i++)
    if (p->pipes[i])
      weft__stream_release(p->pipes[i]);
  p->freed = 1;
  if (p->handle_closed)
    process_destroy(p);
  /* Otherwise the handle stays open until the exit (step 2). */
  weft__io_leave(t);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* communicate()                                                             */

/* One pipe read to its end by a reader task (step 4). */
typedef struct comm_half {
  weft_stream_t *s;  /* the pipe */
  char *buf;         /* what was read, NUL-terminated */
  size_t len, cap;   /* bytes in buf, its size */
  int rc;            /* 0 at end of stream, else the read's error */
  weft_task_t *task; /* the reader (a reference), or NULL */
} comm_half_t;

/* Room for COMM_CHUNK more bytes and the NUL. */
static int half_reserve(comm_half_t *h) {
  if (h->cap - h->len > COMM_CHUNK)
    return 0;
  size_t cap = h->cap ? h->cap : 2 * COMM_CHUNK;
  while (cap - h->len <= COMM_CHUNK) {
    if (cap > SIZE_MAX / 2)
      return WEFT_ENOMEM;
    cap *= 2;
  }
  char *nb = weft__realloc(h->buf, cap);
  if (!nb)
    return WEFT_ENOMEM;
  h->buf = nb;
  h->cap = cap;
  return 0;
}

static void *comm_reader(void *arg) {
  comm_half_t *h = arg;
  int rc;
  for (;;) {
    rc = half_reserve(h);
    if (rc)
      break;
    rc = weft_stream_read(h->s, h->buf + h->len, h->cap - h->len - 1);
    if (rc <= 0)
      break;
    h->len += (size_t)rc;
  }
  h->rc = rc;
  /* A failure is the task's status, so that the caller's await sees it and
   * cancels the other reader at once (a cancellation is already one). */
  return rc < 0 && rc != WEFT_ECANCELED ? weft_task_fail(rc) : NULL;
}

/* Hand a half's buffer to the caller (an empty string for a pipe that
 * gave nothing, so that a pipe is never reported as NULL). */
static int half_take(comm_half_t *h, char **buf, size_t *len) {
  if (!h->s)
    return 0;
  if (!h->buf) {
    h->buf = weft__malloc(1);
    if (!h->buf)
      return WEFT_ENOMEM;
  }
  h->buf[h->len] = 0;
  *buf = h->buf;
  *len = h->len;
  h->buf = NULL;
  return 0;
}

/* Step 4: read stdout and stderr to their end, each in a reader task, and
 * wait for both. weft_task_await() passes the caller's cancellation on to
 * the reader it awaits and waits for it to finish; the other reader is
 * then cancelled and awaited too, so neither outlives the call. A reader
 * that never ran (no stack: WEFT_ENOMEM) is awaited like the others. */
static int comm_read(weft_process_t *p, weft_task_t *t, comm_half_t half[2]) {
  int rc = 0;
  for (int i = 0; i < 2; i++) {
    comm_half_t *h = &half[i];
    h->s = p->pipes[i + 1];
    if (!h->s)
      continue;
    int src = weft__spawn_always(NULL, comm_reader, h, &h->task);
    if (src) {
      h->task = NULL;
      rc = src;
      break;
    }
  }
  if (rc) /* the first reader, if any, must not outlive the call */
    for (int i = 0; i < 2; i++)
      if (half[i].task)
        weft_task_cancel(half[i].task);
  for (int i = 0; i < 2; i++) {
    if (!half[i].task)
      continue;
    int st = weft_task_await(half[i].task, NULL);
    weft_task_unref(half[i].task);
    half[i].task = NULL;
    if (st && !rc) {
      rc = st;
      if (i == 0 && half[1].task)
        weft_task_cancel(half[1].task);
    }
  }
  weft__io_enter(t, p->obj.home); /* the awaits may have left home */
  for (int i = 0; i < 2 && rc == 0; i++)
    rc = half[i].rc;
  return rc;
}

int weft_process_communicate(weft_process_t *p, const void *input, size_t inlen,
                             weft_process_output_t *out) {
  weft_task_t *t;
  if (out)
    memset(out, 0, sizeof(*out));
  if (!out || (inlen && !input) || (p && inlen && !p->pipes[0]))
    return WEFT_EINVAL;
  int rc = process_begin(p, &t);
  if (rc)
    return rc;
  weft__worker_t *home = p->obj.home;

  weft_stream_t *in = p->pipes[0];
  if (in) {
    if (inlen) {
      rc = weft_stream_write(in, input, inlen);
      weft__io_enter(t, home); /* the stream call left */
      if (rc == WEFT_EPIPE || rc == WEFT_ECONNRESET)
        rc = 0; /* the child does not read its input: asyncio ignores it */
      if (rc) {
        weft__io_leave(t);
        return rc;
      }
    }
    (void)weft_stream_close(in); /* flushes, then closes */
    weft__io_enter(t, home);
  }

  comm_half_t half[2];
  memset(half, 0, sizeof(half));
  rc = comm_read(p, t, half);
  if (rc == WEFT_ECANCELED)
    cancel_signal(p);
  if (rc == 0)
    rc = wait_exit(p, t);
  if (rc == 0)
    out->returncode = p->code;
  int mrc = half_take(&half[0], &out->out, &out->out_len);
  int erc = half_take(&half[1], &out->err, &out->err_len);
  weft__free(half[0].buf);
  weft__free(half[1].buf);
  if (rc == 0)
    rc = mrc ? mrc : erc;
  weft__io_leave(t);
  return rc;
}

void weft_process_output_free(weft_process_output_t *out) {
  if (!out)
    return;
  weft__free(out->out);
  weft__free(out->err);
  memset(out, 0, sizeof(*out));
}

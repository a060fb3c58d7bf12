/*
 * Files (weft/file.h): libuv's file-system requests on libuv's thread pool,
 * issued from a worker's loop while the calling task suspends there.
 *
 * Protocol (the home-worker protocol of io/home.c, with the pool as the
 * "handle", as in io/offload.c):
 *  1. A path operation (open, stat, rename, unlink, mkdir, rmdir, scandir,
 *     read_file) routes the task to the worker it runs on (weft__io_enter);
 *     an operation on a handle routes it to the handle's home, the worker
 *     whose task opened it. Every request is heap-allocated (fs_op_t),
 *     issued on that worker's loop (libuv feeds its pool from the loop's
 *     thread) and linked on the worker's `fsreqs` list until its callback
 *     is done with it.
 *  2. libuv hands the request back to the loop (its mutex and
 *     uv_async_send order the pool thread's results before the callback).
 *     The callback (scheduler context, same thread) either goes on (a write
 *     re-issues the rest after a short write; read_file chains open, fstat,
 *     reads and close) or finishes: it sets `done` and wakes the task,
 *     which reads the result and frees the request.
 *  3. State is owner-only: a handle's fields are touched only on its home's
 *     thread, by tasks routed there and by callbacks of requests issued on
 *     its loop, never at the same time; a request's fields the same way on
 *     its worker. No locks, no atomics.
 *  4. Cancellation: the wait returns WEFT_ECANCELED with `done` clear; the
 *     task clears `task` (the request is now the callback's) and calls
 *     uv_cancel. If the pool had not started the request, the callback runs
 *     with UV_ECANCELED and frees it. Otherwise the callback gets the real
 *     result and keeps it (abandoned(), the rules of weft/file.h): an fd
 *     from open is closed, the bytes of a sequential read become the
 *     handle's kept bytes, a write goes on to its end and its error becomes
 *     the handle's deferred error, anything else is freed. The pool only
 *     ever reads or writes request-owned memory (copies), so the task may
 *     return at once.
 *  5. Closing: a handle counts its requests in the pool (`inflight`,
 *     abandoned ones included). weft_file_close/free set `closing` (every
 *     later call gets WEFT_EBADF) and the close request is issued when the
 *     count is zero: by the closer, or by the callback that brings it to
 *     zero. So a descriptor is never closed, and its number never reused,
 *     under a request still using it. The close request lives in the
 *     handle; its callback marks the handle closed, wakes the closers and,
 *     once the handle was freed, frees it.
 *  6. Sequential calls (read, write, seek) take the handle's turn
 *     (`seq_busy`, held by read and write while their request is in the
 *     pool); others wait in `seq_waiters` and re-check after each release,
 *     or after the close (which makes them return WEFT_EBADF). An
 *     abandoned sequential request keeps the turn until its callback, so
 *     the kept bytes of a read always come before any later read's.
 *  7. Shutdown: handles are on home's io.objs list (io/home.c step 5);
 *     worker_close reaps those the program did not free (closed as by
 *     weft_file_free). weft__offload_drain runs the loop, with the grace
 *     period of offloaded functions, until `fsreqs` is empty too; past the
 *     grace it reports what is left (weft__file_report) and the loop is
 *     left behind with the requests (io/offload.c step 6).
 */
#include "waitnote.h"
#include "alloc.h"
#include "io/io.h"
#include "list.h"
#include "record.h"
#include "sched/worker.h"
#include "wait_int.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

typedef enum op_kind {
  OP_OPEN,
  OP_READ,
  OP_PREAD,
  OP_WRITE,
  OP_PWRITE,
  OP_FSTAT,
  OP_FSYNC,
  OP_CLOSE,
  OP_STAT,
  OP_RENAME,
  OP_UNLINK,
  OP_MKDIR,
  OP_RMDIR,
  OP_SCANDIR,
  OP_READ_FILE
} op_kind_t;

static const char *const op_names[] = {"open",   "read",    "pread",    "write",
                                       "pwrite", "fstat",   "fsync",    "close",
                                       "stat",   "rename",  "unlink",   "mkdir",
                                       "rmdir",  "scandir", "read_file"};
_Static_assert(sizeof(op_names) / sizeof(op_names[0]) == OP_READ_FILE + 1,
               "a name for every op_kind_t");

/* Steps of a read_file request (step 2's chain). */
enum { RF_OPEN, RF_FSTAT, RF_READ, RF_CLOSE };

typedef struct fs_op {
  uv_fs_t req;       /* the request; req.data is the op */
  weft__list_t link; /* in the worker's fsreqs list (step 1) */
  weft__worker_t *w; /* the worker whose loop issued it */
  weft_file_t *f;    /* the handle it works on, or NULL */
  weft_task_t *task; /* the waiting task; NULL once abandoned (step 4) */
  op_kind_t kind;    /* what it does */
  int done;          /* finished (step 2) */
  int seq;           /* holds f's sequential turn (step 6) */
  int64_t status;    /* result: a count, or a negative error */
  char *buf;         /* request-owned data (read, write, read_file) */
  size_t len;        /* bytes to write / capacity of buf */
  size_t pos;        /* bytes written / read so far */
  int64_t off;       /* file offset (pread, pwrite), else -1 */
  weft_file_t *nf;   /* open: the handle it will fill */
  uv_file fd;        /* read_file: its descriptor, or -1 */
  int step;          /* read_file: RF_* */
  size_t max;        /* read_file: the size limit (0 none) */
} fs_op_t;

struct weft_file {
  weft__io_obj_t io;          /* home, io.objs link, reap (home.c) */
  uv_file fd;                 /* the descriptor; -1 once closed */
  int closing;                /* close or free called: calls get EBADF */
  int freed;                  /* freed (or reaped): memory goes at close */
  int close_started;          /* the close request was issued */
  int close_done;             /* ... and finished */
  int close_status;           /* its result */
  int deferred_err;           /* first error of an abandoned write/fsync */
  unsigned inflight;          /* requests in the pool for f (step 5) */
  int seq_busy;               /* a sequential request holds the turn */
  weft__list_t seq_waiters;   /* tasks waiting for the turn */
  weft__list_t close_waiters; /* tasks waiting for the close */
  char *kept;                 /* bytes of an abandoned read, or NULL */
  size_t kept_off;            /* first of them not yet returned */
  size_t kept_len;            /* how many there are */
  fs_op_t close_op;           /* the close request (never allocated) */
};

static void on_fs(uv_fs_t *req);
static void file_maybe_close(weft_file_t *f);

/* ------------------------------------------------------------------------ */
/* Requests                                                                  */

static fs_op_t *op_new(weft_task_t *t, weft__worker_t *w, op_kind_t kind) {
  fs_op_t *op = weft__calloc(1, sizeof(*op)); /* a zeroed req cleans up */
  if (!op)
    return NULL;
  op->req.data = op;
  op->w = w;
  op->task = t;
  op->kind = kind;
  op->off = -1;
  op->fd = -1;
  return op;
}

static void op_free(fs_op_t *op) {
  uv_fs_req_cleanup(&op->req);
  weft__free(op->buf);
  weft__free(op);
}

/* op_new with a buffer of n bytes of weft's own (reads land in it, writes
 * are copied into it): NULL for want of memory. */
static fs_op_t *op_new_buf(weft_task_t *t, weft__worker_t *w, op_kind_t kind,
                           size_t n) {
  fs_op_t *op = op_new(t, w, kind);
  if (op && !(op->buf = weft__malloc(n))) {
    op_free(op);
    op = NULL;
  }
  return op;
}

static uv_loop_t *loop_of(fs_op_t *op) { return &op->w->own.loop; }

/* Issue the write of what is left of op (after a short write too). */
static int submit_write(fs_op_t *op) {
  uv_buf_t b;
  b.base = op->buf + op->pos;
  b.len = op->len - op->pos;
  int64_t off = op->off < 0 ? -1 : op->off + (int64_t)op->pos;
  return uv_fs_write(loop_of(op), &op->req, op->f->fd, &b, 1, off, on_fs);
}

static int submit_read_file_step(fs_op_t *op) {
  uv_buf_t b;
  switch (op->step) {
  case RF_FSTAT:
    return uv_fs_fstat(loop_of(op), &op->req, op->fd, on_fs);
  case RF_READ:
    b.base = op->buf + op->pos;
    b.len = op->len - op->pos;
    return uv_fs_read(loop_of(op), &op->req, op->fd, &b, 1, -1, on_fs);
  default:
    return uv_fs_close(loop_of(op), &op->req, op->fd, on_fs);
  }
}

/* Link an issued request (step 1) and count it on its handle (step 5). */
static void op_issued(fs_op_t *op) {
  weft__list_push_back(&op->w->io.fsreqs, &op->link);
  if (op->f)
    op->f->inflight++;
}

/* Wait for op (issued by the caller, which is routed to op->w). 0: op is
 * done and still the caller's; WEFT_ECANCELED: op was abandoned to its
 * callback (step 4) and must not be touched again. */
static int op_wait(weft_task_t *t, fs_op_t *op) {
  weft__wait_note(t, WEFT_WAIT_FILE, op);
  int rc = weft__io_wait_flag(t, &op->done, 0);
  if (rc) {
    op->task = NULL;
    uv_cancel((uv_req_t *)&op->req);
  }
  return rc;
}

/* A request finished without a waiting task (step 4). */
static void abandoned(fs_op_t *op) {
  weft_file_t *f = op->f;
  int64_t r = op->status;
  switch (op->kind) {
  case OP_OPEN:
    weft__free(op->nf);
    op->nf = NULL;
    if (r >= 0) { /* close the descriptor nobody will get */
      uv_fs_req_cleanup(&op->req);
      op->kind = OP_CLOSE;
      op->done = 0;
      if (uv_fs_close(loop_of(op), &op->req, (uv_file)r, on_fs) == 0) {
        weft__list_push_back(&op->w->io.fsreqs, &op->link);
        return;
      }
      close((int)r); /* cannot happen with a valid loop; never leak */
    }
    break;
  case OP_READ:
    if (r > 0 && f && !f->closing) { /* keep the bytes for the next read */
      f->kept = op->buf;
      f->kept_off = 0;
      f->kept_len = (size_t)r;
      op->buf = NULL;
    }
    break;
  case OP_WRITE:
  case OP_PWRITE:
  case OP_FSYNC:
    if (r < 0 && r != UV_ECANCELED && f && !f->deferred_err)
      f->deferred_err = (int)r;
    break;
  default:
    break;
  }
  op_free(op);
}

/* read_file's chain (step 2). Returns 1 when a next step was issued. */
static int read_file_next(fs_op_t *op, int64_t r) {
  if (op->step == RF_CLOSE) {
    if (r != UV_ECANCELED) {
      op->fd = -1;
      if (op->status >= 0 && r < 0)
        op->status = r;
      return 0;
    }
    /* The caller's uv_cancel withdrew the close: issue it again below. */
  } else if (r < 0) {
    op->status = r;
  } else if (op->step == RF_OPEN) {
    op->fd = (uv_file)r;
    op->step = RF_FSTAT;
  } else if (op->step == RF_FSTAT) {
    uint64_t size = op->req.statbuf.st_size;
    if (op->max && size > op->max) {
      op->status = WEFT_EFBIG;
    } else if (size >= (uint64_t)SIZE_MAX - 1) {
      op->status = WEFT_ENOMEM; /* cannot be held (32-bit) */
    } else {
      /* One byte more than the size, so that the read reaching the end
       * returns 0 without a reallocation; at least a page for files that
       * report no size (/proc). */
      size_t cap = size < 4096 ? 4096 : (size_t)size + 1;
      if (op->max && cap > op->max + 1)
        cap = op->max + 1;
      op->buf = weft__malloc(cap + 1); /* + the NUL */
      if (!op->buf)
        op->status = WEFT_ENOMEM;
      op->len = cap;
      op->step = RF_READ;
    }
  } else if (r == 0) { /* end of file */
    op->step = RF_CLOSE;
  } else {
    op->pos += (size_t)r;
    if (op->max && op->pos > op->max) {
      op->status = WEFT_EFBIG;
    } else if (op->pos == op->len) {
      size_t cap = op->len * 2;
      if (op->max && cap > op->max + 1)
        cap = op->max + 1;
      char *nb = weft__realloc(op->buf, cap + 1);
      if (!nb) {
        op->status = WEFT_ENOMEM;
      } else {
        op->buf = nb;
        op->len = cap;
      }
    }
  }
  /* An error, or a caller that left, ends the chain: close what is open. */
  if (op->status < 0 || !op->task) {
    if (op->status >= 0)
      op->status = WEFT_ECANCELED;
    if (op->fd < 0)
      return 0;
    op->step = RF_CLOSE;
  }
  uv_fs_req_cleanup(&op->req);
  int rc = submit_read_file_step(op);
  if (rc == 0)
    return 1;
  /* Only a bad argument makes libuv refuse; never leak the descriptor. */
  if (op->status >= 0)
    op->status = rc;
  if (op->fd >= 0) {
    close(op->fd);
    op->fd = -1;
  }
  return 0;
}

/* The handle's close request finished (step 5). */
static void file_closed(weft_file_t *f, int64_t r) {
  weft__list_remove(&f->close_op.link);
  uv_fs_req_cleanup(&f->close_op.req);
  f->fd = -1;
  f->close_done = 1;
  f->close_status = (int)r;
  weft__io_wake_all(&f->close_waiters);
  if (f->freed)
    weft__free(f);
}

static void on_fs(uv_fs_t *req) {
  fs_op_t *op = req->data;
  int64_t r = req->result;
  weft_file_t *f = op->f;

  if (op->kind == OP_CLOSE && f) {
    file_closed(f, r);
    return;
  }
  if (op->kind == OP_CLOSE) { /* an abandoned open's descriptor */
    weft__list_remove(&op->link);
    op_free(op);
    return;
  }
  if (op->kind == OP_READ_FILE) {
    if (read_file_next(op, r))
      return;
    r = op->status;
  } else if ((op->kind == OP_WRITE || op->kind == OP_PWRITE) &&
             (r >= 0 || (r == UV_ECANCELED && op->pos > 0))) {
    /* A write goes on to its end, also when the caller's uv_cancel
     * withdrew the chunk after a short write (step 4). */
    if (r > 0)
      op->pos += (size_t)r;
    if (r == 0 && op->pos < op->len) {
      r = WEFT_EIO; /* no progress: never spin */
    } else if (op->pos < op->len) {
      uv_fs_req_cleanup(&op->req);
      int rc = submit_write(op);
      if (rc == 0)
        return;
      r = rc;
    }
  }
  op->status = r;
  weft__list_remove(&op->link);
  if (f) {
    f->inflight--;
    if (op->seq) {
      op->seq = 0;
      f->seq_busy = 0;
      weft__io_wake_all(&f->seq_waiters);
    }
  }
  if (!op->task) {
    abandoned(op);
  } else {
    op->done = 1;
    weft__task_wake(op->task);
  }
  if (f)
    file_maybe_close(f);
}

/* ------------------------------------------------------------------------ */
/* Handles                                                                   */

/* Issue the close once nothing of f is in the pool (step 5). */
static void file_maybe_close(weft_file_t *f) {
  if (!f->closing || f->close_started || f->inflight)
    return;
  f->close_started = 1;
  fs_op_t *op = &f->close_op;
  memset(op, 0, sizeof(*op));
  op->req.data = op;
  op->w = f->io.home;
  op->f = f;
  op->kind = OP_CLOSE;
  if (uv_fs_close(loop_of(op), &op->req, f->fd, on_fs) == 0) {
    weft__list_push_back(&op->w->io.fsreqs, &op->link);
    return;
  }
  /* uv_fs_close only fails on a bad argument; close in place, never leak. */
  int rc = close(f->fd) == 0 ? 0 : WEFT_EIO;
  weft__list_push_back(&op->w->io.fsreqs, &op->link);
  file_closed(f, rc);
}

/* Stop accepting calls (step 5): waiters for the turn see `closing`. */
static void file_stop(weft_file_t *f) {
  f->closing = 1;
  weft__free(f->kept);
  f->kept = NULL;
  f->kept_len = f->kept_off = 0;
  weft__io_wake_all(&f->seq_waiters);
}

/* free(), or the runtime's reaping (step 7): close, then free at close. */
static void file_release(weft_file_t *f) {
  f->freed = 1;
  if (!f->closing)
    file_stop(f);
  if (f->close_done) {
    weft__free(f);
    return;
  }
  file_maybe_close(f);
}

static void file_reap(weft__io_obj_t *o) {
  file_release(weft__container_of(o, weft_file_t, io));
}

/* Start a call on f: checks, then the move to f's home. */
static int file_enter(weft_file_t *f, weft_task_t **tp) {
  weft_task_t *t = weft__task_current();
  if (!t)
    return WEFT_ENOTTASK;
  int rc = weft__io_check(t, &f->io);
  if (rc)
    return rc;
  weft__io_enter(t, f->io.home);
  *tp = t;
  return 0;
}

/* Wait for f's sequential turn (step 6); on home. */
static int take_turn(weft_file_t *f, weft_task_t *t) {
  while (f->seq_busy && !f->closing) {
    weft__wait_note(t, WEFT_WAIT_FILE, f);
    int rc = weft__io_wait_in(&f->seq_waiters, t);
    if (rc)
      return rc;
  }
  return f->closing ? WEFT_EBADF : 0;
}

int weft_file_open(const char *path, int flags, int mode, weft_file_t **out) {
  if (out)
    *out = NULL;
  if (!path || !out)
    return WEFT_EINVAL;
  weft_task_t *t = weft__task_current();
  if (!t)
    return WEFT_ENOTTASK;
  if (weft__wait_check_cancel(t))
    return WEFT_ECANCELED;
  weft__worker_t *w = weft__worker_current();
  weft_file_t *f = weft__calloc(1, sizeof(*f));
  fs_op_t *op = f ? op_new(t, w, OP_OPEN) : NULL;
  if (!op) {
    weft__free(f);
    return WEFT_ENOMEM;
  }
  f->fd = -1;
  weft__list_init(&f->seq_waiters);
  weft__list_init(&f->close_waiters);
  op->nf = f;
  weft__io_enter(t, w);
  int rc =
      uv_fs_open(&w->own.loop, &op->req, path, flags | O_CLOEXEC, mode, on_fs);
  if (rc) {
    op_free(op);
    weft__free(f);
    weft__io_leave(t);
    return rc;
  }
  op_issued(op);
  rc = op_wait(t, op); /* cancelled: abandoned() frees f, closes the fd */
  if (rc == 0) {
    if (op->status < 0) {
      rc = (int)op->status;
      weft__free(f);
    } else {
      f->fd = (uv_file)op->status;
      weft__io_register(&f->io, w, file_reap);
      *out = f;
    }
    op_free(op);
  }
  weft__io_leave(t);
  return rc;
}

/* read and pread (seq: the sequential one). */
static int file_read(weft_file_t *f, void *buf, size_t n, int64_t offset,
                     int seq, size_t *nread) {
  if (nread)
    *nread = 0;
  if (!f || !nread || (!buf && n) || (!seq && offset < 0))
    return WEFT_EINVAL;
  weft_task_t *t;
  int rc = file_enter(f, &t);
  if (rc)
    return rc;
  rc = f->closing ? WEFT_EBADF : 0;
  if (rc == 0 && seq)
    rc = take_turn(f, t);
  if (rc == 0 && seq && f->kept) { /* an abandoned read's bytes first */
    size_t k = f->kept_len - f->kept_off;
    if (k > n)
      k = n;
    memcpy(buf, f->kept + f->kept_off, k);
    f->kept_off += k;
    if (f->kept_off == f->kept_len) {
      weft__free(f->kept);
      f->kept = NULL;
      f->kept_len = f->kept_off = 0;
    }
    *nread = k;
    weft__io_leave(t);
    return 0;
  }
  if (rc == 0 && n == 0) {
    weft__io_leave(t);
    return 0;
  }
  if (rc == 0 && weft__wait_check_cancel(t))
    rc = WEFT_ECANCELED;
  fs_op_t *op = NULL;
  if (rc == 0) {
    op = op_new_buf(t, f->io.home, seq ? OP_READ : OP_PREAD, n);
    if (!op)
      rc = WEFT_ENOMEM;
  }
  if (rc == 0) {
    uv_buf_t b;
    b.base = op->buf;
    b.len = n;
    op->f = f;
    op->off = seq ? -1 : offset;
    rc = uv_fs_read(loop_of(op), &op->req, f->fd, &b, 1, op->off, on_fs);
    if (rc) {
      op_free(op);
    } else {
      if (seq) {
        op->seq = 1;
        f->seq_busy = 1;
      }
      op_issued(op);
      rc = op_wait(t, op);
      if (rc == 0) {
        if (op->status < 0) {
          rc = (int)op->status;
        } else {
          memcpy(buf, op->buf, (size_t)op->status);
          *nread = (size_t)op->status;
        }
        op_free(op);
      }
    }
  }
  weft__io_leave(t);
  return rc;
}

int weft_file_read(weft_file_t *f, void *buf, size_t n, size_t *nread) {
  return file_read(f, buf, n, -1, 1, nread);
}

int weft_file_pread(weft_file_t *f, void *buf, size_t n, int64_t offset,
                    size_t *nread) {
  return file_read(f, buf, n, offset, 0, nread);
}

/* write and pwrite (seq: the sequential one). */
static int file_write(weft_file_t *f, const void *data, size_t n,
                      int64_t offset, int seq, size_t *nwritten) {
  if (nwritten)
    *nwritten = 0;
  if (!f || (!data && n) || (!seq && offset < 0))
    return WEFT_EINVAL;
  weft_task_t *t;
  int rc = file_enter(f, &t);
  if (rc)
    return rc;
  rc = f->closing ? WEFT_EBADF : 0;
  if (rc == 0 && seq)
    rc = take_turn(f, t);
  if (rc == 0 && seq && f->kept) {
    /* The position is past bytes kept for reading: move it back over them
     * so that the write lands where the program expects. Without a
     * position (a pipe, a terminal) the kept bytes stay for the next
     * read. lseek does not block. */
    off_t back = (off_t)(f->kept_len - f->kept_off);
    if (lseek(f->fd, -back, SEEK_CUR) >= 0) {
      weft__free(f->kept);
      f->kept = NULL;
      f->kept_len = f->kept_off = 0;
    }
  }
  if (rc == 0 && n == 0) {
    weft__io_leave(t);
    return 0;
  }
  if (rc == 0 && weft__wait_check_cancel(t))
    rc = WEFT_ECANCELED;
  fs_op_t *op = NULL;
  if (rc == 0) {
    op = op_new_buf(t, f->io.home, seq ? OP_WRITE : OP_PWRITE, n);
    if (!op)
      rc = WEFT_ENOMEM;
  }
  if (rc == 0) {
    memcpy(op->buf, data, n); /* the pool never reads the caller's memory */
    op->len = n;
    op->f = f;
    op->off = seq ? -1 : offset;
    rc = submit_write(op);
    if (rc) {
      op_free(op);
    } else {
      if (seq) {
        op->seq = 1;
        f->seq_busy = 1;
      }
      op_issued(op);
      rc = op_wait(t, op);
      if (rc == 0) {
        if (nwritten)
          *nwritten = op->pos;
        if (op->status < 0)
          rc = (int)op->status;
        op_free(op);
      }
    }
  }
  weft__io_leave(t);
  return rc;
}

int weft_file_write(weft_file_t *f, const void *data, size_t n,
                    size_t *nwritten) {
  return file_write(f, data, n, -1, 1, nwritten);
}

int weft_file_pwrite(weft_file_t *f, const void *data, size_t n, int64_t offset,
                     size_t *nwritten) {
  return file_write(f, data, n, offset, 0, nwritten);
}

static void stat_from_uv(struct stat *st, const uv_stat_t *s) {
  memset(st, 0, sizeof(*st));
  st->st_dev = (dev_t)s->st_dev;
  st->st_ino = (ino_t)s->st_ino;
  st->st_mode = (mode_t)s->st_mode;
  st->st_nlink = (nlink_t)s->st_nlink;
  st->st_uid = (uid_t)s->st_uid;
  st->st_gid = (gid_t)s->st_gid;
  st->st_rdev = (dev_t)s->st_rdev;
  st->st_size = (off_t)s->st_size;
  st->st_blksize = (blksize_t)s->st_blksize;
  st->st_blocks = (blkcnt_t)s->st_blocks;
  st->st_atim.tv_sec = (time_t)s->st_atim.tv_sec;
  st->st_atim.tv_nsec = (long)s->st_atim.tv_nsec;
  st->st_mtim.tv_sec = (time_t)s->st_mtim.tv_sec;
  st->st_mtim.tv_nsec = (long)s->st_mtim.tv_nsec;
  st->st_ctim.tv_sec = (time_t)s->st_ctim.tv_sec;
  st->st_ctim.tv_nsec = (long)s->st_ctim.tv_nsec;
}

/* fstat and fsync: one request on f, no data. */
static int file_simple(weft_file_t *f, op_kind_t kind, struct stat *st) {
  if (!f || (kind == OP_FSTAT && !st))
    return WEFT_EINVAL;
  weft_task_t *t;
  int rc = file_enter(f, &t);
  if (rc)
    return rc;
  rc = f->closing ? WEFT_EBADF : 0;
  if (rc == 0 && weft__wait_check_cancel(t))
    rc = WEFT_ECANCELED;
  fs_op_t *op = NULL;
  if (rc == 0 && !(op = op_new(t, f->io.home, kind)))
    rc = WEFT_ENOMEM;
  if (rc == 0) {
    op->f = f;
    rc = kind == OP_FSTAT ? uv_fs_fstat(loop_of(op), &op->req, f->fd, on_fs)
                          : uv_fs_fsync(loop_of(op), &op->req, f->fd, on_fs);
    if (rc) {
      op_free(op);
    } else {
      op_issued(op);
      rc = op_wait(t, op);
      if (rc == 0) {
        rc = (int)op->status;
        if (rc == 0 && kind == OP_FSTAT)
          stat_from_uv(st, &op->req.statbuf);
        op_free(op);
      }
    }
  }
  if (kind == OP_FSYNC && rc != WEFT_ECANCELED && rc != WEFT_EBADF &&
      f->deferred_err) {
    /* An abandoned write's error, not reported yet, is the first. */
    rc = f->deferred_err;
    f->deferred_err = 0;
  }
  weft__io_leave(t);
  return rc;
}

int weft_file_seek(weft_file_t *f, int64_t offset, int whence, int64_t *pos) {
  if (pos)
    *pos = -1;
  if (!f || (whence != SEEK_SET && whence != SEEK_CUR && whence != SEEK_END))
    return WEFT_EINVAL;
  weft_task_t *t;
  int rc = file_enter(f, &t);
  if (rc)
    return rc;
  rc = f->closing ? WEFT_EBADF : take_turn(f, t);
  if (rc == 0) {
    /* The program's position is the kernel's less the kept bytes. */
    int64_t kept = (int64_t)(f->kept_len - f->kept_off);
    if (whence == SEEK_CUR && offset < INT64_MIN + kept) {
      rc = WEFT_EOVERFLOW;
    } else {
      off_t r = lseek(
          f->fd, (off_t)(whence == SEEK_CUR ? offset - kept : offset), whence);
      if (r < 0) {
        rc = -errno; /* read at once: nothing between */
      } else {
        weft__free(f->kept);
        f->kept = NULL;
        f->kept_len = f->kept_off = 0;
        if (pos)
          *pos = (int64_t)r;
      }
    }
  }
  weft__io_leave(t);
  return rc;
}

int weft_file_fstat(weft_file_t *f, struct stat *st) {
  return file_simple(f, OP_FSTAT, st);
}

int weft_file_fsync(weft_file_t *f) { return file_simple(f, OP_FSYNC, NULL); }

int weft_file_close(weft_file_t *f) {
  if (!f)
    return WEFT_EINVAL;
  weft_task_t *t;
  int rc = file_enter(f, &t);
  if (rc)
    return rc;
  if (f->closing) {
    weft__io_leave(t);
    return WEFT_EBADF;
  }
  file_stop(f);
  file_maybe_close(f);
  weft__wait_note(t, WEFT_WAIT_FILE, f);
  while (!f->close_done && (rc = weft__io_wait_in(&f->close_waiters, t)) == 0)
    ;
  if (rc == 0) {
    rc = f->deferred_err ? f->deferred_err : f->close_status;
    f->deferred_err = 0;
  }
  weft__io_leave(t);
  return rc;
}

int weft_file_free(weft_file_t *f) {
  if (!f)
    return 0;
  weft_task_t *t;
  int rc = file_enter(f, &t);
  if (rc)
    return rc;
  weft__io_unregister(&f->io);
  file_release(f);
  weft__io_leave(t);
  return 0;
}

int weft__file_dup(weft_file_t *f, int *fd, unsigned *mode) {
  weft_task_t *t;
  int rc = file_enter(f, &t);
  if (rc)
    return rc;
  if (f->closing) {
    rc = WEFT_EBADF;
  } else {
    /* fcntl and fstat on an open descriptor do not wait for the device. */
    int d = fcntl(f->fd, F_DUPFD_CLOEXEC, 0);
    struct stat st;
    if (d < 0) {
      rc = uv_translate_sys_error(errno); /* read at once: nothing between */
    } else if (fstat(d, &st) != 0) {
      rc = uv_translate_sys_error(errno);
      close(d);
    } else {
      *fd = d;
      *mode = (unsigned)st.st_mode;
    }
  }
  weft__io_leave(t);
  return rc;
}

int weft_file_fileno(const weft_file_t *f) {
  if (!f)
    return WEFT_EINVAL;
  return f->closing || f->fd < 0 ? WEFT_EBADF : f->fd;
}

/* ------------------------------------------------------------------------ */
/* Paths                                                                     */

/* Run one path request on the calling task's worker. On 0, *opp is the
 * finished request (the caller reads its result and frees it). */
static int path_run(op_kind_t kind, const char *path, const char *path2,
                    int mode, fs_op_t **opp) {
  *opp = NULL;
  weft_task_t *t = weft__task_current();
  if (!t)
    return WEFT_ENOTTASK;
  if (weft__wait_check_cancel(t))
    return WEFT_ECANCELED;
  weft__worker_t *w = weft__worker_current();
  fs_op_t *op = op_new(t, w, kind);
  if (!op)
    return WEFT_ENOMEM;
  weft__io_enter(t, w);
  uv_loop_t *l = &w->own.loop;
  int rc;
  switch (kind) {
  case OP_STAT:
    rc = uv_fs_stat(l, &op->req, path, on_fs);
    break;
  case OP_RENAME:
    rc = uv_fs_rename(l, &op->req, path, path2, on_fs);
    break;
  case OP_UNLINK:
    rc = uv_fs_unlink(l, &op->req, path, on_fs);
    break;
  case OP_MKDIR:
    rc = uv_fs_mkdir(l, &op->req, path, mode, on_fs);
    break;
  case OP_RMDIR:
    rc = uv_fs_rmdir(l, &op->req, path, on_fs);
    break;
  case OP_SCANDIR:
    rc = uv_fs_scandir(l, &op->req, path, 0, on_fs);
    break;
  default:
    rc = WEFT_EINVAL;
    break;
  }
  if (rc) {
    op_free(op);
  } else {
    op_issued(op);
    rc = op_wait(t, op);
    if (rc == 0)
      *opp = op;
  }
  weft__io_leave(t);
  return rc;
}

/* A request with no result but its status. */
static int path_simple(op_kind_t kind, const char *path, const char *path2,
                       int mode) {
  if (!path || (kind == OP_RENAME && !path2))
    return WEFT_EINVAL;
  fs_op_t *op;
  int rc = path_run(kind, path, path2, mode, &op);
  if (rc == 0) {
    rc = (int)op->status;
    op_free(op);
  }
  return rc;
}

int weft_fs_stat(const char *path, struct stat *st) {
  if (!path || !st)
    return WEFT_EINVAL;
  fs_op_t *op;
  int rc = path_run(OP_STAT, path, NULL, 0, &op);
  if (rc == 0) {
    rc = (int)op->status;
    if (rc == 0)
      stat_from_uv(st, &op->req.statbuf);
    op_free(op);
  }
  return rc;
}

int weft_fs_rename(const char *from, const char *to) {
  return path_simple(OP_RENAME, from, to, 0);
}

int weft_fs_unlink(const char *path) {
  return path_simple(OP_UNLINK, path, NULL, 0);
}

int weft_fs_mkdir(const char *path, int mode) {
  return path_simple(OP_MKDIR, path, NULL, mode);
}

int weft_fs_rmdir(const char *path) {
  return path_simple(OP_RMDIR, path, NULL, 0);
}

static weft_dirent_type_t dirent_type(uv_dirent_type_t t) {
  switch (t) {
  case UV_DIRENT_FILE:
    return WEFT_DIRENT_FILE;
  case UV_DIRENT_DIR:
    return WEFT_DIRENT_DIR;
  case UV_DIRENT_LINK:
    return WEFT_DIRENT_LINK;
  case UV_DIRENT_FIFO:
    return WEFT_DIRENT_FIFO;
  case UV_DIRENT_SOCKET:
    return WEFT_DIRENT_SOCKET;
  case UV_DIRENT_CHAR:
    return WEFT_DIRENT_CHAR;
  case UV_DIRENT_BLOCK:
    return WEFT_DIRENT_BLOCK;
  default:
    return WEFT_DIRENT_UNKNOWN;
  }
}

/* The entries of a finished scandir as one block: the array, then the
 * names. Names are stored as offsets while the block grows. */
static int scandir_collect(uv_fs_t *req, size_t count, weft_dirent_t **entries,
                           size_t *n) {
  size_t head = count * sizeof(weft_dirent_t);
  size_t cap = head + count * 16 + 1, used = head, i = 0;
  char *blk = weft__malloc(cap);
  uv_dirent_t ent;
  /* Up to UV_EOF, also after a failure: libuv frees each entry on the next
   * call, the last one only on the call that returns UV_EOF
   * (uv_fs_req_cleanup does not). */
  while (uv_fs_scandir_next(req, &ent) == 0) {
    if (!blk || i == count)
      continue;
    size_t l = strlen(ent.name) + 1;
    if (used + l > cap) {
      size_t ncap = cap * 2 > used + l ? cap * 2 : used + l;
      char *nb = weft__realloc(blk, ncap);
      if (!nb) {
        weft__free(blk);
        blk = NULL;
        continue;
      }
      blk = nb;
      cap = ncap;
    }
    memcpy(blk + used, ent.name, l);
    weft_dirent_t *e = (weft_dirent_t *)(void *)blk + i;
    e->name = (const char *)(uintptr_t)used; /* blk may still move */
    e->type = dirent_type(ent.type);
    used += l;
    i++;
  }
  if (!blk)
    return WEFT_ENOMEM;
  weft_dirent_t *v = (weft_dirent_t *)(void *)blk;
  for (size_t k = 0; k < i; k++)
    v[k].name = blk + (uintptr_t)v[k].name;
  if (i == 0) {
    weft__free(blk);
    v = NULL;
  }
  *entries = v;
  *n = i;
  return 0;
}

int weft_fs_scandir(const char *path, weft_dirent_t **entries, size_t *n) {
  if (entries)
    *entries = NULL;
  if (n)
    *n = 0;
  if (!path || !entries || !n)
    return WEFT_EINVAL;
  fs_op_t *op;
  int rc = path_run(OP_SCANDIR, path, NULL, 0, &op);
  if (rc == 0) {
    rc = op->status < 0
             ? (int)op->status
             : scandir_collect(&op->req, (size_t)op->status, entries, n);
    op_free(op);
  }
  return rc;
}

int weft_fs_read_file(const char *path, size_t max, void **data, size_t *len) {
  if (data)
    *data = NULL;
  if (len)
    *len = 0;
  if (!path || !data || !len || max >= SIZE_MAX - 1)
    return WEFT_EINVAL;
  weft_task_t *t = weft__task_current();
  if (!t)
    return WEFT_ENOTTASK;
  if (weft__wait_check_cancel(t))
    return WEFT_ECANCELED;
  weft__worker_t *w = weft__worker_current();
  fs_op_t *op = op_new(t, w, OP_READ_FILE);
  if (!op)
    return WEFT_ENOMEM;
  op->step = RF_OPEN;
  op->max = max;
  weft__io_enter(t, w);
  int rc =
      uv_fs_open(&w->own.loop, &op->req, path, O_RDONLY | O_CLOEXEC, 0, on_fs);
  if (rc) {
    op_free(op);
  } else {
    op_issued(op);
    rc = op_wait(t, op);
    if (rc == 0) {
      rc = op->status < 0 ? (int)op->status : 0;
      if (rc == 0) {
        op->buf[op->pos] = '\0';
        *data = op->buf;
        *len = op->pos;
        op->buf = NULL;
      }
      op_free(op);
    }
  }
  weft__io_leave(t);
  return rc;
}

void weft_fs_free(void *p) { weft__free(p); }

/* ------------------------------------------------------------------------ */
/* Shutdown (step 7)                                                         */

void weft__file_report(weft__worker_t *w, uint64_t grace) {
  for (weft__list_t *n = w->io.fsreqs.next; n != &w->io.fsreqs; n = n->next) {
    fs_op_t *op = weft__container_of(n, fs_op_t, link);
    fprintf(stderr,
            "weft: file-system request (%s%s%s) still running %" PRIu64
            " ms after the runtime's last task ended; weft_run returns "
            "without it (its loop is left behind)\n",
            op_names[op->kind], op->req.path ? " " : "",
            op->req.path ? op->req.path : "", grace);
  }
}

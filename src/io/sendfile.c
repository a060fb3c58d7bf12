/*
 * weft_stream_sendfile (weft/file.h): a file's bytes on a stream, zero-copy
 * with sendfile(2) where the kernel can, copied through the stream
 * elsewhere.
 *
 * Protocol (the home-worker protocol of io/home.c):
 *  1. The task visits the file's home and takes a descriptor of its own on
 *     the file (weft__file_dup: a dup, and the file's type). The file
 *     handle may then be closed or freed by anybody: the dup keeps the open
 *     file alive until this call closes it, and it is read at explicit
 *     offsets only, so the handle's position is never touched.
 *  2. The task moves to the stream's home for the rest of the call; every
 *     field below is touched there only (owner-only: the task between
 *     switches, the libuv callbacks in home's scheduler context). It sets
 *     the stream's `sending`, which makes writes, write_eof and another
 *     sendfile fail with WEFT_EBUSY, and waits in `senders` until the
 *     write queue is empty (write_progress wakes it): earlier writes go
 *     first, and nothing is queued behind the file's bytes while it runs.
 *  3. Zero-copy (plaintext TCP, a regular file or block device): a second
 *     dup, of the socket. Each chunk is a uv_work_t on home's loop whose
 *     pool thread calls sendfile(2) on the two dups, so the pool thread
 *     never uses a descriptor the stream may close meanwhile (a close by
 *     another task closes the stream's descriptor; the socket lives on
 *     until this call closes its dup, at its end). The socket is
 *     non-blocking (the flag belongs to the open file, shared by the dup):
 *     sendfile(2) takes what fits in the socket buffer and returns. libuv's
 *     own uv_fs_sendfile is not used: libuv 1.44 first tries
 *     copy_file_range(2), which fails with EINVAL on a socket, and then
 *     emulates with read/write and poll(2) without a timeout on the pool
 *     thread, so a peer that stops reading would hold a pool thread
 *     forever (docs/design.md, "Files").
 *  4. EAGAIN (the socket buffer is full): the task waits for writability
 *     with a uv_poll_t on the socket's dup (a distinct descriptor, so
 *     epoll accepts it next to the stream's own registration), woken
 *     through `senders`; the poll is stopped before the task goes on.
 *     EINVAL or ENOSYS before any byte of the call was sent by sendfile
 *     (a file system without splice support) switches the call to step 5.
 *     Any other error is the stream's write error (`werr`, sticky, as a
 *     failed write's).
 *  5. Copying (TLS, Unix sockets, other files): a uv_fs_read at the
 *     offset into the call's buffer, then, once the stream is below its
 *     high-water mark (waiting in `drainers` as drain() does), a write
 *     through weft__stream_send_home (TLS encrypts it).
 *  6. Closing the stream (close, abort, the peer's reset seen by a write)
 *     wakes `senders`; the call checks `closing` and `werr` before every
 *     chunk and after every wait and returns WEFT_EPIPE or the error.
 *  7. Cancellation: a wait in a list (queue, writability, high-water mark)
 *     returns WEFT_ECANCELED at once, with nothing in the pool. A request
 *     in the pool is first withdrawn with uv_cancel; if the pool had
 *     started it, the task waits for it without a cancellation point (its
 *     sendfile returns as soon as the socket buffer is full; a read
 *     returns when the device answers), counts what it sent, and returns
 *     WEFT_ECANCELED. So *sent is exactly what went to the socket, and a
 *     read's bytes are dropped unsent. The pool never touches the task's
 *     memory: the request and its buffer are the call's heap record, freed
 *     only once no request is out (or, with a poll handle, by its close
 *     callback).
 */
#include "waitnote.h"
#include "alloc.h"
#include "io/stream_int.h"
#include "io/tls_int.h"
#include "list.h"
#include "record.h"
#include "sched/worker.h"
#include "wait_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#define COPY_CHUNK ((size_t)64 * 1024) /* a read of the copying path */

/* One call's record (heap: the pool and the poll handle point into it). */
typedef struct sf_op {
  weft_stream_t *s;  /* the stream */
  weft_task_t *task; /* the calling task */
  int in_fd;         /* the call's dup of the file (step 1) */
  int out_fd;        /* the call's dup of the socket (step 3), or -1 */
  int64_t off;       /* the next file offset to send */
  /* --- a pool request: written by the pool thread before libuv hands it
   * back to the loop (libuv's mutex orders it before after_work) --- */
  uv_work_t work; /* a sendfile(2) chunk */
  uv_fs_t fsreq;  /* a read of the copying path */
  size_t len;     /* bytes asked for */
  ssize_t result; /* bytes sent or read, or a negative libuv error */
  int done;       /* the request's callback ran (home's thread) */
  /* --- writability (step 4) --- */
  uv_poll_t poll;  /* on out_fd */
  int poll_init;   /* poll initialised: the record goes with its close */
  int poll_active; /* poll started */
  int writable;    /* the poll reported the socket writable (or failed) */
  char *buf;       /* the copying path's buffer */
} sf_op_t;

static void op_destroy(sf_op_t *op) {
  weft__free(op->buf);
  weft__free(op);
}

static void on_poll_closed(uv_handle_t *h) { op_destroy(h->data); }

/* Pool thread: one sendfile(2) on the call's own descriptors. */
static void sf_work(uv_work_t *req) {
  sf_op_t *op = req->data;
  off_t off = (off_t)op->off;
  ssize_t r;
  do
    r = sendfile(op->out_fd, op->in_fd, &off, op->len);
  while (r < 0 && errno == EINTR);
  op->result = r >= 0 ? r : uv_translate_sys_error(errno);
}

static void sf_after(uv_work_t *req, int status) {
  sf_op_t *op = req->data;
  if (status == UV_ECANCELED) /* withdrawn before it ran: nothing sent */
    op->result = UV_ECANCELED;
  op->done = 1;
  weft__task_wake(op->task);
}

static void on_read(uv_fs_t *req) {
  sf_op_t *op = req->data;
  op->result = (ssize_t)req->result;
  uv_fs_req_cleanup(req);
  op->done = 1;
  weft__task_wake(op->task);
}

static void on_poll(uv_poll_t *h, int status, int events) {
  sf_op_t *op = h->data;
  (void)status; /* an error shows in the next sendfile */
  (void)events;
  op->writable = 1;
  op->poll_active = 0;
  uv_poll_stop(h);
  weft__io_wake_all(&op->s->senders);
}

/* Wait for the request just issued (step 7). 0, or WEFT_ECANCELED once it
 * is back (withdrawn, or finished and counted by the caller). */
static int wait_request(sf_op_t *op, weft_task_t *t, uv_req_t *req) {
  weft__wait_note(t, WEFT_WAIT_FILE, op);
  int rc = weft__io_wait_flag(t, &op->done, 0);
  if (rc) {
    uv_cancel(req);
    weft__io_wait_flag(t, &op->done, 1);
  }
  return rc;
}

/* The stream can take no more of the file: WEFT_EPIPE or its error. */
static int stream_stopped(const weft_stream_t *s) {
  if (s->werr)
    return s->werr;
  if (s->closing || s->handle_closing)
    return WEFT_EPIPE;
  return 0;
}

/* Wait in `senders` until cond(s, op) holds or the stream stops (step 6). */
static int wait_senders(weft_stream_t *s, sf_op_t *op, weft_task_t *t,
                        int (*cond)(const weft_stream_t *, const sf_op_t *)) {
  for (;;) {
    int rc = stream_stopped(s);
    if (rc || cond(s, op))
      return rc;
    weft__wait_note(t, WEFT_WAIT_STREAM_WRITE, s);
    rc = weft__io_wait_in(&s->senders, t);
    if (rc)
      return rc;
  }
}

static int queue_empty(const weft_stream_t *s, const sf_op_t *op) {
  (void)op;
  return s->wqueued == 0;
}

static int is_writable(const weft_stream_t *s, const sf_op_t *op) {
  (void)s;
  return op->writable;
}

/* Step 4: wait until the socket is writable. */
static int wait_writable(weft_stream_t *s, sf_op_t *op, weft_task_t *t) {
  int rc;
  if (!op->poll_init) {
    rc = uv_poll_init(&s->obj.home->own.loop, &op->poll, op->out_fd);
    if (rc)
      return rc;
    op->poll.data = op;
    op->poll_init = 1;
  }
  op->writable = 0;
  rc = uv_poll_start(&op->poll, UV_WRITABLE, on_poll);
  if (rc)
    return rc;
  op->poll_active = 1;
  rc = wait_senders(s, op, t, is_writable);
  if (op->poll_active) {
    uv_poll_stop(&op->poll);
    op->poll_active = 0;
  }
  return rc;
}

/* Step 3: zero-copy. *fallback is set when the kernel cannot (step 4). */
static int send_zero_copy(weft_stream_t *s, sf_op_t *op, weft_task_t *t,
                          size_t count, size_t *total, int *fallback) {
  int rc = 0, sent_any = 0;
  while (count == 0 || *total < count) {
    if ((rc = stream_stopped(s)) != 0)
      break;
    if (weft__wait_check_cancel(t)) {
      rc = WEFT_ECANCELED;
      break;
    }
    size_t left = count ? count - *total : WEFT_SENDFILE_CHUNK;
    op->len = left < WEFT_SENDFILE_CHUNK ? left : WEFT_SENDFILE_CHUNK;
    op->done = 0;
    op->result = 0;
    op->work.data = op;
    rc = uv_queue_work(&s->obj.home->own.loop, &op->work, sf_work, sf_after);
    if (rc)
      break;
    int cancelled = wait_request(op, t, (uv_req_t *)&op->work);
    ssize_t r = op->result;
    if (r > 0) {
      *total += (size_t)r;
      op->off += r;
      sent_any = 1;
    }
    if (cancelled) {
      rc = WEFT_ECANCELED;
      break;
    }
    if (r == 0) /* end of file */
      break;
    if (r > 0)
      continue;
    if (r == UV_EAGAIN) {
      if ((rc = wait_writable(s, op, t)) != 0)
        break;
      continue;
    }
    if ((r == UV_EINVAL || r == UV_ENOSYS) && !sent_any) {
      *fallback = 1; /* no splice support for this file: copy instead */
      break;
    }
    if (r == UV_EPIPE || r == UV_ECONNRESET || r == UV_ENOTCONN ||
        r == UV_ETIMEDOUT || r == UV_EHOSTUNREACH || r == UV_ENETUNREACH) {
      if (!s->werr) { /* the connection failed: as a failed write */
        s->werr = (int)r;
        weft__stream_write_progress(s);
      }
    }
    rc = (int)r; /* the file's errors (EIO...) leave the stream alone */
    break;
  }
  return rc;
}

static int below_high(const weft_stream_t *s, const sf_op_t *op) {
  (void)op;
  return !s->wpaused;
}

/* Wait as drain() does (step 5), woken through `drainers`. */
static int wait_drained(weft_stream_t *s, weft_task_t *t) {
  for (;;) {
    int rc = stream_stopped(s);
    if (rc || below_high(s, NULL))
      return rc;
    weft__wait_note(t, WEFT_WAIT_STREAM_WRITE, s);
    rc = weft__io_wait_in(&s->drainers, t);
    if (rc)
      return rc;
  }
}

/* Step 5: copying. */
static int send_copy(weft_stream_t *s, sf_op_t *op, weft_task_t *t,
                     size_t count, size_t *total) {
  size_t cap = count && count < COPY_CHUNK ? count : COPY_CHUNK;
  op->buf = weft__malloc(cap);
  if (!op->buf)
    return WEFT_ENOMEM;
  int rc = 0;
  while (count == 0 || *total < count) {
    if ((rc = stream_stopped(s)) != 0)
      break;
    if (weft__wait_check_cancel(t)) {
      rc = WEFT_ECANCELED;
      break;
    }
    size_t left = count ? count - *total : cap;
    uv_buf_t b;
    b.base = op->buf;
    b.len = left < cap ? left : cap;
    op->done = 0;
    op->fsreq.data = op;
    rc = uv_fs_read(&s->obj.home->own.loop, &op->fsreq, op->in_fd, &b, 1,
                    op->off, on_read);
    if (rc)
      break;
    if (wait_request(op, t, (uv_req_t *)&op->fsreq)) {
      rc = WEFT_ECANCELED; /* what it read is dropped, unsent */
      break;
    }
    if (op->result <= 0) {
      rc = (int)op->result; /* 0: end of file */
      break;
    }
    /* Below the high-water mark first (asyncio's fallback drains, then
     * writes), so at most high + one chunk is ever queued. */
    if ((rc = wait_drained(s, t)) != 0)
      break;
    uv_buf_t w;
    w.base = op->buf;
    w.len = (size_t)op->result;
    rc = weft__stream_send_home(s, &w, 1, w.len);
    if (rc)
      break;
    *total += w.len;
    op->off += (int64_t)w.len;
  }
  return rc;
}

int weft_stream_sendfile(weft_stream_t *s, weft_file_t *f, int64_t offset,
                         size_t count, size_t *sent) {
  size_t total = 0;
  if (sent)
    *sent = 0;
  if (!s || !f || offset < 0 ||
      (uint64_t)count > (uint64_t)(INT64_MAX - offset))
    return WEFT_EINVAL;
  weft_task_t *t = weft__task_current();
  if (!t)
    return WEFT_ENOTTASK;
  int rc = weft__io_check(t, &s->obj);
  if (rc)
    return rc;
  if (weft__wait_check_cancel(t))
    return WEFT_ECANCELED;
  int in_fd = -1;
  unsigned mode = 0;
  rc = weft__file_dup(f, &in_fd, &mode); /* step 1 */
  if (rc)
    return rc;
  if (S_ISDIR(mode)) {
    close(in_fd);
    return WEFT_EISDIR;
  }
  sf_op_t *op = weft__calloc(1, sizeof(*op));
  if (!op) {
    close(in_fd);
    return WEFT_ENOMEM;
  }
  op->s = s;
  op->task = t;
  op->in_fd = in_fd;
  op->out_fd = -1;
  op->off = offset;

  weft__io_enter(t, s->obj.home); /* step 2 */
  if (s->sending) {
    rc = WEFT_EBUSY;
  } else if (s->shut) {
    rc = WEFT_EPIPE;
  } else if ((rc = stream_stopped(s)) == 0) {
    s->sending = 1;
    rc = wait_senders(s, op, t, queue_empty);
    int fallback = s->tls || s->is_pipe || !(S_ISREG(mode) || S_ISBLK(mode));
    if (rc == 0 && !fallback) {
      uv_os_fd_t fd;
      rc = uv_fileno(&s->u.h, &fd);
      if (rc == 0 && (op->out_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0)
        rc = uv_translate_sys_error(errno);
      if (rc == 0)
        rc = send_zero_copy(s, op, t, count, &total, &fallback);
    }
    if (rc == 0 && fallback)
      rc = send_copy(s, op, t, count, &total);
    s->sending = 0;
  }
  close(op->in_fd);
  if (op->poll_init) {
    /* uv_close takes the descriptor out of epoll at once; the record goes
     * with the close callback. */
    uv_close((uv_handle_t *)&op->poll, on_poll_closed);
    close(op->out_fd);
  } else {
    if (op->out_fd >= 0)
      close(op->out_fd);
    op_destroy(op);
  }
  if (s->tls && rc < 0)
    weft__tls_note(s, rc);
  weft__io_leave(t);
  if (sent)
    *sent = total;
  return rc;
}

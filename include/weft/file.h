/*
 * weft files: what asyncio programs get from aiofiles and asyncio.to_thread
 * for the file system. Every call runs libuv's file-system requests on
 * libuv's thread pool (the pool weft_to_thread() uses: UV_THREADPOOL_SIZE
 * threads, 4 by default); the calling task suspends and its worker runs
 * other tasks meanwhile.
 *
 * Handles. weft_file_open() returns an opaque weft_file_t, not a bare
 * descriptor. Its *home* is the worker the opening task ran on; every call
 * on it moves the calling task there (as for streams, not a cancellation
 * point), so any task of the runtime may use it from any worker. The
 * handle keeps the descriptor open while any request of the file is still
 * in the thread pool, including requests whose callers were cancelled:
 * weft_file_close() closes the descriptor only after the last one, so the
 * descriptor number is never reused under a request still using it. After
 * weft_file_close() every call on the handle returns WEFT_EBADF; the memory
 * goes with weft_file_free(). Handles belong to their runtime: one the
 * program has not freed when weft_run() returns is closed and freed by it,
 * and a task of another runtime gets WEFT_EOTHER_RUNTIME.
 *
 * Descriptors are opened with O_CLOEXEC, always (as Python makes its files
 * non-inheritable).
 *
 * Sequential and positional calls. weft_file_read(), weft_file_write() and
 * weft_file_seek() use the file position; on one handle they run one at a time
 * (a call waits for its turn while another is in the pool, which is a
 * cancellation point). weft_file_pread() and weft_file_pwrite() name their
 * offset, leave the position alone and run concurrently with everything.
 *
 * Cancellation (each call states its rule): a request the pool had not
 * started is withdrawn and the call returns WEFT_ECANCELED having done
 * nothing. A request already running cannot be stopped: the call still
 * returns WEFT_ECANCELED at once (asyncio's CancelledError: aiofiles'
 * thread keeps running) and the request finishes in the background, where
 * weft keeps what it produced so that nothing is lost or leaked:
 *  - the thread pool never touches the caller's memory after the call
 *    returned: reads land in a buffer of the request and are copied out on
 *    delivery, writes copy the data before they are queued;
 *  - an abandoned open closes the descriptor it got (a file it created with
 *    O_CREAT stays created);
 *  - the bytes of an abandoned weft_file_read() are kept in the handle and
 *    returned first by the next weft_file_read() (an abandoned
 *    weft_file_pread() changed nothing and is dropped);
 *  - an abandoned write or pwrite writes all of its data; if it fails, its
 *    error is kept in the handle and returned by the next weft_file_fsync()
 *    or weft_file_close() (as the kernel reports writeback errors);
 *  - an abandoned path operation (rename, unlink, mkdir, rmdir) takes effect
 *    or fails as it would have; an abandoned stat, scandir or
 *    weft_fs_read_file() frees its result.
 * weft_run() waits for abandoned requests as it does for offloaded
 * functions (weft_config_t.offload_grace_ms).
 *
 * Every function below needs a task (WEFT_ENOTTASK otherwise) except
 * weft_file_fileno() and weft_fs_free(). A cancellation already pending
 * when a suspending call starts returns WEFT_ECANCELED before anything is
 * queued.
 */
#ifndef WEFT_FILE_H
#define WEFT_FILE_H

#include "common.h"

#include <fcntl.h>
#include <sys/stat.h>

WEFT_BEGIN_DECLS

/* An open file (aiofiles' file object). */
typedef struct weft_file weft_file_t;

/* open(path, flags, mode) (aiofiles.open): flags are open(2)'s O_* flags
 * (O_CLOEXEC is always added), mode the permissions of a file O_CREAT
 * creates. The handle's home is the calling task's worker; free it with
 * weft_file_free().
 *
 * Errors: WEFT_EINVAL (path or out NULL), open(2)'s errors (WEFT_ENOENT,
 * WEFT_EACCES, WEFT_EISDIR for a directory opened for writing, WEFT_EEXIST
 * with O_CREAT|O_EXCL, WEFT_EMFILE...), WEFT_ENOMEM, WEFT_ECANCELED,
 * WEFT_ENOTTASK. Suspends. Cancelled after the pool started the open: the
 * descriptor it gets is closed in the background. */
WEFT_EXTERN int weft_file_open(const char *path, int flags, int mode,
                               weft_file_t **out);

/* f.read(n): read up to n bytes at the file position into buf and advance
 * it; the count is stored in *nread (0: end of file, or n was 0). As with
 * read(2), fewer than n bytes may come: at end of file, from a pipe or a
 * terminal, or past Linux's 0x7ffff000 bytes per call.
 *
 * Errors: WEFT_EINVAL (f or nread NULL, buf NULL with n > 0), WEFT_EBADF
 * (closed handle, or not open for reading), WEFT_EISDIR (a directory),
 * read(2)'s other errors, WEFT_ENOMEM, WEFT_ECANCELED, WEFT_ENOTTASK,
 * WEFT_EOTHER_RUNTIME. *nread is 0 on every error. Suspends. Cancelled
 * while the read runs: its bytes are kept and returned first by the next
 * weft_file_read() (a later weft_file_write() first moves the position
 * back over them). */
WEFT_EXTERN int weft_file_read(weft_file_t *f, void *buf, size_t n,
                               size_t *nread);

/* f.write(data): write all n bytes at the file position (at the end with
 * O_APPEND) and advance it; returns 0 once every byte was written. On an
 * error the bytes written before it are counted in *nwritten (which may be
 * NULL; it is n on success).
 *
 * Errors: WEFT_EINVAL (f NULL, data NULL with n > 0), WEFT_EBADF (closed
 * handle, or not open for writing), WEFT_ENOSPC, WEFT_EIO, write(2)'s
 * other errors, WEFT_ENOMEM, WEFT_ECANCELED, WEFT_ENOTTASK,
 * WEFT_EOTHER_RUNTIME. Suspends. Cancelled before the pool started it:
 * nothing is written (*nwritten 0). Cancelled while it runs: the whole
 * write completes in the background from a copy of data, and an error it
 * meets is returned by the next weft_file_fsync() or weft_file_close(). */
WEFT_EXTERN int weft_file_write(weft_file_t *f, const void *data, size_t n,
                                size_t *nwritten);

/* os.pread(fd, n, offset): read up to n bytes at offset into buf without
 * moving the file position; *nread as weft_file_read(). Errors as
 * weft_file_read(), plus WEFT_EINVAL (offset negative) and WEFT_ESPIPE (a
 * pipe or other descriptor without offsets). Suspends. Cancelled while it runs:
 * the bytes are dropped (nothing changed). Runs concurrently with other calls.
 */
WEFT_EXTERN int weft_file_pread(weft_file_t *f, void *buf, size_t n,
                                int64_t offset, size_t *nread);

/* os.pwrite(fd, data, offset), writing all n bytes: as weft_file_write()
 * at offset, without moving the file position (with O_APPEND, Linux
 * appends, as pwrite(2) does). Errors and cancellation as
 * weft_file_write(), plus WEFT_EINVAL (offset negative) and WEFT_ESPIPE.
 * Suspends. Runs
 * concurrently with other calls. */
WEFT_EXTERN int weft_file_pwrite(weft_file_t *f, const void *data, size_t n,
                                 int64_t offset, size_t *nwritten);

/* f.seek(offset, whence) / f.tell(): move the file position used by
 * weft_file_read() and weft_file_write() (whence SEEK_SET, SEEK_CUR or
 * SEEK_END, as lseek(2)) and store the new position in *pos (pos may be
 * NULL; weft_file_seek(f, 0, SEEK_CUR, &pos) tells). Positions count the
 * bytes kept from a cancelled read as not yet read, and a seek drops them.
 * Waits for the sequential turn (weft_file_read()), then calls lseek(2),
 * which does not block, on the home worker.
 *
 * Errors: WEFT_EINVAL (f NULL, a bad whence, a negative result),
 * WEFT_ESPIPE (a pipe or other descriptor without a position; kept bytes
 * stay), WEFT_EOVERFLOW, WEFT_EBADF (closed handle), WEFT_ECANCELED (while
 * waiting for the turn; nothing moved), WEFT_ENOTTASK, WEFT_EOTHER_RUNTIME.
 * Suspends only while another sequential call is in the pool. */
WEFT_EXTERN int weft_file_seek(weft_file_t *f, int64_t offset, int whence,
                               int64_t *pos);

/* os.fstat(fd): the file's status into *st (st_dev, st_ino, st_mode,
 * st_nlink, st_uid, st_gid, st_rdev, st_size, st_blksize, st_blocks and the
 * three timestamps). Errors: WEFT_EINVAL, WEFT_EBADF (closed handle),
 * WEFT_ENOMEM, WEFT_ECANCELED (*st untouched), WEFT_ENOTTASK,
 * WEFT_EOTHER_RUNTIME. Suspends. */
WEFT_EXTERN int weft_file_fstat(weft_file_t *f, struct stat *st);

/* os.fsync(fd): flush the file's data and metadata to the device. Returns
 * 0, the error of an abandoned write or fsync of this handle that has
 * finished and was not reported yet (it is then cleared; close waits for
 * the ones still running), fsync(2)'s errors (WEFT_EIO, WEFT_ENOSPC...),
 * WEFT_EINVAL, WEFT_EBADF (closed handle), WEFT_ENOMEM, WEFT_ECANCELED (the
 * sync goes on in the background; an error it meets is kept for the next fsync
 * or close), WEFT_ENOTTASK, WEFT_EOTHER_RUNTIME. Suspends. */
WEFT_EXTERN int weft_file_fsync(weft_file_t *f);

/* f.close(): stop accepting calls (every later call on f returns
 * WEFT_EBADF, also those waiting for their turn), wait until the requests
 * still in the pool for f have finished, then close the descriptor.
 * Returns 0, the error of an abandoned write or fsync not reported yet,
 * close(2)'s error (the descriptor is closed even then), WEFT_EBADF (already
 * closed or closing), WEFT_EINVAL, WEFT_ECANCELED (the close goes on in the
 * background and completes), WEFT_ENOTTASK, WEFT_EOTHER_RUNTIME. Suspends.
 * The handle stays valid until weft_file_free(). */
WEFT_EXTERN int weft_file_close(weft_file_t *f);

/* Release a handle: closes it in the background if it is still open (as
 * weft_file_close(), ignoring the result) and frees it once its last
 * request has finished. f must not be used afterwards, and no other task
 * may be inside a call on it. Returns 0, WEFT_EINVAL, WEFT_ENOTTASK,
 * WEFT_EOTHER_RUNTIME; NULL is ignored (0). May move the task (not a
 * cancellation point). */
WEFT_EXTERN int weft_file_free(weft_file_t *f);

/* f.fileno(): the descriptor, for fcntl(), flock() and the like, or
 * WEFT_EBADF once closed (or closing); WEFT_EINVAL. Reading, writing,
 * seeking or closing it directly bypasses the handle (and its kept bytes).
 * Not a task call: a snapshot, safe while no task closes f meanwhile. */
WEFT_EXTERN int weft_file_fileno(const weft_file_t *f);

/* ---- sending a file on a stream ----------------------------------------- */

/* A stream (weft/stream.h). */
typedef struct weft_stream weft_stream_t;

/* Bytes one weft_stream_sendfile() request asks the kernel for at most. */
#define WEFT_SENDFILE_CHUNK ((size_t)2 * 1024 * 1024)

/* loop.sendfile(transport, file, offset, count): send count bytes of f
 * starting at offset (count 0: up to the end of the file) on s, and store
 * the number of bytes sent in *sent (sent may be NULL). Like
 * weft_file_pread(), it neither uses nor moves f's file position (asyncio
 * seeks the file to offset + sent afterwards), so several streams may send
 * one file at once. Data written to s before the call goes first: it waits
 * until the stream's write queue is empty. While it runs, writes,
 * weft_stream_write_eof() and another sendfile on s fail with WEFT_EBUSY
 * (asyncio: "sendfile is in progress"); reading goes on.
 *
 * Zero-copy on a plaintext TCP stream and a regular file: sendfile(2) on
 * libuv's thread pool from the kernel's page cache to the socket, a chunk
 * (at most WEFT_SENDFILE_CHUNK bytes) per request; when the socket's buffer
 * is full the task waits until it is writable, without holding a pool
 * thread. On success every byte counted in *sent is in the kernel's socket
 * buffer. Elsewhere (a TLS stream, a Unix-socket stream, a file that is not
 * regular) it copies instead, as asyncio's fallback does: a pool read of up
 * to 64 KiB, then a write on the stream, waiting as weft_stream_drain()
 * does before each write, so the stream's water marks bound the memory;
 * bytes counted in *sent were handed to the stream (the last ones may still
 * be queued, sent in the background as by weft_stream_write()).
 *
 * Returns 0 once count bytes, or the rest of the file, were sent (fewer
 * than count at end of file; 0 bytes if offset is at or past it). Errors,
 * with *sent counting the bytes sent before them: WEFT_EINVAL (s or f
 * NULL, offset negative, offset + count past INT64_MAX), WEFT_EBUSY
 * (another sendfile runs on s), WEFT_EPIPE (s closing or closed, before or
 * during the call, or write_eof() was called), the stream's write error
 * (WEFT_ECONNRESET, WEFT_EPIPE...; sticky, as for writes), WEFT_EBADF (f
 * closed, or not open for reading), WEFT_EISDIR, WEFT_ESPIPE (f has no
 * offsets: a pipe), read(2)'s errors, WEFT_ENOMEM, WEFT_EMFILE,
 * WEFT_ECANCELED, WEFT_ENOTTASK, WEFT_EOTHER_RUNTIME (s or f of another
 * runtime). Suspends.
 *
 * Cancellation: nothing is lost or duplicated, and *sent says exactly what
 * the peer gets: bytes offset .. offset + *sent - 1 of the file, after what
 * was written before the call, and nothing more of the file. A request the
 * pool had not started is withdrawn; one it runs (a sendfile(2) on a
 * non-blocking socket, or a read of the file) is waited for, so that what
 * it sent is counted: this never waits for the peer, only for the file's
 * device. The stream stays usable. */
WEFT_EXTERN int weft_stream_sendfile(weft_stream_t *s, weft_file_t *f,
                                     int64_t offset, size_t count,
                                     size_t *sent);

/* ---- paths -------------------------------------------------------------- */

/* os.stat(path) (follows symbolic links): fills *st as weft_file_fstat().
 * Errors: WEFT_EINVAL (NULL argument), WEFT_ENOENT, WEFT_ENOTDIR,
 * WEFT_EACCES, WEFT_ENAMETOOLONG..., WEFT_ENOMEM, WEFT_ECANCELED (*st
 * untouched), WEFT_ENOTTASK. Suspends. */
WEFT_EXTERN int weft_fs_stat(const char *path, struct stat *st);

/* os.rename(from, to). Errors: WEFT_EINVAL, rename(2)'s (WEFT_ENOENT,
 * WEFT_EACCES, WEFT_EISDIR, WEFT_ENOTEMPTY...), WEFT_ENOMEM,
 * WEFT_ECANCELED (if the pool had started the rename it takes effect or
 * fails as it would have), WEFT_ENOTTASK. Suspends. */
WEFT_EXTERN int weft_fs_rename(const char *from, const char *to);

/* os.unlink(path): remove a name that is not a directory. Errors:
 * WEFT_EINVAL, WEFT_ENOENT, WEFT_EISDIR, WEFT_EACCES..., WEFT_ENOMEM,
 * WEFT_ECANCELED (as weft_fs_rename()), WEFT_ENOTTASK. Suspends. */
WEFT_EXTERN int weft_fs_unlink(const char *path);

/* os.mkdir(path, mode). Errors: WEFT_EINVAL, WEFT_EEXIST, WEFT_ENOENT (a
 * missing parent), WEFT_EACCES..., WEFT_ENOMEM, WEFT_ECANCELED (as
 * weft_fs_rename()), WEFT_ENOTTASK. Suspends. */
WEFT_EXTERN int weft_fs_mkdir(const char *path, int mode);

/* os.rmdir(path): remove an empty directory. Errors: WEFT_EINVAL,
 * WEFT_ENOENT, WEFT_ENOTDIR, WEFT_ENOTEMPTY, WEFT_EACCES..., WEFT_ENOMEM,
 * WEFT_ECANCELED (as weft_fs_rename()), WEFT_ENOTTASK. Suspends. */
WEFT_EXTERN int weft_fs_rmdir(const char *path);

/* Entry types of weft_fs_scandir() (d_type; UNKNOWN where the file system
 * does not say: stat the entry). */
typedef enum weft_dirent_type {
  WEFT_DIRENT_UNKNOWN = 0,
  WEFT_DIRENT_FILE,
  WEFT_DIRENT_DIR,
  WEFT_DIRENT_LINK,
  WEFT_DIRENT_FIFO,
  WEFT_DIRENT_SOCKET,
  WEFT_DIRENT_CHAR,
  WEFT_DIRENT_BLOCK
} weft_dirent_type_t;

/* One entry of weft_fs_scandir(). */
typedef struct weft_dirent {
  const char *name;        /* the entry's name (no directory part) */
  weft_dirent_type_t type; /* its type */
} weft_dirent_t;

/* os.scandir(path) / os.listdir(path): the entries of a directory, without
 * "." and "..", sorted by name (strcmp order), in an array of *n entries
 * stored in *entries (names included: one block, freed with
 * weft_fs_free(*entries); NULL when *n is 0).
 *
 * Errors: WEFT_EINVAL, WEFT_ENOENT, WEFT_ENOTDIR, WEFT_EACCES...,
 * WEFT_ENOMEM, WEFT_ECANCELED, WEFT_ENOTTASK; *entries is NULL and *n 0 on
 * every error. Suspends. */
WEFT_EXTERN int weft_fs_scandir(const char *path, weft_dirent_t **entries,
                                size_t *n);

/* pathlib.Path(path).read_bytes(): the whole file in *data (*len bytes,
 * followed by a NUL byte not counted in *len, so text can be used as a
 * string; free it with weft_fs_free()). Reads until end of file, so files
 * whose size stat does not know (/proc) are read whole too. max is the
 * largest size accepted: a file longer than max bytes fails with
 * WEFT_EFBIG after reading max + 1 bytes; 0 = no limit.
 *
 * Errors: WEFT_EINVAL (path, data or len NULL, max above SIZE_MAX - 2),
 * open(2)'s and read(2)'s errors (WEFT_ENOENT, WEFT_EISDIR, WEFT_EACCES...),
 * WEFT_EFBIG, WEFT_ENOMEM, WEFT_ECANCELED (the reading stops at its next
 * request and the descriptor is closed), WEFT_ENOTTASK; *data is NULL and *len
 * 0 on every error. Suspends. */
WEFT_EXTERN int weft_fs_read_file(const char *path, size_t max, void **data,
                                  size_t *len);

/* Free a result of weft_fs_scandir() or weft_fs_read_file(); NULL is
 * ignored. Callable from anywhere. */
WEFT_EXTERN void weft_fs_free(void *p);

WEFT_END_DECLS

#endif /* WEFT_FILE_H */

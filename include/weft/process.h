/*
 * weft subprocesses: asyncio's create_subprocess_exec() and
 * create_subprocess_shell(), and the asyncio.subprocess.Process they
 * return (wait, communicate, send_signal, terminate, kill, pid,
 * returncode, and the stdin/stdout/stderr pipes as streams).
 *
 * Home. A process's libuv handle lives on the loop of the worker the
 * spawning task ran on, its *home*; so do its pipes, which are ordinary
 * weft streams (weft/stream.h: read, readline, readexactly, write, drain,
 * close... all work on them). Every call that needs a task moves the
 * calling task there for the call (not a cancellation point), so any task
 * of the runtime may use a process from any worker. A task of another
 * runtime gets WEFT_EOTHER_RUNTIME.
 *
 * Pipes are Unix socket pairs, as libuv makes them (asyncio uses pipe(2)):
 * the child sees a socket on the descriptor. The stdin stream is
 * write-only (reads return end of stream at once), the stdout and stderr
 * streams are read-only (writes fail with WEFT_EPIPE). The pipes belong to
 * the process: weft_stream_free() refuses them (WEFT_EPERM), and
 * weft_process_free() closes and frees them. weft_stream_close() on stdin
 * is how the child is told that its input ended.
 *
 * Descriptors. Every descriptor weft or libuv opens carries FD_CLOEXEC, so
 * a child gets exactly its three standard descriptors, whatever streams,
 * files, servers or signal watchers the runtime has open. Descriptors the
 * program itself opened without O_CLOEXEC are inherited, as with fork(2).
 *
 * Reaping. Every child is waited for (reaped), exactly once, by its home
 * worker's loop, whose SIGCHLD watcher (libuv's) calls waitpid() for its
 * own children only. That stays true when the program frees the handle
 * first: weft keeps the libuv handle open until the child has exited. The
 * program must not reap weft's children itself (waitpid(-1, ...), or
 * SIGCHLD set to SIG_IGN): their exit would then never be seen, and
 * weft_process_wait() would not return. weft/signal.h may watch SIGCHLD
 * too: libuv's handler serves both, and both see every SIGCHLD.
 *
 * Shutdown. When weft_run() returns with a child still running, the child
 * keeps running (asyncio leaves it too): its pipes are closed (it reads
 * end of file on stdin and gets EPIPE or SIGPIPE writing to its stdout),
 * and a detached thread of the process waits for it, so that it is reaped
 * when it exits and never stays a zombie. weft_run() does not wait for it.
 * Kill what must not outlive the runtime before main returns.
 *
 * Every function below needs a task (WEFT_ENOTTASK otherwise), except
 * weft_process_opts_init(), weft_process_pid(), weft_process_returncode(),
 * weft_process_stdin(), weft_process_stdout(), weft_process_stderr() and
 * weft_process_output_free(), which may be called from anywhere while the
 * process exists.
 */
#ifndef WEFT_PROCESS_H
#define WEFT_PROCESS_H

#include "common.h"

#include "stream.h"

#include <stddef.h>

WEFT_BEGIN_DECLS

/* A child process (asyncio.subprocess.Process). */
typedef struct weft_process weft_process_t;

/* Where one of the child's standard descriptors goes (asyncio's stdin=,
 * stdout=, stderr= arguments). */
typedef enum weft_stdio {
  WEFT_STDIO_INHERIT = 0, /* the parent's own descriptor (None; default) */
  WEFT_STDIO_PIPE = 1,    /* a pipe to a weft stream (subprocess.PIPE) */
  WEFT_STDIO_DEVNULL = 2, /* /dev/null (subprocess.DEVNULL) */
  WEFT_STDIO_FD = 3,      /* the descriptor in weft_stdio_spec_t.fd */
  WEFT_STDIO_STDOUT = 4   /* stderr only: wherever stdout goes
                             (subprocess.STDOUT) */
} weft_stdio_t;

/* One standard descriptor of the child. */
typedef struct weft_stdio_spec {
  weft_stdio_t how; /* see weft_stdio_t */
  int fd;           /* WEFT_STDIO_FD: a descriptor of the parent, which the
                       child gets as a duplicate (the parent keeps it) */
} weft_stdio_spec_t;

/* Spawn options. Initialise with weft_process_opts_init(). */
typedef struct weft_process_opts {
  /* stdio[0], [1], [2]: the child's stdin, stdout and stderr. Default:
   * WEFT_STDIO_INHERIT for all three. */
  weft_stdio_spec_t stdio[3];
  /* The child's environment: "NAME=value" strings, NULL-terminated; NULL
   * (the default) = the parent's environment. The program name of
   * weft_create_subprocess_exec() is looked up in this environment's PATH
   * (asyncio passes env= to the same lookup). */
  const char *const *env;
  /* The child's working directory; NULL (the default) = the parent's. */
  const char *cwd;
  /* The pipes' stream limit (asyncio's limit=); 0 (the default) =
   * WEFT_STREAM_LIMIT_DEFAULT. */
  size_t limit;
  /* 0 (the default): a cancelled weft_process_wait() or
   * weft_process_communicate() leaves the child running, as asyncio does.
   * A signal number (SIGKILL, SIGTERM...): it is sent to the child, if it
   * has not exited, before the cancelled call returns. */
  int cancel_signal;
  /* Non-zero: the child calls setsid() (asyncio's start_new_session). */
  int start_new_session;
} weft_process_opts_t;

/* What weft_process_communicate() collected. The buffers are allocated by
 * weft, NUL-terminated (not counted in the lengths) and released with
 * weft_process_output_free(). */
typedef struct weft_process_output {
  char *out;      /* everything read from stdout; NULL without a pipe */
  size_t out_len; /* its length in bytes */
  char *err;      /* everything read from stderr; NULL without a pipe */
  size_t err_len; /* its length in bytes */
  int returncode; /* as weft_process_returncode(); set on success only */
} weft_process_output_t;

/* Fill opts with the defaults. NULL is ignored. Callable from anywhere. */
WEFT_EXTERN void weft_process_opts_init(weft_process_opts_t *opts);

/* asyncio.create_subprocess_exec(argv[0], *argv[1:]): start the program
 * argv[0] (looked up in PATH when it has no '/', as execvp(3) does) with
 * the arguments argv (NULL-terminated; argv[0] is the child's argv[0]),
 * and store the process in *out (release it with weft_process_free()).
 * opts NULL = defaults. The process's home is the calling task's worker.
 * Returns once the program was executed: a program that cannot be
 * executed is reported here, not as an exit status.
 *
 * Errors: WEFT_EINVAL (argv, argv[0] or out NULL; a stdio `how` out of
 * range, WEFT_STDIO_STDOUT for stdin or stdout; cancel_signal outside
 * 0..64), WEFT_EBADF (a WEFT_STDIO_FD descriptor that is not open),
 * WEFT_ENOENT (no such program, or cwd does not exist), WEFT_EACCES (not
 * executable), WEFT_ENOTDIR and execve(2)'s and chdir(2)'s other errors
 * (as negative errno values, libuv's convention), WEFT_EAGAIN (fork(2):
 * the process limit), WEFT_EMFILE, WEFT_ENOMEM, WEFT_ENOTTASK. *out is
 * NULL on failure, and nothing is left behind. Does not suspend (libuv
 * forks and waits for the exec on the calling worker, typically well
 * under a millisecond), so it is not a cancellation point. */
WEFT_EXTERN int weft_create_subprocess_exec(const char *const *argv,
                                            const weft_process_opts_t *opts,
                                            weft_process_t **out);

/* asyncio.create_subprocess_shell(cmd): weft_create_subprocess_exec() of
 * {"/bin/sh", "-c", cmd}. A command the shell cannot find is the shell's
 * business: it exits with status 127. Errors as above (WEFT_EINVAL for cmd
 * NULL). */
WEFT_EXTERN int weft_create_subprocess_shell(const char *cmd,
                                             const weft_process_opts_t *opts,
                                             weft_process_t **out);

/* Process.pid: the child's process id (> 0), or WEFT_EINVAL. Once the
 * child was reaped the number may belong to another process. */
WEFT_EXTERN int weft_process_pid(const weft_process_t *p);

/* Process.returncode: 1 if the child has exited and been reaped, with its
 * return code in *code (code may be NULL): the exit status (0..255), or
 * -N if signal N killed it, as asyncio reports it; 0 if it is still
 * running (or its exit has not been seen yet); WEFT_EINVAL. */
WEFT_EXTERN int weft_process_returncode(const weft_process_t *p, int *code);

/* Process.stdin / stdout / stderr: the pipe's stream, or NULL when that
 * descriptor is not a pipe (or p is NULL). The stream belongs to p. */
WEFT_EXTERN weft_stream_t *weft_process_stdin(const weft_process_t *p);
WEFT_EXTERN weft_stream_t *weft_process_stdout(const weft_process_t *p);
WEFT_EXTERN weft_stream_t *weft_process_stderr(const weft_process_t *p);

/* await Process.wait(): wait until the child has exited and store its
 * return code (as weft_process_returncode()) in *code (code may be NULL).
 * Returns at once when it already has; any number of tasks may wait.
 * Waiting does not read the pipes: a child that fills a stdout pipe nobody
 * reads blocks (weft buffers up to twice the pipe's limit), as in asyncio;
 * weft_process_communicate() reads them.
 *
 * Errors: WEFT_ECANCELED (the child keeps running, unless
 * opts.cancel_signal asked for a signal, sent before this returns),
 * WEFT_EINVAL, WEFT_ENOTTASK, WEFT_EOTHER_RUNTIME. Suspends until the child
 * exits; a timeout scope's expiry is a cancellation. */
WEFT_EXTERN int weft_process_wait(weft_process_t *p, int *code);

/* await Process.communicate(input): write the inlen bytes of input to
 * stdin and close it, read stdout and stderr until end of file, both at
 * once (so neither a full pipe nor the child's waiting for its input can
 * deadlock), then wait for the child to exit. *out receives the data and
 * the return code; release it with weft_process_output_free(), also after
 * an error. stdin is closed even when input is NULL (asyncio does too);
 * the child's not reading it (WEFT_EPIPE, WEFT_ECONNRESET on stdin) is no
 * error, as in asyncio.
 *
 * Errors: WEFT_EINVAL (p or out NULL; input with inlen > 0 but stdin is not
 * a pipe, or input NULL with inlen > 0), WEFT_EBUSY (another task is
 * reading stdout or stderr), a read error of stdout or stderr, WEFT_ENOMEM,
 * WEFT_ECANCELED, WEFT_ENOTTASK, WEFT_EOTHER_RUNTIME,
 * WEFT_ERUNTIME_SHUTDOWN. On every error, *out holds what was read so far
 * (nothing read is lost: the rest stays in the streams), and the input
 * was queued whole on stdin and is still sent, except after a WEFT_ENOMEM
 * queueing it (nothing sent, stdin left open). Cancelled:
 * the child keeps running unless opts.cancel_signal asked for a signal.
 * Suspends. */
WEFT_EXTERN int weft_process_communicate(weft_process_t *p, const void *input,
                                         size_t inlen,
                                         weft_process_output_t *out);

/* Free the buffers of *out and reset it to empty. NULL is ignored. */
WEFT_EXTERN void weft_process_output_free(weft_process_output_t *out);

/* Process.send_signal(sig): send signal sig (1..64) to the child. Returns
 * 0, WEFT_ESRCH once the child has exited and been reaped (its pid may be
 * reused, so nothing is sent: asyncio's ProcessLookupError), WEFT_EINVAL
 * (bad sig), kill(2)'s WEFT_EPERM, WEFT_ENOTTASK, WEFT_EOTHER_RUNTIME. Not
 * a cancellation point. */
WEFT_EXTERN int weft_process_send_signal(weft_process_t *p, int sig);

/* Process.terminate() and Process.kill(): weft_process_send_signal() of
 * SIGTERM and SIGKILL. */
WEFT_EXTERN int weft_process_terminate(weft_process_t *p);
WEFT_EXTERN int weft_process_kill(weft_process_t *p);

/* Release p: its pipes are closed (as weft_stream_close(): queued stdin
 * data is still sent) and freed, and the handle is freed. A child still
 * running keeps running and is reaped when it exits; nothing is sent to
 * it. p must not be used afterwards, and no other task may be inside a
 * call on it or its pipes. Returns 0, WEFT_EINVAL, WEFT_ENOTTASK,
 * WEFT_EOTHER_RUNTIME; NULL is ignored (0). Not a cancellation point. */
WEFT_EXTERN int weft_process_free(weft_process_t *p);

WEFT_END_DECLS

#endif /* WEFT_PROCESS_H */

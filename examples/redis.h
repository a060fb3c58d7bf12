/*
 * redis.h: a small Redis client for weft programs (examples/crawl_redis.c
 * uses it; any weft program may).
 *
 * RESP over weft streams: commands are formatted with hiredis's
 * redisFormatCommandArgv() and replies parsed with hiredis's reader
 * (redisReaderCreate/Feed/GetReply), so replies are hiredis's redisReply
 * trees (free them with redis_reply_free()). hiredis's own networking is
 * not used.
 *
 * Connections: one per worker of the runtime, opened lazily in the
 * background, each on its own worker (its manager task is pinned there, so
 * its stream's home is that worker). A command goes to the connection of
 * the worker the calling task runs on, so the I/O of a connection stays on
 * one worker's loop and a worker's tasks share one pipeline; one per worker
 * rather than one in all, because a single connection would move every
 * command's I/O onto one worker, and rather than a larger pool, because one
 * pipelined connection already carries a worker's traffic (Redis answers a
 * pipeline in order, with one read and one write system call per batch).
 *
 * Pipelining: any number of tasks issue commands on a connection at once.
 * A command is appended, under the connection's mutex, to its output buffer
 * and its waiter to the connection's FIFO of waiters, in the same critical
 * section, so the FIFO is in the order of the bytes sent. The connection's
 * writer task sends everything appended since its last write with one
 * weft_stream_write() (batching), and its reader (the manager) matches each
 * reply to the FIFO's head.
 *
 * Cancellation: a caller cancelled while it waits returns WEFT_ECANCELED at
 * once; its waiter stays in the FIFO, marked abandoned, and the reply is
 * read and dropped when it comes, so the pipeline never goes out of step.
 * The command may or may not have been executed.
 *
 * Failures: when the connection breaks (server gone, protocol error), every
 * command in flight fails with WEFT_ECONNRESET (it may or may not have been
 * executed: callers retry idempotent work). The manager reconnects with
 * exponential backoff (backoff_ms, doubling, capped at backoff_max_ms, with
 * +-25% jitter); while it waits, commands fail at once with the last
 * connection error (WEFT_ECONNREFUSED...), and while it connects they are
 * queued and sent once connected (or fail with the connect error). A db
 * other than 0 is SELECTed first on every connection.
 *
 * Threads: every function here needs a weft task, except redis_url_parse(),
 * redis_reply_free(), redis_strerror() and redis_script_init(). A client
 * belongs to the runtime it was created in and must be freed there, before
 * weft_run() returns.
 */
#ifndef WEFT_EXAMPLES_REDIS_H
#define WEFT_EXAMPLES_REDIS_H

#include <weft.h>

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stddef.h>

/* Error codes of this module, beside weft's (weft/error.h), outside every
 * weft and errno range. */
#define REDIS_ESERVER (-12001) /* the server answered an error reply
                                  ("-ERR ...", "-WRONGTYPE ..."); the
                                  reply is returned too */
#define REDIS_EPROTO (-12002)  /* a reply the RESP reader rejected (the
                                  connection is then reset) */
#define REDIS_ENOSCRIPT (-12003) /* EVALSHA: script not in the server's
                                    cache (redis_eval() handles it) */

/* A parsed redis://HOST:PORT/PATH URL. */
typedef struct redis_url {
  char host[256]; /* "127.0.0.1" when absent; [v6] without brackets */
  int port;       /* 6379 when absent */
  char path[256]; /* what follows the first '/' after the authority, ""
                     when absent */
} redis_url_t;

/* Parse "redis://HOST[:PORT][/PATH]" (also without "redis://"). Returns 0,
 * or WEFT_EINVAL (NULL, another scheme, a bad port, a user:password part,
 * which this client does not support, an empty host), WEFT_ENAMETOOLONG (host or path too long).
 * Callable from anywhere. */
int redis_url_parse(const char *url, redis_url_t *out);

/* Options of a client. Fill with redis_opts_init(). */
typedef struct redis_opts {
  int db;                  /* SELECTed on connect when not 0 (0) */
  unsigned backoff_ms;     /* first reconnect delay (50) */
  unsigned backoff_max_ms; /* largest reconnect delay (2000) */
  unsigned connect_timeout_ms; /* per connect attempt (5000) */
  /* If not NULL, called (from a task, must not suspend) when a connection
   * goes down or comes back: up 0 with the error, up 1 with 0. Lets a
   * program report "Redis unreachable, retrying". */
  void (*on_state)(int up, int err, void *arg);
  void *on_state_arg;
} redis_opts_t;

typedef struct redis_client redis_client_t;

/* Fill opts with the defaults above. */
void redis_opts_init(redis_opts_t *opts);

/* Create a client of the server at host:port (one connection per worker,
 * opened in the background). Returns 0, WEFT_EINVAL (NULL, port out of
 * range, db < 0), WEFT_ENOMEM, WEFT_ENOTTASK, or weft_spawn()'s errors.
 * Does not suspend. */
int redis_client_new(const char *host, int port, const redis_opts_t *opts,
                     redis_client_t **out);

/* redis_client_new() from a URL: PATH, if not empty, must be the db
 * number (WEFT_EINVAL otherwise); opts->db is then ignored. */
int redis_client_new_url(const char *url, const redis_opts_t *opts,
                         redis_client_t **out);

/* Close every connection (commands in flight fail with WEFT_ECANCELED) and
 * free the client. No task may be inside a call on it. Suspends until its
 * tasks have finished. NULL is ignored. */
void redis_client_free(redis_client_t *c);

/* Send one command of argc arguments (argv[i], argvlen[i] bytes each;
 * argvlen NULL = NUL-terminated strings) and wait for its reply, stored in
 * *reply (free it with redis_reply_free(); reply may be NULL to drop it).
 * Returns 0 with the reply; REDIS_ESERVER with the error reply in *reply;
 * WEFT_ECONNRESET (the connection broke after the command was queued: it
 * may have run); the last connection error while reconnecting
 * (WEFT_ECONNREFUSED, WEFT_ETIMEDOUT...: it did not run); WEFT_ECANCELED
 * (the caller was cancelled: it may have run); WEFT_EINVAL (c NULL, argc
 * < 1, argv NULL); WEFT_ENOMEM; WEFT_ENOTTASK. On every error but
 * REDIS_ESERVER *reply is NULL. Suspends. */
int redis_commandv(redis_client_t *c, redisReply **reply, int argc,
                   const char *const *argv, const size_t *argvlen);

/* redis_commandv() of NUL-terminated strings, ended by NULL:
 * redis_command(c, &r, "SET", "k", "v", NULL). At most 64 arguments
 * (WEFT_E2BIG). */
int redis_command(redis_client_t *c, redisReply **reply, const char *arg0,
                  ...);

/* A Lua script run with EVALSHA. Fill with redis_script_init() (the source
 * must outlive it); it may be shared by every task and client. */
typedef struct redis_script {
  const char *src;
  pthread_mutex_t mu; /* guards sha */
  char sha[41];       /* "" until known */
} redis_script_t;

void redis_script_init(redis_script_t *s, const char *src);
void redis_script_destroy(redis_script_t *s);

/* EVALSHA s nkeys keys... args... (argc entries of argv after the script,
 * the first nkeys of them keys), loading the script with SCRIPT LOAD the
 * first time and falling back to EVAL when the server answers NOSCRIPT
 * (its script cache was flushed, or it restarted). Returns as
 * redis_commandv(). */
int redis_eval(redis_client_t *c, redis_script_t *s, redisReply **reply,
               int nkeys, int argc, const char *const *argv,
               const size_t *argvlen);

/* freeReplyObject(); NULL is ignored. */
void redis_reply_free(redisReply *r);

/* A message for a code of this module or weft's (weft_strerror()). */
const char *redis_strerror(int err);

/* Connections up now (a statistic; callable from a task). */
int redis_client_connected(redis_client_t *c);

#endif /* WEFT_EXAMPLES_REDIS_H */

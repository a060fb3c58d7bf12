/*
 * weft error codes.
 *
 * Every weft function that can fail returns an int: 0 on success, a negative
 * WEFT_E* code on failure, and a positive value only where it returns a count.
 * There is no errno side channel: weft never reports an error through errno.
 *
 * The codes are libuv's: WEFT_ECANCELED == UV_ECANCELED and so on (on Unix
 * both are the negated errno value), so a libuv result passes through weft
 * unchanged and weft_strerror()/weft_err_name() also name every libuv code.
 * POSIX names keep their POSIX meaning (WEFT_ESHUTDOWN is a socket's,
 * WEFT_EPERM "the caller does not own the object"); conditions of weft's
 * own (WEFT_ENOTTASK, WEFT_EQUEUE_SHUTDOWN, WEFT_ERUNTIME_SHUTDOWN...) have
 * codes of their own, named for what they mean, with values below -11000,
 * outside every errno and libuv range.
 */
#ifndef WEFT_ERROR_H
#define WEFT_ERROR_H

#include "common.h"

#include <errno.h>

/* XX(name, value, message): the one list everything else is generated from. */
#define WEFT_ERRNO_MAP(XX)                                                     \
  XX(E2BIG, (-E2BIG), "argument list too long")                                \
  XX(EACCES, (-EACCES), "permission denied")                                   \
  XX(EADDRINUSE, (-EADDRINUSE), "address already in use")                      \
  XX(EADDRNOTAVAIL, (-EADDRNOTAVAIL), "address not available")                 \
  XX(EAFNOSUPPORT, (-EAFNOSUPPORT), "address family not supported")            \
  XX(EAGAIN, (-EAGAIN), "resource temporarily unavailable")                    \
  XX(EAI_NONAME, (-3008), "unknown node or service")                           \
  XX(EAI_AGAIN, (-3001), "temporary failure")                                  \
  XX(EAI_FAIL, (-3004), "permanent failure")                                   \
  XX(EALREADY, (-EALREADY), "connection already in progress")                  \
  XX(EBADF, (-EBADF), "bad file descriptor")                                   \
  XX(EBUSY, (-EBUSY), "resource busy or locked")                               \
  XX(ECANCELED, (-ECANCELED), "operation canceled")                            \
  XX(ECONNABORTED, (-ECONNABORTED), "software caused connection abort")        \
  XX(ECONNREFUSED, (-ECONNREFUSED), "connection refused")                      \
  XX(ECONNRESET, (-ECONNRESET), "connection reset by peer")                    \
  XX(EDEADLK, (-EDEADLK), "resource deadlock avoided")                         \
  XX(EEXIST, (-EEXIST), "file already exists")                                 \
  XX(EFBIG, (-EFBIG), "file too large")                                        \
  XX(EHOSTUNREACH, (-EHOSTUNREACH), "host is unreachable")                     \
  XX(EINTR, (-EINTR), "interrupted system call")                               \
  XX(EINVAL, (-EINVAL), "invalid argument")                                    \
  XX(EIO, (-EIO), "i/o error")                                                 \
  XX(EISDIR, (-EISDIR), "illegal operation on a directory")                    \
  XX(EISCONN, (-EISCONN), "socket is already connected")                       \
  XX(ELOOP, (-ELOOP), "too many symbolic links encountered")                   \
  XX(EMFILE, (-EMFILE), "too many open files")                                 \
  XX(EMSGSIZE, (-EMSGSIZE), "message too long")                                \
  XX(ENAMETOOLONG, (-ENAMETOOLONG), "name too long")                           \
  XX(ENETUNREACH, (-ENETUNREACH), "network is unreachable")                    \
  XX(ENOBUFS, (-ENOBUFS), "no buffer space available")                         \
  XX(ENOENT, (-ENOENT), "no such file or directory")                           \
  XX(ENOMEM, (-ENOMEM), "not enough memory")                                   \
  XX(ENOSPC, (-ENOSPC), "no space left on device")                             \
  XX(ENOSYS, (-ENOSYS), "function not implemented")                            \
  XX(ENOTCONN, (-ENOTCONN), "socket is not connected")                         \
  XX(ENOTDIR, (-ENOTDIR), "not a directory")                                   \
  XX(ENOTEMPTY, (-ENOTEMPTY), "directory not empty")                           \
  XX(ENOTSUP, (-ENOTSUP), "operation not supported on socket")                 \
  XX(EOVERFLOW, (-EOVERFLOW), "value too large for defined data type")         \
  XX(EPERM, (-EPERM), "operation not permitted")                               \
  XX(EPIPE, (-EPIPE), "broken pipe")                                           \
  XX(ERANGE, (-ERANGE), "result too large")                                    \
  XX(EROFS, (-EROFS), "read-only file system")                                 \
  XX(ESHUTDOWN, (-ESHUTDOWN), "cannot send after transport endpoint shutdown") \
  XX(ESPIPE, (-ESPIPE), "invalid seek")                                        \
  XX(ESRCH, (-ESRCH), "no such process")                                       \
  XX(ETIMEDOUT, (-ETIMEDOUT), "connection timed out")                          \
  XX(EXDEV, (-EXDEV), "cross-device link not permitted")                       \
  XX(EOF, (-4095), "end of file")                                              \
  XX(ENOTTASK, (-11001), "called outside a weft task")                         \
  XX(ERUNTIME_SHUTDOWN, (-11002), "the runtime is shutting down")              \
  XX(ESTACKOVERFLOW, (-11003), "task stack overflow")                          \
  XX(EBROKEN, (-11004), "barrier is broken")                                   \
  XX(EQUEUE_SHUTDOWN, (-11005), "queue is shut down")                          \
  XX(ETASKGROUP_SHUTDOWN, (-11006), "task group is shut down")                 \
  XX(ESTATE, (-11007), "not valid in the object's current state")              \
  XX(EINCOMPLETE, (-11010), "end of stream before the requested data")         \
  XX(ELIMIT, (-11011), "separator not found within the stream limit")          \
  XX(EOTHER_RUNTIME, (-11012), "object belongs to another runtime")          \
  XX(ETLS, (-11100), "TLS protocol error")                                     \
  XX(ETLS_PEER_ALERT, (-11101), "TLS peer sent a fatal alert")                 \
  XX(ETLS_CERT_UNTRUSTED, (-11102), "TLS certificate from an unknown CA")      \
  XX(ETLS_CERT_SELF_SIGNED, (-11103), "TLS certificate is self-signed")        \
  XX(ETLS_CERT_EXPIRED, (-11104), "TLS certificate has expired")               \
  XX(ETLS_CERT_HOSTNAME, (-11105), "TLS certificate is for another name")      \
  XX(ETLS_CERT_INVALID, (-11106), "TLS certificate is not valid")              \
  XX(ETLS_CERT_REQUIRED, (-11107), "TLS peer certificate required")            \
  XX(ETLS_TRUNCATED, (-11108), "TLS peer closed without close_notify")         \
  XX(ETLS_VERSION, (-11109), "TLS protocol version not supported by peer")     \
  XX(ETLS_CONFIG, (-11110), "bad TLS configuration")                           \
  XX(ETLS_ALPN, (-11111), "TLS: no application protocol in common")

WEFT_BEGIN_DECLS

enum weft_errno {
#define WEFT_ERR_ENUM_(name, value, msg) WEFT_##name = value,
  WEFT_ERRNO_MAP(WEFT_ERR_ENUM_)
#undef WEFT_ERR_ENUM_
  WEFT_ERRNO_MAX_ = -12000
};

/* A human-readable message for err: one of the codes above, any libuv code,
 * "success" for 0, or "unknown error N" (in a static buffer per calling
 * thread) otherwise.
 * Never fails; callable from anywhere. */
WEFT_EXTERN const char *weft_strerror(int err);

/* The code's name without the WEFT_ prefix ("ECANCELED"), any libuv code's
 * name, "OK" for 0 (success), or "UNKNOWN" for a value that is none of
 * these. Never fails; callable from
 * anywhere. */
WEFT_EXTERN const char *weft_err_name(int err);

WEFT_END_DECLS

#endif /* WEFT_ERROR_H */

/*
 * Error names and messages, generated from WEFT_ERRNO_MAP (weft/error.h).
 */
#include "weft/error.h"

#include <stdio.h>
#include <uv.h>

/* weft's codes are libuv's: check the ones libuv defines. */
_Static_assert((int)WEFT_ECANCELED == (int)UV_ECANCELED, "libuv ECANCELED");
_Static_assert((int)WEFT_ETIMEDOUT == (int)UV_ETIMEDOUT, "libuv ETIMEDOUT");
_Static_assert((int)WEFT_ENOMEM == (int)UV_ENOMEM, "libuv ENOMEM");
_Static_assert((int)WEFT_EINVAL == (int)UV_EINVAL, "libuv EINVAL");
_Static_assert((int)WEFT_EAGAIN == (int)UV_EAGAIN, "libuv EAGAIN");
_Static_assert((int)WEFT_EBUSY == (int)UV_EBUSY, "libuv EBUSY");
_Static_assert((int)WEFT_EOF == (int)UV_EOF, "libuv EOF");
_Static_assert((int)WEFT_EAI_NONAME == (int)UV_EAI_NONAME, "libuv EAI_NONAME");
_Static_assert((int)WEFT_EAI_AGAIN == (int)UV_EAI_AGAIN, "libuv EAI_AGAIN");
_Static_assert((int)WEFT_EAI_FAIL == (int)UV_EAI_FAIL, "libuv EAI_FAIL");
_Static_assert((int)WEFT_ECONNREFUSED == (int)UV_ECONNREFUSED, "libuv ECONNREFUSED");
_Static_assert((int)WEFT_ECONNRESET == (int)UV_ECONNRESET, "libuv ECONNRESET");
_Static_assert((int)WEFT_EPIPE == (int)UV_EPIPE, "libuv EPIPE");
_Static_assert((int)WEFT_EADDRINUSE == (int)UV_EADDRINUSE, "libuv EADDRINUSE");
_Static_assert((int)WEFT_ENOTSUP == (int)UV_ENOTSUP, "libuv ENOTSUP");
_Static_assert((int)WEFT_ESHUTDOWN == (int)UV_ESHUTDOWN, "libuv ESHUTDOWN");
_Static_assert((int)WEFT_EOVERFLOW == (int)UV_EOVERFLOW, "libuv EOVERFLOW");
_Static_assert((int)WEFT_EISDIR == (int)UV_EISDIR, "libuv EISDIR");
_Static_assert((int)WEFT_EFBIG == (int)UV_EFBIG, "libuv EFBIG");

/* 1 if err is one of libuv's codes (asking libuv about another code makes
 * it allocate a message it never frees). */
static int is_uv_code(int err) {
  switch (err) {
#define WEFT_UV_CASE_(name, msg) case UV_##name:
    UV_ERRNO_MAP(WEFT_UV_CASE_)
#undef WEFT_UV_CASE_
    return 1;
  default:
    return 0;
  }
}

const char *weft_strerror(int err) {
  switch (err) {
  case 0:
    return "success";
#define WEFT_STRERROR_CASE_(name, value, msg)                                  \
  case WEFT_##name:                                                            \
    return msg;
    WEFT_ERRNO_MAP(WEFT_STRERROR_CASE_)
#undef WEFT_STRERROR_CASE_
  default:
    break;
  }
  if (is_uv_code(err))
    return uv_strerror(err);
  static _Thread_local char buf[48];
  snprintf(buf, sizeof(buf), "unknown error %d", err);
  return buf;
}

const char *weft_err_name(int err) {
  switch (err) {
  case 0:
    return "OK";
#define WEFT_ERR_NAME_CASE_(name, value, msg)                                  \
  case WEFT_##name:                                                            \
    return #name;
    WEFT_ERRNO_MAP(WEFT_ERR_NAME_CASE_)
#undef WEFT_ERR_NAME_CASE_
  default:
    break;
  }
  return is_uv_code(err) ? uv_err_name(err) : "UNKNOWN";
}

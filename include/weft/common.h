/*
 * weft: shared definitions of the public headers (visibility, C++ guards,
 * the no-timeout value).
 */
#ifndef WEFT_COMMON_H
#define WEFT_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* Only declarations marked WEFT_EXTERN leave the shared library; everything
 * else is built with -fvisibility=hidden. */
#if defined(_WIN32)
#if defined(WEFT_BUILDING_SHARED)
#define WEFT_EXTERN __declspec(dllexport)
#elif defined(WEFT_USING_SHARED)
#define WEFT_EXTERN __declspec(dllimport)
#else
#define WEFT_EXTERN
#endif
#elif defined(__GNUC__) && __GNUC__ >= 4
#define WEFT_EXTERN __attribute__((visibility("default")))
#else
#define WEFT_EXTERN
#endif

/* No timeout. Every timeout, delay and deadline argument of weft is a
 * uint64_t count of milliseconds, and this value means "none": wait without
 * limit (weft_task_wait_for(), weft_wait(), weft_future_wait(), ...), or no
 * deadline (weft_timeout_enter(), weft_timeout_reschedule(), ...). */
#define WEFT_NO_TIMEOUT UINT64_MAX

#ifdef __cplusplus
#define WEFT_BEGIN_DECLS extern "C" {
#define WEFT_END_DECLS }
#else
#define WEFT_BEGIN_DECLS
#define WEFT_END_DECLS
#endif

#endif /* WEFT_COMMON_H */

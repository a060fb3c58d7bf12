/*
 * weft version and ABI policy.
 *
 * Versioning follows semantic versioning, applied to the C ABI:
 *
 *  - PATCH releases fix bugs; the ABI and API are unchanged.
 *  - MINOR releases may add functions, error codes and fields appended to the
 *    end of caller-allocated structs that are only ever initialised by weft
 *    (weft_config_init() and friends), never remove or change anything.
 *  - MAJOR releases may break the ABI. The shared library's SONAME is
 *    libweft.so.MAJOR, so programs built against an older major version keep
 *    loading the library they were linked with.
 *  - While MAJOR is 0, a MINOR release may break the ABI; the SONAME is then
 *    libweft.so.0.MINOR so that such a break never loads silently.
 *
 * Opaque handles (weft_task_t, weft_runtime_t, weft_stream_t) never expose
 * their layout; the opaque objects a caller may allocate (weft_queue_t,
 * weft_lock_t, weft_taskgroup_t, ...) expose only their size, which only a
 * release that may break the ABI changes. Options structs a caller
 * allocates (weft_config_t, weft_spawn_opts_t, ...) must be initialised
 * with their _init function so that fields added by a later minor release
 * get their defaults.
 */
#ifndef WEFT_VERSION_H
#define WEFT_VERSION_H

#include "common.h"

#define WEFT_VERSION_MAJOR 0
#define WEFT_VERSION_MINOR 4
#define WEFT_VERSION_PATCH 0

/* 0xMMmmpp: compare with >= to test for a minimum version at compile time. */
#define WEFT_VERSION_HEX                                                       \
  ((WEFT_VERSION_MAJOR << 16) | (WEFT_VERSION_MINOR << 8) | WEFT_VERSION_PATCH)

WEFT_BEGIN_DECLS

/* The version of the library actually loaded, as WEFT_VERSION_HEX. Never
 * fails; may be called from any thread, inside or outside a task. */
WEFT_EXTERN unsigned int weft_version(void);

/* The same as "MAJOR.MINOR.PATCH"; a static string. Never fails. */
WEFT_EXTERN const char *weft_version_string(void);

WEFT_END_DECLS

#endif /* WEFT_VERSION_H */

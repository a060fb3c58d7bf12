/*
 * Backtraces (backtrace.c): capture the return addresses of the current
 * thread's stack or of a suspended task's saved context, and symbolise an
 * address. A leaf beside ctx/: it knows the saved frame of each context
 * switch (ctx.h), nothing of tasks.
 *
 * How a saved context (a suspended task) is walked:
 *  - with libunwind (WEFT_HAVE_LIBUNWIND: CMake option WEFT_LIBUNWIND),
 *    from DWARF call-frame information: works on code built without frame
 *    pointers (the default of -O2);
 *  - without it, by following frame pointers: complete only through code
 *    built with -fno-omit-frame-pointer (weft's own sanitizer builds are);
 *    a walk stops at the first frame without one, or at the stack's bounds.
 *  - the ucontext context switch: saved contexts are not walked (0 frames).
 *
 * weft__backtrace_here() (the current thread) uses libunwind's
 * unw_backtrace, or without libunwind glibc's backtrace() (libgcc's DWARF
 * unwinder), so both work without frame pointers.
 *
 * Async-signal-safety: weft__backtrace_here() is (libunwind documents
 * unw_backtrace as safe for local unwinding; glibc's backtrace() is once
 * libgcc_s is loaded, which a constructor of backtrace.c does at load
 * time), so a signal handler (a watchdog) may use it. It returns at most
 * 64 frames without libunwind. weft__backtrace_ctx()
 * is too, given a stack nobody runs on. weft__symbolize() is NOT: dladdr and
 * libunwind's symbol lookup may take locks and map files.
 */
#ifndef WEFT_BACKTRACE_H
#define WEFT_BACKTRACE_H

#include "ctx/ctx.h"

#include <stddef.h>

/* 1 if this build can walk a saved context (not the ucontext switch). */
int weft__backtrace_ctx_supported(void);

/* The return addresses of the caller's own stack, innermost first (the
 * first one is in the caller): at most max, returns how many. */
int weft__backtrace_here(void **pcs, int max);

/* The return addresses of the context saved in ctx by weft__ctx_switch,
 * innermost first (the first one is the caller of weft__ctx_switch), on the
 * stack [lo, hi). Nobody may run on that stack meanwhile (task dumps hold
 * the task: dump.c). At most max; returns how many. */
int weft__backtrace_ctx(const weft__ctx_t *ctx, const void *lo,
                        const void *hi, void **pcs, int max);

/* "function+0xOFF (object)" for pc into buf, as snprintf (returns the
 * length it needed). `ret` 1: pc is a return address (looked up at pc - 1,
 * the call). Not async-signal-safe. */
int weft__symbolize(const void *pc, int ret, char *buf, size_t size);

#endif /* WEFT_BACKTRACE_H */

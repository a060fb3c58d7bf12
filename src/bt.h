/*
 * Backtraces of the calling thread (bt.c): capture its return addresses,
 * from a signal handler too, and turn addresses into "name+0xOFF (object)"
 * lines with dladdr(3). Minimal on purpose: the watchdog samples a worker
 * with a signal (watchdog.c) and debug mode reports where a misuse was
 * made (report.c). A leaf: needs nothing else of weft.
 */
#ifndef WEFT_BT_H
#define WEFT_BT_H

#include <stddef.h>

/* Make weft__bt_capture() async-signal-safe: glibc's backtrace() loads
 * libgcc_s (dlopen, malloc) at its first call, so call it once outside any
 * signal handler first. Idempotent, thread-safe. */
void weft__bt_warm(void);

/* Store up to max return addresses of the calling thread in pcs, innermost
 * first, skipping the frames of weft__bt_capture itself; returns how many.
 * When uctx is a signal handler's third argument, the frames above the
 * interrupted instruction (the handler, the signal trampoline) are dropped
 * too, so that pcs[0] is where the thread was interrupted. Async-signal-
 * safe once weft__bt_warm() has run (glibc 2.35+ finds unwind tables
 * without a lock; an older one takes the loader's lock, which a thread
 * interrupted inside dlopen() holds). */
int weft__bt_capture(void **pcs, int max, const void *uctx);

/* Append one line per address to buf (NUL-terminated, truncated to size):
 * "    #I 0xADDR NAME+0xOFF (OBJECT)\n". Names come from the dynamic symbol
 * table (dladdr): link programs with -rdynamic for their own functions to
 * be named; static functions never are. Not async-signal-safe. Returns the
 * length written. */
size_t weft__bt_format(char *buf, size_t size, void *const *pcs, int n);

#endif /* WEFT_BT_H */

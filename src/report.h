/*
 * Reports of the watchdog and of debug mode (report.c): a first line, an
 * optional symbolised backtrace, delivered to weft_config_t.watchdog_fn or
 * written to stderr in one write. Also whether debug mode is on for code
 * that has no runtime at hand (the WEFT_DEBUG environment variable).
 */
#ifndef WEFT_REPORT_H
#define WEFT_REPORT_H

#include "weft.h"

/* Deliver r: format r->text as `head` (one line, no newline) followed by
 * r->pcs symbolised, then call cfg->watchdog_fn, or write the text to
 * stderr when cfg is NULL or has no callback. Fills r->text (valid during
 * the call only). Any thread; not async-signal-safe. */
void weft__report_emit(const weft_config_t *cfg, weft_watchdog_report_t *r,
                       const char *head);

/* 1 if the environment asks for debug mode (WEFT_DEBUG set to anything but
 * "" or "0"), read at every call. */
int weft__debug_env(void);

/* Debug mode, misuse: report that `what` was called where it cannot work
 * and returns err, with the caller's backtrace, when debug mode is on
 * (cfg->debug when cfg is not NULL, else weft__debug_env()). Returns err. */
int weft__report_misuse(const weft_config_t *cfg, const char *what, int err,
                        const char *why);

#endif /* WEFT_REPORT_H */

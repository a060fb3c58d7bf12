/* Reports of the watchdog and of debug mode: interface in report.h. */
#include "report.h"

#include "alloc.h"
#include "bt.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { TEXT_MAX = 8192, MISUSE_PCS = 24 };

void weft__report_emit(const weft_config_t *cfg, weft_watchdog_report_t *r,
                       const char *head) {
  char stackbuf[1024];
  char *text = weft__malloc(TEXT_MAX);
  size_t size = text ? TEXT_MAX : sizeof(stackbuf);
  if (!text)
    text = stackbuf; /* out of memory: the first line and a few frames */
  int n = snprintf(text, size, "%s\n", head);
  size_t len = n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
  if (r->npcs)
    len += weft__bt_format(text + len, size - len, r->pcs, (int)r->npcs);
  r->text = text;
  if (!r->task_name)
    r->task_name = "";
  if (!r->what)
    r->what = "";
  if (cfg && cfg->watchdog_fn) {
    cfg->watchdog_fn(r, cfg->watchdog_arg);
  } else {
    /* One write, so that reports of several threads do not interleave. */
    size_t off = 0;
    while (off < len) {
      ssize_t k = write(STDERR_FILENO, text + off, len - off);
      if (k <= 0)
        break;
      off += (size_t)k;
    }
  }
  r->text = NULL;
  if (text != stackbuf)
    weft__free(text);
}

/* Read at every call, not cached: a program (or a test) may set it between
 * runtimes; it is read only at weft_run() and on error paths. */
int weft__debug_env(void) {
  const char *v = getenv("WEFT_DEBUG");
  return v && v[0] && strcmp(v, "0") != 0;
}

__attribute__((noinline)) int
weft__report_misuse(const weft_config_t *cfg, const char *what, int err,
                        const char *why) {
  if (!(cfg ? cfg->debug : weft__debug_env()))
    return err;
  void *raw[MISUSE_PCS + 1];
  /* raw[0] is this function: dropped. Then the API call (unless it
   * tail-called this, as `return weft__report_misuse(...)` may compile),
   * then who made it. */
  int n = weft__bt_capture(raw, MISUSE_PCS + 1, NULL);
  void **pcs = raw + (n > 0);
  n -= n > 0;
  weft_watchdog_report_t r;
  memset(&r, 0, sizeof(r));
  r.kind = WEFT_REPORT_MISUSE;
  r.worker = -1;
  r.status = err;
  r.what = what;
  r.pcs = pcs;
  r.npcs = (size_t)n;
  char head[512];
  snprintf(head, sizeof(head), "weft: debug: %s() %s: returns %s; called at:",
           what, why, weft_err_name(err));
  weft__report_emit(cfg, &r, head);
  return err;
}

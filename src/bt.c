/* Backtraces of the calling thread: interface and caveats in bt.h. */
#include "bt.h"

#include <dlfcn.h>
#include <execinfo.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <ucontext.h>

static pthread_once_t warm_once = PTHREAD_ONCE_INIT;

static void warm(void) {
  void *pcs[4];
  (void)backtrace(pcs, 4); /* loads libgcc_s now, not in a handler */
}

void weft__bt_warm(void) { pthread_once(&warm_once, warm); }

/* The interrupted instruction's address in a signal's context, or NULL on
 * an architecture this file does not know. */
static const void *uctx_pc(const void *uctx) {
  const ucontext_t *uc = uctx;
#if defined(__x86_64__)
  return (const void *)(uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
  return (const void *)(uintptr_t)uc->uc_mcontext.pc;
#else
  (void)uc;
  return NULL;
#endif
}

__attribute__((noinline)) int weft__bt_capture(void **pcs, int max,
                                               const void *uctx) {
  enum { SKIP_MAX = 8 };
  void *raw[64 + SKIP_MAX];
  int cap = max + SKIP_MAX;
  if (cap > (int)(sizeof(raw) / sizeof(raw[0])))
    cap = (int)(sizeof(raw) / sizeof(raw[0]));
  int n = backtrace(raw, cap);
  int first = n > 0 ? 1 : 0; /* this function's own frame */
  const void *pc = uctx ? uctx_pc(uctx) : NULL;
  if (pc) {
    /* The unwinder reports the interrupted frame's exact address (a
     * signal frame is not adjusted like a return address). */
    for (int i = 0; i < n && i < SKIP_MAX; i++)
      if (raw[i] == pc) {
        first = i;
        break;
      }
  }
  int k = 0;
  for (int i = first; i < n && k < max; i++)
    pcs[k++] = raw[i];
  return k;
}

size_t weft__bt_format(char *buf, size_t size, void *const *pcs, int n) {
  size_t len = 0;
  if (size == 0)
    return 0;
  buf[0] = 0;
  for (int i = 0; i < n && len + 1 < size; i++) {
    Dl_info info = {0};
    int r;
    int found = dladdr(pcs[i], &info) != 0;
    if (found && info.dli_sname) {
      r = snprintf(buf + len, size - len, "    #%d %p %s+0x%lx (%s)\n", i,
                   pcs[i], info.dli_sname,
                   (unsigned long)((uintptr_t)pcs[i] -
                                   (uintptr_t)info.dli_saddr),
                   info.dli_fname ? info.dli_fname : "?");
    } else if (found && info.dli_fname && info.dli_fname[0]) {
      r = snprintf(buf + len, size - len, "    #%d %p ? (%s+0x%lx)\n", i,
                   pcs[i], info.dli_fname,
                   (unsigned long)((uintptr_t)pcs[i] -
                                   (uintptr_t)info.dli_fbase));
    } else {
      r = snprintf(buf + len, size - len, "    #%d %p ?\n", i, pcs[i]);
    }
    if (r < 0)
      break;
    len += (size_t)r;
    if (len >= size)
      len = size - 1; /* truncated */
  }
  return len;
}

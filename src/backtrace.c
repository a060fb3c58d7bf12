/*
 * Backtraces: capture (the current thread, a saved context) and symbolise.
 * What works where is said in backtrace.h. The saved frame of each context
 * switch is the one its assembly documents (ctx/jump_*.S):
 *   x86_64: [sp+48] rbp, [sp+56] resume address, caller's rsp = sp + 64
 *           (r15, r14, r13, r12, rbx at [sp+8] .. [sp+40])
 *   arm64:  [sp+0x90] x29 (fp), [sp+0x98] x30 (resume address),
 *           caller's sp = sp + 0xb0
 */
#include "backtrace.h"

#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#if defined(WEFT_HAVE_LIBUNWIND)
#define UNW_LOCAL_ONLY
#include <libunwind.h>
#include <ucontext.h>
#endif

#if !defined(WEFT_HAVE_LIBUNWIND)
#include <execinfo.h>
/* The most frames weft__backtrace_here() takes without libunwind. */
#define WEFT__BT_HERE_MAX 64
#endif

#if defined(WEFT_CTX_x86_64) || defined(WEFT_CTX_arm64)
#define CAN_WALK_CTX 1
#else
#define CAN_WALK_CTX 0
#endif

int weft__backtrace_ctx_supported(void) { return CAN_WALK_CTX; }

/* Follow the frame-pointer chain from fp, within [lo, hi) when lo is set.
 * Not instrumented: the words read are saved frame pointers and return
 * addresses of frames that are not running (no sanitizer shadow says
 * anything useful about them). */
__attribute__((no_sanitize("address", "thread"))) static int
fp_walk(uintptr_t fp, uintptr_t lo, uintptr_t hi, void **pcs, int n,
        int max) {
  while (n < max && fp && (fp & (sizeof(void *) - 1)) == 0 &&
         (!lo || (fp >= lo && fp + 2 * sizeof(void *) <= hi))) {
    const uintptr_t *frame = (const uintptr_t *)fp;
    uintptr_t pc = frame[1];
    uintptr_t next = frame[0];
    if (!pc)
      break;
    pcs[n++] = (void *)pc;
    if (next <= fp)
      break; /* frames go up the stack; anything else is no frame chain */
    fp = next;
  }
  return n;
}

int weft__backtrace_here(void **pcs, int max) {
  if (!pcs || max <= 0)
    return 0;
#if defined(WEFT_HAVE_LIBUNWIND)
  int n = unw_backtrace(pcs, max);
  if (n <= 1)
    return n < 0 ? 0 : n;
  /* unw_backtrace starts in this function: drop it. */
  memmove(pcs, pcs + 1, (size_t)(n - 1) * sizeof(void *));
  return n - 1;
#else
  /* glibc's backtrace() (libgcc's DWARF unwinder: no frame pointers
   * needed). Its first call loads libgcc_s, which is not async-signal-safe:
   * the constructor below makes that call at load time. */
  void *buf[WEFT__BT_HERE_MAX + 1];
  int want = max < WEFT__BT_HERE_MAX ? max + 1 : WEFT__BT_HERE_MAX + 1;
  int n = backtrace(buf, want);
  if (n <= 1)
    return 0;
  memcpy(pcs, buf + 1, (size_t)(n - 1) * sizeof(void *)); /* drop ours */
  return n - 1;
#endif
}

#if !defined(WEFT_HAVE_LIBUNWIND)
__attribute__((constructor)) static void backtrace_prime(void) {
  void *one[1];
  (void)backtrace(one, 1);
}
#endif

#if defined(WEFT_HAVE_LIBUNWIND) && defined(WEFT_CTX_x86_64)
/* libunwind's cache of unwind tables, off by default in some builds: a
 * dump walks thousands of stacks through the same few functions. */
static void cache_on(void) {
  (void)unw_set_caching_policy(unw_local_addr_space, UNW_CACHE_PER_THREAD);
}
#endif

#if CAN_WALK_CTX
__attribute__((no_sanitize("address", "thread"))) static uintptr_t
saved_word(const weft__ctx_t *ctx, size_t off) {
  return *(const uintptr_t *)((const char *)ctx->sp + off);
}
#endif

int weft__backtrace_ctx(const weft__ctx_t *ctx, const void *lo,
                        const void *hi, void **pcs, int max) {
#if CAN_WALK_CTX
  if (!ctx || !ctx->sp || !pcs || max <= 0)
    return 0;
  uintptr_t sp = (uintptr_t)ctx->sp;
  uintptr_t l = (uintptr_t)lo, h = (uintptr_t)hi;
#if defined(WEFT_CTX_x86_64)
  const size_t frame = 64, fp_off = 48, pc_off = 56;
#else
  const size_t frame = 0xb0, fp_off = 0x90, pc_off = 0x98;
#endif
  if (sp < l || sp + frame > h)
    return 0; /* not a context saved on this stack */
  uintptr_t pc = saved_word(ctx, pc_off), fp = saved_word(ctx, fp_off);
#if defined(WEFT_HAVE_LIBUNWIND) && defined(WEFT_CTX_x86_64)
  {
    ucontext_t uc;
    memset(&uc, 0, sizeof(uc));
    greg_t *g = uc.uc_mcontext.gregs;
    g[REG_R15] = (greg_t)saved_word(ctx, 8);
    g[REG_R14] = (greg_t)saved_word(ctx, 16);
    g[REG_R13] = (greg_t)saved_word(ctx, 24);
    g[REG_R12] = (greg_t)saved_word(ctx, 32);
    g[REG_RBX] = (greg_t)saved_word(ctx, 40);
    g[REG_RBP] = (greg_t)fp;
    g[REG_RIP] = (greg_t)pc;
    g[REG_RSP] = (greg_t)(sp + frame);
    unw_cursor_t cur;
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, cache_on);
    if (unw_init_local(&cur, (unw_context_t *)&uc) == 0) {
      int n = 0;
      do {
        unw_word_t ip = 0, usp = 0;
        if (unw_get_reg(&cur, UNW_REG_IP, &ip) != 0 || ip == 0)
          break;
        /* Stay on this stack: past its top is no frame of the task. */
        if (unw_get_reg(&cur, UNW_REG_SP, &usp) != 0 || usp < l || usp > h)
          break;
        pcs[n++] = (void *)ip;
      } while (n < max && unw_step(&cur) > 0);
      if (n > 0)
        return n;
    }
  }
#endif
  pcs[0] = (void *)pc;
  return fp_walk(fp, l, h, pcs, 1, max);
#else
  (void)ctx;
  (void)lo;
  (void)hi;
  (void)pcs;
  (void)max;
  return 0;
#endif
}

static const char *base_name(const char *path) {
  const char *s = path ? strrchr(path, '/') : NULL;
  return s ? s + 1 : path ? path : "?";
}

int weft__symbolize(const void *pc, int ret, char *buf, size_t size) {
  uintptr_t a = (uintptr_t)pc;
  uintptr_t look = ret && a ? a - 1 : a; /* the call, not what follows it */
  Dl_info info;
  const ElfW(Sym) *sym = NULL;
  int have = dladdr1((void *)look, &info, (void **)&sym, RTLD_DL_SYMENT) != 0;
  const char *obj = have ? base_name(info.dli_fname) : "?";
  /* The dynamic symbol table first, when the address lies inside the
   * symbol dladdr found (dladdr's nearest symbol below an address may be
   * an unrelated exported one: a hidden or static function has none). */
  if (have && info.dli_sname && info.dli_saddr && sym &&
      (uintptr_t)look < (uintptr_t)info.dli_saddr + sym->st_size)
    return snprintf(buf, size, "%s+0x%lx (%s)", info.dli_sname,
                    (unsigned long)(a - (uintptr_t)info.dli_saddr), obj);
#if defined(WEFT_HAVE_LIBUNWIND)
  {
    /* The object's full symbol table (static functions too), through a
     * cursor whose IP is the address asked about. */
    unw_context_t uc;
    unw_cursor_t cur;
    char name[256];
    unw_word_t off = 0;
    if (unw_getcontext(&uc) == 0 && unw_init_local(&cur, &uc) == 0 &&
        unw_set_reg(&cur, UNW_REG_IP, (unw_word_t)look) == 0 &&
        unw_get_proc_name(&cur, name, sizeof(name), &off) == 0 && name[0])
      return snprintf(buf, size, "%s+0x%lx (%s)", name,
                      (unsigned long)(off + (look != a)), obj);
  }
#endif
  if (have)
    return snprintf(buf, size, "%s+0x%lx", obj,
                    (unsigned long)(a - (uintptr_t)info.dli_fbase));
  return snprintf(buf, size, "%p", pc);
}

/*
 * weft__ctx_make for the assembly context switches: lay out a fresh stack so
 * that the first weft__ctx_switch() to it "returns" into weft__ctx_trampoline
 * with fn and arg in callee-saved registers. The frame layouts are documented
 * in the .S files.
 */
#include "ctx/ctx.h"

#include <stdint.h>
#include <string.h>

void weft__ctx_trampoline(void);

#if defined(WEFT_CTX_x86_64)

void weft__ctx_make(weft__ctx_t *ctx, void *stack, size_t size, weft__ctx_fn fn,
                    void *arg) {
  uintptr_t top = ((uintptr_t)stack + size) & ~(uintptr_t)15;
  /* 8 slots popped by the switch; the slot address is 16-byte aligned so the
   * trampoline starts with an aligned stack and its call is ABI-conformant. */
  uint64_t *sp = (uint64_t *)(top - 16 - 8 * sizeof(uint64_t));
  memset(sp, 0, 8 * sizeof(uint64_t));
  sp[0] = 0x1F80u | ((uint64_t)0x037Fu << 32); /* default MXCSR and x87 CW */
  sp[3] = (uint64_t)(uintptr_t)fn;             /* r13 */
  sp[4] = (uint64_t)(uintptr_t)arg;            /* r12 */
  sp[7] = (uint64_t)(uintptr_t)weft__ctx_trampoline;
  ctx->sp = sp;
}

#elif defined(WEFT_CTX_arm64)

void weft__ctx_make(weft__ctx_t *ctx, void *stack, size_t size, weft__ctx_fn fn,
                    void *arg) {
  uintptr_t top = ((uintptr_t)stack + size) & ~(uintptr_t)15;
  uint64_t *sp = (uint64_t *)(top - 16 - 0xb0);
  memset(sp, 0, 0xb0);
  sp[8] = (uint64_t)(uintptr_t)fn;   /* x19 */
  sp[9] = (uint64_t)(uintptr_t)arg;  /* x20 */
  sp[19] = (uint64_t)(uintptr_t)weft__ctx_trampoline; /* x30 */
  ctx->sp = sp;
}

#else
#error "ctx_make.c is for the assembly context switches"
#endif

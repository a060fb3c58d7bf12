/*
 * Portable context switch on ucontext: the fallback for targets without an
 * assembly implementation. glibc's swapcontext makes a sigprocmask system
 * call per switch (about 168 ns on the reference machine against 2.9 ns for
 * the x86-64 assembly), so it is never chosen where one exists.
 */
#include "ctx/ctx.h"

#include <stdint.h>
#include <stdlib.h>

/* makecontext passes int arguments only: split the two pointers. */
static void ucontext_entry(unsigned fn_lo, unsigned fn_hi, unsigned arg_lo,
                           unsigned arg_hi) {
  weft__ctx_fn fn =
      (weft__ctx_fn)(uintptr_t)(((uint64_t)fn_hi << 32) | (uint64_t)fn_lo);
  void *arg = (void *)(uintptr_t)(((uint64_t)arg_hi << 32) | (uint64_t)arg_lo);
  fn(arg);
  abort(); /* fn never returns */
}

void weft__ctx_make(weft__ctx_t *ctx, void *stack, size_t size, weft__ctx_fn fn,
                    void *arg) {
  uint64_t f = (uint64_t)(uintptr_t)fn;
  uint64_t a = (uint64_t)(uintptr_t)arg;
  getcontext(&ctx->uc);
  ctx->uc.uc_stack.ss_sp = stack;
  ctx->uc.uc_stack.ss_size = size;
  ctx->uc.uc_link = NULL;
  makecontext(&ctx->uc, (void (*)(void))ucontext_entry, 4, (unsigned)f,
              (unsigned)(f >> 32), (unsigned)a, (unsigned)(a >> 32));
}

void weft__ctx_switch(weft__ctx_t *from, weft__ctx_t *to) {
  swapcontext(&from->uc, &to->uc);
}

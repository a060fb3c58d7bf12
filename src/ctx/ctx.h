/*
 * Context switch: the machine-dependent core of a coroutine.
 *
 * A context is a saved stack pointer. weft__ctx_switch(from, to) pushes the
 * callee-saved registers and the FP control words onto the current stack,
 * stores the stack pointer in *from, loads *to's and pops the same frame
 * there. A fresh context made by weft__ctx_make() starts in fn(arg) on the
 * given stack; fn must never return (a finished task switches away for good).
 *
 * Implementations (one selected by CMake): jump_x86_64_sysv_elf_gas.S,
 * jump_arm64_aapcs_elf_gas.S, ctx_ucontext.c (portable fallback; makes a
 * sigprocmask system call per switch, so never the default where an
 * assembly one exists).
 */
#ifndef WEFT_CTX_H
#define WEFT_CTX_H

#include <stddef.h>

#if defined(WEFT_CTX_ucontext)
#include <ucontext.h>
typedef struct weft__ctx {
  ucontext_t uc; /* the saved machine context */
} weft__ctx_t;
#else
typedef struct weft__ctx {
  void *sp; /* saved stack pointer; the registers are on that stack */
} weft__ctx_t;
#endif

typedef void (*weft__ctx_fn)(void *arg);

/* Prepare ctx to start fn(arg) on the stack [stack, stack + size) at its first
 * switch. */
void weft__ctx_make(weft__ctx_t *ctx, void *stack, size_t size, weft__ctx_fn fn,
                    void *arg);

/* Save the current context in *from and resume *to. Returns when something
 * switches back to *from. */
void weft__ctx_switch(weft__ctx_t *from, weft__ctx_t *to);

#endif /* WEFT_CTX_H */

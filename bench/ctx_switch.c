/*
 * weft-bench-ctx: the cost of weft's raw context switch (src/ctx/), next to
 * glibc's swapcontext for comparison.
 *
 * Two contexts ping-pong: the main one switches to a coroutine on a 64 KiB
 * mmap'd stack, which switches straight back, SWITCHES times in all (a round
 * trip is 2 switches). Prints one line:
 *
 *   RESULT ctx_switch weft 1 ns_per_switch=X switches=N
 *          ns_per_swapcontext=Y swapcontexts=M
 *
 * It uses the library's internal header and its hidden-visibility symbols,
 * so it links the static library.
 */
#define _GNU_SOURCE

#include "ctx/ctx.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <ucontext.h>

#define STACK_SIZE (64u * 1024u)
/* Switches of the timed weft run (a round trip is 2). */
#define SWITCHES 10000000u
/* Switches of the timed swapcontext run: it makes a system call per switch,
 * so fewer suffice. */
#define SWAPCONTEXTS 1000000u
/* Untimed switches first, so that both runs start warm. */
#define WARMUP 100000u

static weft__ctx_t main_ctx; /* the benchmark's own context */
static weft__ctx_t co_ctx;   /* the coroutine that bounces straight back */

static ucontext_t main_uc; /* the same pair for swapcontext */
static ucontext_t co_uc;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *stack_new(void) {
  void *p = mmap(NULL, STACK_SIZE, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

/* A weft__ctx_fn must never return. */
static void bounce(void *arg) {
  (void)arg;
  for (;;)
    weft__ctx_switch(&co_ctx, &main_ctx);
}

static void bounce_uc(void) {
  for (;;)
    swapcontext(&co_uc, &main_uc);
}

/* Nanoseconds per switch over `switches` switches (rounded down to even). */
static double time_weft(unsigned switches) {
  uint64_t t0 = now_ns();
  for (unsigned i = 0; i < switches / 2; i++)
    weft__ctx_switch(&main_ctx, &co_ctx);
  return (double)(now_ns() - t0) / (double)(switches / 2 * 2);
}

static double time_swapcontext(unsigned switches) {
  uint64_t t0 = now_ns();
  for (unsigned i = 0; i < switches / 2; i++)
    swapcontext(&main_uc, &co_uc);
  return (double)(now_ns() - t0) / (double)(switches / 2 * 2);
}

int main(void) {
  void *stack = stack_new();
  void *stack_uc = stack_new();
  if (stack == NULL || stack_uc == NULL) {
    fprintf(stderr, "weft-bench-ctx: mmap of a %u-byte stack failed\n",
            STACK_SIZE);
    return 1;
  }

  weft__ctx_make(&co_ctx, stack, STACK_SIZE, bounce, NULL);
  time_weft(WARMUP);
  double ns_switch = time_weft(SWITCHES);

  if (getcontext(&co_uc) != 0) {
    fprintf(stderr, "weft-bench-ctx: getcontext failed\n");
    return 1;
  }
  co_uc.uc_stack.ss_sp = stack_uc;
  co_uc.uc_stack.ss_size = STACK_SIZE;
  co_uc.uc_link = NULL;
  makecontext(&co_uc, bounce_uc, 0);
  time_swapcontext(WARMUP);
  double ns_swap = time_swapcontext(SWAPCONTEXTS);

  printf("RESULT ctx_switch weft 1 ns_per_switch=%.2f switches=%u "
         "ns_per_swapcontext=%.2f swapcontexts=%u\n",
         ns_switch, SWITCHES, ns_swap, SWAPCONTEXTS);
  fflush(stdout);
  /* The coroutines are parked mid-loop for good; their stacks go with the
   * process. */
  return 0;
}

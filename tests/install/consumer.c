/*
 * consumer.c: a program built out of tree against an installed weft, once
 * with pkg-config and once with find_package(weft) (see check.sh). The main
 * task spawns a task, awaits it and checks its result, and passes the
 * result through a queue on its own memory (0.2's weft_queue_init()), and
 * a build with TLS makes a default client context (0.3's weft/tls.h: its
 * OpenSSL dependency must link, statically too); the program prints
 * "consumer ok weft X.Y.Z" and exits 0 when everything matched.
 */
#include <weft.h>

#if WEFT_VERSION_HEX < 0x000300
#error "consumer.c uses the weft 0.3 API"
#endif

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static void *square(void *arg) {
  uintptr_t n = (uintptr_t)arg;
  /* Suspend once, so the result crosses a real suspension point. */
  int err = weft_yield();
  if (err != 0)
    return weft_task_fail(err);
  return (void *)(n * n);
}

static void *async_main(void *arg) {
  (void)arg;
  weft_task_t *t;
  int err = weft_spawn(square, (void *)(uintptr_t)7, &t);
  if (err != 0)
    return weft_task_fail(err);
  void *result = NULL;
  err = weft_task_wait_for(t, WEFT_NO_TIMEOUT, &result);
  weft_task_unref(t);
  if (err != 0)
    return weft_task_fail(err);
  weft_queue_t q; /* caller memory */
  err = weft_queue_init(&q, 1);
  if (err != 0)
    return weft_task_fail(err);
  err = weft_queue_put(&q, result);
  if (err == 0)
    err = weft_queue_get(&q, &result);
  int derr = weft_queue_destroy(&q);
  if (err == 0)
    err = derr;
  if (err != 0)
    return weft_task_fail(err);
  return result;
}

int main(void) {
  /* The headers compiled against and the library loaded must agree. */
  if (weft_version() != WEFT_VERSION_HEX) {
    fprintf(stderr, "consumer: header version %#x, library version %#x\n",
            (unsigned)WEFT_VERSION_HEX, weft_version());
    return EXIT_FAILURE;
  }

  if (weft_tls_available()) {
    weft_tls_ctx_t *ctx;
    int terr = weft_tls_ctx_new(NULL, &ctx);
    if (terr != 0) {
      fprintf(stderr, "consumer: weft_tls_ctx_new: %s\n", weft_strerror(terr));
      return EXIT_FAILURE;
    }
    weft_tls_ctx_free(ctx);
  }

  void *result = NULL;
  int err = weft_run(async_main, NULL, NULL, &result);
  if (err != 0) {
    fprintf(stderr, "consumer: weft_run: %s (%s)\n", weft_strerror(err),
            weft_err_name(err));
    return EXIT_FAILURE;
  }
  if ((uintptr_t)result != 49) {
    fprintf(stderr, "consumer: expected 49, got %lu\n",
            (unsigned long)(uintptr_t)result);
    return EXIT_FAILURE;
  }
  printf("consumer ok weft %s\n", weft_version_string());
  return EXIT_SUCCESS;
}

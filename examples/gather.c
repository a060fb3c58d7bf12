/*
 * gather.c: two coroutines run concurrently with asyncio.gather().
 *
 *     async def say_hello():
 *         print("Hello!")
 *         await asyncio.sleep(2)
 *         print("Hello again after 2 seconds!")
 *
 *     async def say_goodbye():
 *         print("Goodbye!")
 *         await asyncio.sleep(1)
 *         print("Goodbye again after 1 second!")
 *
 *     async def main():
 *         await asyncio.gather(say_hello(), say_goodbye())
 *
 *     asyncio.run(main())
 *
 * asyncio.gather() wraps each coroutine in a task; weft_gather() takes the
 * tasks, so the port spawns them first (weft_spawn) and then gathers. The
 * last line, which the Python program does not print, shows that the two
 * sleeps overlapped: the whole takes about 2 seconds, not 3.
 *
 * Expected output (deterministic mode, so exactly asyncio's order):
 *
 *     Hello!
 *     Goodbye!
 *     Goodbye again after 1 second!
 *     Hello again after 2 seconds!
 *     took 2.0 s
 */
#include <weft.h>

#include <stdio.h>
#include <stdlib.h>

static void *say_hello(void *arg) {
  (void)arg;
  printf("Hello!\n");
  int err = weft_sleep(2000);
  if (err != 0)
    return weft_task_fail(err);
  printf("Hello again after 2 seconds!\n");
  return NULL;
}

static void *say_goodbye(void *arg) {
  (void)arg;
  printf("Goodbye!\n");
  int err = weft_sleep(1000);
  if (err != 0)
    return weft_task_fail(err);
  printf("Goodbye again after 1 second!\n");
  return NULL;
}

static void *async_main(void *arg) {
  (void)arg;
  weft_task_fn bodies[2] = {say_hello, say_goodbye};
  weft_task_t *tasks[2] = {NULL, NULL};
  uint64_t start = weft_time_ms(); /* asyncio: loop.time() */

  int err = 0;
  size_t spawned = 0;
  for (; spawned < 2; spawned++) {
    err = weft_spawn(bodies[spawned], NULL, &tasks[spawned]);
    if (err != 0) {
      fprintf(stderr, "gather: weft_spawn: %s\n", weft_strerror(err));
      break;
    }
  }
  if (err == 0) {
    err = weft_gather(tasks, spawned, NULL);
    if (err != 0)
      fprintf(stderr, "gather: weft_gather: %s\n", weft_strerror(err));
  }
  /* Each handle holds one reference; tasks still running when the last one
   * goes are detached, and weft_run cancels them when this task returns. */
  for (size_t i = 0; i < spawned; i++)
    weft_task_unref(tasks[i]);
  if (err != 0)
    return weft_task_fail(err);

  printf("took %.1f s\n", (double)(weft_time_ms() - start) / 1000.0);
  return NULL;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);

  weft_config_t cfg;
  weft_config_init(&cfg);
  cfg.deterministic = 1;

  int err = weft_run(async_main, NULL, &cfg, NULL);
  if (err != 0) {
    fprintf(stderr, "gather: weft_run: %s\n", weft_strerror(err));
    return EXIT_FAILURE;
  }
  return EXIT_SUCCESS;
}

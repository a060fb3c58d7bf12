/*
 * hello.c: the first program of the asyncio tutorial, ported to weft.
 *
 *     async def say_hello():
 *         print("Hello!")
 *         await asyncio.sleep(1)
 *         print("Hello again after 1 second!")
 *
 *     async def main():
 *         print("Start")
 *         await say_hello()
 *         print("End")
 *
 *     asyncio.run(main())
 *
 * `await say_hello()` runs the coroutine inside the awaiting task, without
 * creating a new one. In weft a task body is ordinary sequential C, so the
 * faithful port is a plain function call from the main task: only
 * weft_sleep() suspends, and it lets other tasks (there are none here) run.
 *
 * Expected output (deterministic mode, so exactly asyncio's order):
 *
 *     Start
 *     Hello!
 *     Hello again after 1 second!
 *     End
 */
#include <weft.h>

#include <stdio.h>
#include <stdlib.h>

static int say_hello(void) {
  printf("Hello!\n");
  int err = weft_sleep(1000);
  if (err != 0)
    return err;
  printf("Hello again after 1 second!\n");
  return 0;
}

static void *async_main(void *arg) {
  (void)arg;
  printf("Start\n");
  int err = say_hello();
  if (err != 0) {
    fprintf(stderr, "hello: weft_sleep: %s\n", weft_strerror(err));
    return weft_task_fail(err);
  }
  printf("End\n");
  return NULL;
}

int main(void) {
  /* Line-buffered even into a pipe, so the lines interleave in the order the
   * tasks printed them. */
  setvbuf(stdout, NULL, _IOLBF, 0);

  weft_config_t cfg;
  weft_config_init(&cfg);
  cfg.deterministic = 1;

  int err = weft_run(async_main, NULL, &cfg, NULL);
  if (err != 0) {
    fprintf(stderr, "hello: weft_run: %s\n", weft_strerror(err));
    return EXIT_FAILURE;
  }
  return EXIT_SUCCESS;
}

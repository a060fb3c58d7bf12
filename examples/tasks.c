/*
 * tasks.c: asyncio.create_task() and `await task`.
 *
 *     async def say_after(delay, what):
 *         await asyncio.sleep(delay)
 *         print(what)
 *
 *     async def main():
 *         print(f"started at {time.strftime('%X')}")
 *         task1 = asyncio.create_task(say_after(1, 'hello'))
 *         task2 = asyncio.create_task(say_after(2, 'world'))
 *         print(f"waiting for tasks to complete...")
 *         await task1
 *         await task2
 *         print(f"finished at {time.strftime('%X')}")
 *
 *     asyncio.run(main())
 *
 * weft_spawn() only queues the new task, as create_task() does: main keeps
 * running until it suspends in weft_task_await(), and only then do the two
 * tasks start. Their sleeps overlap, so "finished at" is about 2 seconds
 * after "started at", not 3.
 *
 * Expected output (deterministic mode, so exactly asyncio's order):
 *
 *     started at 12:00:00
 *     waiting for tasks to complete...
 *     hello
 *     world
 *     finished at 12:00:02
 */
#include <weft.h>

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

struct say_after_args {
  uint64_t delay_ms;
  const char *what;
};

static void *say_after(void *arg) {
  const struct say_after_args *a = arg;
  int err = weft_sleep(a->delay_ms);
  if (err != 0)
    return weft_task_fail(err);
  printf("%s\n", a->what);
  return NULL;
}

/* time.strftime('%X'): the local time of day. localtime()'s static buffer is
 * used before the task can suspend, so no other task can overwrite it. */
static void print_time(const char *label) {
  char buf[64];
  time_t now = time(NULL);
  const struct tm *tm = localtime(&now);
  if (tm == NULL || strftime(buf, sizeof buf, "%X", tm) == 0)
    snprintf(buf, sizeof buf, "?");
  printf("%s at %s\n", label, buf);
}

static void *async_main(void *arg) {
  (void)arg;
  /* Static, so that the arguments outlive the tasks even on an error path
   * where this task returns before they have finished. */
  static struct say_after_args a1 = {1000, "hello"};
  static struct say_after_args a2 = {2000, "world"};
  weft_task_t *task1 = NULL;
  weft_task_t *task2 = NULL;

  print_time("started");

  int err = weft_spawn(say_after, &a1, &task1);
  if (err != 0) {
    fprintf(stderr, "tasks: weft_spawn: %s\n", weft_strerror(err));
    return weft_task_fail(err);
  }
  err = weft_spawn(say_after, &a2, &task2);
  if (err != 0) {
    fprintf(stderr, "tasks: weft_spawn: %s\n", weft_strerror(err));
    /* Detach task1; weft_run cancels it when this task returns. */
    weft_task_unref(task1);
    return weft_task_fail(err);
  }

  printf("waiting for tasks to complete...\n");

  err = weft_task_await(task1, NULL);
  if (err == 0)
    err = weft_task_await(task2, NULL);
  if (err != 0)
    fprintf(stderr, "tasks: weft_task_await: %s\n", weft_strerror(err));
  weft_task_unref(task1);
  weft_task_unref(task2);
  if (err != 0)
    return weft_task_fail(err);

  print_time("finished");
  return NULL;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);

  weft_config_t cfg;
  weft_config_init(&cfg);
  cfg.deterministic = 1;

  int err = weft_run(async_main, NULL, &cfg, NULL);
  if (err != 0) {
    fprintf(stderr, "tasks: weft_run: %s\n", weft_strerror(err));
    return EXIT_FAILURE;
  }
  return EXIT_SUCCESS;
}

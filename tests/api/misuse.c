/*
 * api_misuse: misuse of a task handle is undefined behaviour (task.h), and
 * in ASan builds weft poisons free task records and free stacks so that
 * ASan reports it instead of letting it read a recycled record.
 *
 * Each case runs in a child process (this executable, re-run with the case
 * name as its argument) that commits the misuse; the test passes when the
 * child dies with an ASan "use-after-poison" report. A control case that
 * does the same without the misuse must exit 0, so that the check can tell
 * the two apart. Outside ASan builds every test is skipped: nothing there
 * reports the misuse.
 */
#include "harness.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* ---- the children -------------------------------------------------------- */

static void *returns_7(void *arg) {
  (void)arg;
  return (void *)(uintptr_t)7;
}

static void *sleeps(void *arg) {
  (void)arg;
  (void)weft_sleep(20);
  return NULL;
}

static int *volatile escaped; /* a pointer into a finished task's stack */

/* Out of line, so that the compiler does not see the pointer escape. */
static __attribute__((noinline)) void keep(int *p) { escaped = p; }

static void *leaks_its_stack(void *arg) {
  int local[64];
  (void)arg;
  for (int i = 0; i < 64; i++)
    local[i] = i;
  keep(&local[10]); /* never do this */
  return NULL;
}

/* The correct program the cases break: spawn, await, unref. */
static void *control_main(void *arg) {
  weft_task_t *t;
  void *r = NULL;
  (void)arg;
  if (weft_spawn(returns_7, NULL, &t) != 0 || weft_task_await(t, &r) != 0 ||
      r != (void *)(uintptr_t)7)
    abort();
  weft_task_unref(t);
  return NULL;
}

/* Await after the last unref: on a recycled record it used to return 0. */
static void *await_after_unref_main(void *arg) {
  weft_task_t *t;
  (void)arg;
  if (weft_spawn(returns_7, NULL, &t) != 0 || weft_task_await(t, NULL) != 0)
    abort();
  weft_task_unref(t);
  (void)weft_task_await(t, NULL); /* misuse */
  return NULL;
}

/* Two unrefs of one handle while the task runs: the record is freed under
 * the running task. */
static void *double_unref_main(void *arg) {
  weft_task_t *t;
  (void)arg;
  if (weft_spawn(sleeps, NULL, &t) != 0)
    abort();
  weft_task_unref(t);
  weft_task_unref(t); /* misuse */
  (void)weft_sleep(200); /* the task resumes on its freed record */
  return NULL;
}

/* Cancel (which reads only fields a free record keeps readable) after the
 * last unref. */
static void *cancel_after_unref_main(void *arg) {
  weft_task_t *t;
  (void)arg;
  if (weft_spawn(returns_7, NULL, &t) != 0 || weft_task_await(t, NULL) != 0)
    abort();
  weft_task_unref(t);
  (void)weft_task_cancel(t); /* misuse */
  return NULL;
}

/* A pointer into a finished task's stack, used afterwards. */
static void *stack_after_exit_main(void *arg) {
  weft_task_t *t;
  (void)arg;
  if (weft_spawn(leaks_its_stack, NULL, &t) != 0 ||
      weft_task_await(t, NULL) != 0)
    abort();
  weft_task_unref(t);
  if (*escaped != 10) /* misuse */
    abort();
  return NULL;
}

static const struct {
  const char *name;
  weft_task_fn fn;
} cases[] = {
    {"control", control_main},
    {"await_after_unref", await_after_unref_main},
    {"double_unref", double_unref_main},
    {"cancel_after_unref", cancel_after_unref_main},
    {"stack_after_exit", stack_after_exit_main},
};

static int run_child(const char *name) {
  weft_config_t cfg;
  weft_config_init(&cfg);
  cfg.workers = 2;
  for (size_t i = 0; i < HARNESS_COUNT(cases); i++)
    if (strcmp(cases[i].name, name) == 0)
      return weft_run(cases[i].fn, NULL, &cfg, NULL) == 0 ? 0 : 3;
  return 2;
}

/* ---- the parent ----------------------------------------------------------- */

/* Run this executable on case `name`; store its wait status and the tail of
 * its stderr. */
static void spawn_case(const char *name, int *status, char *err, size_t cap) {
  char path[] = "/tmp/weft-misuse-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  posix_spawn_file_actions_t fa;
  assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
  assert_int_equal(posix_spawn_file_actions_adddup2(&fa, fd, STDERR_FILENO),
                   0);
  char *argv[] = {(char *)"api_misuse", (char *)name, NULL};
  pid_t pid;
  assert_int_equal(
      posix_spawn(&pid, "/proc/self/exe", &fa, NULL, argv, environ), 0);
  posix_spawn_file_actions_destroy(&fa);
  assert_int_equal(waitpid(pid, status, 0), pid);
  off_t len = lseek(fd, 0, SEEK_END);
  off_t from = len > (off_t)cap - 1 ? len - (off_t)cap + 1 : 0;
  ssize_t n = pread(fd, err, cap - 1, from);
  err[n > 0 ? n : 0] = '\0';
  close(fd);
  unlink(path);
}

static void expect_report(const char *name) {
#if defined(WEFT_SANITIZE_ADDRESS)
  static char err[1 << 16];
  int status;
  /* The child's verdict must come from the misuse, not from a leak check
   * of a child that ASan killed mid-run. */
  const char *old = getenv("ASAN_OPTIONS");
  char opts[512];
  snprintf(opts, sizeof opts, "%s%sdetect_leaks=0", old ? old : "",
           old && *old ? ":" : "");
  setenv("ASAN_OPTIONS", opts, 1);
  spawn_case(name, &status, err, sizeof err);
  if (strcmp(name, "control") == 0) {
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      fail_msg("the control child failed (status %#x):\n%s", status, err);
    return;
  }
  if ((WIFEXITED(status) && WEXITSTATUS(status) == 0) ||
      !strstr(err, "AddressSanitizer: use-after-poison"))
    fail_msg("misuse '%s' went unreported (status %#x):\n%s", name, status,
             err);
#else
  (void)name;
  (void)spawn_case;
  skip(); /* only ASan builds poison free records and stacks */
#endif
}

static void test_control(void **state) {
  (void)state;
  expect_report("control");
}

static void test_await_after_unref(void **state) {
  (void)state;
  expect_report("await_after_unref");
}

static void test_double_unref_running(void **state) {
  (void)state;
  expect_report("double_unref");
}

static void test_cancel_after_unref(void **state) {
  (void)state;
  expect_report("cancel_after_unref");
}

static void test_stack_after_exit(void **state) {
  (void)state;
  expect_report("stack_after_exit");
}

int main(int argc, char **argv) {
  if (argc > 1)
    return run_child(argv[1]);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_control),
      cmocka_unit_test(test_await_after_unref),
      cmocka_unit_test(test_double_unref_running),
      cmocka_unit_test(test_cancel_after_unref),
      cmocka_unit_test(test_stack_after_exit),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

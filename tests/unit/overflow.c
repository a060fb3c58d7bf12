/*
 * unit_overflow: what happens when a task runs out of stack, or the runtime
 * runs out of stacks or task slots (public API).
 *
 *  1. A task recursing without bound kills the process with SIGABRT and a
 *     report naming it, on a guarded stack (the SIGSEGV handler reports the
 *     guard-page fault) and on an unguarded one (the canary and saved stack
 *     pointer are checked at the next switch: the task yields in every
 *     frame). Each runs in a forked child whose stderr comes back through a
 *     pipe. Skipped under the sanitizers, which own SIGSEGV.
 *  2. Address-space exhaustion (RLIMIT_AS, forked child): a task whose stack
 *     cannot be mapped finishes without running, with status WEFT_ENOMEM, and
 *     the process carries on and shuts down cleanly. Skipped under the
 *     sanitizers, whose shadow memory needs the address space.
 *  3. cfg.max_tasks: spawning past it returns WEFT_ENOMEM, and freeing a
 *     record makes room again.
 */
#include "harness.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(WEFT_SANITIZE_ADDRESS) || defined(WEFT_SANITIZE_THREAD)
#define UNDER_SANITIZER 1
#else
#define UNDER_SANITIZER 0
#endif

/* Exit codes of the forked children besides a signal. */
enum {
  CHILD_OK = 0,
  CHILD_RETURNED = 3,  /* the overflow did not kill the process */
  CHILD_RUN_FAILED = 4, /* weft_run returned an error */
  CHILD_CHECKS = 5,    /* a CHECK failed inside the runtime */
  CHILD_NO_ENOMEM = 6  /* no task ever got WEFT_ENOMEM */
};

/* A child that hangs is killed by SIGALRM after this many seconds. */
#define CHILD_ALARM_S 60

/* ---- stack overflow ---------------------------------------------------- */

/* Never reached; volatile so that the recursion has a visible exit and the
 * compiler keeps every frame. */
static volatile long recursion_limit = LONG_MAX;

/* Not a tail call: the frame's buffer is read after the recursive call
 * returns, so the compiler can turn neither into a loop. */
static long recurse(long depth, int yield_each_frame) {
  volatile char frame[256];
  long below;

  frame[0] = (char)depth;
  frame[sizeof frame - 1] = (char)(depth >> 8);
  if (depth == recursion_limit)
    return 0;
  if (yield_each_frame)
    /* Unguarded: the overflow is found at the switch out of the task. The
     * result is ignored: nothing cancels this task. */
    (void)weft_yield();
  below = recurse(depth + 1, yield_each_frame);
  return below + frame[0] + frame[sizeof frame - 1];
}

static void *deep_task(void *arg) {
  int yield_each_frame = *(const int *)arg;

  return (void *)(intptr_t)recurse(0, yield_each_frame);
}

static void *overflow_main(void *arg) {
  weft_spawn_opts_t opts;
  weft_task_t *t = NULL;

  weft_spawn_opts_init(&opts);
  opts.name = "deep-recursion";
  CHECK_OK(weft_spawn_ex(deep_task, arg, &opts, &t));
  if (t) {
    (void)weft_task_await(t, NULL);
    weft_task_unref(t);
  }
  return NULL;
}

/* Run weft with a task that overflows its stack in a child process; return
 * its wait status and its stderr in err. */
static int run_overflow_child(int guarded, char *err, size_t errlen) {
  int fds[2], status = 0;
  size_t len = 0;
  pid_t pid;

  assert_int_equal(pipe(fds), 0);
  fflush(NULL);
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    weft_config_t cfg;
    int yield_each_frame = !guarded;
    int rc;

    close(fds[0]);
    dup2(fds[1], STDERR_FILENO);
    close(fds[1]);
    alarm(CHILD_ALARM_S);
    weft_config_init(&cfg);
    cfg.workers = 2;
    if (!guarded)
      cfg.guarded_stacks = 0;
    rc = weft_run(overflow_main, &yield_each_frame, &cfg, NULL);
    fprintf(stderr, "weft_run returned %d\n", rc);
    _exit(CHILD_RETURNED);
  }
  close(fds[1]);
  for (;;) {
    ssize_t n = read(fds[0], err + len, errlen - 1 - len);
    if (n > 0) {
      len += (size_t)n;
      if (len == errlen - 1)
        break;
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  err[len] = '\0';
  close(fds[0]);
  assert_int_equal(waitpid(pid, &status, 0), pid);
  return status;
}

static void check_overflow_report(int guarded) {
  char err[4096];
  int status = run_overflow_child(guarded, err, sizeof err);

  if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT)
    fail_msg("child %s with %d, expected SIGABRT; its stderr:\n%s",
             WIFSIGNALED(status) ? "killed by signal" : "exited",
             WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status),
             err);
  if (!strstr(err, "stack overflow in task 'deep-recursion'"))
    fail_msg("no overflow report on stderr; got:\n%s", err);
  print_message("unit_overflow (%s): %s", guarded ? "guarded" : "unguarded",
                err);
}

static void test_overflow_guarded(void **state) {
  (void)state;
  if (UNDER_SANITIZER)
    skip();
  check_overflow_report(1);
}

static void test_overflow_unguarded(void **state) {
  (void)state;
  if (UNDER_SANITIZER)
    skip();
  check_overflow_report(0);
}

/* ---- address-space exhaustion ----------------------------------------- */

#define EXHAUST_STACK (8u * 1024u * 1024u)
#define EXHAUST_HEADROOM (64u * 1024u * 1024u)
#define EXHAUST_MAX_TASKS 4096

typedef struct exhaust {
  weft_queue_t *release; /* blockers wait here */
  atomic_long started;   /* blockers that ran */
  int saw_enomem;        /* a task finished with WEFT_ENOMEM, or spawn did */
  long ran, failed;      /* tasks that ran / that got no stack */
} exhaust_t;

static exhaust_t ex;

static void *blocker(void *arg) {
  void *item;

  (void)arg;
  atomic_fetch_add(&ex.started, 1);
  CHECK_OK(weft_queue_get(ex.release, &item));
  return NULL;
}

static size_t vm_size(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long pages = 0;

  if (f) {
    if (fscanf(f, "%lu", &pages) != 1)
      pages = 0;
    fclose(f);
  }
  return (size_t)pages * (size_t)sysconf(_SC_PAGESIZE);
}

static void *exhaust_main(void *arg) {
  static weft_task_t *tasks[EXHAUST_MAX_TASKS];
  struct rlimit rl;
  long n = 0, i;

  (void)arg;
  CHECK_OK(weft_queue_new(0, &ex.release));
  /* From here on the runtime and what it already mapped fit, but hardly
   * another slab of 64 stacks of 8 MiB. */
  rl.rlim_cur = rl.rlim_max = vm_size() + EXHAUST_HEADROOM;
  CHECK_EQ(setrlimit(RLIMIT_AS, &rl), 0);

  while (n < EXHAUST_MAX_TASKS && !ex.saw_enomem) {
    long before = atomic_load(&ex.started);
    int rc = weft_spawn(blocker, NULL, &tasks[n]);

    if (rc == WEFT_ENOMEM) {
      ex.saw_enomem = 1;
      break;
    }
    CHECK_OK(rc);
    if (rc != 0)
      break;
    /* Let it start (and hold its stack) or fail. */
    HARNESS_WAIT(weft_task_done(tasks[n]) ||
                 atomic_load(&ex.started) != before);
    if (weft_task_done(tasks[n])) {
      CHECK_RC(weft_task_result(tasks[n], NULL), WEFT_ENOMEM);
      ex.saw_enomem = 1;
    }
    n++;
  }
  /* Release every blocker; the ones that got no stack never took one. */
  for (i = 0; i < n; i++)
    CHECK_OK(weft_queue_try_put(ex.release, NULL));
  for (i = 0; i < n; i++) {
    int st = weft_task_await(tasks[i], NULL);
    if (st == WEFT_ENOMEM) {
      ex.failed++;
    } else {
      CHECK_OK(st);
      ex.ran++;
    }
    weft_task_unref(tasks[i]);
  }
  CHECK_EQ(ex.ran, atomic_load(&ex.started));
  CHECK_OK(weft_queue_free(ex.release));
  return NULL;
}

static void test_stack_exhaustion(void **state) {
  int status = 0;
  pid_t pid;

  (void)state;
  if (UNDER_SANITIZER)
    skip();
  fflush(NULL);
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    weft_config_t cfg;
    int rc;

    alarm(CHILD_ALARM_S);
    harness_reset();
    weft_config_init(&cfg);
    cfg.workers = 2;
    cfg.stack_size = EXHAUST_STACK;
    atomic_init(&ex.started, 0);
    rc = weft_run(exhaust_main, NULL, &cfg, NULL);
    if (rc != 0) {
      fprintf(stderr, "weft_run returned %d (%s)\n", rc, weft_err_name(rc));
      _exit(CHILD_RUN_FAILED);
    }
    if (atomic_load(&harness_failures) != 0)
      _exit(CHILD_CHECKS);
    if (!ex.saw_enomem)
      _exit(CHILD_NO_ENOMEM);
    printf("unit_overflow (exhaustion): %ld tasks ran, %ld got no stack\n",
           ex.ran, ex.failed);
    fflush(stdout);
    _exit(CHILD_OK);
  }
  assert_int_equal(waitpid(pid, &status, 0), pid);
  if (WIFSIGNALED(status))
    fail_msg("child killed by signal %d", WTERMSIG(status));
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), CHILD_OK);
}

/* ---- max_tasks ---------------------------------------------------------- */

#define MAX_TASKS 8

static weft_queue_t *limit_q;
static atomic_int limit_finished;

static void *limit_blocker(void *arg) {
  void *item;

  (void)arg;
  CHECK_OK(weft_queue_get(limit_q, &item));
  atomic_fetch_add(&limit_finished, 1);
  return NULL;
}

/* The index of the first finished task of t[0..n-1], or -1. */
static int first_done(weft_task_t **t, int n) {
  int i;

  for (i = 0; i < n; i++)
    if (t[i] && weft_task_done(t[i]) == 1)
      return i;
  return -1;
}

static void *limit_main(void *arg) {
  weft_task_t *t[MAX_TASKS] = {NULL};
  weft_task_t *extra = NULL;
  int n = 0, i, done = -1;

  (void)arg;
  atomic_init(&limit_finished, 0);
  CHECK_OK(weft_queue_new(0, &limit_q));
  /* The main task counts as one live task. */
  for (;;) {
    int rc = weft_spawn(limit_blocker, NULL, &t[n]);
    if (rc != 0) {
      CHECK_RC(rc, WEFT_ENOMEM);
      CHECK(t[n] == NULL);
      break;
    }
    n++;
    if (n == MAX_TASKS)
      break;
  }
  CHECK_EQ(n, MAX_TASKS - 1);
  /* Detached spawns are refused too. */
  CHECK_RC(weft_spawn(limit_blocker, NULL, NULL), WEFT_ENOMEM);

  /* Let one blocker finish (whichever got the item). */
  CHECK_OK(weft_queue_try_put(limit_q, NULL));
  HARNESS_WAIT((done = first_done(t, n)) >= 0);
  if (done < 0)
    return NULL; /* the CHECK failure says why; shutdown ends the rest */
  /* A finished task still counts while a handle holds its record... */
  CHECK_RC(weft_spawn(limit_blocker, NULL, &extra), WEFT_ENOMEM);
  /* ...and no longer once the last reference is dropped. */
  CHECK_OK(weft_task_result(t[done], NULL));
  weft_task_unref(t[done]);
  t[done] = NULL;
  CHECK_OK(weft_spawn(limit_blocker, NULL, &extra));
  CHECK_RC(weft_spawn(limit_blocker, NULL, NULL), WEFT_ENOMEM);

  /* n - 1 blockers left, plus extra. */
  for (i = 0; i < n; i++)
    CHECK_OK(weft_queue_try_put(limit_q, NULL));
  for (i = 0; i < n; i++) {
    if (!t[i])
      continue;
    CHECK_OK(weft_task_await(t[i], NULL));
    weft_task_unref(t[i]);
  }
  if (extra) {
    CHECK_OK(weft_task_await(extra, NULL));
    weft_task_unref(extra);
  }
  CHECK_EQ(atomic_load(&limit_finished), n + 1);
  /* All freed: the full budget is available again. */
  for (i = 0; i < MAX_TASKS - 1; i++)
    CHECK_OK(weft_spawn(limit_blocker, NULL, NULL));
  CHECK_RC(weft_spawn(limit_blocker, NULL, NULL), WEFT_ENOMEM);
  for (i = 0; i < MAX_TASKS - 1; i++)
    CHECK_OK(weft_queue_put(limit_q, NULL));
  /* Let the detached blockers finish before main returns (shutdown would
   * cancel them). */
  HARNESS_WAIT(atomic_load(&limit_finished) >= n + 1 + MAX_TASKS - 1);
  return NULL;
}

static void test_max_tasks(void **state) {
  weft_config_t cfg;

  (void)state;
  weft_config_init(&cfg);
  cfg.workers = 2;
  cfg.max_tasks = MAX_TASKS;
  run_in_weft_cfg(limit_main, NULL, &cfg);
  assert_int_equal(weft_queue_free(limit_q), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_overflow_guarded),
      cmocka_unit_test(test_overflow_unguarded),
      cmocka_unit_test(test_stack_exhaustion),
      cmocka_unit_test(test_max_tasks),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}

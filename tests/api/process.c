/*
 * Subprocesses (weft/process.h): spawning (argv and shell), every stdio
 * kind, env and cwd, exit codes and signals, wait/communicate and their
 * cancellation, many children at once, a large output read slowly, the
 * descriptors a child gets, reaping after free and after the runtime ends,
 * SIGCHLD watched by weft/signal.h at the same time, and every error path.
 *
 * The test binary is its own helper child: run with --list-fds it prints
 * its open descriptors, with --echo-both it copies stdin to stdout and,
 * XOR 0x5a, to stderr, with blocking writes (so a parent that does not
 * read both while it writes would deadlock it).
 */
#define _XOPEN_SOURCE 700 /* realpath */

#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>

static char self_exe[PATH_MAX];
static char tmpdir[PATH_MAX];
static int inheritable[1024]; /* fds open without FD_CLOEXEC at start */

/* ---- helper-child modes ----------------------------------------------- */

static int child_list_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  if (!d)
    return 2;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.')
      continue;
    int fd = atoi(e->d_name);
    if (fd == dirfd(d))
      continue;
    char path[64], target[PATH_MAX];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(path, target, sizeof(target) - 1);
    target[n > 0 ? n : 0] = 0;
    printf("%d %s\n", fd, target);
  }
  closedir(d);
  fflush(stdout);
  return 0;
}

static int write_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static int child_echo_both(void) {
  static char buf[65536], x[65536];
  for (;;) {
    ssize_t n = read(0, buf, sizeof(buf));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return 2;
    if (n == 0)
      return 0;
    for (ssize_t i = 0; i < n; i++)
      x[i] = (char)(buf[i] ^ 0x5a);
    if (write_all(1, buf, (size_t)n) || write_all(2, x, (size_t)n))
      return 3;
  }
}

/* ---- helpers ---------------------------------------------------------- */

static weft_process_t *spawn_sh(const char *cmd, weft_stdio_t in,
                                weft_stdio_t out, weft_stdio_t err) {
  weft_process_opts_t o;
  weft_process_opts_init(&o);
  o.stdio[0].how = in;
  o.stdio[1].how = out;
  o.stdio[2].how = err;
  weft_process_t *p = NULL;
  int rc = weft_create_subprocess_shell(cmd, &o, &p);
  CHECK_OK(rc);
  return rc ? NULL : p;
}

/* Read s to its end into buf (cap bytes); the length, or -1. */
static long read_all(weft_stream_t *s, char *buf, size_t cap) {
  size_t len = 0;
  for (;;) {
    int n = weft_stream_read(s, buf + len, cap - len);
    if (n < 0) {
      CHECK_OK(n);
      return -1;
    }
    if (n == 0)
      return (long)len;
    len += (size_t)n;
    if (len == cap)
      return (long)len;
  }
}

static int pid_gone(int pid) { return kill(pid, 0) == -1 && errno == ESRCH; }

static uint64_t fnv(uint64_t h, const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

/* ---- errors ----------------------------------------------------------- */

static void *errors_in_task(void *arg) {
  (void)arg;
  weft_process_t *p = (weft_process_t *)&p;
  weft_process_opts_t o;
  const char *argv_missing[] = {"/nonexistent/weft-no-such-program", NULL};
  const char *argv_missing_path[] = {"weft-no-such-program-in-path", NULL};
  const char *argv_true[] = {"true", NULL};
  const char *argv_empty[] = {NULL};

  CHECK_RC(weft_create_subprocess_exec(NULL, NULL, &p), WEFT_EINVAL);
  CHECK(p == NULL);
  CHECK_RC(weft_create_subprocess_exec(argv_empty, NULL, &p), WEFT_EINVAL);
  CHECK_RC(weft_create_subprocess_exec(argv_true, NULL, NULL), WEFT_EINVAL);
  CHECK_RC(weft_create_subprocess_shell(NULL, NULL, &p), WEFT_EINVAL);

  /* A missing program is reported by the spawn, clearly. */
  CHECK_RC(weft_create_subprocess_exec(argv_missing, NULL, &p), WEFT_ENOENT);
  CHECK(p == NULL);
  CHECK_RC(weft_create_subprocess_exec(argv_missing_path, NULL, &p),
           WEFT_ENOENT);
  /* Not executable. */
  char path[PATH_MAX + 32];
  snprintf(path, sizeof(path), "%s/noexec", tmpdir);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  CHECK(fd >= 0);
  close(fd);
  const char *argv_noexec[] = {path, NULL};
  CHECK_RC(weft_create_subprocess_exec(argv_noexec, NULL, &p), WEFT_EACCES);
  /* A missing cwd. */
  weft_process_opts_init(&o);
  o.cwd = "/nonexistent/weft-dir";
  CHECK_RC(weft_create_subprocess_exec(argv_true, &o, &p), WEFT_ENOENT);

  /* Bad options. */
  weft_process_opts_init(&o);
  o.stdio[1].how = (weft_stdio_t)42;
  CHECK_RC(weft_create_subprocess_exec(argv_true, &o, &p), WEFT_EINVAL);
  weft_process_opts_init(&o);
  o.stdio[0].how = WEFT_STDIO_STDOUT;
  CHECK_RC(weft_create_subprocess_exec(argv_true, &o, &p), WEFT_EINVAL);
  weft_process_opts_init(&o);
  o.stdio[1].how = WEFT_STDIO_STDOUT;
  CHECK_RC(weft_create_subprocess_exec(argv_true, &o, &p), WEFT_EINVAL);
  weft_process_opts_init(&o);
  o.cancel_signal = 65;
  CHECK_RC(weft_create_subprocess_exec(argv_true, &o, &p), WEFT_EINVAL);
  o.cancel_signal = -1;
  CHECK_RC(weft_create_subprocess_exec(argv_true, &o, &p), WEFT_EINVAL);
  weft_process_opts_init(&o);
  o.stdio[1].how = WEFT_STDIO_FD;
  o.stdio[1].fd = -1;
  CHECK_RC(weft_create_subprocess_exec(argv_true, &o, &p), WEFT_EBADF);
  o.stdio[1].fd = 987; /* not open */
  CHECK_RC(weft_create_subprocess_exec(argv_true, &o, &p), WEFT_EBADF);
  CHECK(p == NULL);

  /* NULL handles. */
  CHECK_RC(weft_process_pid(NULL), WEFT_EINVAL);
  CHECK_RC(weft_process_returncode(NULL, NULL), WEFT_EINVAL);
  CHECK(weft_process_stdin(NULL) == NULL);
  CHECK(weft_process_stdout(NULL) == NULL);
  CHECK(weft_process_stderr(NULL) == NULL);
  CHECK_RC(weft_process_wait(NULL, NULL), WEFT_EINVAL);
  weft_process_output_t out;
  CHECK_RC(weft_process_communicate(NULL, NULL, 0, &out), WEFT_EINVAL);
  CHECK_RC(weft_process_send_signal(NULL, SIGTERM), WEFT_EINVAL);
  CHECK_RC(weft_process_terminate(NULL), WEFT_EINVAL);
  CHECK_RC(weft_process_kill(NULL), WEFT_EINVAL);
  CHECK_OK(weft_process_free(NULL));
  weft_process_output_free(NULL);

  /* A live process: bad signals, communicate misuse, owned pipes. */
  p = spawn_sh("read x; exit 4", WEFT_STDIO_PIPE, WEFT_STDIO_PIPE,
               WEFT_STDIO_DEVNULL);
  if (!p)
    return NULL;
  CHECK(weft_process_pid(p) > 0);
  CHECK(weft_process_stdin(p) != NULL);
  CHECK(weft_process_stdout(p) != NULL);
  CHECK(weft_process_stderr(p) == NULL);
  int code = 77;
  CHECK_RC(weft_process_returncode(p, &code), 0);
  CHECK_EQ(code, 77);
  CHECK_RC(weft_process_send_signal(p, 0), WEFT_EINVAL);
  CHECK_RC(weft_process_send_signal(p, 65), WEFT_EINVAL);
  CHECK_RC(weft_process_communicate(p, NULL, 3, &out), WEFT_EINVAL);
  CHECK_RC(weft_process_communicate(p, "x", 1, NULL), WEFT_EINVAL);
  CHECK_RC(weft_stream_free(weft_process_stdout(p)), WEFT_EPERM);
  CHECK_RC(weft_stream_free(weft_process_stdin(p)), WEFT_EPERM);
  /* The stdout pipe is read-only, stdin write-only. */
  CHECK_RC(weft_stream_write(weft_process_stdout(p), "x", 1), WEFT_EPIPE);
  char c;
  CHECK_RC(weft_stream_read(weft_process_stdin(p), &c, 1), 0);
  CHECK_OK(weft_stream_write(weft_process_stdin(p), "go\n", 3));
  CHECK_OK(weft_process_wait(p, &code));
  CHECK_EQ(code, 4);
  CHECK_RC(weft_process_returncode(p, &code), 1);
  CHECK_EQ(code, 4);
  /* Exited and reaped: its pid may be reused, so no signal is sent. */
  CHECK_RC(weft_process_send_signal(p, SIGTERM), WEFT_ESRCH);
  CHECK_RC(weft_process_kill(p), WEFT_ESRCH);
  CHECK_OK(weft_process_free(p));

  /* input without a stdin pipe. */
  p = spawn_sh("exit 0", WEFT_STDIO_DEVNULL, WEFT_STDIO_DEVNULL,
               WEFT_STDIO_DEVNULL);
  if (!p)
    return NULL;
  CHECK_RC(weft_process_communicate(p, "abc", 3, &out), WEFT_EINVAL);
  CHECK(out.out == NULL && out.err == NULL);
  CHECK_OK(weft_process_communicate(p, NULL, 0, &out));
  CHECK(out.out == NULL && out.err == NULL);
  CHECK_EQ(out.returncode, 0);
  weft_process_output_free(&out);
  CHECK_OK(weft_process_free(p));
  return NULL;
}

static void test_errors(void **state) {
  (void)state;
  const char *argv_true[] = {"true", NULL};
  weft_process_t *p = NULL;
  assert_int_equal(weft_create_subprocess_exec(argv_true, NULL, &p),
                   WEFT_ENOTTASK);
  assert_null(p);
  assert_int_equal(weft_create_subprocess_shell("true", NULL, &p),
                   WEFT_ENOTTASK);
  assert_int_equal(weft_create_subprocess_shell(NULL, NULL, &p), WEFT_EINVAL);
  assert_int_equal(weft_process_wait(NULL, NULL), WEFT_EINVAL);
  assert_int_equal(weft_process_free(NULL), 0);
  weft_process_opts_t o;
  weft_process_opts_init(&o);
  assert_int_equal(o.stdio[0].how, WEFT_STDIO_INHERIT);
  assert_int_equal(o.stdio[2].how, WEFT_STDIO_INHERIT);
  assert_null(o.env);
  assert_null(o.cwd);
  assert_int_equal(o.cancel_signal, 0);
  weft_process_opts_init(NULL);
  run_in_weft(errors_in_task, NULL, 2);
}

/* ---- exit codes and signals ------------------------------------------- */

static void *exit_codes(void *arg) {
  (void)arg;
  struct {
    const char *cmd;
    int code;
  } cases[] = {
      {"exit 0", 0},
      {"exit 3", 3},
      {"exit 255", 255},
      {"kill -TERM $$", -SIGTERM},
      {"kill -KILL $$", -SIGKILL},
      {"kill -USR1 $$", -SIGUSR1},
      {"weft-no-such-command-xyz 2>/dev/null", 127},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    weft_process_t *p = spawn_sh(cases[i].cmd, WEFT_STDIO_DEVNULL,
                                 WEFT_STDIO_DEVNULL, WEFT_STDIO_INHERIT);
    if (!p)
      return NULL;
    int code = 1000;
    CHECK_OK(weft_process_wait(p, &code));
    CHECK_EQ(code, cases[i].code);
    /* Waiting again, and returncode, give the same. */
    code = 1000;
    CHECK_OK(weft_process_wait(p, &code));
    CHECK_EQ(code, cases[i].code);
    CHECK_RC(weft_process_returncode(p, &code), 1);
    CHECK_EQ(code, cases[i].code);
    CHECK_OK(weft_process_free(p));
  }
  /* The exec form, with arguments passed as they are (no shell). */
  const char *argv[] = {"sh", "-c", "exit $(($# + 10))", "sh", "a b",
                        "$c", NULL};
  weft_process_t *p;
  CHECK_OK(weft_create_subprocess_exec(argv, NULL, &p));
  int code;
  CHECK_OK(weft_process_wait(p, &code));
  CHECK_EQ(code, 12);
  CHECK_OK(weft_process_free(p));
  return NULL;
}

static void test_exit_codes(void **state) {
  (void)state;
  run_in_weft(exit_codes, NULL, 2);
}

/* A child that ignores SIGTERM: terminate() does not end it, kill() does. */
static void *sigterm_ignored(void *arg) {
  (void)arg;
  weft_process_t *p =
      spawn_sh("trap '' TERM; echo ready; read x; "
               "echo alive; read y",
               WEFT_STDIO_PIPE, WEFT_STDIO_PIPE, WEFT_STDIO_INHERIT);
  if (!p)
    return NULL;
  weft_stream_t *in = weft_process_stdin(p), *out = weft_process_stdout(p);
  char line[64];
  size_t len;
  CHECK_OK(weft_stream_readline(out, line, sizeof(line), &len));
  CHECK(len == 6 && memcmp(line, "ready\n", 6) == 0);
  CHECK_OK(weft_process_terminate(p));
  /* SIGTERM was generated before this write; a child it killed could not
   * answer. */
  CHECK_OK(weft_stream_write(in, "x\n", 2));
  CHECK_OK(weft_stream_readline(out, line, sizeof(line), &len));
  CHECK(len == 6 && memcmp(line, "alive\n", 6) == 0);
  CHECK_RC(weft_process_returncode(p, NULL), 0);
  CHECK_OK(weft_process_kill(p));
  int code;
  CHECK_OK(weft_process_wait(p, &code));
  CHECK_EQ(code, -SIGKILL);
  CHECK_OK(weft_stream_readline(out, line, sizeof(line), &len));
  CHECK_EQ(len, 0); /* end of stream */
  CHECK_OK(weft_process_free(p));
  return NULL;
}

static void test_sigterm_ignored(void **state) {
  (void)state;
  run_in_weft(sigterm_ignored, NULL, 2);
}

/* ---- env, cwd, stdio kinds -------------------------------------------- */

static void *env_cwd(void *arg) {
  (void)arg;
  const char *env[] = {"WEFT_TEST_VAR=hello world", "PATH=/usr/bin:/bin", NULL};
  weft_process_opts_t o;
  weft_process_opts_init(&o);
  o.env = env;
  o.cwd = tmpdir;
  o.stdio[1].how = WEFT_STDIO_PIPE;
  weft_process_t *p;
  CHECK_OK(weft_create_subprocess_shell(
      "echo \"$WEFT_TEST_VAR\"; pwd -P; echo \"${HOME-unset}\"", &o, &p));
  weft_process_output_t out;
  CHECK_OK(weft_process_communicate(p, NULL, 0, &out));
  char want[PATH_MAX * 2];
  snprintf(want, sizeof(want), "hello world\n%s\nunset\n", tmpdir);
  CHECK(out.out != NULL && strcmp(out.out, want) == 0);
  CHECK_EQ(out.out_len, strlen(want));
  CHECK(out.err == NULL);
  CHECK_EQ(out.returncode, 0);
  weft_process_output_free(&out);
  CHECK(out.out == NULL);
  CHECK_OK(weft_process_free(p));

  /* The environment's PATH finds the program. */
  const char *env2[] = {"PATH=/nonexistent", NULL};
  const char *argv[] = {"true", NULL};
  o.env = env2;
  o.stdio[1].how = WEFT_STDIO_INHERIT;
  CHECK_RC(weft_create_subprocess_exec(argv, &o, &p), WEFT_ENOENT);
  return NULL;
}

/* start_new_session: the child leads a session of its own (field 6 of
 * /proc/PID/stat is the session id). */
static void *new_session(void *arg) {
  (void)arg;
  for (int ns = 0; ns < 2; ns++) {
    weft_process_opts_t o;
    weft_process_opts_init(&o);
    o.stdio[1].how = WEFT_STDIO_PIPE;
    o.start_new_session = ns;
    weft_process_t *p;
    CHECK_OK(
        weft_create_subprocess_shell("cut -d' ' -f6 /proc/$$/stat", &o, &p));
    weft_process_output_t out;
    CHECK_OK(weft_process_communicate(p, NULL, 0, &out));
    CHECK_EQ(out.returncode, 0);
    int sid = out.out ? atoi(out.out) : -1;
    if (ns)
      CHECK_EQ(sid, weft_process_pid(p));
    else
      CHECK_EQ(sid, (int)getsid(0));
    weft_process_output_free(&out);
    CHECK_OK(weft_process_free(p));
  }
  return NULL;
}

static void test_new_session(void **state) {
  (void)state;
  run_in_weft(new_session, NULL, 2);
}

static void test_env_cwd(void **state) {
  (void)state;
  run_in_weft(env_cwd, NULL, 2);
}

static void *stdio_kinds(void *arg) {
  (void)arg;
  weft_process_output_t out;
  weft_process_t *p;
  int code;

  /* stderr to stdout's pipe: both in one stream, in order. */
  p = spawn_sh("echo one; echo two >&2; echo three", WEFT_STDIO_DEVNULL,
               WEFT_STDIO_PIPE, WEFT_STDIO_STDOUT);
  if (!p)
    return NULL;
  CHECK(weft_process_stderr(p) == NULL);
  CHECK_OK(weft_process_communicate(p, NULL, 0, &out));
  CHECK(out.out && strcmp(out.out, "one\ntwo\nthree\n") == 0);
  weft_process_output_free(&out);
  CHECK_OK(weft_process_free(p));

  /* Separate pipes. */
  p = spawn_sh("echo out; echo err >&2", WEFT_STDIO_DEVNULL, WEFT_STDIO_PIPE,
               WEFT_STDIO_PIPE);
  if (!p)
    return NULL;
  CHECK_OK(weft_process_communicate(p, NULL, 0, &out));
  CHECK(out.out && strcmp(out.out, "out\n") == 0);
  CHECK(out.err && strcmp(out.err, "err\n") == 0);
  weft_process_output_free(&out);
  CHECK_OK(weft_process_free(p));

  /* stdin from /dev/null: cat sees end of file at once; stdout to
   * /dev/null: a write there succeeds and nothing comes back. */
  p = spawn_sh("cat; echo gone", WEFT_STDIO_DEVNULL, WEFT_STDIO_DEVNULL,
               WEFT_STDIO_PIPE);
  if (!p)
    return NULL;
  CHECK(weft_process_stdout(p) == NULL);
  CHECK_OK(weft_process_communicate(p, NULL, 0, &out));
  CHECK(out.out == NULL && out.err && out.err_len == 0);
  CHECK_EQ(out.returncode, 0);
  weft_process_output_free(&out);
  CHECK_OK(weft_process_free(p));

  /* A descriptor: stdout and stderr (as stdout) to a file, stdin from
   * another; the parent keeps its descriptors. */
  char path[PATH_MAX + 32], ipath[PATH_MAX + 32];
  snprintf(path, sizeof(path), "%s/out.txt", tmpdir);
  snprintf(ipath, sizeof(ipath), "%s/in.txt", tmpdir);
  int ifd = open(ipath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  CHECK(fd >= 0 && ifd >= 0);
  CHECK_EQ(write(ifd, "input\n", 6), 6);
  CHECK_EQ(lseek(ifd, 0, SEEK_SET), 0);
  weft_process_opts_t o;
  weft_process_opts_init(&o);
  o.stdio[0].how = WEFT_STDIO_FD;
  o.stdio[0].fd = ifd;
  o.stdio[1].how = WEFT_STDIO_FD;
  o.stdio[1].fd = fd;
  o.stdio[2].how = WEFT_STDIO_STDOUT;
  CHECK_OK(weft_create_subprocess_shell("cat; echo err >&2", &o, &p));
  CHECK_OK(weft_process_wait(p, &code));
  CHECK_EQ(code, 0);
  CHECK_OK(weft_process_free(p));
  char buf[64] = {0};
  CHECK_EQ(pread(fd, buf, sizeof(buf) - 1, 0), 10);
  CHECK(strcmp(buf, "input\nerr\n") == 0);
  CHECK(fcntl(fd, F_GETFD) >= 0); /* still the parent's */
  close(fd);
  close(ifd);

  /* Inherit (the default): the child's stdout is the test's own. */
  weft_process_opts_init(&o);
  o.stdio[0].how = WEFT_STDIO_DEVNULL;
  CHECK_OK(weft_create_subprocess_shell("test -e /proc/self/fd/1", &o, &p));
  CHECK_OK(weft_process_wait(p, &code));
  CHECK_EQ(code, 0);
  CHECK_OK(weft_process_free(p));
  return NULL;
}

static void test_stdio_kinds(void **state) {
  (void)state;
  run_in_weft(stdio_kinds, NULL, 2);
}

/* ---- descriptors ------------------------------------------------------ */

static void dummy_handler(weft_stream_t *s, void *arg) {
  (void)s;
  (void)arg;
}

static void *fd_leak(void *arg) {
  (void)arg;
  /* Open one of everything weft has: a server, a client stream, a file, a
   * signal watcher, another child's pipes. */
  weft_server_t *srv;
  CHECK_OK(weft_start_server(dummy_handler, NULL, "127.0.0.1", 0, NULL, &srv));
  weft_stream_t *cl;
  CHECK_OK(weft_open_connection("127.0.0.1", weft_server_port(srv), NULL, &cl));
  char path[PATH_MAX + 32];
  snprintf(path, sizeof(path), "%s/f", tmpdir);
  weft_file_t *f;
  CHECK_OK(weft_file_open(path, O_RDWR | O_CREAT, 0600, &f));
  int sigs[1] = {SIGUSR2};
  weft_signal_t *w;
  CHECK_OK(weft_signal_new(sigs, 1, &w));
  weft_process_t *other =
      spawn_sh("read x", WEFT_STDIO_PIPE, WEFT_STDIO_PIPE, WEFT_STDIO_PIPE);

  const char *argv[] = {self_exe, "--list-fds", NULL};
  weft_process_opts_t o;
  weft_process_opts_init(&o);
  o.stdio[1].how = WEFT_STDIO_PIPE;
  weft_process_t *p;
  CHECK_OK(weft_create_subprocess_exec(argv, &o, &p));
  weft_process_output_t out;
  CHECK_OK(weft_process_communicate(p, NULL, 0, &out));
  CHECK_EQ(out.returncode, 0);
  int seen[3] = {0, 0, 0};
  char *save = NULL;
  for (char *l = out.out ? strtok_r(out.out, "\n", &save) : NULL; l;
       l = strtok_r(NULL, "\n", &save)) {
    int fd = atoi(l);
    if (fd >= 0 && fd < 3) {
      seen[fd] = 1;
      continue;
    }
    /* Only descriptors the test process had inheritable before weft ran. */
    int leaked = fd < 0 || fd >= 1024 || !inheritable[fd];
    if (leaked)
      fprintf(stderr, "descriptor leaked into the child: %s\n", l);
    CHECK(!leaked);
  }
  CHECK(seen[0] && seen[1] && seen[2]); /* the listing works */
  weft_process_output_free(&out);
  CHECK_OK(weft_process_free(p));

  if (other) {
    CHECK_OK(weft_stream_close(weft_process_stdin(other)));
    CHECK_OK(weft_process_wait(other, NULL));
    CHECK_OK(weft_process_free(other));
  }
  CHECK_OK(weft_signal_free(w));
  CHECK_OK(weft_file_close(f));
  CHECK_OK(weft_file_free(f));
  CHECK_OK(weft_stream_free(cl));
  CHECK_OK(weft_server_free(srv));
  return NULL;
}

static void test_fd_leak(void **state) {
  (void)state;
  run_in_weft(fd_leak, NULL, 2);
}

/* ---- many children ---------------------------------------------------- */

static int many_use_pipes;

static void *one_child(void *arg) {
  int i = (int)(intptr_t)arg;
  char num[16];
  snprintf(num, sizeof(num), "%d", i);
  const char *argv[] = {"sh", "-c", "echo $1; exit $(($1 % 100))",
                        "sh", num,  NULL};
  weft_process_opts_t o;
  weft_process_opts_init(&o);
  o.stdio[0].how = WEFT_STDIO_DEVNULL;
  o.stdio[1].how = many_use_pipes ? WEFT_STDIO_PIPE : WEFT_STDIO_DEVNULL;
  weft_process_t *p;
  int rc = weft_create_subprocess_exec(argv, &o, &p);
  CHECK_OK(rc);
  if (rc)
    return NULL;
  int code = -1;
  if (many_use_pipes) {
    char line[32];
    size_t len;
    CHECK_OK(
        weft_stream_readline(weft_process_stdout(p), line, sizeof(line), &len));
    CHECK(len == strlen(num) + 1 && memcmp(line, num, strlen(num)) == 0);
  }
  CHECK_OK(weft_process_wait(p, &code));
  CHECK_EQ(code, i % 100);
  CHECK_OK(weft_process_free(p));
  return NULL;
}

static void *many(void *arg) {
  (void)arg;
  int n = HARNESS_SIZE(1000, 100, 300);
  weft_task_t **t = calloc((size_t)n, sizeof(*t));
  CHECK(t != NULL);
  if (!t)
    return NULL;
  int spawned = 0;
  for (int i = 0; i < n; i++) {
    int rc = weft_spawn(one_child, (void *)(intptr_t)i, &t[i]);
    CHECK_OK(rc);
    if (rc)
      break;
    spawned++;
  }
  for (int i = 0; i < spawned; i++) {
    CHECK_OK(weft_task_await(t[i], NULL));
    weft_task_unref(t[i]);
  }
  free(t);
  return NULL;
}

static void test_many_children(void **state) {
  (void)state;
  struct rlimit rl;
  assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
  /* Each child has one pipe in the parent while it runs. */
  many_use_pipes = rl.rlim_cur >= 1000 + 256;
  run_in_weft(many, NULL, 4);
}

/* ---- a large output read slowly --------------------------------------- */

static void *big_output(void *arg) {
  (void)arg;
  size_t total = (size_t)HARNESS_SIZE(10, 4, 10) * 1024 * 1024;
  char path[PATH_MAX + 32];
  snprintf(path, sizeof(path), "%s/big", tmpdir);
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  CHECK(fd >= 0);
  unsigned char *blk = malloc(65536);
  uint64_t want = 1469598103934665603ull, got = want;
  uint32_t x = 12345;
  for (size_t off = 0; off < total; off += 65536) {
    for (size_t i = 0; i < 65536; i++) {
      x = x * 1103515245u + 12345u;
      blk[i] = (unsigned char)(x >> 16);
    }
    CHECK_EQ(write(fd, blk, 65536), 65536);
    want = fnv(want, blk, 65536);
  }
  CHECK_EQ(lseek(fd, 0, SEEK_SET), 0);
  weft_process_opts_t o;
  weft_process_opts_init(&o);
  o.stdio[0].how = WEFT_STDIO_FD;
  o.stdio[0].fd = fd;
  o.stdio[1].how = WEFT_STDIO_PIPE;
  o.limit = 16 * 1024; /* reading pauses at 32 KiB buffered */
  const char *argv[] = {"cat", NULL};
  weft_process_t *p;
  CHECK_OK(weft_create_subprocess_exec(argv, &o, &p));
  close(fd);
  /* Slowly: small reads, a yield after each, a 1 ms sleep every 256 KiB,
   * so the child is held back by the full pipe again and again. */
  size_t len = 0;
  for (;;) {
    int n = weft_stream_read(weft_process_stdout(p), blk, 1000);
    CHECK(n >= 0);
    if (n <= 0)
      break;
    got = fnv(got, blk, (size_t)n);
    size_t before = len;
    len += (size_t)n;
    weft_yield();
    if (before / (256 * 1024) != len / (256 * 1024))
      weft_sleep(1);
  }
  CHECK_EQ(len, total);
  CHECK(got == want);
  int code;
  CHECK_OK(weft_process_wait(p, &code));
  CHECK_EQ(code, 0);
  CHECK_OK(weft_process_free(p));
  free(blk);
  return NULL;
}

static void test_big_output_slow(void **state) {
  (void)state;
  run_in_weft(big_output, NULL, 2);
}

/* ---- communicate, large both ways ------------------------------------- */

static void *communicate_large(void *arg) {
  (void)arg;
  size_t n = (size_t)HARNESS_SIZE(8, 2, 4) * 1024 * 1024;
  char *in = malloc(n);
  CHECK(in != NULL);
  for (size_t i = 0; i < n; i++)
    in[i] = (char)(i * 7 + (i >> 11));
  const char *argv[] = {self_exe, "--echo-both", NULL};
  weft_process_opts_t o;
  weft_process_opts_init(&o);
  for (int i = 0; i < 3; i++)
    o.stdio[i].how = WEFT_STDIO_PIPE;
  weft_process_t *p;
  CHECK_OK(weft_create_subprocess_exec(argv, &o, &p));
  weft_process_output_t out;
  CHECK_OK(weft_process_communicate(p, in, n, &out));
  CHECK_EQ(out.returncode, 0);
  CHECK_EQ(out.out_len, n);
  CHECK_EQ(out.err_len, n);
  CHECK(out.out && memcmp(out.out, in, n) == 0);
  int same = out.err != NULL;
  for (size_t i = 0; same && i < n; i++)
    same = out.err[i] == (char)(in[i] ^ 0x5a);
  CHECK(same);
  weft_process_output_free(&out);
  /* A second communicate finds everything at its end. */
  CHECK_OK(weft_process_communicate(p, NULL, 0, &out));
  CHECK(out.out_len == 0 && out.err_len == 0 && out.returncode == 0);
  weft_process_output_free(&out);
  CHECK_OK(weft_process_free(p));
  free(in);

  /* A child that exits without reading its input: no error. */
  p = spawn_sh("echo bye", WEFT_STDIO_PIPE, WEFT_STDIO_PIPE,
               WEFT_STDIO_DEVNULL);
  if (!p)
    return NULL;
  static char junk[1 << 20];
  CHECK_OK(weft_process_communicate(p, junk, sizeof(junk), &out));
  CHECK(out.out && strcmp(out.out, "bye\n") == 0);
  CHECK_EQ(out.returncode, 0);
  weft_process_output_free(&out);
  CHECK_OK(weft_process_free(p));
  return NULL;
}

static void test_communicate_large(void **state) {
  (void)state;
  run_in_weft(communicate_large, NULL, 2);
}

/* ---- cancellation ----------------------------------------------------- */

typedef struct cancel_arg {
  weft_process_t *p;
  atomic_int started;
  int rc;
  weft_process_output_t out;
} cancel_arg_t;

static void *waiter(void *arg) {
  cancel_arg_t *a = arg;
  atomic_store(&a->started, 1);
  a->rc = weft_process_wait(a->p, NULL);
  return NULL;
}

static void *communicator(void *arg) {
  cancel_arg_t *a = arg;
  atomic_store(&a->started, 1);
  a->rc = weft_process_communicate(a->p, NULL, 0, &a->out);
  return NULL;
}

static void *cancel_wait(void *arg) {
  (void)arg;
  /* Cancelling a wait leaves the child running. */
  cancel_arg_t a;
  memset(&a, 0, sizeof(a));
  a.p = spawn_sh("read x; exit 9", WEFT_STDIO_PIPE, WEFT_STDIO_DEVNULL,
                 WEFT_STDIO_DEVNULL);
  if (!a.p)
    return NULL;
  weft_task_t *t;
  CHECK_OK(weft_spawn(waiter, &a, &t));
  HARNESS_WAIT_PARKED(a.started);
  CHECK_RC(weft_task_cancel(t), 1);
  CHECK_RC(weft_task_await(t, NULL), WEFT_ECANCELED);
  weft_task_unref(t);
  CHECK_RC(a.rc, WEFT_ECANCELED);
  CHECK_RC(weft_process_returncode(a.p, NULL), 0);
  CHECK(!pid_gone(weft_process_pid(a.p)));
  CHECK_OK(weft_stream_write(weft_process_stdin(a.p), "\n", 1));
  int code;
  CHECK_OK(weft_process_wait(a.p, &code));
  CHECK_EQ(code, 9);
  CHECK_OK(weft_process_free(a.p));

  /* A timeout scope around a wait: the same. */
  weft_process_t *p = spawn_sh("read x; exit 8", WEFT_STDIO_PIPE,
                               WEFT_STDIO_DEVNULL, WEFT_STDIO_DEVNULL);
  if (!p)
    return NULL;
  weft_timeout_t scope;
  weft_timeout_enter(&scope, 5);
  int rc = weft_process_wait(p, NULL);
  CHECK_RC(weft_timeout_exit(&scope, rc), WEFT_ETIMEDOUT);
  CHECK_RC(weft_process_returncode(p, NULL), 0);
  CHECK_OK(weft_stream_close(weft_process_stdin(p)));
  CHECK_OK(weft_process_wait(p, &code));
  CHECK_EQ(code, 8);
  CHECK_OK(weft_process_free(p));

  /* With cancel_signal, a cancelled wait kills it. */
  weft_process_opts_t o;
  weft_process_opts_init(&o);
  o.stdio[0].how = WEFT_STDIO_PIPE;
  o.cancel_signal = SIGKILL;
  memset(&a, 0, sizeof(a));
  CHECK_OK(weft_create_subprocess_shell("read x", &o, &a.p));
  CHECK_OK(weft_spawn(waiter, &a, &t));
  HARNESS_WAIT_PARKED(a.started);
  CHECK_RC(weft_task_cancel(t), 1);
  CHECK_RC(weft_task_await(t, NULL), WEFT_ECANCELED);
  weft_task_unref(t);
  CHECK_OK(weft_process_wait(a.p, &code));
  CHECK_EQ(code, -SIGKILL);
  CHECK_OK(weft_process_free(a.p));
  return NULL;
}

static void test_cancel_wait(void **state) {
  (void)state;
  run_in_weft(cancel_wait, NULL, 1);
  run_in_weft(cancel_wait, NULL, 4);
}

/* Cancel a communicate at some point; what it returned plus what is left
 * in the streams is exactly what the child wrote. */
static void *cancel_communicate(void *arg) {
  int kill_on_cancel = (int)(intptr_t)arg;
  weft_process_opts_t o;
  weft_process_opts_init(&o);
  o.stdio[0].how = WEFT_STDIO_PIPE;
  o.stdio[1].how = WEFT_STDIO_PIPE;
  o.stdio[2].how = WEFT_STDIO_PIPE;
  o.cancel_signal = kill_on_cancel ? SIGKILL : 0;
  cancel_arg_t a;
  memset(&a, 0, sizeof(a));
  /* It writes, says so with a file, then blocks until killed (stdin's end
   * does not stop it). */
  char ready[PATH_MAX + 32], cmd[PATH_MAX + 128];
  snprintf(ready, sizeof(ready), "%s/ready-%d", tmpdir, kill_on_cancel);
  unlink(ready);
  snprintf(cmd, sizeof(cmd),
           "echo partial-out; echo partial-err >&2; : > '%s'; "
           "exec sleep 100000",
           ready);
  CHECK_OK(weft_create_subprocess_shell(cmd, &o, &a.p));
  if (!a.p)
    return NULL;
  weft_task_t *t;
  CHECK_OK(weft_spawn(communicator, &a, &t));
  HARNESS_WAIT_PARKED(a.started);
  /* The output is written (maybe read, maybe not) before the cancel. */
  HARNESS_WAIT(access(ready, F_OK) == 0);
  CHECK_RC(weft_task_cancel(t), 1);
  CHECK_RC(weft_task_await(t, NULL), WEFT_ECANCELED);
  weft_task_unref(t);
  CHECK_RC(a.rc, WEFT_ECANCELED);
  int code;
  if (kill_on_cancel) {
    CHECK_OK(weft_process_wait(a.p, &code));
    CHECK_EQ(code, -SIGKILL);
  } else {
    CHECK_RC(weft_process_returncode(a.p, NULL), 0);
    CHECK(!pid_gone(weft_process_pid(a.p)));
    CHECK_OK(weft_process_kill(a.p));
    CHECK_OK(weft_process_wait(a.p, &code));
    CHECK_EQ(code, -SIGKILL);
  }
  char rest[256];
  long n = read_all(weft_process_stdout(a.p), rest, sizeof(rest));
  char all[512];
  snprintf(all, sizeof(all), "%.*s%.*s", (int)a.out.out_len,
           a.out.out ? a.out.out : "", (int)(n > 0 ? n : 0), rest);
  CHECK(strcmp(all, "partial-out\n") == 0);
  n = read_all(weft_process_stderr(a.p), rest, sizeof(rest));
  snprintf(all, sizeof(all), "%.*s%.*s", (int)a.out.err_len,
           a.out.err ? a.out.err : "", (int)(n > 0 ? n : 0), rest);
  CHECK(strcmp(all, "partial-err\n") == 0);
  weft_process_output_free(&a.out);
  CHECK_OK(weft_process_free(a.p));
  return NULL;
}

/* communicate() while another task reads stdout: WEFT_EBUSY, and nothing
 * is lost: the input is still sent and the other reader gets the output.
 * One worker: once the flag is seen after a yield, the reader is parked in
 * its read. */
typedef struct busy_arg {
  weft_process_t *p;
  atomic_int started;
  char buf[16];
  int n;
} busy_arg_t;

static void *busy_reader(void *arg) {
  busy_arg_t *a = arg;
  atomic_store(&a->started, 1);
  a->n = weft_stream_read(weft_process_stdout(a->p), a->buf, sizeof(a->buf));
  return NULL;
}

static void *communicate_busy(void *arg) {
  (void)arg;
  busy_arg_t a;
  memset(&a, 0, sizeof(a));
  a.p = spawn_sh("cat", WEFT_STDIO_PIPE, WEFT_STDIO_PIPE, WEFT_STDIO_DEVNULL);
  if (!a.p)
    return NULL;
  weft_task_t *t;
  CHECK_OK(weft_spawn(busy_reader, &a, &t));
  HARNESS_WAIT_PARKED(a.started);
  weft_process_output_t out;
  CHECK_RC(weft_process_communicate(a.p, "x\n", 2, &out), WEFT_EBUSY);
  CHECK(out.out != NULL && out.out_len == 0);
  weft_process_output_free(&out);
  CHECK_OK(weft_task_await(t, NULL));
  weft_task_unref(t);
  CHECK(a.n == 2 && memcmp(a.buf, "x\n", 2) == 0);
  int code;
  CHECK_OK(weft_process_wait(a.p, &code));
  CHECK_EQ(code, 0);
  CHECK_OK(weft_process_free(a.p));
  return NULL;
}

static void test_communicate_busy(void **state) {
  (void)state;
  run_in_weft(communicate_busy, NULL, 1);
}

static void test_cancel_communicate(void **state) {
  (void)state;
  run_in_weft(cancel_communicate, (void *)(intptr_t)0, 1);
  run_in_weft(cancel_communicate, (void *)(intptr_t)1, 1);
  run_in_weft(cancel_communicate, (void *)(intptr_t)0, 4);
  run_in_weft(cancel_communicate, (void *)(intptr_t)1, 4);
}

/* ---- reaping ---------------------------------------------------------- */

static int reap_pid;

/* Freed first: the child, told to end by its stdin's close, is still
 * reaped (a zombie would still answer kill(pid, 0)). */
static void *free_first(void *arg) {
  (void)arg;
  weft_process_t *p = spawn_sh("read x", WEFT_STDIO_PIPE, WEFT_STDIO_DEVNULL,
                               WEFT_STDIO_DEVNULL);
  if (!p)
    return NULL;
  int pid = weft_process_pid(p);
  CHECK(!pid_gone(pid));
  CHECK_OK(weft_process_free(p)); /* closes stdin: read x ends */
  HARNESS_WAIT(pid_gone(pid));
  /* And one freed while it runs, then killed from outside. */
  p = spawn_sh("exec sleep 100000", WEFT_STDIO_DEVNULL, WEFT_STDIO_DEVNULL,
               WEFT_STDIO_DEVNULL);
  if (!p)
    return NULL;
  pid = weft_process_pid(p);
  CHECK_OK(weft_process_free(p));
  CHECK(!pid_gone(pid));
  CHECK_EQ(kill(pid, SIGKILL), 0);
  HARNESS_WAIT(pid_gone(pid));
  return NULL;
}

static void test_reaped_after_free(void **state) {
  (void)state;
  run_in_weft(free_first, NULL, 2);
}

static void *leave_running(void *arg) {
  (void)arg;
  weft_process_t *p = spawn_sh("exec sleep 100000", WEFT_STDIO_DEVNULL,
                               WEFT_STDIO_PIPE, WEFT_STDIO_DEVNULL);
  if (p)
    reap_pid = weft_process_pid(p);
  return NULL; /* neither freed nor waited for */
}

static int proc_state(int pid) {
  char path[64], buf[512];
  snprintf(path, sizeof(path), "/proc/%d/stat", pid);
  FILE *f = fopen(path, "re");
  if (!f)
    return 0;
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = 0;
  char *rp = strrchr(buf, ')');
  return rp && rp[1] == ' ' ? rp[2] : 0;
}

/* weft_run() returns with the child running: it keeps running, and once
 * it ends it is reaped. */
static void test_shutdown_leaves_child(void **state) {
  (void)state;
  reap_pid = 0;
  run_in_weft(leave_running, NULL, 2);
  assert_true(reap_pid > 0);
  int st = proc_state(reap_pid);
  assert_true(st != 0 && st != 'Z'); /* running (or sleeping) */
  assert_int_equal(kill(reap_pid, SIGKILL), 0);
  harness_reset();
  HARNESS_WAIT(pid_gone(reap_pid));
  harness_assert_clean();
}

/* weft/signal.h watching SIGCHLD at the same time as libuv's watcher:
 * both see it, children are still reaped, and after the watcher is gone
 * too. */
static void *sigchld_watch(void *arg) {
  (void)arg;
  int sigs[1] = {SIGCHLD};
  weft_signal_t *w;
  CHECK_OK(weft_signal_new(sigs, 1, &w));
  weft_process_t *p = spawn_sh("exit 5", WEFT_STDIO_DEVNULL, WEFT_STDIO_DEVNULL,
                               WEFT_STDIO_DEVNULL);
  if (!p)
    return NULL;
  int code, sig = 0;
  CHECK_OK(weft_process_wait(p, &code));
  CHECK_EQ(code, 5);
  CHECK_OK(weft_signal_wait(w, WEFT_NO_TIMEOUT, &sig));
  CHECK_EQ(sig, SIGCHLD);
  CHECK_OK(weft_process_free(p));
  CHECK_OK(weft_signal_free(w));
  p = spawn_sh("exit 6", WEFT_STDIO_DEVNULL, WEFT_STDIO_DEVNULL,
               WEFT_STDIO_DEVNULL);
  if (!p)
    return NULL;
  CHECK_OK(weft_process_wait(p, &code));
  CHECK_EQ(code, 6);
  CHECK_OK(weft_process_free(p));
  return NULL;
}

static void test_sigchld_watcher(void **state) {
  (void)state;
  run_in_weft(sigchld_watch, NULL, 2);
}

/* ---- another runtime --------------------------------------------------- */

static void *other_main(void *arg) {
  weft_process_t *p = arg;
  weft_process_output_t out;
  CHECK_RC(weft_process_wait(p, NULL), WEFT_EOTHER_RUNTIME);
  CHECK_RC(weft_process_communicate(p, NULL, 0, &out), WEFT_EOTHER_RUNTIME);
  CHECK_RC(weft_process_send_signal(p, SIGTERM), WEFT_EOTHER_RUNTIME);
  CHECK_RC(weft_process_terminate(p), WEFT_EOTHER_RUNTIME);
  CHECK_RC(weft_process_kill(p), WEFT_EOTHER_RUNTIME);
  CHECK_RC(weft_process_free(p), WEFT_EOTHER_RUNTIME);
  /* The accessors work from anywhere. */
  CHECK(weft_process_pid(p) > 0);
  CHECK_RC(weft_process_returncode(p, NULL), 0);
  return NULL;
}

static void *other_thread(void *arg) {
  CHECK_OK(weft_run(other_main, arg, NULL, NULL));
  return NULL;
}

static void *join_thread(void *arg) {
  pthread_join(*(pthread_t *)arg, NULL);
  return NULL;
}

static void *other_body(void *arg) {
  (void)arg;
  weft_process_t *p = spawn_sh("read x; exit 3", WEFT_STDIO_PIPE,
                               WEFT_STDIO_DEVNULL, WEFT_STDIO_DEVNULL);
  if (!p)
    return NULL;
  pthread_t th;
  CHECK_EQ(pthread_create(&th, NULL, other_thread, p), 0);
  CHECK_OK(weft_to_thread(join_thread, &th, NULL));   /* not on a worker */
  CHECK_OK(weft_stream_close(weft_process_stdin(p))); /* still usable here */
  int code;
  CHECK_OK(weft_process_wait(p, &code));
  CHECK_EQ(code, 3);
  CHECK_OK(weft_process_free(p));
  return NULL;
}

static void test_other_runtime(void **state) {
  (void)state;
  run_in_weft(other_body, NULL, 2);
}

/* ---- main -------------------------------------------------------------- */

static void record_inheritable(void) {
  DIR *d = opendir("/proc/self/fd");
  if (!d)
    return;
  struct dirent *e;
  while ((e = readdir(d))) {
    int fd = atoi(e->d_name);
    if (e->d_name[0] == '.' || fd == dirfd(d) || fd < 0 || fd >= 1024)
      continue;
    int fl = fcntl(fd, F_GETFD);
    if (fl >= 0 && !(fl & FD_CLOEXEC))
      inheritable[fd] = 1;
  }
  closedir(d);
}

static int rm_tmpdir(void) {
  char cmd[PATH_MAX + 32];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
  return system(cmd);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--list-fds") == 0)
    return child_list_fds();
  if (argc > 1 && strcmp(argv[1], "--echo-both") == 0)
    return child_echo_both();
  ssize_t n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
  if (n <= 0)
    return 1;
  self_exe[n] = 0;
  record_inheritable();
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  char tmpl[] = "/tmp/weft-process-XXXXXX";
  if (!mkdtemp(tmpl) || !realpath(tmpl, tmpdir))
    return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_exit_codes),
      cmocka_unit_test(test_sigterm_ignored),
      cmocka_unit_test(test_env_cwd),
      cmocka_unit_test(test_new_session),
      cmocka_unit_test(test_stdio_kinds),
      cmocka_unit_test(test_fd_leak),
      cmocka_unit_test(test_many_children),
      cmocka_unit_test(test_big_output_slow),
      cmocka_unit_test(test_communicate_large),
      cmocka_unit_test(test_cancel_wait),
      cmocka_unit_test(test_cancel_communicate),
      cmocka_unit_test(test_communicate_busy),
      cmocka_unit_test(test_reaped_after_free),
      cmocka_unit_test(test_shutdown_leaves_child),
      cmocka_unit_test(test_sigchld_watcher),
      cmocka_unit_test(test_other_runtime),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  (void)rm_tmpdir();
  return rc;
}

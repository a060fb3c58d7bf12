/*
 * api_file: weft/file.h. Every call's success and error paths (ENOENT,
 * EISDIR, EBADF on a closed handle or a wrong-mode descriptor, EINVAL,
 * ENOTTASK...), the handle used from another worker and refused to another
 * runtime, cancellation while a
 * request runs in the pool (an open, a read and a write blocked on a FIFO:
 * the open's descriptor is closed, the read's bytes come back on the next
 * read, the write completes from its copy and its error reaches close),
 * cancellations racing completions at every point of a sequence of calls
 * (descriptors back to their count, no leak under LSan), many tasks on many
 * workers on their own files and on one shared handle, a large
 * weft_fs_read_file(), the runtime closing the handles a program left, and
 * its bounded wait for a request that never finishes.
 *
 * A request is known to be running in the pool when a thread of this
 * process is blocked in the matching system call
 * (/proc/self/task/TID/syscall), never by a sleep.
 */
#define _GNU_SOURCE /* syscall(), SYS_gettid */
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

static char dir[256]; /* the test's scratch directory */

/* buf = a/b (checked, so that the compiler sees the result used). */
static void join(char *buf, size_t cap, const char *a, const char *b) {
  if (snprintf(buf, cap, "%s/%s", a, b) >= (int)cap)
    harness_fail(__FILE__, __LINE__, "path too long: %s/%s", a, b);
}

static void path_of(char *buf, size_t cap, const char *name) {
  join(buf, cap, dir, name);
}

/* The test's own looks at /proc (how many descriptors are open, which
 * thread is in which system call) use raw system calls, which
 * ThreadSanitizer does not see. libuv closes descriptors with a raw close
 * (libuv.so imports syscall(), not close()), so TSan believes that a
 * descriptor a cancelled, abandoned open got in the pool is still open, and
 * an opendir() or fopen() here that reuses its number while the pool's
 * thread has no happens-before with this task is reported as a race on it
 * (seen in test_cancel_racing). These looks observe the process from
 * outside and must not take part. */

/* A record of getdents64(2) (the kernel's struct linux_dirent64). */
struct raw_dirent {
  uint64_t ino;
  int64_t off;
  unsigned short reclen;
  unsigned char type;
  char name[];
};

/* fn(name, arg) for each entry of directory path but . and .., until it
 * returns nonzero; returns that value, 0 at the end, -1 on an error. */
static int raw_dir_each(const char *path, int (*fn)(const char *, void *),
                        void *arg) {
  int fd = (int)syscall(SYS_openat, AT_FDCWD, path,
                        O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  char buf[4096] __attribute__((aligned(8)));
  long got;
  int rc = 0;

  if (fd < 0)
    return -1;
  while (!rc && (got = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0)
    for (long off = 0; !rc && off < got;) {
      const struct raw_dirent *e = (const void *)(buf + off);
      off += e->reclen;
      if (e->name[0] != '.')
        rc = fn(e->name, arg);
    }
  if (!rc && got < 0)
    rc = -1;
  (void)syscall(SYS_close, fd);
  return rc;
}

static int count_one(const char *name, void *arg) {
  (void)name;
  ++*(int *)arg;
  return 0;
}

/* Open descriptors of the process (the walk's own excluded). */
static int fd_count(void) {
  int n = 0;
  if (raw_dir_each("/proc/self/fd", count_one, &n) != 0)
    return -1;
  return n - 1;
}

typedef struct {
  long self, nr;
} in_syscall_t;

/* 1 if thread `name` (not the caller) is in system call q->nr. */
static int thread_is_in(const char *name, void *arg) {
  const in_syscall_t *q = arg;
  char p[96], text[32];
  long n;
  int fd;

  if (atol(name) == q->self ||
      snprintf(p, sizeof p, "/proc/self/task/%s/syscall", name) >=
          (int)sizeof p)
    return 0;
  fd = (int)syscall(SYS_openat, AT_FDCWD, p, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return 0;
  n = syscall(SYS_read, fd, text, sizeof text - 1);
  (void)syscall(SYS_close, fd);
  if (n <= 0)
    return 0;
  text[n] = 0;
  return atol(text) == q->nr && text[0] >= '0' && text[0] <= '9';
}

/* 1 if another thread of the process is in system call nr (the calling
 * thread, which reads the files with read(2), is left out). */
static int thread_in_syscall(long nr) {
  in_syscall_t q = {(long)syscall(SYS_gettid), nr};
  return raw_dir_each("/proc/self/task", thread_is_in, &q) == 1;
}

/* Write a file with plain system calls (test set-up). */
static void put_file(const char *name, const void *data, size_t n) {
  char p[320];
  int fd;

  path_of(p, sizeof p, name);
  fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  CHECK(fd >= 0);
  if (fd < 0)
    return;
  CHECK_EQ(write(fd, data, n), (long long)n);
  close(fd);
}

/* ---- every call --------------------------------------------------------- */

static void *roundtrip_body(void *arg) {
  char rt[320], p[320], q[320], sub[320], buf[64];
  weft_file_t *f = NULL;
  size_t n = 99;
  int64_t pos = 0;
  struct stat st;
  weft_dirent_t *ents = NULL;
  void *data = NULL;

  (void)arg;
  path_of(rt, sizeof rt, "rt");
  CHECK_OK(weft_fs_mkdir(rt, 0700));
  join(p, sizeof p, rt, "a.txt");
  CHECK_OK(weft_file_open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600, &f));
  CHECK(f != NULL);
  CHECK(weft_file_fileno(f) >= 0);
  /* O_CLOEXEC is always set. */
  CHECK(fcntl(weft_file_fileno(f), F_GETFD) & FD_CLOEXEC);
  CHECK_OK(weft_file_write(f, "hello ", 6, &n));
  CHECK_EQ(n, 6);
  CHECK_OK(weft_file_write(f, "world", 5, NULL));
  CHECK_OK(weft_file_write(f, "", 0, &n));
  CHECK_EQ(n, 0);
  CHECK_OK(weft_file_fsync(f));
  CHECK_OK(weft_file_fstat(f, &st));
  CHECK_EQ(st.st_size, 11);
  CHECK(S_ISREG(st.st_mode));
  CHECK_EQ(st.st_mode & 0777, 0600);
  CHECK_OK(weft_file_close(f));
  CHECK_RC(weft_file_fileno(f), WEFT_EBADF);
  CHECK_OK(weft_file_free(f));

  /* Sequential reads in small steps, then end of file. */
  CHECK_OK(weft_file_open(p, O_RDWR, 0, &f));
  CHECK_OK(weft_file_read(f, buf, 4, &n));
  CHECK_EQ(n, 4);
  CHECK(memcmp(buf, "hell", 4) == 0);
  CHECK_OK(weft_file_read(f, buf, sizeof buf, &n));
  CHECK_EQ(n, 7);
  CHECK(memcmp(buf, "o world", 7) == 0);
  CHECK_OK(weft_file_read(f, buf, sizeof buf, &n));
  CHECK_EQ(n, 0);
  CHECK_OK(weft_file_read(f, buf, 0, &n));
  CHECK_EQ(n, 0);
  /* Seek and tell. */
  CHECK_OK(weft_file_seek(f, 0, SEEK_CUR, &pos));
  CHECK_EQ(pos, 11);
  CHECK_OK(weft_file_seek(f, 6, SEEK_SET, &pos));
  CHECK_EQ(pos, 6);
  CHECK_OK(weft_file_read(f, buf, 5, &n));
  CHECK(n == 5 && memcmp(buf, "world", 5) == 0);
  CHECK_OK(weft_file_seek(f, -5, SEEK_END, &pos));
  CHECK_EQ(pos, 6);
  CHECK_RC(weft_file_seek(f, -100, SEEK_SET, &pos), WEFT_EINVAL);
  CHECK_EQ(pos, -1);
  CHECK_RC(weft_file_seek(f, 0, 42, &pos), WEFT_EINVAL);
  CHECK_OK(weft_file_seek(f, 0, SEEK_END, NULL));
  /* Positional calls leave the position alone. */
  CHECK_OK(weft_file_pread(f, buf, 5, 6, &n));
  CHECK_EQ(n, 5);
  CHECK(memcmp(buf, "world", 5) == 0);
  CHECK_OK(weft_file_pread(f, buf, 5, 100, &n));
  CHECK_EQ(n, 0);
  CHECK_OK(weft_file_pwrite(f, "W", 1, 6, &n));
  CHECK_EQ(n, 1);
  CHECK_OK(weft_file_write(f, "!", 1, NULL)); /* at the position: 11 */
  CHECK_OK(weft_file_pread(f, buf, sizeof buf, 0, &n));
  CHECK_EQ(n, 12);
  CHECK(memcmp(buf, "hello World!", 12) == 0);
  CHECK_OK(weft_file_close(f));
  CHECK_OK(weft_file_free(f));

  /* Paths. */
  CHECK_OK(weft_fs_stat(p, &st));
  CHECK_EQ(st.st_size, 12);
  join(q, sizeof q, rt, "b.txt");
  CHECK_OK(weft_fs_rename(p, q));
  CHECK_RC(weft_fs_stat(p, &st), WEFT_ENOENT);
  CHECK_OK(weft_fs_read_file(q, 0, &data, &n));
  CHECK_EQ(n, 12);
  CHECK(data != NULL && strcmp(data, "hello World!") == 0);
  weft_fs_free(data);
  join(sub, sizeof sub, rt, "sub");
  CHECK_OK(weft_fs_mkdir(sub, 0755));
  CHECK_RC(weft_fs_mkdir(sub, 0755), WEFT_EEXIST);
  CHECK_OK(weft_fs_stat(sub, &st));
  CHECK(S_ISDIR(st.st_mode));
  CHECK_OK(weft_fs_scandir(rt, &ents, &n));
  CHECK_EQ(n, 2);
  if (n == 2 && ents) {
    CHECK(strcmp(ents[0].name, "b.txt") == 0);
    CHECK_EQ(ents[0].type, WEFT_DIRENT_FILE);
    CHECK(strcmp(ents[1].name, "sub") == 0);
    CHECK_EQ(ents[1].type, WEFT_DIRENT_DIR);
  }
  weft_fs_free(ents);
  CHECK_OK(weft_fs_scandir(sub, &ents, &n));
  CHECK_EQ(n, 0);
  CHECK(ents == NULL);
  join(p, sizeof p, sub, "inner");
  CHECK_OK(weft_fs_rename(q, p));
  CHECK_RC(weft_fs_rmdir(sub), WEFT_ENOTEMPTY);
  CHECK_OK(weft_fs_unlink(p));
  CHECK_OK(weft_fs_rmdir(sub));
  CHECK_OK(weft_fs_scandir(rt, &ents, &n));
  CHECK_EQ(n, 0);
  CHECK_OK(weft_fs_rmdir(rt));
  return NULL;
}

static void test_roundtrip(void **state) {
  (void)state;
  run_in_weft(roundtrip_body, NULL, 2);
}

/* ---- errors ------------------------------------------------------------- */

static void *errors_body(void *arg) {
  char p[320], missing[320], sub[320], buf[16];
  weft_file_t *f = NULL, *ro = NULL, *wo = NULL, *d = NULL;
  size_t n = 7;
  struct stat st;
  weft_dirent_t *ents = (weft_dirent_t *)buf;
  void *data = buf;

  (void)arg;
  path_of(p, sizeof p, "e.txt");
  path_of(missing, sizeof missing, "missing/x");
  path_of(sub, sizeof sub, "edir");
  put_file("e.txt", "0123456789", 10);
  CHECK_OK(weft_fs_mkdir(sub, 0700));

  /* Arguments. */
  CHECK_RC(weft_file_open(NULL, O_RDONLY, 0, &f), WEFT_EINVAL);
  CHECK_RC(weft_file_open(p, O_RDONLY, 0, NULL), WEFT_EINVAL);
  CHECK_RC(weft_file_read(NULL, buf, 1, &n), WEFT_EINVAL);
  CHECK_EQ(n, 0);
  CHECK_RC(weft_file_write(NULL, buf, 1, NULL), WEFT_EINVAL);
  CHECK_RC(weft_file_pread(NULL, buf, 1, 0, &n), WEFT_EINVAL);
  CHECK_RC(weft_file_pwrite(NULL, buf, 1, 0, NULL), WEFT_EINVAL);
  CHECK_RC(weft_file_fstat(NULL, &st), WEFT_EINVAL);
  CHECK_RC(weft_file_fsync(NULL), WEFT_EINVAL);
  CHECK_RC(weft_file_close(NULL), WEFT_EINVAL);
  CHECK_RC(weft_file_fileno(NULL), WEFT_EINVAL);
  CHECK_RC(weft_file_seek(NULL, 0, SEEK_SET, NULL), WEFT_EINVAL);
  CHECK_OK(weft_file_free(NULL));
  CHECK_RC(weft_fs_stat(NULL, &st), WEFT_EINVAL);
  CHECK_RC(weft_fs_stat(p, NULL), WEFT_EINVAL);
  CHECK_RC(weft_fs_rename(p, NULL), WEFT_EINVAL);
  CHECK_RC(weft_fs_rename(NULL, p), WEFT_EINVAL);
  CHECK_RC(weft_fs_unlink(NULL), WEFT_EINVAL);
  CHECK_RC(weft_fs_mkdir(NULL, 0700), WEFT_EINVAL);
  CHECK_RC(weft_fs_rmdir(NULL), WEFT_EINVAL);
  CHECK_RC(weft_fs_scandir(NULL, &ents, &n), WEFT_EINVAL);
  CHECK(ents == NULL);
  CHECK_RC(weft_fs_scandir(dir, NULL, &n), WEFT_EINVAL);
  CHECK_RC(weft_fs_read_file(NULL, 0, &data, &n), WEFT_EINVAL);
  CHECK(data == NULL);
  CHECK_RC(weft_fs_read_file(p, 0, NULL, &n), WEFT_EINVAL);
  CHECK_RC(weft_fs_read_file(p, 0, &data, NULL), WEFT_EINVAL);
  weft_fs_free(NULL);

  /* The file system's errors. */
  f = (weft_file_t *)buf;
  CHECK_RC(weft_file_open(missing, O_RDONLY, 0, &f), WEFT_ENOENT);
  CHECK(f == NULL);
  CHECK_RC(weft_file_open(sub, O_WRONLY, 0, &f), WEFT_EISDIR);
  CHECK_RC(weft_file_open(p, O_WRONLY | O_CREAT | O_EXCL, 0600, &f),
           WEFT_EEXIST);
  CHECK_RC(weft_fs_stat(missing, &st), WEFT_ENOENT);
  CHECK_RC(weft_fs_rename(missing, p), WEFT_ENOENT);
  CHECK_RC(weft_fs_unlink(missing), WEFT_ENOENT);
  CHECK_RC(weft_fs_unlink(sub), WEFT_EISDIR);
  CHECK_RC(weft_fs_mkdir(missing, 0700), WEFT_ENOENT);
  CHECK_RC(weft_fs_rmdir(p), WEFT_ENOTDIR);
  CHECK_RC(weft_fs_scandir(missing, &ents, &n), WEFT_ENOENT);
  CHECK_RC(weft_fs_scandir(p, &ents, &n), WEFT_ENOTDIR);
  CHECK(ents == NULL);
  CHECK_EQ(n, 0);
  CHECK_RC(weft_fs_read_file(missing, 0, &data, &n), WEFT_ENOENT);
  CHECK_RC(weft_fs_read_file(sub, 0, &data, &n), WEFT_EISDIR);
  CHECK(data == NULL);
  CHECK_RC(weft_fs_read_file(p, 9, &data, &n), WEFT_EFBIG);
  CHECK(data == NULL);
  CHECK_EQ(n, 0);
  CHECK_OK(weft_fs_read_file(p, 10, &data, &n)); /* exactly max: fine */
  CHECK_EQ(n, 10);
  weft_fs_free(data);

  /* A directory opened for reading: its reads fail. */
  CHECK_OK(weft_file_open(sub, O_RDONLY, 0, &d));
  CHECK_RC(weft_file_read(d, buf, sizeof buf, &n), WEFT_EISDIR);
  CHECK_RC(weft_file_pread(d, buf, sizeof buf, 0, &n), WEFT_EISDIR);
  CHECK_OK(weft_file_free(d)); /* closes it */

  /* Wrong-mode descriptors and bad offsets. */
  CHECK_OK(weft_file_open(p, O_RDONLY, 0, &ro));
  CHECK_OK(weft_file_open(p, O_WRONLY, 0, &wo));
  CHECK_RC(weft_file_write(ro, "x", 1, &n), WEFT_EBADF);
  CHECK_EQ(n, 0);
  CHECK_RC(weft_file_pwrite(ro, "x", 1, 0, &n), WEFT_EBADF);
  CHECK_RC(weft_file_read(wo, buf, 1, &n), WEFT_EBADF);
  CHECK_RC(weft_file_pread(wo, buf, 1, 0, &n), WEFT_EBADF);
  CHECK_RC(weft_file_pread(ro, buf, 1, -1, &n), WEFT_EINVAL);
  CHECK_RC(weft_file_pwrite(wo, "x", 1, -1, &n), WEFT_EINVAL);
  CHECK_RC(weft_file_read(ro, NULL, 1, &n), WEFT_EINVAL);
  CHECK_RC(weft_file_read(ro, buf, 1, NULL), WEFT_EINVAL);
  CHECK_RC(weft_file_write(wo, NULL, 1, &n), WEFT_EINVAL);
  CHECK_RC(weft_file_fstat(ro, NULL), WEFT_EINVAL);
  CHECK_OK(weft_file_free(wo));

  /* A closed handle: every call is refused, the descriptor is gone. */
  int fd = weft_file_fileno(ro);
  CHECK(fd >= 0);
  CHECK_OK(weft_file_close(ro));
  CHECK_RC(fcntl(fd, F_GETFD), -1);
  CHECK_RC(weft_file_fileno(ro), WEFT_EBADF);
  CHECK_RC(weft_file_read(ro, buf, 1, &n), WEFT_EBADF);
  CHECK_RC(weft_file_pread(ro, buf, 1, 0, &n), WEFT_EBADF);
  CHECK_RC(weft_file_write(ro, "x", 1, &n), WEFT_EBADF);
  CHECK_RC(weft_file_write(ro, "x", 0, &n), WEFT_EBADF);
  CHECK_RC(weft_file_pwrite(ro, "x", 1, 0, &n), WEFT_EBADF);
  CHECK_RC(weft_file_fstat(ro, &st), WEFT_EBADF);
  CHECK_RC(weft_file_fsync(ro), WEFT_EBADF);
  CHECK_RC(weft_file_seek(ro, 0, SEEK_SET, NULL), WEFT_EBADF);
  CHECK_RC(weft_file_close(ro), WEFT_EBADF);
  CHECK_OK(weft_file_free(ro));

  /* A cancellation pending at the call: nothing is queued. */
  CHECK_EQ(weft_task_cancel(weft_task_current()), 1);
  CHECK_RC(weft_fs_stat(p, &st), WEFT_ECANCELED);
  weft_task_uncancel();
  weft_task_cancel(weft_task_current());
  f = NULL;
  CHECK_RC(weft_file_open(p, O_RDONLY, 0, &f), WEFT_ECANCELED);
  CHECK(f == NULL);
  weft_task_uncancel();

  CHECK_OK(weft_fs_unlink(p));
  CHECK_OK(weft_fs_rmdir(sub));
  return NULL;
}

static void test_errors(void **state) {
  weft_file_t *f = NULL;
  struct stat st;
  void *data = NULL;
  size_t n;
  weft_dirent_t *ents;

  (void)state;
  /* Outside a task. */
  assert_int_equal(weft_file_open("/", O_RDONLY, 0, &f), WEFT_ENOTTASK);
  assert_int_equal(weft_fs_stat("/", &st), WEFT_ENOTTASK);
  assert_int_equal(weft_fs_rename("/a", "/b"), WEFT_ENOTTASK);
  assert_int_equal(weft_fs_unlink("/a"), WEFT_ENOTTASK);
  assert_int_equal(weft_fs_mkdir("/a", 0700), WEFT_ENOTTASK);
  assert_int_equal(weft_fs_rmdir("/a"), WEFT_ENOTTASK);
  assert_int_equal(weft_fs_scandir("/", &ents, &n), WEFT_ENOTTASK);
  assert_int_equal(weft_fs_read_file("/etc/hostname", 0, &data, &n),
                   WEFT_ENOTTASK);
  run_in_weft(errors_body, NULL, 2);
}

/* ---- a handle used from another worker ---------------------------------- */

static weft_file_t *shared_f;
static char home_path[320];

static void *pinned_opener(void *arg) {
  (void)arg;
  CHECK_EQ(weft_worker_index(), 0);
  CHECK_OK(
      weft_file_open(home_path, O_RDWR | O_CREAT | O_TRUNC, 0600, &shared_f));
  CHECK_EQ(weft_worker_index(), 0);
  return NULL;
}

/* A task pinned to worker 1 uses a handle whose home is worker 0: each call
 * moves it there and back to its pin. */
static void *pinned_user(void *arg) {
  char buf[8];
  size_t n;
  struct stat st;

  (void)arg;
  CHECK_EQ(weft_worker_index(), 1);
  CHECK_OK(weft_file_pwrite(shared_f, "pin", 3, 0, NULL));
  CHECK_EQ(weft_worker_index(), 1);
  CHECK_OK(weft_file_pread(shared_f, buf, 3, 0, &n));
  CHECK_EQ(weft_worker_index(), 1);
  CHECK(n == 3 && memcmp(buf, "pin", 3) == 0);
  CHECK_OK(weft_file_write(shared_f, "abc", 3, NULL));
  CHECK_EQ(weft_worker_index(), 1);
  CHECK_OK(weft_file_fstat(shared_f, &st));
  CHECK_EQ(st.st_size, 3);
  CHECK_EQ(weft_worker_index(), 1);
  CHECK_OK(weft_file_close(shared_f));
  CHECK_EQ(weft_worker_index(), 1);
  CHECK_OK(weft_file_free(shared_f));
  CHECK_EQ(weft_worker_index(), 1);
  return NULL;
}

static void *home_body(void *arg) {
  weft_spawn_opts_t o;
  weft_task_t *t;

  (void)arg;
  path_of(home_path, sizeof home_path, "home.txt");
  weft_spawn_opts_init(&o);
  o.pin = 0;
  CHECK_OK(weft_spawn_ex(pinned_opener, NULL, &o, &t));
  CHECK_OK(weft_task_await(t, NULL));
  weft_task_unref(t);
  o.pin = 1;
  CHECK_OK(weft_spawn_ex(pinned_user, NULL, &o, &t));
  CHECK_OK(weft_task_await(t, NULL));
  weft_task_unref(t);
  CHECK_OK(weft_fs_unlink(home_path));
  return NULL;
}

static void test_home_worker(void **state) {
  (void)state;
  run_in_weft(home_body, NULL, 2);
}

/* A handle belongs to its runtime: a task of a second runtime (on a thread
 * of its own) is refused every call, and both runtimes end. */
static void *other_main(void *arg) {
  weft_file_t *f = arg;
  char buf[4];
  size_t n;
  struct stat st;

  CHECK_RC(weft_file_read(f, buf, sizeof buf, &n), WEFT_EOTHER_RUNTIME);
  CHECK_RC(weft_file_pread(f, buf, sizeof buf, 0, &n), WEFT_EOTHER_RUNTIME);
  CHECK_RC(weft_file_write(f, "x", 1, &n), WEFT_EOTHER_RUNTIME);
  CHECK_RC(weft_file_pwrite(f, "x", 1, 0, &n), WEFT_EOTHER_RUNTIME);
  CHECK_RC(weft_file_fstat(f, &st), WEFT_EOTHER_RUNTIME);
  CHECK_RC(weft_file_fsync(f), WEFT_EOTHER_RUNTIME);
  CHECK_RC(weft_file_seek(f, 0, SEEK_SET, NULL), WEFT_EOTHER_RUNTIME);
  CHECK_RC(weft_file_close(f), WEFT_EOTHER_RUNTIME);
  CHECK_RC(weft_file_free(f), WEFT_EOTHER_RUNTIME);
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
  char p[320];
  weft_file_t *f = NULL;
  pthread_t th;
  size_t n;

  (void)arg;
  path_of(p, sizeof p, "other");
  CHECK_OK(weft_file_open(p, O_RDWR | O_CREAT | O_TRUNC, 0600, &f));
  CHECK_EQ(pthread_create(&th, NULL, other_thread, f), 0);
  CHECK_OK(weft_to_thread(join_thread, &th, NULL)); /* not on a worker */
  CHECK_OK(weft_file_write(f, "mine", 4, &n));      /* still usable here */
  CHECK_OK(weft_file_close(f));
  CHECK_OK(weft_file_free(f));
  CHECK_OK(weft_fs_unlink(p));
  return NULL;
}

static void test_other_runtime(void **state) {
  (void)state;
  run_in_weft(other_body, NULL, 2);
}

/* ---- cancellation of a running request ---------------------------------- */

static char fifo[320];

typedef struct blocked {
  weft_file_t *f;   /* handle to use (read, write) */
  weft_file_t *out; /* open: what it got */
  char *buf;        /* read into / write from */
  size_t n;         /* its size */
  size_t done;      /* count the call stored */
  int rc;           /* the call's result */
  atomic_int started;
} blocked_t;

static void *blocked_open(void *arg) {
  blocked_t *b = arg;
  atomic_store(&b->started, 1);
  b->rc = weft_file_open(fifo, O_RDONLY, 0, &b->out);
  return NULL;
}

static void *blocked_read(void *arg) {
  blocked_t *b = arg;
  atomic_store(&b->started, 1);
  b->rc = weft_file_read(b->f, b->buf, b->n, &b->done);
  return NULL;
}

static void *blocked_write(void *arg) {
  blocked_t *b = arg;
  atomic_store(&b->started, 1);
  b->rc = weft_file_write(b->f, b->buf, b->n, &b->done);
  return NULL;
}

/* Spawn fn(b), wait until a pool thread is blocked in syscall nr, cancel
 * the task and check that the call returned WEFT_ECANCELED without
 * waiting for the request. */
static int cancel_while_in(weft_task_fn fn, blocked_t *b, long nr) {
  weft_task_t *t;
  int ok;

  atomic_init(&b->started, 0);
  b->rc = 1;
  CHECK_OK(weft_spawn(fn, b, &t));
  ok = HARNESS_WAIT(atomic_load(&b->started) && thread_in_syscall(nr));
  CHECK_EQ(weft_task_cancel(t), 1);
  CHECK_RC(weft_task_wait_for(t, (uint64_t)HARNESS_PROMPT_MS, NULL),
           WEFT_ECANCELED);
  weft_task_unref(t);
  CHECK_RC(b->rc, WEFT_ECANCELED);
  return ok;
}

static void *cancel_open_body(void *arg) {
  blocked_t b;
  int base, w;

  (void)arg;
  memset(&b, 0, sizeof b);
  base = fd_count();
  /* The open of a FIFO's read end blocks until a writer comes. */
  if (!cancel_while_in(blocked_open, &b, SYS_openat))
    return NULL;
  CHECK(b.out == NULL);
  CHECK_EQ(fd_count(), base); /* still blocked: nothing open yet */
  /* A writer: the abandoned open completes, and its descriptor must be
   * closed by weft. The writer's own open succeeds at once only because
   * that reader exists: proof that the open ran. Once weft closed the
   * reader's descriptor, writes fail with EPIPE (SIGPIPE is ignored). */
  w = open(fifo, O_WRONLY | O_NONBLOCK);
  CHECK(w >= 0);
  if (w >= 0) {
    HARNESS_WAIT(write(w, "x", 1) < 0 && errno == EPIPE);
    close(w);
  }
  CHECK_EQ(fd_count(), base);
  return NULL;
}

static void test_cancel_open(void **state) {
  (void)state;
  run_in_weft(cancel_open_body, NULL, 2);
}

static void *cancel_read_body(void *arg) {
  blocked_t b;
  char mine[32], got[32];
  weft_file_t *f = NULL;
  size_t n = 0;
  int w;

  (void)arg;
  memset(&b, 0, sizeof b);
  /* A writer that never blocks its open (O_RDWR on a FIFO), then the
   * reader under test. */
  w = open(fifo, O_RDWR);
  CHECK(w >= 0);
  CHECK_OK(weft_file_open(fifo, O_RDONLY, 0, &f));
  memset(mine, 'X', sizeof mine);
  b.f = f;
  b.buf = mine;
  b.n = sizeof mine;
  if (cancel_while_in(blocked_read, &b, SYS_read)) {
    CHECK_EQ(b.done, 0);
    /* Data arrives for the abandoned read: the pool must not put it into
     * the caller's buffer, and it must not be lost. */
    CHECK_EQ(write(w, "kept bytes", 10), 10);
    /* A pipe has no position: a seek fails and keeps them. */
    CHECK_RC(weft_file_seek(f, 0, SEEK_SET, NULL), WEFT_ESPIPE);
    CHECK_OK(weft_file_read(f, got, 4, &n));
    CHECK_EQ(n, 4);
    CHECK(memcmp(got, "kept", 4) == 0);
    CHECK_OK(weft_file_read(f, got, sizeof got, &n));
    CHECK_EQ(n, 6);
    CHECK(memcmp(got, " bytes", 6) == 0);
    for (size_t i = 0; i < sizeof mine; i++)
      CHECK_EQ(mine[i], 'X');
    /* Then reads go to the pipe again. */
    CHECK_EQ(write(w, "next", 4), 4);
    CHECK_OK(weft_file_read(f, got, sizeof got, &n));
    CHECK_EQ(n, 4);
    CHECK(memcmp(got, "next", 4) == 0);
  }
  CHECK_OK(weft_file_close(f));
  CHECK_OK(weft_file_free(f));
  close(w);
  return NULL;
}

static void test_cancel_read(void **state) {
  (void)state;
  run_in_weft(cancel_read_body, NULL, 2);
}

#define BIG_WRITE (1024 * 1024)

static unsigned char pattern_at(size_t i) {
  return (unsigned char)((i * 7 + i / 4099) & 0xff);
}

/* Read everything the FIFO's reader end r gets until `want` bytes or end of
 * file, checking the pattern; returns the count. */
static size_t drain_fifo(int r, size_t want) {
  static unsigned char chunk[65536];
  size_t got = 0;
  int bad = 0;
  double deadline = harness_now_ms() + HARNESS_WAIT_MS;

  while (got < want) {
    ssize_t k = read(r, chunk, sizeof chunk);
    if (k == 0)
      break;
    if (k < 0) {
      /* The pool writes the rest as the pipe empties. */
      if (errno != EAGAIN || harness_now_ms() > deadline)
        break;
      weft_sleep(1);
      continue;
    }
    for (ssize_t i = 0; i < k && !bad; i++)
      if (chunk[i] != pattern_at(got + (size_t)i))
        bad = 1;
    got += (size_t)k;
  }
  CHECK(!bad);
  return got;
}

static void *cancel_write_body(void *arg) {
  blocked_t b;
  weft_file_t *f = NULL;
  int r;
  double t0;

  (void)arg;
  memset(&b, 0, sizeof b);
  r = open(fifo, O_RDONLY | O_NONBLOCK);
  CHECK(r >= 0);
  CHECK_OK(weft_file_open(fifo, O_WRONLY, 0, &f));
  b.f = f;
  b.n = BIG_WRITE;
  b.buf = malloc(b.n);
  for (size_t i = 0; i < b.n; i++)
    b.buf[i] = (char)pattern_at(i);
  /* 1 MiB does not fit in the pipe: the write blocks in the pool. */
  if (cancel_while_in(blocked_write, &b, SYS_write)) {
    /* The caller reuses its memory: the write goes on from its copy. */
    memset(b.buf, 0, b.n);
    CHECK_EQ(drain_fifo(r, BIG_WRITE), BIG_WRITE);
    t0 = harness_now_ms();
    CHECK_OK(weft_file_close(f)); /* waits for the write; no error */
    CHECK(harness_now_ms() - t0 < HARNESS_PROMPT_MS);
  }
  CHECK_OK(weft_file_free(f));

  /* The same with the reader gone: the abandoned write's EPIPE is kept and
   * returned by close. */
  CHECK_OK(weft_file_open(fifo, O_WRONLY | O_NONBLOCK, 0, &f));
  {
    /* Blocking writes from here on. */
    int fd = weft_file_fileno(f);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  }
  b.f = f;
  for (size_t i = 0; i < b.n; i++)
    b.buf[i] = (char)pattern_at(i);
  if (cancel_while_in(blocked_write, &b, SYS_write)) {
    close(r);
    r = -1;
    CHECK_RC(weft_file_close(f), WEFT_EPIPE);
  }
  CHECK_OK(weft_file_free(f));
  if (r >= 0)
    close(r);
  free(b.buf);
  return NULL;
}

static void test_cancel_write(void **state) {
  (void)state;
  run_in_weft(cancel_write_body, NULL, 2);
}

/* ---- cancellations racing completions ----------------------------------- */

#define RACE_TASKS 8

typedef struct racer {
  int id;
  atomic_int steps; /* calls completed so far */
} racer_t;

/* A sequence of every call; stops at the first error (a cancellation),
 * releasing what it holds. */
static void *racer_body(void *arg) {
  racer_t *r = arg;
  char p[320], buf[4096];
  weft_file_t *f = NULL;
  struct stat st;
  size_t n;
  void *data;
  weft_dirent_t *ents;

  snprintf(p, sizeof p, "%s/race%d", dir, r->id);
  memset(buf, 'a' + r->id, sizeof buf);
  for (;;) {
    if (weft_file_open(p, O_RDWR | O_CREAT, 0600, &f))
      break;
    atomic_fetch_add(&r->steps, 1);
    if (weft_file_pwrite(f, buf, sizeof buf, 0, NULL) ||
        weft_file_pread(f, buf, sizeof buf, 0, &n) ||
        weft_file_read(f, buf, 100, &n) || weft_file_write(f, buf, 10, &n) ||
        weft_file_fstat(f, &st))
      break;
    atomic_fetch_add(&r->steps, 1);
    if (weft_fs_stat(p, &st))
      break;
    if (weft_fs_read_file(p, 0, &data, &n))
      break;
    weft_fs_free(data);
    if (weft_fs_scandir(dir, &ents, &n))
      break;
    weft_fs_free(ents);
    atomic_fetch_add(&r->steps, 1);
    if (weft_file_close(f))
      break;
    weft_file_free(f);
    f = NULL;
  }
  weft_file_free(f); /* not a cancellation point */
  return NULL;
}

static void *race_body(void *arg) {
  racer_t rs[RACE_TASKS];
  weft_task_t *ts[RACE_TASKS];
  int base = fd_count();
  int rounds = HARNESS_SIZE(60, 15, 20);

  (void)arg;
  for (int round = 0; round < rounds; round++) {
    for (int i = 0; i < RACE_TASKS; i++) {
      rs[i].id = i;
      atomic_init(&rs[i].steps, 0);
      CHECK_OK(weft_spawn(racer_body, &rs[i], &ts[i]));
    }
    /* Let each get to a different point, then cancel it. */
    for (int i = 0; i < RACE_TASKS; i++) {
      for (int k = 0; k < (round * 3 + i) % 11; k++)
        weft_yield();
      CHECK(weft_task_cancel(ts[i]) >= 0); /* 0: it had finished */
    }
    for (int i = 0; i < RACE_TASKS; i++) {
      weft_task_await(ts[i], NULL);
      weft_task_unref(ts[i]);
    }
    /* Abandoned requests finish in the background; their descriptors and
     * the handles' go. */
    if (!HARNESS_WAIT(fd_count() == base))
      break;
  }
  for (int i = 0; i < RACE_TASKS; i++) {
    char p[320];
    snprintf(p, sizeof p, "%s/race%d", dir, i);
    unlink(p);
  }
  return NULL;
}

static void test_cancel_racing(void **state) {
  (void)state;
  run_in_weft(race_body, NULL, 4);
}

/* ---- many tasks on many workers ----------------------------------------- */

#define MANY_TASKS 64
#define BLOCK 4096
#define OWN_BLOCKS 16

static weft_file_t *many_shared;

static void *many_task(void *arg) {
  int id = (int)(intptr_t)arg;
  char p[320], blk[BLOCK], got[BLOCK];
  weft_file_t *f = NULL;
  size_t n;

  /* Its own file, written and read back sequentially. */
  snprintf(p, sizeof p, "%s/own%d", dir, id);
  CHECK_OK(weft_file_open(p, O_RDWR | O_CREAT | O_TRUNC, 0600, &f));
  for (int b = 0; b < OWN_BLOCKS; b++) {
    memset(blk, (id + b) & 0xff, sizeof blk);
    CHECK_OK(weft_file_write(f, blk, sizeof blk, &n));
  }
  for (int b = 0; b < OWN_BLOCKS; b++) {
    CHECK_OK(weft_file_pread(f, got, sizeof got, (int64_t)b * BLOCK, &n));
    CHECK_EQ(n, BLOCK);
    memset(blk, (id + b) & 0xff, sizeof blk);
    CHECK(memcmp(got, blk, BLOCK) == 0);
  }
  CHECK_OK(weft_file_close(f));
  CHECK_OK(weft_file_free(f));
  CHECK_OK(weft_fs_unlink(p));
  /* Its block of the shared handle. */
  memset(blk, id & 0xff, sizeof blk);
  CHECK_OK(
      weft_file_pwrite(many_shared, blk, sizeof blk, (int64_t)id * BLOCK, &n));
  CHECK_EQ(n, BLOCK);
  return NULL;
}

/* Sequential reads of one handle from many tasks: each byte goes to one. */
static atomic_long seq_total;

static void *seq_reader(void *arg) {
  char buf[1000];
  size_t n;

  (void)arg;
  do {
    CHECK_OK(weft_file_read(many_shared, buf, sizeof buf, &n));
    atomic_fetch_add(&seq_total, (long)n);
  } while (n > 0);
  return NULL;
}

static void *many_body(void *arg) {
  char p[320];
  weft_task_t *ts[MANY_TASKS];
  void *data = NULL;
  size_t n = 0;

  (void)arg;
  path_of(p, sizeof p, "shared");
  CHECK_OK(weft_file_open(p, O_RDWR | O_CREAT | O_TRUNC, 0600, &many_shared));
  for (int i = 0; i < MANY_TASKS; i++)
    CHECK_OK(weft_spawn(many_task, (void *)(intptr_t)i, &ts[i]));
  CHECK_OK(weft_gather(ts, MANY_TASKS, NULL));
  for (int i = 0; i < MANY_TASKS; i++)
    weft_task_unref(ts[i]);
  CHECK_OK(weft_fs_read_file(p, 0, &data, &n));
  CHECK_EQ(n, MANY_TASKS * BLOCK);
  for (size_t i = 0; data && i < n; i++)
    if (((unsigned char *)data)[i] != (unsigned char)(i / BLOCK)) {
      CHECK_EQ(((unsigned char *)data)[i], i / BLOCK);
      break;
    }
  weft_fs_free(data);
  atomic_init(&seq_total, 0);
  for (int i = 0; i < 8; i++)
    CHECK_OK(weft_spawn(seq_reader, NULL, &ts[i]));
  CHECK_OK(weft_gather(ts, 8, NULL));
  for (int i = 0; i < 8; i++)
    weft_task_unref(ts[i]);
  CHECK_EQ(atomic_load(&seq_total), MANY_TASKS * BLOCK);
  CHECK_OK(weft_file_close(many_shared));
  CHECK_OK(weft_file_free(many_shared));
  CHECK_OK(weft_fs_unlink(p));
  return NULL;
}

static void test_many(void **state) {
  (void)state;
  run_in_weft(many_body, NULL, 4);
}

/* ---- weft_fs_read_file -------------------------------------------------- */

static void *read_file_body(void *arg) {
  size_t big = (size_t)HARNESS_SIZE(32, 8, 16) * 1024 * 1024 + 123;
  unsigned char *src = malloc(big);
  char p[320];
  void *data = NULL;
  size_t n = 0;

  (void)arg;
  for (size_t i = 0; i < big; i++)
    src[i] = pattern_at(i);
  put_file("big", src, big);
  path_of(p, sizeof p, "big");
  CHECK_OK(weft_fs_read_file(p, 0, &data, &n));
  CHECK_EQ(n, big);
  CHECK(data && memcmp(data, src, big) == 0);
  CHECK(data && ((char *)data)[n] == '\0');
  weft_fs_free(data);
  CHECK_RC(weft_fs_read_file(p, big - 1, &data, &n), WEFT_EFBIG);
  CHECK_OK(weft_fs_read_file(p, big, &data, &n));
  CHECK_EQ(n, big);
  weft_fs_free(data);
  CHECK_OK(weft_fs_unlink(p));
  /* Empty. */
  put_file("empty", "", 0);
  path_of(p, sizeof p, "empty");
  CHECK_OK(weft_fs_read_file(p, 0, &data, &n));
  CHECK_EQ(n, 0);
  CHECK(data != NULL && ((char *)data)[0] == '\0');
  weft_fs_free(data);
  CHECK_OK(weft_fs_unlink(p));
  /* A file whose size stat does not know: read to its end all the same. */
  CHECK_OK(weft_fs_read_file("/proc/self/status", 0, &data, &n));
  CHECK(n > 0 && data && strstr(data, "Threads:") != NULL);
  weft_fs_free(data);
  free(src);
  return NULL;
}

static void test_read_file(void **state) {
  (void)state;
  run_in_weft(read_file_body, NULL, 2);
}

/* ---- shutdown ----------------------------------------------------------- */

static void *leave_open_body(void *arg) {
  char p[320];
  weft_file_t *f;

  (void)arg;
  path_of(p, sizeof p, "left");
  for (int i = 0; i < 4; i++) {
    CHECK_OK(weft_file_open(p, O_RDWR | O_CREAT, 0600, &f));
    CHECK_OK(weft_file_write(f, "left", 4, NULL));
    /* never closed nor freed: weft_run closes and frees it */
  }
  return NULL;
}

static void test_shutdown_closes(void **state) {
  char p[320];
  int base = fd_count();

  (void)state;
  run_in_weft(leave_open_body, NULL, 2);
  assert_int_equal(fd_count(), base);
  path_of(p, sizeof p, "left");
  unlink(p);
}

/* A request that never finishes (a read of an empty FIFO) when main
 * returns: weft_run waits for it only for the grace period, reports it and
 * returns; the pool thread, released afterwards, finishes into the loop
 * that was left behind. */
static atomic_int stuck_started;

static void *stuck_reader(void *arg) {
  char buf[8];
  size_t n;

  atomic_store(&stuck_started, 1);
  CHECK_RC(weft_file_read(arg, buf, sizeof buf, &n), WEFT_ECANCELED);
  return NULL;
}

static void *stuck_body(void *arg) {
  weft_file_t *f = NULL;
  weft_task_t *t;

  (void)arg;
  CHECK_OK(weft_file_open(fifo, O_RDONLY, 0, &f));
  CHECK_OK(weft_spawn(stuck_reader, f, &t));
  HARNESS_WAIT(atomic_load(&stuck_started) && thread_in_syscall(SYS_read));
  weft_task_unref(t);
  return NULL; /* the reader is cancelled; f is reaped */
}

static void test_stuck_request_bounded(void **state) {
  weft_config_t cfg;
  FILE *tmp = tmpfile();
  char out[4096];
  size_t n;
  int saved, w, rc;

  (void)state;
  w = open(fifo, O_RDWR); /* a writer that never writes, until the end */
  assert_true(w >= 0);
  assert_non_null(tmp);
  weft_config_init(&cfg);
  cfg.workers = 2;
  cfg.offload_grace_ms = 100;
  fflush(stderr);
  saved = dup(2);
  assert_true(saved >= 0);
  assert_true(dup2(fileno(tmp), 2) >= 0);
  harness_reset();
  rc = weft_run(stuck_body, NULL, &cfg, NULL);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  rewind(tmp);
  n = fread(out, 1, sizeof out - 1, tmp);
  out[n] = '\0';
  fclose(tmp);
  fputs(out, stderr);
  harness_assert_clean();
  assert_int_equal(rc, 0);
  assert_non_null(strstr(out, "weft: file-system request (read) still "
                              "running 100 ms after"));
  /* Release the pool thread: its read returns into the abandoned loop. */
  assert_int_equal(write(w, "x", 1), 1);
  for (int i = 0; i < 10000 && thread_in_syscall(SYS_read); i++)
    usleep(1000);
  assert_false(thread_in_syscall(SYS_read));
  close(w);
}

/* ------------------------------------------------------------------------ */

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roundtrip),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_home_worker),
      cmocka_unit_test(test_other_runtime),
      cmocka_unit_test(test_cancel_open),
      cmocka_unit_test(test_cancel_read),
      cmocka_unit_test(test_cancel_write),
      cmocka_unit_test(test_cancel_racing),
      cmocka_unit_test(test_many),
      cmocka_unit_test(test_read_file),
      cmocka_unit_test(test_shutdown_closes),
      cmocka_unit_test(test_stuck_request_bounded),
  };
  const char *tmp = getenv("TMPDIR");
  int rc;

  /* An abandoned write to a FIFO whose reader left gets EPIPE, not a
   * signal. */
  signal(SIGPIPE, SIG_IGN);
  setenv("UV_THREADPOOL_SIZE", "4", 1);
  snprintf(dir, sizeof dir, "%s/weft-file.XXXXXX", tmp ? tmp : "/tmp");
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  path_of(fifo, sizeof fifo, "fifo");
  if (mkfifo(fifo, 0600) != 0) {
    perror("mkfifo");
    return 1;
  }
  rc = cmocka_run_group_tests(tests, NULL, NULL);
  unlink(fifo);
  {
    /* Whatever a failed test left behind. */
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[600];
    while (d && (e = readdir(d)) != NULL) {
      if (e->d_name[0] == '.')
        continue;
      snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
      if (unlink(p) != 0)
        rmdir(p);
    }
    if (d)
      closedir(d);
  }
  rmdir(dir);
  return rc;
}

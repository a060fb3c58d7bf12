/*
 * site_files.c: the --root mode of examples/site (site_files.h).
 *
 * Confinement does not trust the path's text alone: after ".." segments
 * are refused, the file is opened (the kernel follows symbolic links) and
 * the path of what was actually opened, /proc/self/fd/N, must lie under
 * the canonical root. So a link inside the directory that points out of
 * it is refused, whatever was swapped on the way, while links that stay
 * inside work. Files are opened with O_NONBLOCK, so that a FIFO put in the
 * directory cannot hold a thread-pool thread in open(2); it is then
 * refused as not regular.
 */
#define _GNU_SOURCE /* realpath */
#include "site_files.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define INDEX "index.html"

int site_files_root(const char *dir, char *out, size_t cap) {
  char *real = realpath(dir, NULL);
  struct stat st;
  if (!real || stat(real, &st) != 0 || !S_ISDIR(st.st_mode) ||
      strlen(real) >= cap) {
    fprintf(stderr, "site: --root %s: not a directory\n", dir);
    free(real);
    return -1;
  }
  strcpy(out, real);
  free(real);
  return 0;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Decode path into out[cap] (NUL-terminated). 0, or a status. */
static int decode(const char *path, size_t plen, char *out, size_t cap) {
  size_t o = 0;
  if (plen == 0 || path[0] != '/')
    return 400;
  for (size_t i = 0; i < plen; i++) {
    char c = path[i];
    if (c == '%') {
      int h = i + 2 < plen ? hexval(path[i + 1]) : -1;
      int l = h >= 0 ? hexval(path[i + 2]) : -1;
      if (l < 0)
        return 400;
      c = (char)(h * 16 + l);
      i += 2;
      if (c == '\0')
        return 400;
    }
    if (o + 1 >= cap)
      return 404; /* longer than any path of the directory */
    out[o++] = c;
  }
  out[o] = '\0';
  /* No ".." segment, whether it came encoded or not. */
  for (const char *seg = out; seg; seg = strchr(seg + 1, '/')) {
    const char *s = seg + 1;
    if (s[0] == '.' && s[1] == '.' && (s[2] == '/' || s[2] == '\0'))
      return 403;
  }
  return 0;
}

static const char *content_type(const char *path) {
  static const struct {
    const char *ext, *type;
  } types[] = {
      {".html", "text/html; charset=utf-8"},
      {".htm", "text/html; charset=utf-8"},
      {".txt", "text/plain; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".json", "application/json"},
      {".png", "image/png"},
      {".jpg", "image/jpeg"},
      {".jpeg", "image/jpeg"},
      {".gif", "image/gif"},
      {".svg", "image/svg+xml"},
  };
  const char *slash = strrchr(path, '/');
  const char *dot = strrchr(slash ? slash : path, '.');
  for (size_t i = 0; dot && i < sizeof(types) / sizeof(types[0]); i++)
    if (strcasecmp(dot, types[i].ext) == 0)
      return types[i].type;
  return "application/octet-stream";
}

/* 1 if the open descriptor fd is root or under it. Reading /proc/self/fd
 * does not touch a disk. */
static int inside(int fd, const char *root) {
  char link[64], target[PATH_MAX + 1];
  snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, target, sizeof(target) - 1);
  if (n <= 0 || (size_t)n >= sizeof(target) - 1)
    return 0;
  target[n] = '\0';
  size_t rl = strlen(root);
  if (strncmp(target, root, rl) != 0)
    return 0;
  return target[rl] == '\0' || target[rl] == '/' || (rl == 1 && root[0] == '/');
}

/* Open full (under root) as a regular file: 0 and *out, or a status. A
 * directory gives its index.html (once). */
static int open_inside(const char *root, char *full, size_t cap,
                       weft_file_t **out, struct stat *st) {
  for (int tries = 0; tries < 2; tries++) {
    weft_file_t *f = NULL;
    int rc = weft_file_open(full, O_RDONLY | O_NONBLOCK | O_NOCTTY, 0, &f);
    if (rc == WEFT_ENOENT || rc == WEFT_ENOTDIR || rc == WEFT_ENAMETOOLONG)
      return tries ? 403 : 404; /* a directory without index.html: 403 */
    if (rc == WEFT_EACCES || rc == WEFT_ELOOP)
      return 403;
    if (rc != 0)
      return 500;
    int status = 0;
    int fd = weft_file_fileno(f);
    if (fd < 0 || !inside(fd, root))
      status = 403;
    else if (weft_file_fstat(f, st) != 0)
      status = 500;
    if (status == 0 && S_ISREG(st->st_mode)) {
      *out = f;
      return 0;
    }
    weft_file_free(f);
    if (status)
      return status;
    if (!S_ISDIR(st->st_mode) || tries)
      return 403;
    size_t l = strlen(full);
    int n = snprintf(full + l, cap - l, "%s%s",
                     l && full[l - 1] == '/' ? "" : "/", INDEX);
    if (n < 0 || (size_t)n >= cap - l)
      return 404;
  }
  return 403;
}

int site_files_serve(const char *root, weft_stream_t *s, const char *path,
                     size_t plen, int head, const char *conn_hdr) {
  char rel[PATH_MAX], full[PATH_MAX + 32], hdr[512];
  int status = decode(path, plen, rel, sizeof(rel));
  if (status)
    return status;
  int n =
      snprintf(full, sizeof(full), "%s%s", strcmp(root, "/") ? root : "", rel);
  if (n < 0 || (size_t)n >= sizeof(full) - sizeof(INDEX) - 1)
    return 404;
  weft_file_t *f = NULL;
  struct stat st;
  status = open_inside(root, full, sizeof(full), &f, &st);
  if (status)
    return status;
  size_t size = (size_t)st.st_size;
  n = snprintf(hdr, sizeof(hdr),
               "HTTP/1.1 200 OK\r\n"
               "Server: weft-site\r\n"
               "Content-Type: %s\r\n"
               "Content-Length: %zu\r\n"
               "%s\r\n",
               content_type(full), size, conn_hdr);
  int rc = n > 0 && (size_t)n < sizeof(hdr) ? 0 : WEFT_ENOBUFS;
  if (rc == 0)
    rc = weft_stream_write(s, hdr, (size_t)n);
  if (rc == 0 && !head && size > 0) {
    /* Zero-copy on plaintext TCP; the header goes first (the call waits
     * for the write queue). A file cut short meanwhile would break the
     * Content-Length promise: drop the connection then. */
    size_t sent = 0;
    rc = weft_stream_sendfile(s, f, 0, size, &sent);
    if (rc == 0 && sent != size)
      rc = WEFT_EIO;
  }
  if (rc == 0)
    rc = weft_stream_drain(s);
  weft_file_free(f);
  return rc == 0 ? 0 : -1;
}

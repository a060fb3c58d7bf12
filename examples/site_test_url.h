/*
 * site_test_url.h: a small RFC 3986 reference resolver for the site tests,
 * written apart from site_model.c so that the tests check the model's hrefs
 * against an independent reading of the RFC. It handles what the site
 * produces: full http URLs of one server, network-path references,
 * absolute paths and relative paths, against a page URL "/page/N[?q]".
 */
#ifndef SITE_TEST_URL_H
#define SITE_TEST_URL_H

#include <stdio.h>
#include <string.h>

/* RFC 3986 5.2.4 remove_dot_segments: path[] rewritten in place. */
static inline void site_test_remove_dots(char *path) {
  char out[512];
  size_t olen = 0;
  const char *in = path;
  while (*in && olen < sizeof(out) - 1) {
    if (strncmp(in, "../", 3) == 0) {
      in += 3; /* A */
    } else if (strncmp(in, "./", 2) == 0) {
      in += 2; /* A */
    } else if (strncmp(in, "/./", 3) == 0) {
      in += 2; /* B */
    } else if (strcmp(in, "/.") == 0) {
      in = "/"; /* B */
    } else if (strncmp(in, "/../", 4) == 0 || strcmp(in, "/..") == 0) {
      in = in[3] ? in + 3 : "/"; /* C */
      while (olen > 0 && out[olen - 1] != '/')
        olen--;
      if (olen > 0)
        olen--;
    } else if (strcmp(in, ".") == 0 || strcmp(in, "..") == 0) {
      in += strlen(in); /* D */
    } else {
      size_t seg = 1 + strcspn(in + 1, "/"); /* E */
      if (seg > sizeof(out) - 1 - olen)
        seg = sizeof(out) - 1 - olen;
      memcpy(out + olen, in, seg);
      olen += seg;
      in += seg;
    }
  }
  memcpy(path, out, olen);
  path[olen] = 0;
}

/* Resolve ref against a page of the server base ("http://H:P", whose pages
 * all live in "/page/") and store the target's path and query, without the
 * fragment, in out[cap]. Returns 0, or -1 for a reference to another
 * server or one too long. */
static inline int site_test_resolve(const char *base, const char *ref,
                                    char *out, size_t cap) {
  char r[512], path[512];
  if (snprintf(r, sizeof(r), "%s", ref) >= (int)sizeof(r))
    return -1;
  r[strcspn(r, "#")] = 0;
  const char *authority = base + strlen("http:"); /* "//H:P" */
  if (strncmp(r, "http://", 7) == 0 || strncmp(r, "//", 2) == 0) {
    const char *prefix = r[0] == '/' ? authority : base;
    size_t pl = strlen(prefix);
    if (strncmp(r, prefix, pl) != 0 || (r[pl] && r[pl] != '/' && r[pl] != '?'))
      return -1;
    snprintf(path, sizeof(path), "%s", r[pl] ? r + pl : "/");
  } else if (r[0] == '/') {
    snprintf(path, sizeof(path), "%s", r);
  } else if (snprintf(path, sizeof(path), "/page/%s", r) >= (int)sizeof(path)) {
    return -1; /* merged with the base path "/page/N": "/page/" kept */
  }
  char query[128] = "";
  char *q = strchr(path, '?');
  if (q) {
    snprintf(query, sizeof(query), "%s", q);
    *q = 0;
  }
  site_test_remove_dots(path);
  size_t pl = strlen(path), ql = strlen(query);
  if (pl + ql >= cap)
    return -1;
  memcpy(out, path, pl);
  memcpy(out + pl, query, ql + 1);
  return 0;
}

#endif /* SITE_TEST_URL_H */

/*
 * site_http_check_test.c: the checker of site_http.h alone, on the request
 * forms of site_http_cases.h.
 *
 * Each form is fed to the checker as site feeds it, the way a connection
 * may bring it: whole, then in pieces of every size from 1 byte up, the
 * bytes the checker has not passed kept in front of the next piece. Every
 * way must give the same verdict: for an accepted form, the end of the
 * request exactly at its last byte, with every byte passed; for a rejected
 * one, its status, before the end. Then requests back to back (the checker
 * starts over after each end) and the head limit's edges.
 */
#include "site_http.h"
#include "site_http_cases.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define HEAD_MAX (12 * 1024) /* as site's REQ_HEAD_MAX */

/* q's bytes with PAD expanded; *len is set. The caller frees them. */
static char *expand(const raw_request_t *q, size_t *len) {
  const char *pad = q->pad ? strstr(q->req, PAD) : NULL;
  size_t before = pad ? (size_t)(pad - q->req) : q->len;
  size_t after = pad ? q->len - before - strlen(PAD) : 0;
  *len = before + (pad ? q->pad : 0) + after;
  char *b = malloc(*len + 1);
  assert_non_null(b);
  memcpy(b, q->req, before);
  if (pad) {
    memset(b + before, 'a', q->pad);
    memcpy(b + before + q->pad, pad + strlen(PAD), after);
  }
  return b;
}

/* Feed req[0..len) to a fresh checker in pieces of `piece` bytes, the
 * bytes not passed kept before the next piece (as site's buffer keeps
 * them). Returns the first verdict other than SITE_HTTP_MORE, or
 * SITE_HTTP_MORE once every byte was fed; *passed is the bytes passed. */
static int feed(const char *req, size_t len, size_t piece, size_t *passed) {
  site_http_t h;
  site_http_init(&h, HEAD_MAX);
  char *buf = malloc(len + 1);
  assert_non_null(buf);
  size_t have = 0, fed = 0;
  *passed = 0;
  int rc = SITE_HTTP_MORE;
  while (fed < len) {
    size_t n = len - fed < piece ? len - fed : piece;
    memcpy(buf + have, req + fed, n);
    have += n;
    fed += n;
    size_t pass = 0;
    rc = site_http_check(&h, buf, have, &pass);
    assert_true(pass <= have);
    *passed += pass;
    memmove(buf, buf + pass, have - pass);
    have -= pass;
    if (rc != SITE_HTTP_MORE)
      break;
  }
  free(buf);
  return rc;
}

/* The piece sizes to try for a request of len bytes: every size up to
 * 64, then a few larger, then whole. */
static size_t next_piece(size_t piece, size_t len) {
  if (piece < 64)
    return piece + 1;
  if (piece < len)
    return piece * 2 < len ? piece * 2 : len;
  return len + 1;
}

static void test_rejected_forms(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(rejected) / sizeof(rejected[0]); i++) {
    size_t len, passed;
    char *req = expand(&rejected[i], &len);
    for (size_t piece = 1; piece <= len; piece = next_piece(piece, len)) {
      int rc = feed(req, len, piece, &passed);
      if (rc != rejected[i].status)
        fail_msg("%s, in pieces of %zu: %d, not %d", rejected[i].name, piece,
                 rc, rejected[i].status);
      assert_true(passed < len);
    }
    free(req);
  }
}

static void test_accepted_forms(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(accepted) / sizeof(accepted[0]); i++) {
    size_t len, passed;
    char *req = expand(&accepted[i], &len);
    for (size_t piece = 1; piece <= len; piece = next_piece(piece, len)) {
      int rc = feed(req, len, piece, &passed);
      if (rc != SITE_HTTP_END || passed != len)
        fail_msg("%s, in pieces of %zu: %d after %zu of %zu bytes",
                 accepted[i].name, piece, rc, passed, len);
    }
    free(req);
  }
}

/* Every accepted form back to back on one checker: each ends where it
 * should, and the checker starts over after it. */
static void test_back_to_back(void **state) {
  (void)state;
  site_http_t h;
  site_http_init(&h, HEAD_MAX);
  for (int round = 0; round < 2; round++) {
    for (size_t i = 0; i < sizeof(accepted) / sizeof(accepted[0]); i++) {
      size_t len, pass;
      char *req = expand(&accepted[i], &len);
      /* With the start of the next request behind it in the same bytes. */
      char *two = malloc(len + 16);
      assert_non_null(two);
      memcpy(two, req, len);
      memcpy(two + len, "GET / HTTP/1.1\r", 15);
      assert_int_equal(site_http_check(&h, two, len + 15, &pass),
                       SITE_HTTP_END);
      assert_int_equal(pass, len);
      free(two);
      free(req);
    }
  }
}

/* The head limit: a head of exactly HEAD_MAX bytes passes, one more byte
 * is 431 (414 in the request line), whether the line is whole or not. */
static void test_head_limit(void **state) {
  (void)state;
  static char req[HEAD_MAX + 64];
  static const char start[] = "GET / HTTP/1.1\r\nHost: x\r\nX: ";
  size_t fixed = strlen(start) + 4; /* and "\r\n\r\n" */
  for (int over = 0; over < 2; over++) {
    size_t pad = HEAD_MAX - fixed + (size_t)over, len, passed;
    memcpy(req, start, strlen(start));
    memset(req + strlen(start), 'a', pad);
    memcpy(req + strlen(start) + pad, "\r\n\r\n", 4);
    len = fixed + pad;
    assert_int_equal(feed(req, len, len, &passed), over ? 431 : SITE_HTTP_END);
    assert_int_equal(feed(req, len, 1000, &passed), over ? 431 : SITE_HTTP_END);
  }
  size_t len = HEAD_MAX + 1, passed;
  memcpy(req, "GET /", 5);
  memset(req + 5, 'a', len - 5);
  assert_int_equal(feed(req, len, len, &passed), 414);
  assert_int_equal(feed(req, len, 100, &passed), 414);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rejected_forms),
      cmocka_unit_test(test_accepted_forms),
      cmocka_unit_test(test_back_to_back),
      cmocka_unit_test(test_head_limit),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

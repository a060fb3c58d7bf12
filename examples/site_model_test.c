/*
 * site_model_test.c: unit checks of site_model.c. The model is what a
 * crawler's test trusts for its expectations, so its promises are checked
 * here against independent computations: hrefs are resolved by the small
 * RFC 3986 resolver of site_test_url.h, and the reachable set is recomputed by
 * a fixpoint over all pages instead of a graph search.
 */
#include "site_model.h"
#include "site_test_url.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define BASE "http://127.0.0.1:8080"

static site_model_t model_of(unsigned pages, uint64_t seed) {
  site_params_t p;
  site_params_init(&p);
  p.pages = pages;
  p.seed = seed;
  site_model_t m;
  assert_int_equal(site_model_init(&m, &p), 0);
  return m;
}

static void test_params(void **state) {
  (void)state;
  site_params_t p;
  site_model_t m;
  site_params_init(&p);
  assert_int_equal(p.pages, 10000);
  assert_int_equal(site_model_init(&m, &p), 0);
  p.pages = 0;
  assert_int_equal(site_model_init(&m, &p), -EINVAL);
  site_params_init(&p);
  p.links = SITE_LINKS_MAX - 1;
  assert_int_equal(site_model_init(&m, &p), -EINVAL);
  site_params_init(&p);
  p.error_share = 1.5;
  assert_int_equal(site_model_init(&m, &p), -EINVAL);
  site_params_init(&p);
  p.slow_share = 0.5;
  p.redirect_share = 0.5;
  assert_int_equal(site_model_init(&m, &p), -EINVAL);
  p.redirect_share = 0.45; /* the four page shares add up to 1 */
  assert_int_equal(site_model_init(&m, &p), 0);
}

/* Two models of the same parameters agree on everything; another seed
 * changes the site. */
static void test_determinism(void **state) {
  (void)state;
  site_model_t a = model_of(500, 7), b = model_of(500, 7), c = model_of(500, 8);
  size_t cap = site_body_max(&a);
  char *ba = malloc(cap), *bb = malloc(cap), *bc = malloc(cap);
  assert_non_null(ba);
  assert_non_null(bb);
  assert_non_null(bc);
  int differ = 0;
  for (uint64_t n = 0; n < 1000; n++) {
    assert_int_equal(site_page_kind(&a, n), site_page_kind(&b, n));
    assert_int_equal(site_page_status(&a, n), site_page_status(&b, n));
    assert_int_equal(site_redirect_target(&a, n), site_redirect_target(&b, n));
    size_t la = site_page_body(&a, n, BASE, ba, cap);
    size_t lb = site_page_body(&b, n, BASE, bb, cap);
    size_t lc = site_page_body(&c, n, BASE, bc, cap);
    assert_true(la > 0);
    assert_int_equal(la, lb);
    assert_memory_equal(ba, bb, la);
    if (lc != la || memcmp(ba, bc, la) != 0)
      differ++;
  }
  assert_true(differ > 400);
  free(ba);
  free(bb);
  free(bc);
}

/* The shares are honoured, page 0 is OK, pages past the end are 404. */
static void test_kinds(void **state) {
  (void)state;
  site_model_t m = model_of(10000, 1);
  assert_int_equal(site_page_kind(&m, 0), SITE_OK);
  assert_int_equal(site_page_kind(&m, 10000), SITE_NOT_FOUND);
  assert_int_equal(site_page_status(&m, 10000), 404);
  size_t sum = 0;
  for (int k = 0; k < SITE_KIND_COUNT; k++)
    sum += site_count_kind(&m, (site_kind_t)k);
  assert_int_equal(sum, 10000);
  assert_int_equal(site_count_kind(&m, SITE_NOT_FOUND), 0);
  size_t slow = site_count_kind(&m, SITE_SLOW);
  size_t redirect = site_count_kind(&m, SITE_REDIRECT);
  size_t error = site_count_kind(&m, SITE_ERROR_500);
  size_t hang = site_count_kind(&m, SITE_HANG);
  assert_in_range(slow, 400, 600);
  assert_in_range(redirect, 400, 600);
  assert_in_range(error, 130, 270);
  assert_in_range(hang, 2, 25);
  for (uint64_t n = 0; n < 10000; n++) {
    int st = site_page_status(&m, n);
    switch (site_page_kind(&m, n)) {
    case SITE_OK:
    case SITE_SLOW:
      assert_int_equal(st, 200);
      break;
    case SITE_REDIRECT:
      assert_true(st == 301 || st == 302);
      break;
    case SITE_ERROR_500:
      assert_int_equal(st, 500);
      break;
    case SITE_HANG:
      assert_int_equal(st, 0);
      break;
    default:
      fail();
    }
  }
  /* Without slow pages the other kinds stay where they were. */
  site_params_t p = m.p;
  p.slow_share = 0;
  site_model_t fast;
  assert_int_equal(site_model_init(&fast, &p), 0);
  for (uint64_t n = 0; n < 10000; n++) {
    site_kind_t k = site_page_kind(&m, n);
    assert_int_equal(site_page_kind(&fast, n), k == SITE_SLOW ? SITE_OK : k);
  }
}

static void test_redirects(void **state) {
  (void)state;
  site_model_t m = model_of(2000, 3);
  char loc[SITE_HREF_MAX], path[SITE_PATH_MAX];
  size_t count = 0, full = 0;
  for (uint64_t n = 0; n < 2000; n++) {
    uint64_t t = site_redirect_target(&m, n);
    if (site_page_kind(&m, n) != SITE_REDIRECT) {
      assert_int_equal(t, n);
      assert_int_equal(site_redirect_location(&m, n, BASE, loc, sizeof(loc)),
                       0);
      continue;
    }
    count++;
    assert_true(t < 2000);
    assert_int_not_equal(site_page_kind(&m, t), SITE_REDIRECT);
    assert_true(site_page_path(&m, t, path, sizeof(path)) > 0);
    assert_true(site_redirect_location(&m, n, BASE, loc, sizeof(loc)) > 0);
    if (strncmp(loc, BASE, strlen(BASE)) == 0) {
      full++;
      assert_string_equal(loc + strlen(BASE), path);
    } else {
      assert_string_equal(loc, path);
    }
  }
  assert_true(count > 50);
  assert_true(full > 0 && full < count);
}

/* Every href of every body resolves to its target's canonical URL, the
 * body holds exactly the hrefs of site_link_href() in order, and sizes are
 * 2-6 KiB. */
static void test_links_and_bodies(void **state) {
  (void)state;
  site_model_t m = model_of(3000, 11);
  size_t cap = site_body_max(&m);
  char *body = malloc(cap);
  assert_non_null(body);
  uint64_t links[SITE_LINKS_MAX];
  size_t forms_seen = 0, missing = 0, fragments = 0, queries = 0, total = 0;
  for (uint64_t n = 0; n < 3000; n++) {
    site_kind_t k = site_page_kind(&m, n);
    size_t len = site_page_body(&m, n, BASE, body, cap);
    assert_true(len > 0 && len < cap);
    body[len] = 0;
    size_t count = site_page_links(&m, n, links, SITE_LINKS_MAX);
    if (k != SITE_OK && k != SITE_SLOW) {
      assert_int_equal(count, 0);
      assert_null(strstr(body, "<a "));
      assert_true(len < 512);
      continue;
    }
    assert_in_range(len, 2048, 6143); /* exactly the hashed size */
    assert_in_range(count, 6, 10);
    if (n + 1 < 3000)
      assert_int_equal(links[0], n + 1);
    const char *at = body;
    for (size_t i = 0; i < count; i++) {
      char href[SITE_HREF_MAX], got[SITE_HREF_MAX], want[SITE_PATH_MAX];
      assert_true(site_link_href(&m, n, i, BASE, href, sizeof(href)) > 0);
      char needle[SITE_HREF_MAX + 16];
      snprintf(needle, sizeof(needle), "<a href=\"%s\">", href);
      const char *hit = strstr(at, needle);
      assert_non_null(hit);
      at = hit + strlen(needle);
      site_test_resolve(BASE, href, got, sizeof(got));
      site_page_path(&m, links[i], want, sizeof(want));
      assert_string_equal(got, want);
      assert_true(links[i] < 6000);
      missing += links[i] >= 3000;
      fragments += strchr(href, '#') != NULL;
      queries += strchr(href, '?') != NULL;
      forms_seen += strncmp(href, "//", 2) == 0;
      total++;
    }
    assert_null(strstr(at, "<a "));
    assert_int_equal(site_link_href(&m, n, count, BASE, body, cap), 0);
  }
  assert_true(missing > total / 200 && missing < total / 50);
  assert_true(fragments > total / 8 && fragments < total / 2);
  assert_true(queries > total / 10 && queries < total / 3);
  assert_true(forms_seen > 0);
  free(body);
}

/* The reachable set, recomputed as a fixpoint: page 0, and whatever a page
 * of the set links or redirects to, until nothing changes. */
static void check_reach(const site_model_t *m) {
  site_reach_t r;
  assert_int_equal(site_reach_compute(m, &r), 0);
  size_t universe = (size_t)m->p.pages * 2;
  assert_int_equal(r.universe, universe);
  unsigned char *seen = calloc(universe, 1);
  assert_non_null(seen);
  seen[0] = 1;
  uint64_t links[SITE_LINKS_MAX];
  for (int changed = 1; changed;) {
    changed = 0;
    for (uint64_t n = 0; n < m->p.pages; n++) {
      if (!seen[n])
        continue;
      size_t count = site_page_links(m, n, links, SITE_LINKS_MAX);
      if (site_page_kind(m, n) == SITE_REDIRECT) {
        links[0] = site_redirect_target(m, n);
        count = 1;
      }
      for (size_t i = 0; i < count; i++) {
        if (!seen[links[i]])
          changed = seen[links[i]] = 1;
      }
    }
  }
  size_t total = 0, by_kind[SITE_KIND_COUNT] = {0};
  for (size_t n = 0; n < universe; n++) {
    assert_int_equal(r.seen[n], seen[n]);
    if (seen[n]) {
      total++;
      by_kind[site_page_kind(m, n)]++;
    }
  }
  assert_int_equal(r.total, total);
  for (int k = 0; k < SITE_KIND_COUNT; k++)
    assert_int_equal(r.by_kind[k], by_kind[k]);
  free(seen);
  site_reach_free(&r);
  assert_null(r.seen);
}

static void test_reach(void **state) {
  (void)state;
  site_model_t m = model_of(200, 1);
  check_reach(&m);
  m = model_of(10000, 1);
  check_reach(&m);
  site_reach_t r;
  assert_int_equal(site_reach_compute(&m, &r), 0);
  /* The default site is mostly reachable, with every kind among it. */
  assert_true(r.total > 9000);
  for (int k = 0; k < SITE_KIND_COUNT; k++)
    assert_true(r.by_kind[k] > 0);
  /* Slow pages off: the same set. */
  site_params_t p = m.p;
  p.slow_share = 0;
  site_model_t fast;
  assert_int_equal(site_model_init(&fast, &p), 0);
  site_reach_t rf;
  assert_int_equal(site_reach_compute(&fast, &rf), 0);
  assert_int_equal(rf.total, r.total);
  assert_memory_equal(rf.seen, r.seen, r.universe);
  assert_int_equal(rf.by_kind[SITE_OK],
                   r.by_kind[SITE_OK] + r.by_kind[SITE_SLOW]);
  site_reach_free(&rf);
  site_reach_free(&r);

  /* No links: only page 0. One page with links to itself: just it. */
  p.pages = 100;
  p.links = 0;
  assert_int_equal(site_model_init(&m, &p), 0);
  assert_int_equal(site_reach_compute(&m, &r), 0);
  assert_int_equal(r.total, 1);
  site_reach_free(&r);
  p.pages = 1;
  p.links = 8;
  p.missing_share = 0;
  assert_int_equal(site_model_init(&m, &p), 0);
  assert_int_equal(site_reach_compute(&m, &r), 0);
  assert_int_equal(r.total, 1);
  assert_int_equal(r.by_kind[SITE_OK], 1);
  site_reach_free(&r);
  for (uint64_t seed = 2; seed < 6; seed++) {
    m = model_of(300 + (unsigned)seed, seed);
    check_reach(&m);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_params),
      cmocka_unit_test(test_determinism),
      cmocka_unit_test(test_kinds),
      cmocka_unit_test(test_redirects),
      cmocka_unit_test(test_links_and_bodies),
      cmocka_unit_test(test_reach),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

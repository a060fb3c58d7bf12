/*
 * robots_test.c: unit tests of robots.c (RFC 9309 parsing and matching),
 * one case per rule of robots.h: groups and user-agent matching, merged
 * groups, the "*" fallback, longest match, allow winning a tie, "*" and
 * "$", comments, a byte order mark, line ends, the 500 KiB limit,
 * Crawl-delay, empty rules, the all-allow and all-disallow rule sets,
 * misuse; and examples/site's robots.txt against the site model's own
 * reading of it, page by page.
 */
#include "robots.h"
#include "site_model.h"

#include <weft.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define AGENT "weft-crawler"

static robots_t *parse(const char *txt) {
  robots_t *r = NULL;
  assert_int_equal(robots_parse(txt, strlen(txt), AGENT, &r), 0);
  assert_non_null(r);
  return r;
}

static int ok(const robots_t *r, const char *path) {
  return robots_allowed(r, path, strlen(path));
}

static void groups_and_agents(void **state) {
  (void)state;
  robots_t *r = parse("User-agent: otherbot\n"
                      "Disallow: /\n"
                      "\n"
                      "User-agent: Weft-Crawler/1.0 (+https://example)\n"
                      "Disallow: /private\n"
                      "\n"
                      "User-agent: *\n"
                      "Disallow: /everyone\n");
  /* Only our group applies: not otherbot's "/", not the "*" one. */
  assert_int_equal(ok(r, "/"), 1);
  assert_int_equal(ok(r, "/private/x"), 0);
  assert_int_equal(ok(r, "/everyone"), 1);
  assert_int_equal(robots_rule_count(r), 1);
  robots_free(r);

  /* No group names us: the "*" group applies. */
  r = parse("User-agent: otherbot\nDisallow: /a\n"
            "User-agent: *\nDisallow: /b\n");
  assert_int_equal(ok(r, "/a"), 1);
  assert_int_equal(ok(r, "/b"), 0);
  robots_free(r);

  /* A longer token is another agent. */
  r = parse("User-agent: weft-crawlerx\nDisallow: /\n");
  assert_int_equal(ok(r, "/x"), 1);
  robots_free(r);

  /* Two agents sharing a group; two groups for us, merged; a user-agent
   * line after rules starts a new group. */
  r = parse("User-agent: a\nUser-agent: weft-crawler\nDisallow: /one\n"
            "User-agent: b\nDisallow: /two\n"
            "user-agent: WEFT-CRAWLER\nDisallow: /three\n");
  assert_int_equal(ok(r, "/one"), 0);
  assert_int_equal(ok(r, "/two"), 1);
  assert_int_equal(ok(r, "/three"), 0);
  robots_free(r);

  /* Rules before any group are ignored; no group at all: allow all. */
  r = parse("Disallow: /\nSitemap: https://x/sitemap.xml\n");
  assert_int_equal(ok(r, "/"), 1);
  assert_int_equal(robots_rule_count(r), 0);
  robots_free(r);

  /* A group naming us without allow or disallow rules still hides the
   * "*" group; consecutive user-agent lines (blank lines between them
   * included) are one group. */
  r = parse("User-agent: weft-crawler\nCrawl-delay: 1\n"
            "User-agent: *\nDisallow: /\n");
  assert_int_equal(ok(r, "/"), 1);
  robots_free(r);
  r = parse("User-agent: weft-crawler\n\nUser-agent: *\nDisallow: /\n");
  assert_int_equal(ok(r, "/"), 0);
  robots_free(r);
}

static void longest_match_and_ties(void **state) {
  (void)state;
  robots_t *r = parse("User-agent: *\n"
                      "Disallow: /page\n"
                      "Allow: /page/public\n"
                      "Disallow: /page/public/secret\n"
                      "Allow: /same\n"
                      "Disallow: /same\n"
                      "Disallow: /\n"
                      "Allow: /$\n");
  assert_int_equal(ok(r, "/page/1"), 0);
  assert_int_equal(ok(r, "/page/public/1"), 1);
  assert_int_equal(ok(r, "/page/public/secret/1"), 0);
  assert_int_equal(ok(r, "/same/thing"), 1); /* tie: allow */
  assert_int_equal(ok(r, "/"), 1);           /* "/$" is longer than "/" */
  assert_int_equal(ok(r, "/other"), 0);
  assert_int_equal(ok(r, "/robots.txt"), 1); /* always */
  robots_free(r);
}

static void wildcards_and_anchors(void **state) {
  (void)state;
  robots_t *r = parse("User-agent: *\n"
                      "Disallow: /*.gif$\n"
                      "Disallow: /a*b*c\n"
                      "Disallow: /*?rev=1\n"
                      "Disallow: /exact$\n"
                      "Disallow: /mid$dle\n");
  assert_int_equal(ok(r, "/x/y.gif"), 0);
  assert_int_equal(ok(r, "/x/y.gif?z"), 1); /* "$": the end */
  assert_int_equal(ok(r, "/a-b-c-d"), 0);
  assert_int_equal(ok(r, "/a-c-b"), 1);
  assert_int_equal(ok(r, "/page/3?rev=12"), 0);
  assert_int_equal(ok(r, "/page/3?rev=2"), 1);
  assert_int_equal(ok(r, "/exact"), 0);
  assert_int_equal(ok(r, "/exactly"), 1);
  assert_int_equal(ok(r, "/mid$dle/x"), 0); /* "$" inside: itself */
  assert_int_equal(ok(r, "/middle"), 1);
  robots_free(r);

  /* Many stars against a long path stays fast (no exponential search). */
  char rule[256] = "User-agent: *\nDisallow: /";
  for (int i = 0; i < 40; i++)
    strcat(rule, "*a");
  strcat(rule, "b\n");
  r = parse(rule);
  char path[4096];
  path[0] = '/';
  memset(path + 1, 'a', sizeof(path) - 2);
  path[sizeof(path) - 1] = '\0';
  assert_int_equal(ok(r, path), 1);
  robots_free(r);
}

static void syntax(void **state) {
  (void)state;
  /* A BOM, comments, CR and CRLF line ends, blanks, case of keys, lines
   * without a colon, an empty Disallow. */
  robots_t *r = parse("\xEF\xBB\xBF# comment line\r\n"
                      "  USER-AGENT :  *  # trailing comment\r"
                      "DISALLOW:/x # not part of the rule\r\n"
                      "this line has no colon\n"
                      "Disallow:\n"
                      "Allow:\t/x/ok\t\n");
  assert_int_equal(ok(r, "/x"), 0);
  assert_int_equal(ok(r, "/x/ok"), 1);
  assert_int_equal(ok(r, "/y"), 1);
  assert_int_equal(robots_rule_count(r), 2);
  robots_free(r);

  /* Empty file. */
  r = NULL;
  assert_int_equal(robots_parse("", 0, AGENT, &r), 0);
  assert_int_equal(ok(r, "/"), 1);
  robots_free(r);
}

static void size_limit(void **state) {
  (void)state;
  /* A group and a rule, padding to past 500 KiB, then a rule cut by the
   * limit and one after it: neither counts. */
  size_t pad = ROBOTS_MAX_BYTES;
  char *txt = malloc(pad + 128);
  assert_non_null(txt);
  size_t n = (size_t)sprintf(txt, "User-agent: *\nDisallow: /early\n");
  while (n < ROBOTS_MAX_BYTES - 20) {
    memcpy(txt + n, "# padding padding\n", 18);
    n += 18;
  }
  n += (size_t)sprintf(txt + n, "Disallow: /cut-by-the-limit\n"
                                "Disallow: /late\n");
  assert_true(n > ROBOTS_MAX_BYTES);
  robots_t *r = NULL;
  assert_int_equal(robots_parse(txt, n, AGENT, &r), 0);
  assert_int_equal(ok(r, "/early"), 0);
  assert_int_equal(ok(r, "/cut-by-the-limit"), 1);
  assert_int_equal(ok(r, "/late"), 1);
  assert_int_equal(robots_rule_count(r), 1);
  robots_free(r);
  free(txt);
}

static void crawl_delay(void **state) {
  (void)state;
  robots_t *r = parse("User-agent: *\nCrawl-delay: 2.5\n"
                      "User-agent: weft-crawler\nCrawl-delay: 0.25\n"
                      "Crawl-delay: bogus\nCrawl-delay: -3\n");
  assert_int_equal(robots_crawl_delay_ms(r, 60000), 250);
  robots_free(r);
  r = parse("User-agent: *\nCrawl-delay: 2.5\n");
  assert_int_equal(robots_crawl_delay_ms(r, 60000), 2500);
  assert_int_equal(robots_crawl_delay_ms(r, 1000), 1000); /* capped */
  robots_free(r);
  r = parse("User-agent: *\nDisallow: /\n");
  assert_int_equal(robots_crawl_delay_ms(r, 60000), 0);
  robots_free(r);
  assert_int_equal(robots_crawl_delay_ms(NULL, 60000), 0);
}

static void all_and_misuse(void **state) {
  (void)state;
  robots_t *r = NULL;
  assert_int_equal(robots_new_all(0, &r), 0);
  assert_int_equal(ok(r, "/"), 0);
  assert_int_equal(ok(r, "/robots.txt"), 1);
  robots_free(r);
  assert_int_equal(robots_new_all(1, &r), 0);
  assert_int_equal(ok(r, "/anything"), 1);
  robots_free(r);
  assert_int_equal(ok(NULL, "/"), 1);
  robots_free(NULL);
  assert_int_equal(robots_parse("x", 1, NULL, &r), WEFT_EINVAL);
  assert_int_equal(robots_parse("x", 1, "", &r), WEFT_EINVAL);
  assert_int_equal(robots_parse(NULL, 1, AGENT, &r), WEFT_EINVAL);
  assert_int_equal(robots_parse("x", 1, AGENT, NULL), WEFT_EINVAL);
  assert_int_equal(robots_new_all(1, NULL), WEFT_EINVAL);
}

/* examples/site's robots.txt, parsed here, agrees page by page with the
 * model's hand-written site_page_disallowed() (two independent readings of
 * the same rules), for us and for the agent whose group disallows all. */
static void site_rules_agree_with_model(void **state) {
  (void)state;
  site_params_t p;
  site_params_init(&p);
  p.pages = 2000;
  site_model_t m;
  assert_int_equal(site_model_init(&m, &p), 0);
  robots_t *r = parse(SITE_ROBOTS_TXT), *other = NULL;
  assert_int_equal(robots_parse(SITE_ROBOTS_TXT, strlen(SITE_ROBOTS_TXT),
                                "otherbot", &other),
                   0);
  size_t disallowed = 0;
  for (uint64_t n = 0; n < 2 * p.pages; n++) {
    char path[SITE_PATH_MAX];
    size_t len = site_page_path(&m, n, path, sizeof(path));
    assert_true(len > 0);
    int want = !site_page_disallowed(&m, n);
    if (robots_allowed(r, path, len) != want)
      fail_msg("%s: robots.c says %d, the model %d", path, !want, want);
    disallowed += !want;
    assert_int_equal(robots_allowed(other, path, len), 0);
  }
  /* Both kinds of rule and the tie occur. */
  assert_true(disallowed > 0 && disallowed < 2 * p.pages);
  assert_int_equal(robots_allowed(r, "/", 1), 1);
  robots_free(r);
  robots_free(other);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(groups_and_agents),
      cmocka_unit_test(longest_match_and_ties),
      cmocka_unit_test(wildcards_and_anchors),
      cmocka_unit_test(syntax),
      cmocka_unit_test(size_limit),
      cmocka_unit_test(crawl_delay),
      cmocka_unit_test(all_and_misuse),
      cmocka_unit_test(site_rules_agree_with_model),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

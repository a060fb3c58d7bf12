/*
 * robots.c: robots.txt parsing and matching (robots.h says what exactly).
 * One pass over the lines collects the rules of the groups that name the
 * agent and, apart, those of the "*" groups; the first set is kept if any
 * group named the agent, else the second. Matching tries every rule: a
 * robots.txt has tens of rules, and a crawler asks once per URL.
 */
#include "robots.h"

#include <weft.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct rule {
  char *pat;     /* the pattern without a final "$" */
  size_t len;    /* bytes of pat */
  size_t weight; /* bytes of the rule as written (the "$" included) */
  bool anchored; /* it ended with "$" */
  bool allow;    /* allow (else disallow) */
} rule_t;

typedef struct rules {
  rule_t *v;
  size_t n, cap;
  unsigned delay_ms; /* the largest Crawl-delay, 0 if none */
  bool any_group;    /* a group of this kind exists */
} rules_t;

struct robots {
  int all;     /* -1: rules decide; 0: disallow all; 1: allow all */
  rules_t set; /* the applying rules */
};

static void rules_free(rules_t *s) {
  for (size_t i = 0; i < s->n; i++)
    free(s->v[i].pat);
  free(s->v);
  memset(s, 0, sizeof(*s));
}

static int rules_add(rules_t *s, const char *v, size_t n, bool allow) {
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 8;
    rule_t *nv = realloc(s->v, cap * sizeof(*nv));
    if (!nv)
      return WEFT_ENOMEM;
    s->v = nv;
    s->cap = cap;
  }
  rule_t *r = &s->v[s->n];
  r->weight = n;
  r->anchored = n > 0 && v[n - 1] == '$';
  r->len = r->anchored ? n - 1 : n;
  r->allow = allow;
  r->pat = malloc(r->len + 1);
  if (!r->pat)
    return WEFT_ENOMEM;
  memcpy(r->pat, v, r->len);
  r->pat[r->len] = '\0';
  s->n++;
  return 0;
}

static bool is_blank(char ch) { return ch == ' ' || ch == '\t'; }

static bool is_token_char(char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' ||
         ch == '-';
}

/* Seconds as "D[.D]" into milliseconds, saturated at UINT32_MAX; false if
 * v[0..n) is not such a number. */
static bool parse_delay(const char *v, size_t n, unsigned *ms) {
  uint64_t whole = 0, frac = 0, scale = 1000;
  size_t i = 0;
  bool digits = false;
  for (; i < n && v[i] >= '0' && v[i] <= '9'; i++, digits = true)
    whole = whole < 100000000u ? whole * 10 + (uint64_t)(v[i] - '0') : whole;
  if (i < n && v[i] == '.') {
    for (i++; i < n && v[i] >= '0' && v[i] <= '9'; i++, digits = true) {
      if (scale > 1) {
        scale /= 10;
        frac += (uint64_t)(v[i] - '0') * scale;
      }
    }
  }
  if (!digits || i != n)
    return false;
  uint64_t t = whole * 1000 + frac;
  *ms = t > UINT32_MAX ? UINT32_MAX : (unsigned)t;
  return true;
}

int robots_parse(const char *txt, size_t n, const char *agent,
                 robots_t **out) {
  if (!agent || !agent[0] || (!txt && n > 0) || !out)
    return WEFT_EINVAL;
  size_t alen = strlen(agent);
  robots_t *r = calloc(1, sizeof(*r));
  if (!r)
    return WEFT_ENOMEM;
  r->all = -1;
  rules_t mine = {0}, star = {0};
  /* The size limit: a line cut by it is dropped. */
  if (n > ROBOTS_MAX_BYTES) {
    size_t cut = ROBOTS_MAX_BYTES;
    if (txt[cut] != '\n' && txt[cut] != '\r') {
      while (cut > 0 && txt[cut - 1] != '\n' && txt[cut - 1] != '\r')
        cut--;
    }
    n = cut;
  }
  size_t i = 0;
  if (n >= 3 && memcmp(txt, "\xEF\xBB\xBF", 3) == 0)
    i = 3;
  /* The group being read: which sets its rules go to. */
  bool to_mine = false, to_star = false, in_rules = true;
  int rc = 0;
  while (i < n && rc == 0) {
    size_t start = i;
    while (i < n && txt[i] != '\n' && txt[i] != '\r')
      i++;
    size_t end = i;
    if (i < n)
      i++; /* the line end; a CRLF's LF is an empty line, ignored */
    const char *hash = memchr(txt + start, '#', end - start);
    if (hash)
      end = (size_t)(hash - txt);
    const char *colon = memchr(txt + start, ':', end - start);
    if (!colon)
      continue;
    const char *k = txt + start, *ke = colon;
    while (k < ke && is_blank(*k))
      k++;
    while (ke > k && is_blank(ke[-1]))
      ke--;
    const char *v = colon + 1, *ve = txt + end;
    while (v < ve && is_blank(*v))
      v++;
    while (ve > v && is_blank(ve[-1]))
      ve--;
    size_t kn = (size_t)(ke - k), vn = (size_t)(ve - v);
    if (kn == 10 && strncasecmp(k, "user-agent", 10) == 0) {
      if (in_rules) { /* a new group */
        to_mine = to_star = false;
        in_rules = false;
      }
      if (vn > 0 && v[0] == '*') {
        to_star = true;
        star.any_group = true;
      } else {
        size_t t = 0;
        while (t < vn && is_token_char(v[t]))
          t++;
        if (t == alen && strncasecmp(v, agent, alen) == 0) {
          to_mine = true;
          mine.any_group = true;
        }
      }
    } else if ((kn == 5 && strncasecmp(k, "allow", 5) == 0) ||
               (kn == 8 && strncasecmp(k, "disallow", 8) == 0)) {
      in_rules = true;
      if (vn == 0)
        continue;
      bool allow = kn == 5;
      if (to_mine)
        rc = rules_add(&mine, v, vn, allow);
      if (rc == 0 && to_star)
        rc = rules_add(&star, v, vn, allow);
    } else if (kn == 11 && strncasecmp(k, "crawl-delay", 11) == 0) {
      in_rules = true;
      unsigned ms;
      if (!parse_delay(v, vn, &ms))
        continue;
      if (to_mine && ms > mine.delay_ms)
        mine.delay_ms = ms;
      if (to_star && ms > star.delay_ms)
        star.delay_ms = ms;
    }
  }
  if (rc != 0) {
    rules_free(&mine);
    rules_free(&star);
    free(r);
    return rc;
  }
  if (mine.any_group) {
    r->set = mine;
    rules_free(&star);
  } else {
    r->set = star;
    rules_free(&mine);
  }
  *out = r;
  return 0;
}

int robots_new_all(int allow, robots_t **out) {
  if (!out)
    return WEFT_EINVAL;
  robots_t *r = calloc(1, sizeof(*r));
  if (!r)
    return WEFT_ENOMEM;
  r->all = allow ? 1 : 0;
  *out = r;
  return 0;
}

/* Whether rule p[0..pn) ("*" wildcards) matches a prefix of s[0..sn) (all
 * of it if anchored). Greedy with one backtracking point, the last "*":
 * O(pn * sn) at worst, however many "*" a hostile file writes. */
static bool rule_matches(const char *p, size_t pn, bool anchored,
                         const char *s, size_t sn) {
  size_t i = 0, j = 0, star = SIZE_MAX, mark = 0;
  while (i < pn || j < sn) {
    if (i < pn) {
      if (p[i] == '*') {
        star = i++;
        mark = j;
        continue;
      }
      if (j < sn && p[i] == s[j]) {
        i++;
        j++;
        continue;
      }
    } else if (!anchored) {
      return true; /* the rule is a prefix of what is left */
    }
    if (star == SIZE_MAX || mark >= sn)
      return false;
    i = star + 1;
    j = ++mark;
  }
  return true;
}

int robots_allowed(const robots_t *r, const char *path, size_t n) {
  if (!r)
    return 1;
  if (n == 11 && memcmp(path, "/robots.txt", 11) == 0)
    return 1;
  if (r->all >= 0)
    return r->all;
  size_t best = 0;
  bool matched = false, allow = true;
  for (size_t i = 0; i < r->set.n; i++) {
    const rule_t *u = &r->set.v[i];
    if (matched && u->weight < best)
      continue;
    if (!rule_matches(u->pat, u->len, u->anchored, path, n))
      continue;
    if (!matched || u->weight > best) {
      best = u->weight;
      allow = u->allow;
      matched = true;
    } else if (u->allow) { /* a tie: allow wins */
      allow = true;
    }
  }
  return allow ? 1 : 0;
}

unsigned robots_crawl_delay_ms(const robots_t *r, unsigned cap_ms) {
  if (!r || r->all >= 0)
    return 0;
  return r->set.delay_ms < cap_ms ? r->set.delay_ms : cap_ms;
}

size_t robots_rule_count(const robots_t *r) { return r ? r->set.n : 0; }

void robots_free(robots_t *r) {
  if (!r)
    return;
  rules_free(&r->set);
  free(r);
}

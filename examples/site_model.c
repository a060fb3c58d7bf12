/*
 * site_model.c: the synthetic site of site_model.h. Every decision is a hash
 * of (seed, a salt naming the decision, the page number, an index), so any
 * one of them can be recomputed alone, in any order, on any thread.
 */
#include "site_model.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One salt per decision, so that decisions are independent. */
enum {
  SALT_KIND = 1,
  SALT_REDIRECT,
  SALT_STATUS,
  SALT_LOCATION,
  SALT_QUERY,
  SALT_REV,
  SALT_COUNT,
  SALT_LINK,
  SALT_TARGET,
  SALT_MISSING,
  SALT_FORM,
  SALT_FRAGMENT,
  SALT_SIZE,
  SALT_WORDS
};

#define BODY_MIN 2048
#define BODY_SPREAD 4096
#define WORDS_PER_PARAGRAPH 60

/* splitmix64's finaliser: a bijection that mixes every input bit into every
 * output bit. */
static uint64_t mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9u;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebu;
  x ^= x >> 31;
  return x;
}

static uint64_t hash(const site_model_t *m, uint64_t salt, uint64_t n,
                     uint64_t i) {
  return mix(m->p.seed ^ mix(salt * 0x9e3779b97f4a7c15u ^ mix(n ^ mix(i))));
}

/* share * 2^64, saturated: a hash below it has probability share. */
static uint64_t threshold(double share) {
  if (share >= 1.0)
    return UINT64_MAX;
  return (uint64_t)(share * 18446744073709551616.0);
}

static int share_ok(double s) { return s >= 0.0 && s <= 1.0; }

void site_params_init(site_params_t *p) {
  p->pages = 10000;
  p->seed = 1;
  p->links = 8;
  p->slow_ms = 200;
  p->slow_share = 0.05;
  p->redirect_share = 0.05;
  p->error_share = 0.02;
  p->hang_share = 0.001;
  p->missing_share = 0.01;
  p->robots = 0;
}

int site_model_init(site_model_t *m, const site_params_t *p) {
  if (p->pages == 0 || p->pages > (1u << 30) || p->links > SITE_LINKS_MAX - 2)
    return -EINVAL;
  if (!share_ok(p->slow_share) || !share_ok(p->redirect_share) ||
      !share_ok(p->error_share) || !share_ok(p->hang_share) ||
      !share_ok(p->missing_share))
    return -EINVAL;
  double cum[4];
  cum[0] = p->hang_share;
  cum[1] = cum[0] + p->error_share;
  cum[2] = cum[1] + p->redirect_share;
  cum[3] = cum[2] + p->slow_share;
  if (cum[3] > 1.0 + 1e-9)
    return -EINVAL;
  m->p = *p;
  for (int i = 0; i < 4; i++)
    m->cut[i] = threshold(cum[i]);
  m->missing_cut = threshold(p->missing_share);
  return 0;
}

site_kind_t site_page_kind(const site_model_t *m, uint64_t n) {
  if (n >= m->p.pages)
    return SITE_NOT_FOUND;
  if (n == 0)
    return SITE_OK;
  uint64_t h = hash(m, SALT_KIND, n, 0);
  if (h < m->cut[0])
    return SITE_HANG;
  if (h < m->cut[1])
    return SITE_ERROR_500;
  if (h < m->cut[2])
    return SITE_REDIRECT;
  if (h < m->cut[3])
    return SITE_SLOW;
  return SITE_OK;
}

const char *site_kind_name(site_kind_t k) {
  static const char *const names[SITE_KIND_COUNT] = {
      "ok", "slow", "redirect", "not_found", "error_500", "hang"};
  return (unsigned)k < SITE_KIND_COUNT ? names[k] : "?";
}

int site_page_status(const site_model_t *m, uint64_t n) {
  switch (site_page_kind(m, n)) {
  case SITE_OK:
  case SITE_SLOW:
    return 200;
  case SITE_REDIRECT:
    return hash(m, SALT_STATUS, n, 0) & 1 ? 302 : 301;
  case SITE_NOT_FOUND:
    return 404;
  case SITE_ERROR_500:
    return 500;
  default:
    return 0;
  }
}

uint64_t site_redirect_target(const site_model_t *m, uint64_t n) {
  if (site_page_kind(m, n) != SITE_REDIRECT)
    return n;
  /* Page 0 is never a redirect, so the walk ends. */
  uint64_t t = hash(m, SALT_REDIRECT, n, 0) % m->p.pages;
  while (site_page_kind(m, t) == SITE_REDIRECT)
    t = (t + 1) % m->p.pages;
  return t;
}

/* snprintf that reports 0 instead of truncating. */
static size_t fmt(char *buf, size_t cap, const char *f, ...) {
  va_list ap;
  va_start(ap, f);
  int n = vsnprintf(buf, cap, f, ap);
  va_end(ap);
  return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

/* The query of page n's canonical URL ("?rev=R"), or "". */
static size_t page_query(const site_model_t *m, uint64_t n, char *buf,
                         size_t cap) {
  if (hash(m, SALT_QUERY, n, 0) % 5 != 0) {
    buf[0] = 0;
    return 0;
  }
  return fmt(buf, cap, "?rev=%u", (unsigned)(hash(m, SALT_REV, n, 0) % 1000));
}

size_t site_page_path(const site_model_t *m, uint64_t n, char *buf,
                      size_t cap) {
  char q[16];
  page_query(m, n, q, sizeof(q));
  return fmt(buf, cap, "/page/%llu%s", (unsigned long long)n, q);
}

size_t site_redirect_location(const site_model_t *m, uint64_t n,
                              const char *base, char *buf, size_t cap) {
  if (site_page_kind(m, n) != SITE_REDIRECT)
    return 0;
  char path[SITE_PATH_MAX];
  site_page_path(m, site_redirect_target(m, n), path, sizeof(path));
  if (hash(m, SALT_LOCATION, n, 0) & 1)
    return fmt(buf, cap, "%s%s", base, path);
  return fmt(buf, cap, "%s", path);
}

static size_t link_count(const site_model_t *m, uint64_t n) {
  site_kind_t k = site_page_kind(m, n);
  if (k != SITE_OK && k != SITE_SLOW)
    return 0;
  if (m->p.links < 3)
    return m->p.links;
  return m->p.links - 2 + (size_t)(hash(m, SALT_COUNT, n, 0) % 5);
}

static uint64_t link_target(const site_model_t *m, uint64_t n, size_t i) {
  uint64_t pages = m->p.pages;
  if (i == 0 && n + 1 < pages)
    return n + 1;
  if (hash(m, SALT_LINK, n, i) < m->missing_cut)
    return pages + hash(m, SALT_MISSING, n, i) % pages;
  return hash(m, SALT_TARGET, n, i) % pages;
}

size_t site_page_links(const site_model_t *m, uint64_t n, uint64_t *out,
                       size_t max) {
  size_t count = link_count(m, n);
  for (size_t i = 0; i < count && i < max; i++)
    out[i] = link_target(m, n, i);
  return count;
}

size_t site_link_href(const site_model_t *m, uint64_t n, size_t i,
                      const char *base, char *buf, size_t cap) {
  if (i >= link_count(m, n) || strlen(base) > SITE_BASE_MAX)
    return 0;
  uint64_t t = link_target(m, n, i);
  unsigned long long tt = (unsigned long long)t;
  char q[16], frag[24];
  page_query(m, t, q, sizeof(q));
  frag[0] = 0;
  if (hash(m, SALT_FRAGMENT, n, i) % 4 == 0)
    fmt(frag, sizeof(frag), "#sec-%zu", i);
  /* "http://H:P" without its scheme, for the network-path form. */
  const char *authority = strchr(base, ':');
  authority = authority ? authority + 1 : base;
  switch (hash(m, SALT_FORM, n, i) % 8) {
  case 1:
    return fmt(buf, cap, "%llu%s%s", tt, q, frag);
  case 2:
    return fmt(buf, cap, "./%llu%s%s", tt, q, frag);
  case 3:
    return fmt(buf, cap, "../page/%llu%s%s", tt, q, frag);
  case 4:
    return fmt(buf, cap, "/page/x/../%llu%s%s", tt, q, frag);
  case 5:
    return fmt(buf, cap, "%s/page/%llu%s%s", base, tt, q, frag);
  case 6:
    return fmt(buf, cap, "%s/page/%llu%s%s", authority, tt, q, frag);
  default:
    return fmt(buf, cap, "/page/%llu%s%s", tt, q, frag);
  }
}

size_t site_body_max(const site_model_t *m) {
  /* The filler stops at the hashed size; the links alone may go past it. */
  return BODY_MIN + BODY_SPREAD + 1024 +
         (size_t)(m->p.links + 2) * (SITE_HREF_MAX + 64);
}

/* An appending writer that remembers overflow instead of checking each
 * call. */
typedef struct out {
  char *buf;
  size_t cap;
  size_t len;
  int overflow;
} out_t;

static void put(out_t *o, const char *s, size_t n) {
  if (o->overflow || n > o->cap - o->len) {
    o->overflow = 1;
    return;
  }
  memcpy(o->buf + o->len, s, n);
  o->len += n;
}

static void puts_(out_t *o, const char *s) { put(o, s, strlen(s)); }

static void putf(out_t *o, const char *f, ...) {
  if (o->overflow)
    return;
  va_list ap;
  va_start(ap, f);
  int n = vsnprintf(o->buf + o->len, o->cap - o->len, f, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= o->cap - o->len)
    o->overflow = 1;
  else
    o->len += (size_t)n;
}

/* 64 words, so that one hash gives ten 6-bit word numbers, each padded to
 * 16 bytes so that copying one is two moves, not a memcpy call. */
#define W(s)                                                                   \
  { s, sizeof(s) - 1 }
static const struct word {
  char s[16];
  size_t len;
} words[64] = {W("lorem"),      W("ipsum"),        W("dolor"),
               W("sit"),        W("amet"),         W("consectetur"),
               W("adipiscing"), W("elit"),         W("sed"),
               W("do"),         W("eiusmod"),      W("tempor"),
               W("incididunt"), W("ut"),           W("labore"),
               W("et"),         W("dolore"),       W("magna"),
               W("aliqua"),     W("enim"),         W("ad"),
               W("minim"),      W("veniam"),       W("quis"),
               W("nostrud"),    W("exercitation"), W("ullamco"),
               W("laboris"),    W("nisi"),         W("aliquip"),
               W("ex"),         W("ea"),           W("commodo"),
               W("consequat"),  W("duis"),         W("aute"),
               W("irure"),      W("in"),           W("reprehenderit"),
               W("voluptate"),  W("velit"),        W("esse"),
               W("cillum"),     W("fugiat"),       W("nulla"),
               W("pariatur"),   W("excepteur"),    W("sint"),
               W("occaecat"),   W("cupidatat"),    W("non"),
               W("proident"),   W("sunt"),         W("culpa"),
               W("qui"),        W("officia"),      W("deserunt"),
               W("mollit"),     W("anim"),         W("id"),
               W("est"),        W("laborum"),      W("lacus"),
               W("urna")};
#undef W

/* Words from the generator *state up to `until` bytes of output (then
 * padded with spaces to exactly that), a paragraph break every
 * WORDS_PER_PARAGRAPH words. */
static void filler(out_t *o, uint64_t *state, size_t until) {
  uint64_t bits = 0;
  for (size_t count = 0;; count++) {
    if (count % 10 == 0) {
      *state += 0x9e3779b97f4a7c15u; /* splitmix64's sequence */
      bits = mix(*state);
    }
    const struct word *w = &words[bits & 63];
    bits >>= 6;
    if (o->len + w->len + 9 > until) {
      /* Spaces to the exact size: HTML folds them into one. */
      while (o->len < until && o->len < o->cap)
        o->buf[o->len++] = ' ';
      break;
    }
    if (count > 0 && count % WORDS_PER_PARAGRAPH == 0)
      put(o, "</p>\n<p>", 8);
    else if (count > 0 && o->len < o->cap)
      o->buf[o->len++] = ' ';
    if (!o->overflow && o->cap - o->len >= sizeof(w->s)) {
      memcpy(o->buf + o->len, w->s, sizeof(w->s));
      o->len += w->len;
    } else {
      put(o, w->s, w->len);
    }
  }
}

static size_t short_body(out_t *o, const char *title, const char *text) {
  putf(o,
       "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\">"
       "<title>%s</title></head>\n<body><h1>%s</h1><p>%s</p></body>\n"
       "</html>\n",
       title, title, text);
  return o->overflow ? 0 : o->len;
}

size_t site_page_body(const site_model_t *m, uint64_t n, const char *base,
                      char *buf, size_t cap) {
  out_t o = {buf, cap, 0, 0};
  char text[SITE_PATH_MAX + 32];
  unsigned long long nn = (unsigned long long)n;
  switch (site_page_kind(m, n)) {
  case SITE_OK:
  case SITE_SLOW:
    break;
  case SITE_REDIRECT: {
    char path[SITE_PATH_MAX];
    site_page_path(m, site_redirect_target(m, n), path, sizeof(path));
    fmt(text, sizeof(text), "Page %llu moved to %s.", nn, path);
    return short_body(
        &o, site_page_status(m, n) == 301 ? "Moved Permanently" : "Found",
        text);
  }
  case SITE_NOT_FOUND:
    fmt(text, sizeof(text), "There is no page %llu.", nn);
    return short_body(&o, "Not Found", text);
  case SITE_ERROR_500:
    fmt(text, sizeof(text), "Page %llu failed.", nn);
    return short_body(&o, "Internal Server Error", text);
  default:
    fmt(text, sizeof(text), "Page %llu never answers.", nn);
    return short_body(&o, "Hang", text);
  }

  static const char tail[] = "</p>\n</body>\n</html>\n";
  size_t size = BODY_MIN + (size_t)(hash(m, SALT_SIZE, n, 0) % BODY_SPREAD);
  uint64_t state = hash(m, SALT_WORDS, n, 0);
  putf(&o,
       "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
       "<title>Page %llu</title>\n</head>\n<body>\n<h1>Page %llu</h1>\n<p>",
       nn, nn);
  filler(&o, &state, o.len + 240);
  puts_(&o, "</p>\n<ul>\n");
  size_t count = link_count(m, n);
  for (size_t i = 0; i < count; i++) {
    char href[SITE_HREF_MAX];
    if (site_link_href(m, n, i, base, href, sizeof(href)) == 0)
      return 0;
    putf(&o, "<li><a href=\"%s\">page %llu</a></li>\n", href,
         (unsigned long long)link_target(m, n, i));
  }
  puts_(&o, "</ul>\n<p>");
  filler(&o, &state, size - (sizeof(tail) - 1));
  puts_(&o, tail);
  return o.overflow ? 0 : o.len;
}

int site_reach_compute(const site_model_t *m, site_reach_t *r) {
  memset(r, 0, sizeof(*r));
  r->universe = (size_t)m->p.pages * 2; /* missing pages are below 2*pages */
  r->seen = calloc(r->universe, 1);
  if (m->p.robots)
    r->denied = calloc(r->universe, 1);
  uint64_t *stack = malloc(r->universe * sizeof(*stack));
  if (!r->seen || !stack || (m->p.robots && !r->denied)) {
    free(stack);
    site_reach_free(r);
    return -ENOMEM;
  }
  uint64_t links[SITE_LINKS_MAX];
  size_t top = 0;
  stack[top++] = 0;
  r->seen[0] = 1;
  /* Depth-first: each page is pushed once, when first seen. */
  while (top > 0) {
    uint64_t n = stack[--top];
    site_kind_t k = site_page_kind(m, n);
    r->total++;
    r->by_kind[k]++;
    size_t count = 0;
    if (k == SITE_REDIRECT) {
      links[0] = site_redirect_target(m, n);
      count = 1;
    } else {
      count = site_page_links(m, n, links, SITE_LINKS_MAX);
    }
    for (size_t i = 0; i < count; i++) {
      if (r->denied && site_page_disallowed(m, links[i])) {
        r->ndenied += !r->denied[links[i]];
        r->denied[links[i]] = 1;
      } else if (!r->seen[links[i]]) {
        r->seen[links[i]] = 1;
        stack[top++] = links[i];
      }
    }
  }
  free(stack);
  return 0;
}

void site_reach_free(site_reach_t *r) {
  free(r->seen);
  free(r->denied);
  r->seen = NULL;
  r->denied = NULL;
}

int site_page_disallowed(const site_model_t *m, uint64_t n) {
  char digits[24], q[16];
  fmt(digits, sizeof(digits), "%llu", (unsigned long long)n);
  page_query(m, n, q, sizeof(q));
  /* "Allow: /page/30" (8 bytes) beats "Disallow: /page/3" (7) and ties
   * with the "*?rev=1" disallow rule (8 bytes too): allow. */
  if (digits[0] == '3' && digits[1] == '0')
    return 0;
  return digits[0] == '3' || strncmp(q, "?rev=1", 6) == 0;
}

size_t site_count_kind(const site_model_t *m, site_kind_t k) {
  size_t count = 0;
  for (uint64_t n = 0; n < m->p.pages; n++)
    count += site_page_kind(m, n) == k;
  return count;
}

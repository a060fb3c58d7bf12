/*
 * site_model.h: the deterministic synthetic web site that examples/site
 * serves and that a crawler's tests compute their expectations from.
 *
 * The model is a pure function of its parameters (site_params_t): no I/O,
 * no clock, no global state, so the server and a test that links this file
 * agree on every status, link and byte without talking to each other.
 *
 * 1. Pages. Pages 0..pages-1 exist; their canonical path is "/page/N"
 *    (decimal, no leading zeros), or "/page/N?rev=R" for about one page in
 *    five: the query is part of that page's one URL, and every link and
 *    redirect to the page carries it (the server ignores queries, so a
 *    crawler that drops them still gets the page, under a URL no page
 *    links to). "/" answers 301 to page 0's path and is linked from
 *    nowhere. Any other path, and /page/N for N >= pages, is 404.
 *
 * 2. Kinds. A page's kind comes from a hash of (seed, N) compared with the
 *    cumulative shares in this order: HANG, ERROR_500, REDIRECT, SLOW, and
 *    OK for the rest. Page 0 is always OK. Because SLOW comes last, setting
 *    slow_share to 0 turns the slow pages into OK pages and changes nothing
 *    else: the same links, the same redirects, the same reachable set.
 *     - OK: 200 with an HTML body of exactly 2048 + (hash % 4096) bytes,
 *       or more if a page's links do not fit in that.
 *     - SLOW: as OK, answered after slow_ms milliseconds.
 *     - REDIRECT: 301 or 302 (hashed) with a Location: header naming
 *       another page, never a REDIRECT one, so there are no chains or loops;
 *       Location is either the target's canonical path or a full URL.
 *     - ERROR_500: 500 with a short body without links.
 *     - HANG: no answer at all, until the client gives up or the server
 *       shuts down.
 *     - NOT_FOUND: the kind of every N >= pages: 404 with a short body
 *       without links.
 *
 * 3. Links. An OK or SLOW page N has links - 2 + (hash % 5) links (exactly
 *    `links` when links < 3), each in an <a href="..."> of its body. The
 *    first one goes to N + 1 when that page exists, so long chains of the
 *    site are reachable; the others go to a hashed page, except that a
 *    share missing_share of them go to a page that does not exist (a
 *    number in pages..2*pages-1), which answers 404. A page may link to
 *    itself or to one page twice. Each href is written in one of these
 *    forms (hashed), all of which resolve, against the page's own URL, to
 *    the target's canonical URL once the fragment is dropped:
 *      "/page/T"            absolute path
 *      "T"  "./T"           relative to /page/N
 *      "../page/T"          relative, with a dot segment
 *      "/page/x/../T"       absolute, with dot segments
 *      "http://H:P/page/T"  full URL of the server (base given to the body
 *                           generator)
 *      "//H:P/page/T"       network-path reference
 *    with the target's query where it has one, and a fragment ("#sec-K")
 *    added to about one href in four. Other pages' bodies have no links.
 *
 * 4. Reachability. A correct crawler started at page 0 (or at "/") fetches
 *    exactly the pages of site_reach_compute(): page 0, then, for every
 *    page fetched, the targets of its links (OK and SLOW pages) or its
 *    redirect target (REDIRECT pages); ERROR_500, HANG and NOT_FOUND pages
 *    are leaves. Each of them is fetched once under its canonical URL; a
 *    crawler started at "/" fetches "/" once more.
 *
 * 5. robots.txt (params.robots). The site then serves SITE_ROBOTS_TXT at
 *    /robots.txt (404 otherwise): a group for another agent that
 *    disallows everything, and a "*" group that disallows the pages whose
 *    number starts with "3" except those starting with "30", and the URLs
 *    whose query starts with "rev=1", with allow winning the tie between
 *    "Allow: /page/30" and the "?rev=1" disallow rule (both 8 bytes) for
 *    pages 30... with such a query. site_page_disallowed() says it for a page
 *    without parsing anything, so that it checks a crawler's robots.txt
 *    code independently. A crawler that obeys it fetches the pages of
 *    section 4 reachable through allowed pages only: a disallowed page is
 *    never fetched, so its links are not followed; page 0 is allowed.
 */
#ifndef SITE_MODEL_H
#define SITE_MODEL_H

#include <stddef.h>
#include <stdint.h>

/* The most links a page may have: site_params_t.links is at most
 * SITE_LINKS_MAX - 2. */
#define SITE_LINKS_MAX 66
/* An upper bound on the length of a canonical path. */
#define SITE_PATH_MAX 48
/* An upper bound on the length of an href, for a base of at most
 * SITE_BASE_MAX bytes. */
#define SITE_BASE_MAX 128
#define SITE_HREF_MAX (SITE_BASE_MAX + SITE_PATH_MAX + 32)

/* The kind of a page: how the server answers it. */
typedef enum site_kind {
  SITE_OK,        /* 200 at once */
  SITE_SLOW,      /* 200 after slow_ms */
  SITE_REDIRECT,  /* 301 or 302 to another page */
  SITE_NOT_FOUND, /* 404: the page does not exist */
  SITE_ERROR_500, /* 500 */
  SITE_HANG,      /* never answered */
  SITE_KIND_COUNT
} site_kind_t;

/* The parameters of a site. Initialise with site_params_init(). */
typedef struct site_params {
  unsigned pages;        /* pages 0..pages-1 exist (>= 1); 10000 */
  uint64_t seed;         /* the seed of every hash; 1 */
  unsigned links;        /* mean links per page, <= SITE_LINKS_MAX - 2; 8 */
  unsigned slow_ms;      /* delay of SLOW pages in milliseconds; 200 */
  double slow_share;     /* share of SLOW pages; 0.05 */
  double redirect_share; /* share of REDIRECT pages; 0.05 */
  double error_share;    /* share of ERROR_500 pages; 0.02 */
  double hang_share;     /* share of HANG pages; 0.001 */
  double missing_share;  /* share of links to pages that do not exist; 0.01 */
  int robots;            /* the site serves SITE_ROBOTS_TXT, and what a
                            crawler must fetch (section 5) leaves out the
                            pages it disallows; 0 */
} site_params_t;

/* A site: its parameters and the thresholds derived from them. */
typedef struct site_model {
  site_params_t p;      /* the parameters */
  uint64_t cut[4];      /* cumulative hash thresholds of the kinds */
  uint64_t missing_cut; /* hash threshold of a link to a missing page */
} site_model_t;

/* The robots.txt served with params.robots (section 5). */
#define SITE_ROBOTS_TXT                                                        \
  "# robots.txt of weft's synthetic site\n"                                    \
  "User-agent: otherbot\n"                                                     \
  "Disallow: /\n"                                                              \
  "\n"                                                                         \
  "User-agent: *\n"                                                            \
  "Disallow: /page/3\n"                                                        \
  "Allow: /page/30\n"                                                          \
  "Disallow: /*?rev=1\n"

/* What a crawler started at page 0 must fetch (sections 4 and 5 above). */
typedef struct site_reach {
  size_t universe;                 /* seen[] covers pages 0..universe-1 */
  unsigned char *seen;             /* seen[N] = 1 if page N is fetched */
  unsigned char *denied;           /* with params.robots: denied[N] = 1 if
                                      page N is linked from a fetched page
                                      but disallowed (never fetched); else
                                      NULL */
  size_t ndenied;                  /* how many such pages */
  size_t total;                    /* pages fetched, each once */
  size_t by_kind[SITE_KIND_COUNT]; /* of those, how many of each kind */
} site_reach_t;

/* Fill p with the defaults listed in site_params_t. */
void site_params_init(site_params_t *p);

/* Set up m for the parameters p (copied). Returns 0, or -EINVAL when pages
 * is 0 or above 2^30, links is above SITE_LINKS_MAX - 2, or a share is
 * outside [0, 1] or the four page shares add up to more than 1. */
int site_model_init(site_model_t *m, const site_params_t *p);

/* The kind of page n (SITE_NOT_FOUND for n >= pages). */
site_kind_t site_page_kind(const site_model_t *m, uint64_t n);

/* A kind's name: "ok", "slow", "redirect", "not_found", "error_500",
 * "hang". */
const char *site_kind_name(site_kind_t k);

/* The HTTP status of page n: 200, 301, 302, 404 or 500; 0 for HANG. */
int site_page_status(const site_model_t *m, uint64_t n);

/* The page a REDIRECT page n sends to; n itself for other kinds. */
uint64_t site_redirect_target(const site_model_t *m, uint64_t n);

/* The Location: of a REDIRECT page n into buf[cap] (NUL-terminated): its
 * target's canonical path, or that path after base (a full URL), hashed.
 * Returns the length, or 0 if n is not a REDIRECT page or buf is too small
 * (SITE_HREF_MAX bytes suffice). */
size_t site_redirect_location(const site_model_t *m, uint64_t n,
                              const char *base, char *buf, size_t cap);

/* The canonical path of page n ("/page/N" or "/page/N?rev=R") into
 * buf[cap], NUL-terminated. Returns its length, or 0 if cap is too small. */
size_t site_page_path(const site_model_t *m, uint64_t n, char *buf, size_t cap);

/* The link targets of page n, in body order, into out[max]. Returns the
 * number of links the page has (0 unless OK or SLOW), which may exceed max
 * (only max are stored). */
size_t site_page_links(const site_model_t *m, uint64_t n, uint64_t *out,
                       size_t max);

/* The href of link i of page n as written in its body, into buf[cap]
 * (NUL-terminated). base is the server's "http://H:P" (no trailing slash,
 * at most SITE_BASE_MAX bytes), used by the full-URL forms. Returns the
 * length, or 0 if i is out of range or buf too small. */
size_t site_link_href(const site_model_t *m, uint64_t n, size_t i,
                      const char *base, char *buf, size_t cap);

/* The most bytes site_page_body() writes for any page. */
size_t site_body_max(const site_model_t *m);

/* The body of page n into buf[cap] with hrefs built on base (see
 * site_link_href()): the HTML page for OK and SLOW pages, a short HTML
 * message without links for the other kinds. Returns its length, or 0 if
 * cap is too small (site_body_max() bytes always suffice). */
size_t site_page_body(const site_model_t *m, uint64_t n, const char *base,
                      char *buf, size_t cap);

/* Compute what a crawler started at page 0 must fetch (section 4). Returns
 * 0 or -ENOMEM; free with site_reach_free(). */
int site_reach_compute(const site_model_t *m, site_reach_t *r);

/* Release r's memory (r itself is the caller's). */
void site_reach_free(site_reach_t *r);

/* 1 if SITE_ROBOTS_TXT disallows page n's canonical path for any agent
 * but "otherbot", 0 if not (whatever params.robots says). */
int site_page_disallowed(const site_model_t *m, uint64_t n);

/* How many of pages 0..pages-1 are of kind k. */
size_t site_count_kind(const site_model_t *m, site_kind_t k);

#endif /* SITE_MODEL_H */

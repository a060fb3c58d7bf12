/*
 * crawl_frontier_test.c: the frontier interface of crawl.h, in process.
 *
 * 1. local_frontier_semantics: crawl_frontier_local_new(2): a URL is
 *    admitted once (then CRAWL_ADMIT_SEEN), the third new one is refused
 *    with CRAWL_ADMIT_FULL; take() hands them out in order with their depth
 *    and hops, and returns WEFT_EOF once both were done(); after stop(),
 *    take() returns WEFT_ECANCELED at once and nothing more is admitted.
 * 2. custom_frontier_is_used: crawl_run() with cfg.frontier set to a
 *    wrapper around a local frontier: the seeds go through the wrapper's
 *    admit(), every take() is matched by one done() with the outcome (two
 *    URLs on a port where nothing listens: "refused"), crawl_run() does not
 *    close it, and a frontier without its operations is refused with
 *    WEFT_EINVAL.
 * No network beyond a connection refused on 127.0.0.1.
 */
#include "crawl.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

/* What a body running in weft saw: the first failure, for cmocka after. */
static char failure[256];

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond) && !failure[0])                                                \
      snprintf(failure, sizeof(failure), "%s:%d: %s", __FILE__, __LINE__,     \
               #cond);                                                         \
  } while (0)

static void run(void *(*body)(void *)) {
  failure[0] = '\0';
  weft_config_t cfg;
  weft_config_init(&cfg);
  cfg.workers = 2;
  assert_int_equal(weft_run(body, NULL, &cfg, NULL), 0);
  if (failure[0])
    fail_msg("%s", failure);
}

static int admit(crawl_frontier_t *f, const char *url, unsigned depth,
                 unsigned hops) {
  int verdict = -1;
  int rc = f->ops->admit(f->self, url, strlen(url), depth, hops, &verdict);
  return rc != 0 ? rc : verdict;
}

static void *local_body(void *arg) {
  (void)arg;
  crawl_frontier_t f;
  CHECK(crawl_frontier_local_new(2, &f) == 0);
  CHECK(admit(&f, "http://a/1", 0, 0) == CRAWL_ADMIT_NEW);
  CHECK(admit(&f, "http://a/1", 3, 0) == CRAWL_ADMIT_SEEN);
  CHECK(admit(&f, "http://a/2", 1, 2) == CRAWL_ADMIT_NEW);
  CHECK(admit(&f, "http://a/3", 1, 0) == CRAWL_ADMIT_FULL);
  CHECK(admit(&f, "http://a/3", 1, 0) == CRAWL_ADMIT_SEEN);
  crawl_item_t a, b;
  CHECK(f.ops->take(f.self, &a) == 0);
  CHECK(strcmp(a.url, "http://a/1") == 0 && a.depth == 0 && a.hops == 0);
  CHECK(f.ops->take(f.self, &b) == 0);
  CHECK(strcmp(b.url, "http://a/2") == 0 && b.depth == 1 && b.hops == 2);
  crawl_outcome_t o = {.status = 200, .error = -1};
  CHECK(f.ops->done(f.self, &a, &o) == 0);
  CHECK(f.ops->done(f.self, &b, &o) == 0);
  crawl_item_t c;
  CHECK(f.ops->take(f.self, &c) == WEFT_EOF);
  f.ops->close(f.self);

  CHECK(crawl_frontier_local_new(0, &f) == 0);
  CHECK(admit(&f, "http://a/1", 0, 0) == CRAWL_ADMIT_NEW);
  f.ops->stop(f.self);
  CHECK(f.ops->take(f.self, &c) == WEFT_ECANCELED);
  /* Stopped: nothing more is queued. */
  CHECK(admit(&f, "http://a/9", 0, 0) == CRAWL_ADMIT_SEEN);
  f.ops->close(f.self); /* frees what is still queued */
  return NULL;
}

static void local_frontier_semantics(void **state) {
  (void)state;
  run(local_body);
}

/* A frontier that counts the engine's calls and passes them on. */
typedef struct wrapper {
  crawl_frontier_t inner;
  atomic_int admits, takes, dones, refused, stops, closes;
} wrapper_t;

static int w_admit(void *self, const char *url, size_t n, unsigned depth,
                   unsigned hops, int *verdict) {
  wrapper_t *w = self;
  atomic_fetch_add(&w->admits, 1);
  return w->inner.ops->admit(w->inner.self, url, n, depth, hops, verdict);
}

static int w_take(void *self, crawl_item_t *out) {
  wrapper_t *w = self;
  int rc = w->inner.ops->take(w->inner.self, out);
  if (rc == 0)
    atomic_fetch_add(&w->takes, 1);
  return rc;
}

static int w_done(void *self, const crawl_item_t *it,
                  const crawl_outcome_t *o) {
  wrapper_t *w = self;
  atomic_fetch_add(&w->dones, 1);
  if (o->error == CRAWL_ERR_REFUSED && o->status == 0 && !o->cancelled &&
      !o->denied)
    atomic_fetch_add(&w->refused, 1);
  return w->inner.ops->done(w->inner.self, it, o);
}

static void w_stop(void *self) {
  wrapper_t *w = self;
  atomic_fetch_add(&w->stops, 1);
  w->inner.ops->stop(w->inner.self);
}

static void w_close(void *self) {
  wrapper_t *w = self;
  atomic_fetch_add(&w->closes, 1);
  w->inner.ops->close(w->inner.self);
}

static const crawl_frontier_ops_t wrapper_ops = {
    .admit = w_admit,
    .take = w_take,
    .done = w_done,
    .stop = w_stop,
    .close = w_close,
};

static wrapper_t wrapper;

static void *custom_body(void *arg) {
  (void)arg;
  wrapper_t *w = &wrapper;
  memset(w, 0, sizeof(*w));
  CHECK(crawl_frontier_local_new(0, &w->inner) == 0);
  crawl_frontier_t f = {.ops = &wrapper_ops, .self = w};
  static const char *const seeds[] = {"http://127.0.0.1:1/x",
                                      "http://127.0.0.1:1/y",
                                      "http://127.0.0.1:1/x"};
  crawl_config_t cfg;
  crawl_config_init(&cfg);
  cfg.seeds = seeds;
  cfg.nseeds = 3;
  cfg.retries = 0;
  cfg.frontier = &f;
  crawl_stats_t st;
  CHECK(crawl_run(&cfg, &st) == 0);
  CHECK(st.admitted == 2);
  CHECK(st.error[CRAWL_ERR_REFUSED] == 2);
  CHECK(atomic_load(&w->admits) == 3);
  CHECK(atomic_load(&w->takes) == 2);
  CHECK(atomic_load(&w->dones) == 2);
  CHECK(atomic_load(&w->refused) == 2);
  CHECK(atomic_load(&w->closes) == 0); /* the owner closes it */
  crawl_stats_destroy(&st);
  f.ops->close(f.self);
  CHECK(atomic_load(&w->closes) == 1);

  /* A frontier without its operations. */
  static const crawl_frontier_ops_t none = {0};
  crawl_frontier_t bad = {.ops = &none, .self = NULL};
  cfg.frontier = &bad;
  CHECK(crawl_run(&cfg, &st) == WEFT_EINVAL);
  crawl_stats_destroy(&st);
  return NULL;
}

static void custom_frontier_is_used(void **state) {
  (void)state;
  run(custom_body);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(local_frontier_semantics),
      cmocka_unit_test(custom_frontier_is_used),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

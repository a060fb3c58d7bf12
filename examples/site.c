/*
 * site.c: a multicore HTTP/1.1 server of the deterministic synthetic site
 * of site_model.h, for crawlers to crawl.
 *
 *     site [--host H] [--port P] [--workers N] [--pages K] [--seed S]
 *          [--links L] [--slow-share X] [--slow-ms MS] [--no-slow]
 *          [--redirect-share X] [--error-share X] [--hang-share X]
 *          [--missing-share X] [--tls-cert FILE --tls-key FILE] [--quiet]
 *          [--root DIR] [--robots] [--crawl-delay MS] [--gzip]
 *          [--access-log FILE] [--hits FILE]
 *
 * --robots serves site_model.h's SITE_ROBOTS_TXT at /robots.txt (404
 * without it), with "Crawl-delay: MS/1000" added when --crawl-delay is
 * given, and counts the requests for pages it disallows ("robots
 * violations: N" at shutdown). --gzip answers a request whose
 * Accept-Encoding names gzip with a gzip body in chunks of 1000 bytes
 * (Transfer-Encoding: chunked), for crawlers' tests. --access-log FILE
 * writes "<weft_time_ms()> <target>" for each request (the tests read
 * request spacing and what was asked for from it).
 *
 * GET /metrics (and HEAD) answers, in either mode, with the runtime's
 * metrics in the Prometheus text format (weft_metrics_write_prometheus(),
 * docs/observability.md): workers, tasks, steals, parks, busy time, queue
 * depths, the poll-time histogram.
 * --hits FILE: at exit, write to FILE one line "N COUNT" for every page
 * /page/N whose response was sent COUNT > 0 times (HEAD included), so that
 * tests can check that a crawl fetched each page once.
 *
 * --root DIR serves the files under DIR instead of the synthetic site
 * (site_files.h: GET and HEAD, bodies by weft_stream_sendfile(), ".." and
 * symbolic links leading out of DIR refused with 403, 404 for what is
 * missing, a directory's index.html, Content-Type by extension).
 *
 * Defaults: 127.0.0.1:8080, every worker, 10,000 pages, seed 1, about 8
 * links a page, 5% slow pages (200 ms), 5% redirects, 2% 500s, 0.1% pages
 * that hang and 1% of links to pages that do not exist. --no-slow is
 * --slow-share 0, for benchmarks: it changes no link, redirect or status
 * other than the slow pages' delay. "/" redirects to /page/0, where a crawl
 * starts; site_model.h describes the pages, their links and what a crawler
 * started there must fetch.
 *
 * https: with --tls-cert (the certificate chain, PEM, leaf first) and
 * --tls-key (its private key, PEM) the site is served over TLS on the same
 * port, with ALPN "http/1.1" (a client offering only other protocols is
 * refused), and its full-URL links and redirects say https://H:P. Each
 * connection's handshake runs before its handler (as asyncio's
 * start_server(ssl=) does); a client that fails it never reaches HTTP, and
 * those connections are counted at shutdown. examples/mkcert.sh makes a
 * CA and a certificate for it: `curl --cacert ca.pem https://127.0.0.1:P/`
 * and `crawler --ca-file ca.pem https://127.0.0.1:P/` then verify it.
 *
 * Prints a summary of the site (unless --quiet), then "Serving on H:P" once
 * listening (--port 0 picks a free port). On SIGINT or SIGTERM it closes
 * the server and the clients (a handler waiting for a request, a slow page
 * or a hung page reads end of stream and returns), waits for the
 * connections and the handlers, prints how many requests and connections
 * each worker served (and, over TLS, how many handshakes failed), frees
 * everything and exits 0.
 *
 * HTTP: every worker accepts on its own SO_REUSEPORT listener, and each
 * connection is a handler task with one http_parser (Node's, Debian's
 * libhttp-parser-dev). The bytes read go first through the checker of
 * site_http.h, which rejects what RFC 9112 says to reject and that build
 * of http-parser lets through (header-name syntax, obs-fold, bare CR,
 * versions, targets, Host, conflicting or malformed lengths, transfer
 * codings, chunk framing), and then to the parser: the head a whole line
 * at a time, the body as it comes. The parser pauses at the end of every
 * request, where the checker must also see it end, so requests are
 * answered one at a time, in order, however many a read brought
 * (pipelining); the rest waits in the connection's buffer. GET and HEAD
 * are served (HEAD with GET's headers and no body), other methods get 405,
 * a request the checker or the parser rejects gets 400 (431 for a head
 * over 12 KiB, 414 for a request line so long, 501 for a transfer coding
 * other than chunked, 505 for an HTTP version other than 1.x) with
 * "Connection: close", and the connection is closed; every response has a
 * Content-Length, and "Connection: close" (or HTTP/1.0 without keep-alive)
 * closes the connection after the response. While a slow or hung page
 * waits, the handler keeps reading into the buffer, so it sees at once when
 * the client gives up (or the server shuts down); a hung page whose client
 * fills the whole buffer with further requests is closed instead.
 *
 * Signals reach the runtime as in echo_server.c: the main task waits for
 * SIGINT and SIGTERM with a signal watcher (weft/signal.h) created before
 * "Serving on" is printed.
 */

#include "site_files.h"
#include "site_http.h"
#include "site_model.h"

#include <weft.h>

#include <http_parser.h>
#include <zlib.h>

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IN_CAP (16 * 1024) /* read buffer of a connection */
#define URL_MAX 2048       /* longest request target (414 beyond) */
#define HEAD_MAX 512       /* response headers */
#define GRACE_MS 2000      /* shutdown: graceful close, then abort */
#define LINGER_MS 1000     /* closing: how long to drain the client's data */

/* The request line and the fields together (431 beyond, 414 for the
 * request line). A head line is only parsed once whole in the buffer, so
 * one that does not fit must be over the limit first. */
#define REQ_HEAD_MAX (12 * 1024)
_Static_assert(REQ_HEAD_MAX < IN_CAP, "a head line must fit in the buffer");

/* A per-worker counter on a cache line of its own. */
typedef struct counter {
  _Alignas(64) atomic_long n;
} counter_t;

typedef struct site {
  site_model_t model;           /* the pages */
  const char *host;             /* --host */
  int port;                     /* --port */
  unsigned workers;             /* --workers (0: the runtime's default) */
  int quiet;                    /* --quiet */
  const char *tls_cert;         /* --tls-cert: https when given */
  const char *tls_key;          /* --tls-key */
  weft_tls_ctx_t *tls;          /* the server context, or NULL */
  const char *root;             /* --root, canonical; NULL: the model */
  unsigned crawl_delay_ms;      /* --crawl-delay: robots.txt's Crawl-delay */
  int gzip;                     /* --gzip */
  const char *access_log_path;  /* --access-log */
  FILE *access_log;             /* --access-log, or NULL */
  atomic_long robots_violations; /* requests for disallowed pages */
  size_t body_max;              /* largest body, for the connection buffers */
  char base[SITE_BASE_MAX + 1]; /* "http[s]://H:P" of the full-URL links */
  int nworkers;                 /* the runtime's worker count */
  counter_t *requests;          /* responses written, per worker */
  atomic_long live;             /* handlers running */
  atomic_int stopping;          /* set once shutdown began */
  weft_event_t idle;  /* set when the last handler ends after stopping */
  weft_event_t ready; /* set once base is written */
  const char *hits_path; /* --hits */
  atomic_uint *hits;     /* responses sent per page number, or NULL */
  size_t nhits;          /* entries of hits: 2 * pages (404s included) */
} site_t;

/* One connection: its parser, the request being parsed and its buffers. */
typedef struct conn {
  site_t *site;        /* the server */
  weft_stream_t *s;    /* the connection */
  site_http_t check;   /* checks the bytes before the parser gets them */
  http_parser parser;  /* paused after each complete request */
  size_t in_off;       /* in[in_off..in_len) is not parsed yet */
  size_t in_len;       /* bytes in in[] */
  size_t url_len;      /* bytes of the request target in url[] */
  int url_overflow;    /* the target did not fit in url[] */
  char field[16];      /* the current header name (prefix), lower case */
  size_t field_len;    /* its length, saturated at sizeof(field) */
  int in_ae;           /* the current header is Accept-Encoding */
  int accept_gzip;     /* the request's Accept-Encoding names gzip */
  char ae[64];         /* Accept-Encoding's value so far (cut) */
  size_t ae_len;       /* its length */
  char url[URL_MAX];   /* the current request's target */
  char head[HEAD_MAX]; /* the response's status line and headers */
  char in[IN_CAP];     /* bytes read */
  char body[];         /* the response body, site->body_max bytes */
} conn_t;

/* ------------------------------------------------------------------------ */
/* Parsing                                                                   */

static int on_message_begin(http_parser *p) {
  conn_t *c = p->data;
  c->url_len = 0;
  c->url_overflow = 0;
  c->field_len = 0;
  c->in_ae = 0;
  c->accept_gzip = 0;
  c->ae_len = 0;
  return 0;
}

/* --gzip: whether Accept-Encoding names gzip (a token "gzip" anywhere in
 * its first 63 bytes; "gzip;q=0" is taken as yes: the site is a test
 * server, not a negotiation reference). */
static void ae_done(conn_t *c) {
  c->ae[c->ae_len] = '\0';
  for (char *t = c->ae; (t = strstr(t, "gzip")) != NULL; t += 4) {
    char before = t == c->ae ? ',' : t[-1];
    if (before == ',' || before == ' ' || before == '\t')
      c->accept_gzip = 1;
  }
  c->in_ae = 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len) {
  conn_t *c = p->data;
  if (c->in_ae)
    ae_done(c);
  if (c->field_len == SIZE_MAX) /* the previous header's value came */
    c->field_len = 0;
  for (size_t i = 0; i < len && c->field_len < sizeof(c->field); i++) {
    char ch = at[i];
    c->field[c->field_len++] = ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch;
  }
  return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len) {
  conn_t *c = p->data;
  if (c->field_len != SIZE_MAX) {
    c->in_ae = c->field_len == 15 && memcmp(c->field, "accept-encoding", 15) == 0;
    c->field_len = SIZE_MAX; /* in a value: the next field starts anew */
    c->ae_len = 0;
  }
  for (size_t i = 0; c->in_ae && i < len && c->ae_len < sizeof(c->ae) - 1; i++) {
    char ch = at[i];
    c->ae[c->ae_len++] = ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch;
  }
  return 0;
}

static int on_headers_complete(http_parser *p) {
  conn_t *c = p->data;
  if (c->in_ae)
    ae_done(c);
  return 0;
}

static int on_url(http_parser *p, const char *at, size_t len) {
  conn_t *c = p->data;
  if (len > sizeof(c->url) - c->url_len) {
    c->url_overflow = 1;
    return 0;
  }
  memcpy(c->url + c->url_len, at, len);
  c->url_len += len;
  return 0;
}

static int on_message_complete(http_parser *p) {
  /* One request at a time: serve() answers it, then resumes the parser on
   * the rest of the buffer. */
  http_parser_pause(p, 1);
  return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_message_complete = on_message_complete,
};

/* ------------------------------------------------------------------------ */
/* Responding                                                                */

static const char *reason(int status) {
  switch (status) {
  case 200:
    return "OK";
  case 301:
    return "Moved Permanently";
  case 302:
    return "Found";
  case 400:
    return "Bad Request";
  case 403:
    return "Forbidden";
  case 404:
    return "Not Found";
  case 405:
    return "Method Not Allowed";
  case 414:
    return "URI Too Long";
  case 431:
    return "Request Header Fields Too Large";
  case 501:
    return "Not Implemented";
  case 505:
    return "HTTP Version Not Supported";
  default:
    return "Internal Server Error";
  }
}

/* A response being built: the status, an optional header and the body. */
typedef struct response {
  int status;
  const char *ctype;  /* Content-Type, NULL: text/html; charset=utf-8 */
  const char *header; /* one extra header line without CRLF, or NULL */
  size_t body_len;    /* bytes of c->body */
  int with_body;      /* 0 for HEAD */
  int keep_alive;     /* 0: close after it */
} response_t;

/* A short HTML body for the statuses that are not about a page. */
static size_t plain_body(conn_t *c, int status) {
  int n = snprintf(c->body, c->site->body_max,
                   "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta "
                   "charset=\"utf-8\"><title>%d %s</title></head>\n<body><h1>"
                   "%s</h1></body>\n</html>\n",
                   status, reason(status), reason(status));
  return n > 0 ? (size_t)n : 0;
}

/* --gzip: send r's body gzip-compressed, in chunks of GZIP_CHUNK bytes
 * (Transfer-Encoding: chunked: the length of a compressed body is known
 * only at its end when a server streams it; here it is compressed whole
 * first, and chunked all the same, for crawlers' tests). */
#define GZIP_CHUNK 1000
static int send_gzip(conn_t *c, const response_t *r, const char *ctype,
                     const char *conn_hdr) {
  z_stream z;
  memset(&z, 0, sizeof(z));
  if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    return WEFT_ENOMEM;
  uLong cap = deflateBound(&z, (uLong)r->body_len);
  unsigned char *gz = malloc(cap);
  if (!gz) {
    deflateEnd(&z);
    return WEFT_ENOMEM;
  }
  z.next_in = (Bytef *)c->body;
  z.avail_in = (uInt)r->body_len;
  z.next_out = gz;
  z.avail_out = (uInt)cap;
  int zr = deflate(&z, Z_FINISH);
  size_t len = cap - z.avail_out;
  deflateEnd(&z);
  if (zr != Z_STREAM_END) {
    free(gz);
    return WEFT_ENOBUFS;
  }
  int n = snprintf(c->head, sizeof(c->head),
                   "HTTP/1.1 %d %s\r\n"
                   "Server: weft-site\r\n"
                   "Content-Type: %s\r\n"
                   "Content-Encoding: gzip\r\n"
                   "Transfer-Encoding: chunked\r\n"
                   "%s%s%s\r\n",
                   r->status, reason(r->status), ctype,
                   r->header ? r->header : "", r->header ? "\r\n" : "",
                   conn_hdr);
  int rc = n < 0 || (size_t)n >= sizeof(c->head)
               ? WEFT_ENOBUFS
               : weft_stream_write(c->s, c->head, (size_t)n);
  for (size_t off = 0; rc == 0 && off < len; off += GZIP_CHUNK) {
    size_t k = len - off < GZIP_CHUNK ? len - off : GZIP_CHUNK;
    char size[16];
    int sn = snprintf(size, sizeof(size), "%zx\r\n", k);
    weft_iovec_t iov[3] = {
        {size, (size_t)sn}, {gz + off, k}, {(void *)(uintptr_t)"\r\n", 2}};
    rc = weft_stream_writev(c->s, iov, 3);
  }
  if (rc == 0)
    rc = weft_stream_write(c->s, "0\r\n\r\n", 5);
  free(gz);
  return rc;
}

/* Queue r. Returns 0, or an error of the stream. */
static int send_response(conn_t *c, const response_t *r) {
  site_t *site = c->site;
  const char *conn_hdr = "";
  if (!r->keep_alive)
    conn_hdr = "Connection: close\r\n";
  else if (c->parser.http_major == 1 && c->parser.http_minor == 0)
    conn_hdr = "Connection: keep-alive\r\n";
  const char *ctype = r->ctype ? r->ctype : "text/html; charset=utf-8";
  int rc;
  if (site->gzip && c->accept_gzip && r->with_body && r->body_len > 0) {
    rc = send_gzip(c, r, ctype, conn_hdr);
  } else {
    int n = snprintf(c->head, sizeof(c->head),
                     "HTTP/1.1 %d %s\r\n"
                     "Server: weft-site\r\n"
                     "Content-Type: %s\r\n"
                     "Content-Length: %zu\r\n"
                     "%s%s%s\r\n",
                     r->status, reason(r->status), ctype, r->body_len,
                     r->header ? r->header : "", r->header ? "\r\n" : "",
                     conn_hdr);
    if (n < 0 || (size_t)n >= sizeof(c->head))
      return WEFT_ENOBUFS;
    weft_iovec_t iov[2] = {{c->head, (size_t)n}, {c->body, r->body_len}};
    rc = weft_stream_writev(c->s, iov, r->with_body && r->body_len ? 2 : 1);
  }
  if (rc == 0)
    rc = weft_stream_drain(c->s);
  if (rc == 0) {
    int w = weft_worker_index();
    if (w >= 0 && w < site->nworkers)
      /* relaxed: a statistic, read after the handlers have ended. */
      atomic_fetch_add_explicit(&site->requests[w].n, 1, memory_order_relaxed);
  }
  return rc;
}

/* GET /metrics: the runtime's metrics, Prometheus text format 0.0.4. The
 * text goes in a buffer of its own (its size grows with the workers), sized
 * by a first call; the counters may grow between the two calls, hence the
 * margin and the retry. Returns 0, or an error of the stream or
 * WEFT_ENOMEM. */
static int send_metrics(conn_t *c, int with_body, int keep_alive) {
  long need = weft_metrics_write_prometheus(NULL, NULL, 0);
  char *text = NULL;
  for (int tries = 0; need >= 0 && tries < 3; tries++) {
    size_t cap = (size_t)need + 1024;
    free(text);
    text = malloc(cap);
    if (!text)
      return WEFT_ENOMEM;
    need = weft_metrics_write_prometheus(NULL, text, cap);
    if (need >= 0 && (size_t)need < cap)
      break;
  }
  if (need < 0) {
    free(text);
    return (int)need;
  }
  const char *conn_hdr = "";
  if (!keep_alive)
    conn_hdr = "Connection: close\r\n";
  else if (c->parser.http_major == 1 && c->parser.http_minor == 0)
    conn_hdr = "Connection: keep-alive\r\n";
  int n = snprintf(c->head, sizeof(c->head),
                   "HTTP/1.1 200 OK\r\n"
                   "Server: weft-site\r\n"
                   "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                   "Content-Length: %ld\r\n"
                   "%s\r\n",
                   need, conn_hdr);
  if (n < 0 || (size_t)n >= sizeof(c->head)) {
    free(text);
    return WEFT_ENOBUFS;
  }
  weft_iovec_t iov[2] = {{c->head, (size_t)n}, {text, (size_t)need}};
  int rc = weft_stream_writev(c->s, iov, with_body && need > 0 ? 2 : 1);
  if (rc == 0)
    rc = weft_stream_drain(c->s);
  free(text); /* the write sent it or copied what it could not send */
  if (rc == 0) {
    int w = weft_worker_index();
    if (w >= 0 && w < c->site->nworkers)
      /* relaxed: a statistic, read after the handlers have ended. */
      atomic_fetch_add_explicit(&c->site->requests[w].n, 1,
                                memory_order_relaxed);
  }
  return rc;
}

/* Wait ms milliseconds (WEFT_NO_TIMEOUT: until the client goes), reading
 * ahead what the client sends meanwhile. Returns 0 once the time is up, or
 * -1 when the connection must end: end of stream (the client gave up, or
 * the server closed the clients at shutdown), an error, or a full buffer
 * while hanging. */
static int wait_reading(conn_t *c, uint64_t ms) {
  uint64_t deadline =
      ms == WEFT_NO_TIMEOUT ? WEFT_NO_TIMEOUT : weft_time_ms() + ms;
  for (;;) {
    if (c->in_len == IN_CAP && c->in_off > 0) {
      memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
      c->in_len -= c->in_off;
      c->in_off = 0;
    }
    if (c->in_len == IN_CAP) { /* the client's pipeline is full */
      if (deadline == WEFT_NO_TIMEOUT)
        return -1;
      uint64_t now = weft_time_ms();
      return now >= deadline || weft_sleep(deadline - now) == 0 ? 0 : -1;
    }
    weft_timeout_t scope;
    weft_timeout_enter_at(&scope, deadline);
    int n = weft_stream_read(c->s, c->in + c->in_len, IN_CAP - c->in_len);
    int rc = weft_timeout_exit(&scope, n < 0 ? n : 0);
    if (rc == WEFT_ETIMEDOUT)
      return 0;
    if (rc != 0 || n <= 0)
      return -1;
    c->in_len += (size_t)n;
  }
}

/* The page number of a path "/page/N" (no leading zeros), or -1. */
static long long page_number(const char *path, size_t len) {
  static const char prefix[] = "/page/";
  size_t pl = sizeof(prefix) - 1;
  if (len <= pl || len > pl + 10 || memcmp(path, prefix, pl) != 0)
    return -1;
  if (path[pl] == '0' && len > pl + 1)
    return -1;
  long long n = 0;
  for (size_t i = pl; i < len; i++) {
    if (path[i] < '0' || path[i] > '9')
      return -1;
    n = n * 10 + (path[i] - '0');
  }
  return n;
}

/* Answer the request the parser has just completed. Returns 0 to go on
 * with the connection, 1 to close it after the response, -1 to drop it. */
static int respond(conn_t *c) {
  site_t *site = c->site;
  long long hit = -1; /* the page number, for --hits */
  const site_model_t *m = &site->model;
  http_parser *p = &c->parser;
  response_t r = {.with_body = 1,
                  .keep_alive = http_should_keep_alive(p) && !p->upgrade};
  char location[SITE_HREF_MAX + 16];
  struct http_parser_url u;
  http_parser_url_init(&u);

  if (c->url_overflow) {
    r.status = 414;
    r.keep_alive = 0;
  } else if (p->method != HTTP_GET && p->method != HTTP_HEAD) {
    r.status = 405;
    r.header = "Allow: GET, HEAD";
  } else if (http_parser_parse_url(c->url, c->url_len, 0, &u) != 0) {
    r.status = 400;
    r.keep_alive = 0;
  } else {
    const char *path = "/";
    size_t plen = 1;
    if (u.field_set & (1 << UF_PATH)) {
      path = c->url + u.field_data[UF_PATH].off;
      plen = u.field_data[UF_PATH].len;
    }
    long long n = page_number(path, plen);
    if (site->access_log) /* locked by stdio: one whole line each */
      fprintf(site->access_log, "%llu %.*s\n",
              (unsigned long long)weft_time_ms(), (int)c->url_len, c->url);
    if (n >= 0 && m->p.robots && site_page_disallowed(m, (uint64_t)n))
      /* relaxed: a statistic, read after the handlers have ended. */
      atomic_fetch_add_explicit(&site->robots_violations, 1,
                                memory_order_relaxed);
    if (plen == 8 && memcmp(path, "/metrics", 8) == 0) {
      if (send_metrics(c, p->method != HTTP_HEAD, r.keep_alive) != 0)
        return -1;
      return r.keep_alive ? 0 : 1;
    }
    if (site->root) {
      const char *conn_hdr = !r.keep_alive ? "Connection: close\r\n"
                             : p->http_major == 1 && p->http_minor == 0
                                 ? "Connection: keep-alive\r\n"
                                 : "";
      int st = site_files_serve(site->root, c->s, path, plen,
                                p->method == HTTP_HEAD, conn_hdr);
      if (st < 0)
        return -1;
      if (st == 0) {
        int w = weft_worker_index();
        if (w >= 0 && w < site->nworkers)
          /* relaxed: a statistic, read after the handlers have ended. */
          atomic_fetch_add_explicit(&site->requests[w].n, 1,
                                    memory_order_relaxed);
        return r.keep_alive ? 0 : 1;
      }
      r.status = st;
    } else if (m->p.robots && plen == 11 && memcmp(path, "/robots.txt", 11) == 0) {
      r.status = 200;
      r.ctype = "text/plain; charset=utf-8";
      int k = snprintf(c->body, site->body_max, "%s", SITE_ROBOTS_TXT);
      if (k > 0 && site->crawl_delay_ms)
        k += snprintf(c->body + k, site->body_max - (size_t)k,
                      "Crawl-delay: %u.%03u\n", site->crawl_delay_ms / 1000,
                      site->crawl_delay_ms % 1000);
      r.body_len = k > 0 ? (size_t)k : 0;
    } else if (plen == 1 && path[0] == '/') {
      r.status = 301;
      memcpy(location, "Location: ", 10);
      site_page_path(m, 0, location + 10, sizeof(location) - 10);
      r.header = location;
    } else if (n < 0) {
      r.status = 404;
    } else {
      hit = n;
      site_kind_t kind = site_page_kind(m, (uint64_t)n);
      if (kind == SITE_HANG) {
        wait_reading(c, WEFT_NO_TIMEOUT);
        return -1; /* only the client or the shutdown ends a hang */
      }
      if (kind == SITE_SLOW && wait_reading(c, m->p.slow_ms) != 0)
        return -1;
      r.status = site_page_status(m, (uint64_t)n);
      if (kind == SITE_REDIRECT) {
        memcpy(location, "Location: ", 10);
        site_redirect_location(m, (uint64_t)n, site->base, location + 10,
                               sizeof(location) - 10);
        r.header = location;
      }
      r.body_len =
          site_page_body(m, (uint64_t)n, site->base, c->body, site->body_max);
      if (r.body_len == 0) { /* cannot happen: body_max is the bound */
        r.status = 500;
        r.body_len = plain_body(c, 500);
      }
    }
  }
  if (r.body_len == 0)
    r.body_len = plain_body(c, r.status);
  r.with_body = p->method != HTTP_HEAD;
  if (send_response(c, &r) != 0)
    return -1;
  if (site->hits && hit >= 0 && (unsigned long long)hit < site->nhits)
    /* relaxed: a statistic, read after the handlers have ended. */
    atomic_fetch_add_explicit(&site->hits[hit], 1, memory_order_relaxed);
  return r.keep_alive ? 0 : 1;
}

/* A lingering close: closing a socket with unread data in it sends a reset,
 * which may destroy the last response before the client reads it (the
 * client may have pipelined more requests, or sent garbage). So send end of
 * stream after the response and read and discard until the client closes,
 * for at most LINGER_MS. */
static void linger(conn_t *c) {
  if (weft_stream_write_eof(c->s) != 0)
    return;
  weft_timeout_t scope;
  weft_timeout_enter(&scope, LINGER_MS);
  int n;
  do
    n = weft_stream_read(c->s, c->in, IN_CAP);
  while (n > 0);
  weft_timeout_exit(&scope, n);
}

/* Answer a request that cannot be served with status (400 and up), then
 * close. */
static void reject(conn_t *c, int status) {
  response_t r = {.status = status, .with_body = 1, .keep_alive = 0};
  r.body_len = plain_body(c, status);
  if (send_response(c, &r) == 0)
    linger(c);
}

/* Serve the connection's requests until it ends. */
static void serve(conn_t *c) {
  for (;;) {
    size_t len = c->in_len - c->in_off, pass = 0;
    int st = SITE_HTTP_MORE;
    if (len > 0)
      st = site_http_check(&c->check, c->in + c->in_off, len, &pass);
    if (st >= 400) {
      reject(c, st);
      return;
    }
    if (pass > 0) {
      /* Never called with 0 bytes: that would tell the parser the stream
       * ended. */
      size_t used =
          http_parser_execute(&c->parser, &settings, c->in + c->in_off, pass);
      c->in_off += used;
      enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
      /* The parser must end the request where the checker does: a parser
       * error, or a request the two frame differently, is a bad request. */
      int end = st == SITE_HTTP_END;
      if (used != pass || e != (end ? HPE_PAUSED : HPE_OK)) {
        reject(c, 400);
        return;
      }
      if (end) {
        http_parser_pause(&c->parser, 0);
        int rc = respond(c);
        if (rc == 1)
          linger(c);
        if (rc != 0)
          return;
        continue;
      }
    }
    /* The checker needs more bytes: keep the part of a line it has not
     * passed at the start of the buffer, and read after it. */
    if (c->in_off == c->in_len) {
      c->in_off = c->in_len = 0;
    } else if (c->in_len == IN_CAP) {
      memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
      c->in_len -= c->in_off;
      c->in_off = 0;
    }
    if (c->in_len == IN_CAP) { /* cannot be: a line over REQ_HEAD_MAX */
      reject(c, 431);
      return;
    }
    int n = weft_stream_read(c->s, c->in + c->in_len, IN_CAP - c->in_len);
    if (n <= 0)
      return; /* end of stream, reset, or shutdown */
    c->in_len += (size_t)n;
  }
}

static void handle_conn(weft_stream_t *stream, void *arg) {
  site_t *site = arg;
  atomic_fetch_add(&site->live, 1);
  /* A connection may come in before site_main knows the port that base
   * names; the event also makes base's bytes visible here. */
  int rc = weft_event_wait(&site->ready);
  conn_t *c = rc == 0 ? malloc(sizeof(*c) + site->body_max) : NULL;
  if (c) {
    c->site = site;
    c->s = stream;
    c->in_off = c->in_len = 0;
    c->url_len = 0;
    c->url_overflow = 0;
    site_http_init(&c->check, REQ_HEAD_MAX);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    serve(c);
    free(c);
  }
  weft_stream_close(stream); /* the server frees it when we return */
  /* seq_cst, with the store of `stopping` and the load of `live` in
   * site_main: either this handler sees `stopping` and sets `idle`, or
   * site_main sees it still live and waits for `idle`. */
  if (atomic_fetch_sub(&site->live, 1) == 1 && atomic_load(&site->stopping))
    weft_event_set(&site->idle);
}

/* ------------------------------------------------------------------------ */
/* Main task                                                                 */

static void print_summary(const site_t *site) {
  const site_model_t *m = &site->model;
  site_reach_t reach;
  printf("Site: %u pages, seed %llu, %u links a page:", m->p.pages,
         (unsigned long long)m->p.seed, m->p.links);
  for (int k = 0; k < SITE_KIND_COUNT; k++)
    if (k != SITE_NOT_FOUND)
      printf(" %zu %s", site_count_kind(m, (site_kind_t)k),
             site_kind_name((site_kind_t)k));
  printf("\n");
  if (site_reach_compute(m, &reach) == 0) {
    printf("Reachable from /page/0: %zu pages:", reach.total);
    for (int k = 0; k < SITE_KIND_COUNT; k++)
      printf(" %zu %s", reach.by_kind[k], site_kind_name((site_kind_t)k));
    printf("\n");
    site_reach_free(&reach);
  }
}

/* "http://H:P" (or https) of the full-URL links: the listening address,
 * with a wildcard replaced by the loopback address and IPv6 in brackets. */
static void make_base(site_t *site, int port) {
  const char *h = site->host;
  if (strcmp(h, "0.0.0.0") == 0)
    h = "127.0.0.1";
  else if (strcmp(h, "::") == 0)
    h = "::1";
  int v6 = strchr(h, ':') != NULL;
  snprintf(site->base, sizeof(site->base), "%s://%s%s%s:%d",
           site->tls ? "https" : "http", v6 ? "[" : "", h, v6 ? "]" : "",
           port);
}

static void *site_main(void *arg) {
  site_t *site = arg;
  static const int stop_signals[] = {SIGINT, SIGTERM};
  weft_signal_t *signals;
  int rc = weft_signal_new(stop_signals, 2, &signals);
  if (rc != 0) {
    fprintf(stderr, "site: cannot watch signals: %s\n", weft_strerror(rc));
    return weft_task_fail(rc);
  }
  site->nworkers = weft_worker_count();
  site->requests = calloc((size_t)site->nworkers, sizeof(*site->requests));
  if (!site->requests) {
    weft_signal_free(signals);
    return weft_task_fail(WEFT_ENOMEM);
  }
  weft_server_opts_t so;
  weft_server_opts_init(&so);
  so.workers = site->workers;
  so.backlog = 1024;
  so.stream.tls.ctx = site->tls; /* NULL: plain http */
  weft_server_t *server;
  rc = weft_start_server(handle_conn, site, site->host, site->port, &so,
                         &server);
  if (rc != 0) {
    fprintf(stderr, "site: cannot listen on %s:%d: %s\n", site->host,
            site->port, weft_strerror(rc));
    weft_signal_free(signals);
    return weft_task_fail(rc);
  }
  struct sockaddr_storage ss;
  char host[128];
  int port;
  weft_server_sockname(server, &ss, NULL);
  weft_addr_format((struct sockaddr *)&ss, host, sizeof(host), &port);
  make_base(site, port);
  weft_event_set(&site->ready);
  if (!site->quiet)
    print_summary(site);
  printf("Serving on %s:%d\n", host, port);

  int sig = 0;
  rc = weft_signal_wait(signals, WEFT_NO_TIMEOUT, &sig); /* serve until one */
  if (!site->quiet && rc == 0)
    printf("Signal %d: shutting down\n", sig);
  weft_signal_free(signals);
  weft_server_close(server);
  atomic_store(&site->stopping, 1);
  weft_server_close_clients(server);
  /* A client that does not read its responses would hold a graceful close
   * forever: after GRACE_MS, abort what is left. */
  weft_timeout_t scope;
  weft_timeout_enter(&scope, GRACE_MS);
  rc = weft_timeout_exit(&scope, weft_server_wait_closed(server));
  if (rc == WEFT_ETIMEDOUT) {
    weft_server_abort_clients(server);
    weft_server_wait_closed(server);
  }
  /* Handlers end soon after their connection: at most a slow page's delay. */
  if (atomic_load(&site->live) != 0)
    weft_event_wait(&site->idle);
  for (int i = 0; i < site->nworkers; i++) {
    long accepted = weft_server_accepted(server, (unsigned)i);
    printf("worker %d: %ld requests, %ld connections\n", i,
           atomic_load_explicit(&site->requests[i].n, memory_order_relaxed),
           accepted > 0 ? accepted : 0);
  }
  if (site->tls)
    printf("TLS handshakes failed: %ld\n", weft_server_tls_failures(server));
  if (site->model.p.robots)
    printf("robots violations: %ld\n",
           atomic_load_explicit(&site->robots_violations,
                                memory_order_relaxed));
  weft_server_free(server);
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* Signals and options                                                       */


static int usage(void) {
  fprintf(stderr, "usage: site [--host H] [--port P] [--workers N] [--pages K] "
                  "[--seed S]\n"
                  "            [--links L] [--slow-share X] [--slow-ms MS] "
                  "[--no-slow]\n"
                  "            [--redirect-share X] [--error-share X] "
                  "[--hang-share X]\n"
                  "            [--missing-share X] [--tls-cert FILE --tls-key "
                  "FILE] [--quiet]\n"
                  "            [--root DIR] [--robots] [--crawl-delay MS] "
                  "[--gzip]\n"
                  "            [--access-log FILE] [--hits FILE]\n");
  return 2;
}

/* A whole decimal number within [0, max], or -1. */
static int parse_u64(const char *s, unsigned long long max,
                     unsigned long long *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || *end || s[0] == '-' || v > max)
    return -1;
  *out = v;
  return 0;
}

static int parse_share(const char *s, double *out) {
  char *end;
  double v = strtod(s, &end);
  if (end == s || *end || !(v >= 0.0 && v <= 1.0))
    return -1;
  *out = v;
  return 0;
}

static int parse_args(int argc, char **argv, site_t *site, site_params_t *p) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    unsigned long long x;
    if (strcmp(a, "--quiet") == 0) {
      site->quiet = 1;
      continue;
    }
    if (strcmp(a, "--no-slow") == 0) {
      p->slow_share = 0;
      continue;
    }
    if (strcmp(a, "--robots") == 0) {
      p->robots = 1;
      continue;
    }
    if (strcmp(a, "--gzip") == 0) {
      site->gzip = 1;
      continue;
    }
    if (!v)
      return -1;
    i++;
    if (strcmp(a, "--host") == 0)
      site->host = v;
    else if (strcmp(a, "--tls-cert") == 0)
      site->tls_cert = v;
    else if (strcmp(a, "--tls-key") == 0)
      site->tls_key = v;
    else if (strcmp(a, "--hits") == 0)
      site->hits_path = v;
    else if (strcmp(a, "--root") == 0)
      site->root = v;
    else if (strcmp(a, "--access-log") == 0)
      site->access_log_path = v;
    else if (strcmp(a, "--crawl-delay") == 0 &&
             parse_u64(v, 3600000, &x) == 0)
      site->crawl_delay_ms = (unsigned)x;
    else if (strcmp(a, "--port") == 0 && parse_u64(v, 65535, &x) == 0)
      site->port = (int)x;
    else if (strcmp(a, "--workers") == 0 && parse_u64(v, 1024, &x) == 0)
      site->workers = (unsigned)x;
    else if (strcmp(a, "--pages") == 0 && parse_u64(v, 1u << 30, &x) == 0)
      p->pages = (unsigned)x;
    else if (strcmp(a, "--seed") == 0 && parse_u64(v, UINT64_MAX, &x) == 0)
      p->seed = x;
    else if (strcmp(a, "--links") == 0 &&
             parse_u64(v, SITE_LINKS_MAX - 2, &x) == 0)
      p->links = (unsigned)x;
    else if (strcmp(a, "--slow-ms") == 0 && parse_u64(v, 3600000, &x) == 0)
      p->slow_ms = (unsigned)x;
    else if (strcmp(a, "--slow-share") == 0 &&
             parse_share(v, &p->slow_share) == 0)
      ;
    else if (strcmp(a, "--redirect-share") == 0 &&
             parse_share(v, &p->redirect_share) == 0)
      ;
    else if (strcmp(a, "--error-share") == 0 &&
             parse_share(v, &p->error_share) == 0)
      ;
    else if (strcmp(a, "--hang-share") == 0 &&
             parse_share(v, &p->hang_share) == 0)
      ;
    else if (strcmp(a, "--missing-share") == 0 &&
             parse_share(v, &p->missing_share) == 0)
      ;
    else
      return -1;
  }
  return !site->tls_cert != !site->tls_key ? -1 : 0;
}

/* The https context: asyncio's
 *     context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
 *     context.load_cert_chain(cert, key)
 *     context.set_alpn_protocols(['http/1.1'])
 * Returns 0, or -1 after saying why on stderr. */
static int make_tls(site_t *site) {
  weft_tls_opts_t to;
  weft_tls_opts_init(&to);
  to.server = 1;
  to.cert_file = site->tls_cert;
  to.key_file = site->tls_key;
  to.alpn = "http/1.1";
  int rc = weft_tls_ctx_new(&to, &site->tls);
  if (rc != 0) {
    char why[256];
    if (weft_tls_error_string(why, sizeof(why)) <= 0)
      snprintf(why, sizeof(why), "%s", site->tls_cert);
    fprintf(stderr, "site: TLS: %s (%s)\n", weft_strerror(rc), why);
    return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  static site_t site; /* static: a few KiB of buffers and atomics */
  site.host = "127.0.0.1";
  site.port = 8080;
  site_params_t params;
  site_params_init(&params);
  if (parse_args(argc, argv, &site, &params) != 0)
    return usage();
  static char root[SITE_ROOT_MAX];
  if (site.root && site_files_root(site.root, root, sizeof(root)) != 0)
    return 2;
  if (site.root)
    site.root = root;
  if (site_model_init(&site.model, &params) != 0) {
    fprintf(stderr, "site: the page shares add up to more than 1\n");
    return 2;
  }
  if (site.tls_cert && make_tls(&site) != 0)
    return 1;
  if (site.access_log_path &&
      !(site.access_log = fopen(site.access_log_path, "w"))) {
    fprintf(stderr, "site: %s: %s\n", site.access_log_path, strerror(errno));
    weft_tls_ctx_free(site.tls);
    return 1;
  }
  site.body_max = site_body_max(&site.model);
  if (site.hits_path) {
    site.nhits = 2 * (size_t)params.pages;
    site.hits = calloc(site.nhits, sizeof(*site.hits));
    if (!site.hits)
      return 1;
  }
  weft_event_init(&site.idle);
  weft_event_init(&site.ready);
  setvbuf(stdout, NULL, _IOLBF, 0); /* "Serving on" must show at once */

  weft_config_t cfg;
  weft_config_init(&cfg);
  cfg.workers = site.workers;
  int rc = weft_run(site_main, &site, &cfg, NULL);
  if (site.hits) {
    FILE *hf = fopen(site.hits_path, "w");
    if (!hf) {
      fprintf(stderr, "site: %s: %s\n", site.hits_path, strerror(errno));
      rc = 1;
    }
    for (size_t i = 0; hf && i < site.nhits; i++) {
      unsigned h = atomic_load_explicit(&site.hits[i], memory_order_relaxed);
      if (h)
        fprintf(hf, "%zu %u\n", i, h);
    }
    if (hf && fclose(hf) != 0)
      rc = 1;
    free(site.hits);
  }
  weft_event_destroy(&site.idle);
  weft_event_destroy(&site.ready);
  free(site.requests);
  weft_tls_ctx_free(site.tls);
  if (site.access_log && fclose(site.access_log) != 0)
    rc = 1;
  return rc == 0 ? 0 : 1;
}

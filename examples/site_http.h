/*
 * site_http.h: the request checks of examples/site that http-parser, as
 * Debian builds it, does not make.
 *
 * Debian's libhttp-parser 2.9.4 is built lenient (HTTP_PARSER_STRICT=0:
 * it takes a space in a field name, and any two bytes after chunk data),
 * and lets through much of what RFC 9112 says a server must reject: a space
 * inside or before the colon of a field name, obs-fold, HTTP/2.0 or HTTP/0.9
 * request lines, a request line with no version, two spaces between its parts,
 * a fragment or 8-bit bytes in the target, "*" with GET, a missing or a second
 * Host, "Transfer-Encoding: gzip, chunked", chunked twice, Transfer-Encoding in
 * HTTP/1.0, any two bytes instead of the CRLF after chunk data, anything up to
 * a CR as a chunk extension, and a CR followed by anything as a chunk line's
 * end.
 *
 * The checker reads the request stream ahead of the parser and says how
 * many bytes may go to it: the request line and the field lines one whole
 * line at a time (so that each is checked before the parser sees it), the
 * body as it comes. It finds the end of each request itself, so a request
 * the parser frames differently is caught too (site answers 400). It
 * keeps no pointer into the caller's buffer between calls and needs no
 * allocation; a head line must be whole in one call's bytes.
 *
 * What it accepts (RFC 9112 and RFC 9110; where the RFC leaves a choice,
 * Go's net/http's or a stricter one, docs/design.md §6):
 *  - lines end with CRLF or a bare LF (RFC 9112 §2.2 lets a recipient
 *    accept LF alone; Go does), in the head only: a CR not followed by LF
 *    is an error everywhere, and chunked framing takes CRLF only (RFC 9112
 *    §7.1, as Go's chunked reader);
 *  - empty lines before the request line are skipped (§2.2);
 *  - request line: method (a token) SP request-target SP "HTTP/" DIGIT "."
 *    DIGIT, single spaces; major version 1 only (1.2 to 1.9 are read as
 *    1.1, RFC 9110 §2.5), other majors get 505; the target in origin-form
 *    ("/" path ["?" query]), absolute-form ("http" or "https", no userinfo,
 *    a non-empty host), "*" for OPTIONS only and authority-form for CONNECT
 *    only, in the characters RFC 3986 allows there, with valid
 *    percent-encoding;
 *  - field lines: a token, ":" at once, a value of visible characters,
 *    obs-text, spaces and tabs; no line may start with whitespace
 *    (obs-fold, or whitespace before the first field: §5.2, §2.2);
 *  - Host: exactly one in HTTP/1.1 (at most one in HTTP/1.0), its value
 *    uri-host [":" port];
 *  - Content-Length: one field, 1 to 18 digits (a list, a sign, a second
 *    field, even an equal one, are errors: http-parser rejects the last);
 *  - Transfer-Encoding: HTTP/1.1 only, never with Content-Length (§6.3),
 *    a list without empty elements (as Go and http-parser),
 *    "chunked" last and once (400 otherwise), no other coding before it
 *    (501: site decodes none);
 *  - chunked body: 1*HEXDIG chunk sizes below 2^56, extensions in the
 *    chunk-ext grammar (tokens and quoted strings, BWS), chunk lines of at
 *    most 4096 bytes, CRLF after each chunk's data, trailer fields with
 *    the field-line syntax above;
 *  - the request line and fields together at most head_max bytes (431;
 *    414 when the request line alone does not fit), and so the trailers.
 */
#ifndef SITE_HTTP_H
#define SITE_HTTP_H

#include <stddef.h>
#include <stdint.h>

/* What site_http_check() found beyond the bytes it passed (statuses of
 * 400 and above are the HTTP status to answer before closing). */
enum {
  SITE_HTTP_MORE = 0, /* the request goes on: more bytes are needed */
  SITE_HTTP_END = 1,  /* the request ends with the bytes passed */
};

/* The checker of one connection's requests. */
typedef struct site_http {
  size_t head_max;     /* most bytes of request line and fields */
  int state;           /* where in the request (site_http.c) */
  int version_minor;   /* of the request line */
  int hosts;           /* Host fields */
  int lengths;         /* Content-Length fields */
  int te_fields;       /* Transfer-Encoding fields */
  int te_chunked;      /* "chunked" codings */
  int te_other;        /* other codings */
  int te_last_chunked; /* the last coding is a plain "chunked" */
  size_t head_len;     /* bytes of the head (or trailers) so far */
  size_t line_len;     /* bytes of the current chunk or trailer line */
  uint64_t left;       /* body bytes still to come: length or chunk */
  uint64_t chunk_size; /* the chunk size being read */
} site_http_t;

/* Prepare h for a connection's first request; head_max bounds the request
 * line and the fields together (and the trailers). */
void site_http_init(site_http_t *h, size_t head_max);

/* Check what follows in the stream: the len bytes at p, which start where
 * the previous call's passed bytes ended. Sets *pass to how many of them
 * (0 to len) are good and may go to the parser, and returns SITE_HTTP_MORE
 * when the request goes on after them (more bytes are needed), or
 * SITE_HTTP_END when it ends with them (h is ready for the next request),
 * or the HTTP status to answer (400, 414, 431, 501 or 505) when the bytes
 * after them, or the request as a whole, are not acceptable; h is then
 * spent. A head line is only passed whole: when the line at the end of p
 * is incomplete, call again with it and more. */
int site_http_check(site_http_t *h, const char *p, size_t len, size_t *pass);

#endif

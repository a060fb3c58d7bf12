/*
 * site_http.c: the request checks of examples/site beyond http-parser's
 * (site_http.h says which, and why).
 *
 * The head is checked a whole line at a time: the request line, then the
 * field lines, with what a request's framing depends on (Host,
 * Content-Length, Transfer-Encoding) remembered in the checker until the
 * empty line ends the head. The body is checked a byte at a time, so it
 * may come in any pieces: a Content-Length body is only counted, a chunked
 * one goes through the state machine of RFC 9112 §7.1 below.
 */
#include "site_http.h"

#include <string.h>
#include <strings.h>

#define CHUNK_LINE_MAX 4096 /* a chunk-size line, extensions included */

enum {
  S_START,          /* before the request line: empty lines are skipped */
  S_FIELDS,         /* after the request line: field lines, then "" */
  S_LENGTH,         /* a Content-Length body: `left` bytes to come */
  S_SIZE0,          /* a chunk: its first hex digit */
  S_SIZE,           /* more hex digits */
  S_EXT_WS,         /* BWS after the size or a value: ";" must follow */
  S_EXT_NAME0,      /* after ";": BWS, then an extension name */
  S_EXT_NAME,       /* in the name */
  S_EXT_NAME_WS,    /* BWS after the name: "=" or ";" must follow */
  S_EXT_VAL0,       /* after "=": BWS, then a token or a quoted string */
  S_EXT_TOKEN,      /* in a token value */
  S_EXT_QUOTED,     /* in a quoted-string value */
  S_EXT_QPAIR,      /* after a backslash in it */
  S_EXT_QUOTED_END, /* after its closing quote */
  S_SIZE_LF,        /* after the CR of a chunk-size line */
  S_DATA,           /* chunk data: `left` bytes to come */
  S_DATA_CR,        /* the CR after chunk data */
  S_DATA_LF,        /* its LF */
  S_TRAILER,        /* the start of a trailer line, or of the final CRLF */
  S_TRAILER_NAME,   /* in a trailer field's name */
  S_TRAILER_VALUE,  /* in its value */
  S_TRAILER_LF,     /* after the CR of a trailer line */
  S_END_LF,         /* after the CR of the final CRLF */
};

/* ------------------------------------------------------------------------ */
/* Character classes (RFC 9110 §5.6.2, RFC 3986 §2)                          */

static int is_alpha(unsigned char c) {
  return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
}

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static int hex_value(unsigned char c) {
  if (is_digit(c))
    return c - '0';
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
    return (c | 0x20) - 'a' + 10;
  return -1;
}

static int is_tchar(unsigned char c) {
  return is_alpha(c) || is_digit(c) ||
         (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int is_ws(unsigned char c) { return c == ' ' || c == '\t'; }

/* A byte of a field value: VCHAR, obs-text, SP or HTAB. */
static int is_field_char(unsigned char c) {
  return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int is_unreserved(unsigned char c) {
  return is_alpha(c) || is_digit(c) || (c && strchr("-._~", c) != NULL);
}

static int is_sub_delim(unsigned char c) {
  return c && strchr("!$&'()*+,;=", c) != NULL;
}

/* A quoted-string's qdtext (without the backslash and the quote). */
static int is_qdtext(unsigned char c) {
  return c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5b) ||
         (c >= 0x5d && c <= 0x7e) || c >= 0x80;
}

/* What may follow a backslash in a quoted string. */
static int is_qpair(unsigned char c) {
  return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* Whether s[i..] starts a valid percent-encoding "%" HEXDIG HEXDIG. */
static int pct_ok(const char *s, size_t i, size_t len) {
  return i + 2 < len && hex_value((unsigned char)s[i + 1]) >= 0 &&
         hex_value((unsigned char)s[i + 2]) >= 0;
}

static int name_is(const char *s, size_t len, const char *name) {
  return len == strlen(name) && strncasecmp(s, name, len) == 0;
}

/* ------------------------------------------------------------------------ */
/* The request line                                                          */

/* path-abempty [ "?" query ] of RFC 3986: pchar, "/" and "?". */
static int path_query_ok(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '%') {
      if (!pct_ok(s, i, len))
        return 0;
      i += 2;
    } else if (!is_unreserved(c) && !is_sub_delim(c) && !strchr(":@/?", c)) {
      return 0;
    }
  }
  return 1;
}

/* uri-host [ ":" port ] (RFC 3986 §3.2.2, §3.2.3): an IP literal in
 * brackets or a reg-name (which an IPv4 address also is), no userinfo.
 * need_host: the host may not be empty; need_port: the port may not. */
static int authority_ok(const char *s, size_t len, int need_host,
                        int need_port) {
  size_t i = 0;
  if (len > 0 && s[0] == '[') {
    for (i = 1; i < len && s[i] != ']'; i++) {
      unsigned char c = (unsigned char)s[i];
      if (!is_unreserved(c) && !is_sub_delim(c) && c != ':')
        return 0;
    }
    if (i == len || i == 1)
      return 0; /* no "]", or "[]" */
    i++;
  } else {
    for (; i < len && s[i] != ':'; i++) {
      unsigned char c = (unsigned char)s[i];
      if (c == '%') {
        if (!pct_ok(s, i, len))
          return 0;
        i += 2;
      } else if (!is_unreserved(c) && !is_sub_delim(c)) {
        return 0;
      }
    }
    if (need_host && i == 0)
      return 0;
  }
  if (i == len)
    return !need_port;
  if (s[i] != ':')
    return 0;
  if (need_port && i + 1 == len)
    return 0;
  for (i++; i < len; i++)
    if (!is_digit((unsigned char)s[i]))
      return 0;
  return 1;
}

/* The request-target, in the form its method allows (RFC 9112 §3.2). */
static int target_ok(const char *method, size_t mlen, const char *s,
                     size_t len) {
  if (s[0] == '/')
    return path_query_ok(s, len);
  if (len == 1 && s[0] == '*')
    return mlen == 7 && memcmp(method, "OPTIONS", 7) == 0;
  if (mlen == 7 && memcmp(method, "CONNECT", 7) == 0)
    return authority_ok(s, len, 1, 1);
  /* absolute-form: "http" or "https" "://" authority path-abempty query */
  size_t i = 0;
  while (i < len && s[i] != ':')
    i++;
  if (!(name_is(s, i, "http") || name_is(s, i, "https")))
    return 0;
  if (len - i < 3 || memcmp(s + i, "://", 3) != 0)
    return 0;
  size_t a = i + 3, e = a;
  while (e < len && s[e] != '/' && s[e] != '?')
    e++;
  return authority_ok(s + a, e - a, 1, 0) && path_query_ok(s + e, len - e);
}

/* method SP request-target SP HTTP-version (RFC 9112 §3). */
static int request_line(site_http_t *h, const char *s, size_t len) {
  size_t m = 0;
  while (m < len && is_tchar((unsigned char)s[m]))
    m++;
  if (m == 0 || m == len || s[m] != ' ')
    return 400;
  size_t t = m + 1, e = t;
  while (e < len && s[e] != ' ')
    e++;
  if (e == t || e == len) /* two spaces, or no version (HTTP/0.9) */
    return 400;
  const char *v = s + e + 1;
  if (len - e - 1 != 8 || memcmp(v, "HTTP/", 5) != 0 ||
      !is_digit((unsigned char)v[5]) || v[6] != '.' ||
      !is_digit((unsigned char)v[7]))
    return 400;
  if (!target_ok(s, m, s + t, e - t))
    return 400;
  if (v[5] != '1') /* a major version site does not implement: 505 */
    return 505;
  h->version_minor = v[7] - '0';
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Field lines                                                               */

/* Skip a quoted-string starting at s[i] == '"'; returns the index after
 * it, or 0 when it does not end on the line or has a bad byte. */
static size_t skip_quoted(const char *s, size_t i, size_t len) {
  for (i++; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"')
      return i + 1;
    if (c == '\\') {
      if (++i == len || !is_qpair((unsigned char)s[i]))
        return 0;
    } else if (!is_qdtext(c)) {
      return 0;
    }
  }
  return 0;
}

/* A Transfer-Encoding value: 1#transfer-coding, each a token with
 * optional parameters (RFC 9112 §6.1, §7). Empty list elements
 * are an error: http-parser and Go reject them too. Counts the codings
 * into h. */
static int transfer_encoding(site_http_t *h, const char *s, size_t len) {
  size_t i = 0;
  for (;;) {
    size_t n = i;
    while (i < len && is_tchar((unsigned char)s[i]))
      i++;
    if (i == n)
      return 400;
    int chunked = name_is(s + n, i - n, "chunked");
    int params = 0;
    for (;;) { /* *( OWS ";" OWS token "=" ( token / quoted-string ) ) */
      size_t j = i;
      while (j < len && is_ws((unsigned char)s[j]))
        j++;
      if (j == len || s[j] == ',') {
        i = j;
        break;
      }
      if (s[j] != ';')
        return 400;
      for (j++; j < len && is_ws((unsigned char)s[j]); j++)
        ;
      size_t pn = j;
      while (j < len && is_tchar((unsigned char)s[j]))
        j++;
      if (j == pn || j == len || s[j] != '=')
        return 400;
      j++;
      if (j < len && s[j] == '"') {
        j = skip_quoted(s, j, len);
        if (j == 0)
          return 400;
      } else {
        size_t pv = j;
        while (j < len && is_tchar((unsigned char)s[j]))
          j++;
        if (j == pv)
          return 400;
      }
      params = 1;
      i = j;
    }
    if (chunked && params)
      return 400; /* chunked has no parameters */
    if (chunked)
      h->te_chunked++;
    else
      h->te_other++;
    h->te_last_chunked = chunked;
    if (i == len)
      return 0;
    for (i++; i < len && is_ws((unsigned char)s[i]); i++) /* "," OWS */
      ;
  }
}

/* field-name ":" OWS field-value OWS (RFC 9112 §5). */
static int field_line(site_http_t *h, const char *s, size_t len) {
  if (is_ws((unsigned char)s[0]))
    return 400; /* obs-fold, or whitespace before the first field */
  size_t n = 0;
  while (n < len && is_tchar((unsigned char)s[n]))
    n++;
  if (n == 0 || n == len || s[n] != ':')
    return 400; /* an empty name, a bad byte, or space before ":" */
  size_t v = n + 1, e = len;
  for (size_t i = v; i < len; i++)
    if (!is_field_char((unsigned char)s[i]))
      return 400; /* NUL, CR, another control */
  while (v < e && is_ws((unsigned char)s[v]))
    v++;
  while (e > v && is_ws((unsigned char)s[e - 1]))
    e--;
  const char *val = s + v;
  size_t vlen = e - v;
  if (name_is(s, n, "Host")) {
    if (++h->hosts > 1 || !authority_ok(val, vlen, 0, 0))
      return 400;
  } else if (name_is(s, n, "Content-Length")) {
    if (++h->lengths > 1 || vlen == 0 || vlen > 18)
      return 400;
    uint64_t x = 0;
    for (size_t i = 0; i < vlen; i++) {
      if (!is_digit((unsigned char)val[i]))
        return 400;
      x = x * 10 + (uint64_t)(val[i] - '0');
    }
    h->left = x;
  } else if (name_is(s, n, "Transfer-Encoding")) {
    h->te_fields++;
    return transfer_encoding(h, val, vlen);
  }
  return 0;
}

/* The empty line: what the head as a whole must satisfy, and where the
 * body starts. */
static int head_end(site_http_t *h) {
  if (h->version_minor >= 1 && h->hosts == 0)
    return 400; /* RFC 9112 §3.2 */
  if (h->te_fields) {
    if (h->version_minor == 0 || h->lengths)
      return 400; /* RFC 9112 §6.1, §6.3 */
    if (!h->te_last_chunked || h->te_chunked != 1)
      return 400; /* RFC 9112 §6.3, §7 */
    if (h->te_other)
      return 501; /* RFC 9112 §6.1: a coding that site does not decode */
    h->state = S_SIZE0;
    h->line_len = 0;
    h->chunk_size = 0;
    h->head_len = 0; /* now counts the trailers */
    return 0;
  }
  h->state = h->lengths && h->left > 0 ? S_LENGTH : S_START;
  return 0;
}

/* Whether the start of a head line, not yet whole, may still become a
 * good line: no byte that no line may hold (a control other than HTAB, or
 * a CR not at the end, where the LF may follow; DEL; and in the request
 * line, an 8-bit byte). So a client that sends no line at all (TLS, say)
 * is answered at once. */
static int partial_ok(const site_http_t *h, const char *s, size_t len) {
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '\r' ? i + 1 < len
                  : !is_field_char(c) ||
                        (h->state == S_START && (c >= 0x80 || c == '\t')))
      return 0;
  }
  return 1;
}

/* ------------------------------------------------------------------------ */
/* The chunked body                                                          */

/* One byte of the chunked body in state h->state. Returns 0, SITE_HTTP_END
 * after the last byte of the body, or the status of an error. */
static int chunk_byte(site_http_t *h, unsigned char c) {
  if (h->state <= S_SIZE_LF && ++h->line_len > CHUNK_LINE_MAX)
    return 400;
  if (h->state >= S_TRAILER && ++h->head_len > h->head_max)
    return 431;
  switch (h->state) {
  case S_SIZE0:
  case S_SIZE:
    if (hex_value(c) >= 0) {
      if (h->chunk_size >> 52)
        return 400; /* 2^56 bytes or more */
      h->chunk_size = h->chunk_size * 16 + (uint64_t)hex_value(c);
      h->state = S_SIZE;
      return 0;
    }
    if (h->state == S_SIZE0)
      return 400;
    goto after_value;
  case S_EXT_WS:
    if (is_ws(c))
      return 0;
    if (c != ';')
      return 400;
    h->state = S_EXT_NAME0;
    return 0;
  case S_EXT_NAME0:
    if (is_ws(c))
      return 0;
    if (!is_tchar(c))
      return 400;
    h->state = S_EXT_NAME;
    return 0;
  case S_EXT_NAME:
    if (is_tchar(c))
      return 0;
    if (c == '=') {
      h->state = S_EXT_VAL0;
      return 0;
    }
    if (is_ws(c)) {
      h->state = S_EXT_NAME_WS;
      return 0;
    }
    goto after_value;
  case S_EXT_NAME_WS:
    if (is_ws(c))
      return 0;
    if (c == '=')
      h->state = S_EXT_VAL0;
    else if (c == ';')
      h->state = S_EXT_NAME0;
    else
      return 400;
    return 0;
  case S_EXT_VAL0:
    if (is_ws(c))
      return 0;
    if (c == '"')
      h->state = S_EXT_QUOTED;
    else if (is_tchar(c))
      h->state = S_EXT_TOKEN;
    else
      return 400;
    return 0;
  case S_EXT_TOKEN:
    if (is_tchar(c))
      return 0;
    goto after_value;
  case S_EXT_QUOTED:
    if (c == '"')
      h->state = S_EXT_QUOTED_END;
    else if (c == '\\')
      h->state = S_EXT_QPAIR;
    else if (!is_qdtext(c))
      return 400;
    return 0;
  case S_EXT_QPAIR:
    if (!is_qpair(c))
      return 400;
    h->state = S_EXT_QUOTED;
    return 0;
  case S_EXT_QUOTED_END:
    goto after_value;
  case S_SIZE_LF:
    if (c != '\n')
      return 400;
    h->line_len = 0;
    if (h->chunk_size == 0) {
      h->state = S_TRAILER;
    } else {
      h->left = h->chunk_size;
      h->state = S_DATA;
    }
    h->chunk_size = 0;
    return 0;
  case S_DATA_CR:
    if (c != '\r')
      return 400;
    h->state = S_DATA_LF;
    return 0;
  case S_DATA_LF:
    if (c != '\n')
      return 400;
    h->state = S_SIZE0;
    return 0;
  case S_TRAILER:
    if (c == '\r')
      h->state = S_END_LF;
    else if (is_tchar(c))
      h->state = S_TRAILER_NAME;
    else
      return 400; /* obs-fold, a bare LF, a bad name */
    return 0;
  case S_TRAILER_NAME:
    if (c == ':')
      h->state = S_TRAILER_VALUE;
    else if (!is_tchar(c))
      return 400;
    return 0;
  case S_TRAILER_VALUE:
    if (c == '\r')
      h->state = S_TRAILER_LF;
    else if (!is_field_char(c))
      return 400;
    return 0;
  case S_TRAILER_LF:
    if (c != '\n')
      return 400;
    h->state = S_TRAILER;
    return 0;
  case S_END_LF:
    return c == '\n' ? SITE_HTTP_END : 400;
  default:
    return 400;
  }
after_value: /* after the size, a name or a value: BWS ";", or the CR */
  if (is_ws(c))
    h->state = S_EXT_WS;
  else if (c == ';')
    h->state = S_EXT_NAME0;
  else if (c == '\r')
    h->state = S_SIZE_LF;
  else
    return 400;
  return 0;
}

/* ------------------------------------------------------------------------ */
/* The stream                                                                */

static void reset(site_http_t *h) {
  size_t head_max = h->head_max;
  memset(h, 0, sizeof(*h));
  h->head_max = head_max;
  h->state = S_START;
}

void site_http_init(site_http_t *h, size_t head_max) {
  h->head_max = head_max;
  reset(h);
}

int site_http_check(site_http_t *h, const char *p, size_t len, size_t *pass) {
  size_t off = 0;
  int rc = 0;
  while (off < len && rc == 0) {
    if (h->state == S_START || h->state == S_FIELDS) {
      const char *nl = memchr(p + off, '\n', len - off);
      size_t n = nl ? (size_t)(nl - (p + off)) + 1 : len - off;
      if (h->head_len + n > h->head_max) {
        rc = h->state == S_START ? 414 : 431;
        break;
      }
      if (!nl) { /* the line goes on */
        if (!partial_ok(h, p + off, n))
          rc = 400;
        break;
      }
      h->head_len += n;
      size_t l = n - 1; /* without the LF, and a CR before it */
      if (l > 0 && p[off + l - 1] == '\r')
        l--;
      if (h->state == S_START) {
        if (l > 0) {
          rc = request_line(h, p + off, l);
          h->state = S_FIELDS;
        }
      } else if (l > 0) {
        rc = field_line(h, p + off, l);
      } else {
        rc = head_end(h);
        if (rc == 0 && h->state == S_START)
          rc = SITE_HTTP_END; /* no body */
      }
      if (rc == 0 || rc == SITE_HTTP_END)
        off += n;
    } else if (h->state == S_LENGTH || h->state == S_DATA) {
      size_t n = len - off;
      if (n > h->left)
        n = (size_t)h->left;
      h->left -= n;
      off += n;
      if (h->left == 0) {
        if (h->state == S_LENGTH)
          rc = SITE_HTTP_END;
        else
          h->state = S_DATA_CR;
      }
    } else {
      rc = chunk_byte(h, (unsigned char)p[off]);
      if (rc == 0 || rc == SITE_HTTP_END)
        off++;
    }
  }
  *pass = off;
  if (rc == SITE_HTTP_END)
    reset(h);
  return rc;
}

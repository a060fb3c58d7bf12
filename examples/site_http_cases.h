/*
 * site_http_cases.h: the request forms site rejects and those it accepts,
 * for site_http_test (over sockets, against the server) and
 * site_http_check_test (the checker of site_http.h alone).
 */
#ifndef SITE_HTTP_CASES_H
#define SITE_HTTP_CASES_H

#include <stddef.h>

/* A request as raw bytes (NULs included), and the status site answers. */
typedef struct raw_request {
  const char *name;
  const char *req;
  size_t len;
  int status;
  size_t pad; /* bytes that replace PAD in req */
} raw_request_t;

#define RAW(name, req, status)                                                 \
  { name, req, sizeof(req) - 1, status, 0 }
#define PAD "{PAD}" /* replaced with `pad` bytes "a" */
#define RAWP(name, req, pad, status)                                           \
  { name, req, sizeof(req) - 1, status, pad }
#define RL "GET /page/0 HTTP/1.1\r\n" /* a good request line */
#define HOST "Host: x\r\n"
#define CHUNKED RL HOST "Transfer-Encoding: chunked\r\n\r\n"

/* What RFC 9112 and RFC 9110 say to reject, most of which Debian's
 * http-parser lets through: site answers each with its status and
 * "Connection: close", then closes the connection. */
static const raw_request_t rejected[] = {
    /* Field names and lines. */
    RAW("space in a name", RL HOST "Bad Name: x\r\n\r\n", 400),
    RAW("space before the colon", RL "Host : x\r\n\r\n", 400),
    RAW("tab before the colon", RL HOST "X\t: y\r\n\r\n", 400),
    RAW("empty name", RL HOST ": x\r\n\r\n", 400),
    RAW("separator in a name", RL HOST "X(y): z\r\n\r\n", 400),
    RAW("8-bit byte in a name", RL HOST "X\xe9: z\r\n\r\n", 400),
    RAW("no colon", RL HOST "Bad Header Without Colon\r\n\r\n", 400),
    RAW("obs-fold", RL HOST "X: a\r\n b\r\n\r\n", 400),
    RAW("obs-fold with a tab", RL HOST "X: a\r\n\tb\r\n\r\n", 400),
    RAW("whitespace before the first field", RL " X: a\r\n" HOST "\r\n", 400),
    RAW("NUL in a value", RL HOST "X: a\0b\r\n\r\n", 400),
    RAW("control byte in a value", RL HOST "X: a\x01z\r\n\r\n", 400),
    RAW("DEL in a value", RL HOST "X: a\x7fz\r\n\r\n", 400),
    RAW("bare CR in a value", RL HOST "X: a\rb\r\n\r\n", 400),
    RAW("bare CR ending a line", RL "Host: x\rX: y\r\n\r\n", 400),
    RAW("bare CR ending the head", RL HOST "\rX\r\n\r\n", 400),
    RAWP("head over the limit", RL HOST "X: " PAD "\r\n\r\n", 13 * 1024, 431),
    /* Request lines. */
    RAW("HTTP/2.0", "GET /page/0 HTTP/2.0\r\n" HOST "\r\n", 505),
    RAW("HTTP/0.9 version", "GET /page/0 HTTP/0.9\r\n" HOST "\r\n", 505),
    RAW("HTTP/3.1", "GET /page/0 HTTP/3.1\r\n" HOST "\r\n", 505),
    RAW("no version", "GET /page/0\r\n\r\n", 400),
    RAW("version with two digits", "GET /page/0 HTTP/1.10\r\n" HOST "\r\n",
        400),
    RAW("version in lower case", "GET /page/0 http/1.1\r\n" HOST "\r\n", 400),
    RAW("junk after the version", "GET /page/0 HTTP/9.9x\r\n\r\n", 400),
    RAW("space after the version", "GET /page/0 HTTP/1.1 \r\n" HOST "\r\n",
        400),
    RAW("two spaces", "GET  /page/0 HTTP/1.1\r\n" HOST "\r\n", 400),
    RAW("tab as separator", "GET\t/page/0 HTTP/1.1\r\n" HOST "\r\n", 400),
    RAW("not a request line", "GARBAGE\r\n\r\n", 400),
    RAW("binary, no line end (TLS)", "\x16\x03\x01\x02\x00\x01\x00", 400),
    RAW("unfinished line with a control byte", RL HOST "X: a\x01", 400),
    RAW("unfinished line with a bare CR", RL HOST "X: a\rb", 400),
    RAW("fragment in the target", "GET /page/0#x HTTP/1.1\r\n" HOST "\r\n",
        400),
    RAW("8-bit byte in the target", "GET /page/\xe9 HTTP/1.1\r\n" HOST "\r\n",
        400),
    RAW("tab in the target", "GET /page/\t0 HTTP/1.1\r\n" HOST "\r\n", 400),
    RAW("quote in the target", "GET /page/\"0 HTTP/1.1\r\n" HOST "\r\n", 400),
    RAW("bad percent-encoding", "GET /page/%zz HTTP/1.1\r\n" HOST "\r\n", 400),
    RAW("truncated percent-encoding", "GET /page/0% HTTP/1.1\r\n" HOST "\r\n",
        400),
    RAW("asterisk with GET", "GET * HTTP/1.1\r\n" HOST "\r\n", 400),
    RAW("relative target", "GET page/0 HTTP/1.1\r\n" HOST "\r\n", 400),
    RAW("authority-form with GET", "GET x:80 HTTP/1.1\r\n" HOST "\r\n", 400),
    RAW("userinfo in the target",
        "GET http://u@x/page/0 HTTP/1.1\r\n" HOST "\r\n", 400),
    RAW("empty host in the target",
        "GET http:///page/0 HTTP/1.1\r\n" HOST "\r\n", 400),
    RAW("scheme other than http", "GET ftp://x/page/0 HTTP/1.1\r\n" HOST "\r\n",
        400),
    RAWP("request line over the limit",
         "GET /page/0?" PAD " HTTP/1.1\r\n" HOST "\r\n", 13 * 1024, 414),
    /* Host. */
    RAW("no Host in HTTP/1.1", RL "\r\n", 400),
    RAW("two Hosts", RL HOST "Host: y\r\n\r\n", 400),
    RAW("two Hosts in HTTP/1.0", "GET /page/0 HTTP/1.0\r\n" HOST HOST "\r\n",
        400),
    RAW("space in Host", RL "Host: a b\r\n\r\n", 400),
    RAW("bad port in Host", RL "Host: x:80x\r\n\r\n", 400),
    RAW("userinfo in Host", RL "Host: u@x\r\n\r\n", 400),
    /* Content-Length. */
    RAW("Content-Length not a number", RL HOST "Content-Length: zz\r\n\r\n",
        400),
    RAW("Content-Length with junk", RL HOST "Content-Length: 1x\r\n\r\nx", 400),
    RAW("Content-Length with a sign", RL HOST "Content-Length: +1\r\n\r\nx",
        400),
    RAW("Content-Length list", RL HOST "Content-Length: 1, 1\r\n\r\nx", 400),
    RAW("Content-Length empty", RL HOST "Content-Length: \r\n\r\n", 400),
    RAW("Content-Length of 19 digits",
        RL HOST "Content-Length: 1000000000000000000\r\n\r\n", 400),
    RAW("two different Content-Lengths",
        RL HOST "Content-Length: 1\r\nContent-Length: 2\r\n\r\nxx", 400),
    RAW("two equal Content-Lengths",
        RL HOST "Content-Length: 1\r\nContent-Length: 1\r\n\r\nx", 400),
    /* Transfer-Encoding. */
    RAW("Content-Length and Transfer-Encoding",
        RL HOST "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                "0\r\n\r\n",
        400),
    RAW("Transfer-Encoding and Content-Length",
        RL HOST "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
                "0\r\n\r\n",
        400),
    RAW("Transfer-Encoding in HTTP/1.0",
        "GET /page/0 HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400),
    RAW("chunked not last", RL HOST "Transfer-Encoding: chunked, gzip\r\n\r\n",
        400),
    RAW("no chunked", RL HOST "Transfer-Encoding: gzip\r\n\r\n", 400),
    RAW("chunked twice",
        RL HOST "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"
                "\r\n0\r\n\r\n",
        400),
    RAW("chunked with a parameter",
        RL HOST "Transfer-Encoding: chunked;q=1\r\n\r\n0\r\n\r\n", 400),
    RAW("empty Transfer-Encoding", RL HOST "Transfer-Encoding: \r\n\r\n", 400),
    RAW("empty Transfer-Encoding element",
        RL HOST "Transfer-Encoding: , chunked\r\n\r\n0\r\n\r\n", 400),
    RAW("unknown coding before chunked",
        RL HOST "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
    RAW("gzip and chunked in two fields",
        "POST /page/0 HTTP/1.1\r\n" HOST "Transfer-Encoding: gzip\r\n"
        "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        501),
    /* Chunk framing. */
    RAW("no CRLF after chunk data", CHUNKED "3\r\nabcXY0\r\n\r\n", 400),
    RAW("LF alone after chunk data", CHUNKED "3\r\nabc\n0\r\n\r\n", 400),
    RAW("bare CR after the chunk size", CHUNKED "3\rXabc\r\n0\r\n\r\n", 400),
    RAW("bare LF after the chunk size", CHUNKED "3\nabc\r\n0\r\n\r\n", 400),
    RAW("space after the chunk size", CHUNKED "3 \r\nabc\r\n0\r\n\r\n", 400),
    RAW("no chunk size", CHUNKED "\r\nabc\r\n0\r\n\r\n", 400),
    RAW("0x chunk size", CHUNKED "0x3\r\nabc\r\n0\r\n\r\n", 400),
    RAW("chunk size of 2^56", CHUNKED "100000000000000\r\n", 400),
    RAW("chunk size overflowing",
        CHUNKED "fffffffffffffffff\r\nabc\r\n0\r\n\r\n", 400),
    RAW("control byte in a chunk extension",
        CHUNKED "3;a\x01z\r\nabc\r\n0\r\n\r\n", 400),
    RAW("LF in a chunk extension", CHUNKED "3;a\nb\r\nabc\r\n0\r\n\r\n", 400),
    RAW("chunk extension without a name", CHUNKED "3;\r\nabc\r\n0\r\n\r\n",
        400),
    RAW("chunk extension without a value", CHUNKED "3;a=\r\nabc\r\n0\r\n\r\n",
        400),
    RAW("unterminated quoted chunk extension",
        CHUNKED "3;a=\"b\r\nabc\r\n0\r\n\r\n", 400),
    RAWP("chunk line over the limit", CHUNKED "3;a=" PAD "\r\n", 5000, 400),
    RAW("space in a trailer name", CHUNKED "0\r\nBad Trailer: x\r\n\r\n", 400),
    RAW("obs-fold in the trailers", CHUNKED "0\r\nX: a\r\n b\r\n\r\n", 400),
    RAW("control byte in a trailer", CHUNKED "0\r\nX: a\x01z\r\n\r\n", 400),
    RAW("bare CR ending the trailers", CHUNKED "0\r\n\rX\r\n\r\n", 400),
};

/* Forms that RFC 9112 allows and site accepts: each is answered with
 * `status` (page 0 when 200) and the connection goes on. */
static const raw_request_t accepted[] = {
    RAW("bare LF line ends", "GET /page/0 HTTP/1.1\nHost: x\n\n", 200),
    RAW("mixed line ends", "GET /page/0 HTTP/1.1\r\nHost: x\n\r\n", 200),
    RAW("empty lines before the request",
        "\r\n\nGET /page/0 HTTP/1.1\r\n"
        "Host: x\r\n\r\n",
        200),
    RAW("HTTP/1.2 is read as 1.1", "GET /page/0 HTTP/1.2\r\n" HOST "\r\n", 200),
    RAW("HTTP/1.0 without Host, keep-alive",
        "GET /page/0 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 200),
    RAW("OWS around values", RL "Host:\t x \t\r\nX:y\r\nZ:\r\n\r\n", 200),
    RAW("obs-text in a value", RL HOST "X: caf\xc3\xa9 \xff\r\n\r\n", 200),
    RAW("empty Host", RL "Host: \r\n\r\n", 200),
    RAW("Host with a port", RL "Host: 127.0.0.1:8080\r\n\r\n", 200),
    RAW("IPv6 Host", RL "Host: [::1]:8080\r\n\r\n", 200),
    RAW("percent-encoded Host", RL "Host: ex%41mple.org\r\n\r\n", 200),
    RAW("query with every allowed byte",
        "GET /page/0?a=%41&b=:@/?!$&'()*+,;=-._~ HTTP/1.1\r\n" HOST "\r\n",
        200),
    RAW("absolute-form in upper case",
        "GET HTTP://x:1/page/0 HTTP/1.1\r\n" HOST "\r\n", 200),
    RAW("absolute-form https",
        "GET https://[::1]/page/0 HTTP/1.1\r\n" HOST "\r\n", 200),
    RAW("OPTIONS *", "OPTIONS * HTTP/1.1\r\n" HOST "\r\n", 405),
    RAW("Content-Length body", RL HOST "Content-Length:  3 \r\n\r\nabc", 200),
    RAW("Content-Length of 18 digits",
        "POST /page/0 HTTP/1.1\r\n" HOST
        "Content-Length: 000000000000000003\r\n\r\nabc",
        405),
    RAW("chunked body", CHUNKED "3\r\nabc\r\n0\r\n\r\n", 200),
    RAW("chunked in upper case",
        RL HOST "Transfer-Encoding: CHUNKED\r\n\r\n0\r\n\r\n", 200),
    RAW("chunk sizes in hex with leading zeros",
        CHUNKED "00A\r\n0123456789\r\n0000\r\n\r\n", 200),
    RAW("chunk extensions",
        CHUNKED "3 ; a ; b = c;d=\"e; \\\"f\\\"\";g\r\nabc"
                "\r\n0;h=i\r\n\r\n",
        200),
    RAW("trailers", CHUNKED "1\r\na\r\n0\r\nX-Sum: 1\r\nY:\t2\r\n\r\n", 200),
    RAW("chunked POST",
        "POST /page/0 HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked\r\n\r\n"
        "2\r\nab\r\n0\r\n\r\n",
        405),
};

#endif

/*
 * robots.h: robots.txt (RFC 9309, the Robots Exclusion Protocol) for the
 * crawler: parse a file for one crawler's user agent, then ask whether a
 * path may be fetched. Pure functions over memory: no I/O, no global state,
 * so the rules of one host can be shared by every task that crawls it.
 *
 * Parsing (RFC 9309 §2.1, §2.2):
 *  - The file is read as lines ending in LF, CRLF or CR; a UTF-8 byte order
 *    mark at its start is skipped; "#" starts a comment to the end of the
 *    line; a line is "key: value", the key case-insensitive, blanks around
 *    both trimmed. Lines that are not of that form, and unknown keys
 *    (Sitemap included), are ignored.
 *  - Only the first ROBOTS_MAX_BYTES bytes (500 KiB, the least the RFC says
 *    a crawler must parse) are read; a line cut by that limit is dropped.
 *  - A group is one or more consecutive "user-agent" lines followed by its
 *    "allow", "disallow" and "crawl-delay" lines; a user-agent line after
 *    rules starts a new group. Rules before any user-agent line belong to
 *    no group and are ignored.
 *  - User-agent matching: the crawler's product token (what robots_parse()
 *    is given, e.g. "weft-crawler") is compared case-insensitively with a
 *    user-agent line's value up to its first character that is not a
 *    letter, "_" or "-" ("Weft-Crawler/1.0" matches). Every group naming
 *    the token applies, merged; if none does, every "*" group applies,
 *    merged; if none does either, everything is allowed.
 *  - An allow or disallow with an empty value is ignored (an empty
 *    "Disallow:" allows everything, as it says).
 *  - Crawl-delay (not in the RFC; a widely used extension): seconds, a
 *    decimal number, possibly with a fraction; the largest of the applying
 *    groups counts; negative or unparsable values are ignored.
 *
 * Matching (RFC 9309 §2.2.2): the path given (path and query of the URL,
 * starting with "/") is compared with every rule of the applying groups;
 * "*" in a rule matches any sequence of characters, "$" at the end of a
 * rule anchors it at the end of the path, anything else matches itself
 * (case-sensitively), and a rule matches a prefix of the path. The longest
 * matching rule (in bytes of the rule as written) decides; between an allow
 * and a disallow of the same length, allow wins; no matching rule: allowed.
 * "/robots.txt" itself is always allowed. Percent-encoded octets are
 * compared as written (the crawler's canonical URLs and well-written rules
 * both use upper-case escapes of the same octets).
 */
#ifndef WEFT_EXAMPLES_ROBOTS_H
#define WEFT_EXAMPLES_ROBOTS_H

#include <stddef.h>

/* The most bytes of a robots.txt that are parsed (RFC 9309: at least 500
 * kibibytes). */
#define ROBOTS_MAX_BYTES (500 * 1024)

/* The rules that apply to one user agent. */
typedef struct robots robots_t;

/* Parse txt[0..n) for the crawler whose product token is agent (letters,
 * "_" and "-"; matched case-insensitively) into *out. Returns 0, WEFT_EINVAL
 * (agent NULL or empty, txt NULL with n > 0, out NULL) or WEFT_ENOMEM. Never
 * fails on the file's content: what does not parse is ignored. */
int robots_parse(const char *txt, size_t n, const char *agent,
                 robots_t **out);

/* Rules that allow everything (allow 1: as for a missing robots.txt, a
 * 4xx) or disallow everything (allow 0: as for an unreachable one, a 5xx).
 * Returns 0, WEFT_EINVAL (out NULL) or WEFT_ENOMEM. */
int robots_new_all(int allow, robots_t **out);

/* 1 if path (starting with "/", n bytes) may be fetched, 0 if not. A NULL
 * r allows everything. */
int robots_allowed(const robots_t *r, const char *path, size_t n);

/* The Crawl-delay of the applying groups in milliseconds, or 0 if none (or
 * r NULL). Capped at cap_ms. */
unsigned robots_crawl_delay_ms(const robots_t *r, unsigned cap_ms);

/* How many allow and disallow rules apply (for reports and tests). */
size_t robots_rule_count(const robots_t *r);

/* Free r (NULL: nothing). */
void robots_free(robots_t *r);

#endif /* WEFT_EXAMPLES_ROBOTS_H */

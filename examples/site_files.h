/*
 * site_files.h: the --root mode of examples/site: GET and HEAD of the
 * files under a directory, the body sent with weft_stream_sendfile().
 */
#ifndef SITE_FILES_H
#define SITE_FILES_H

#include <weft.h>

#include <stddef.h>

/* The longest canonical root accepted, with its NUL. */
#define SITE_ROOT_MAX 4096

/* The canonical form of dir (realpath) into out[cap], which must name a
 * directory. 0, or -1 with a message on stderr. Outside the runtime. */
int site_files_root(const char *dir, char *out, size_t cap);

/* Answer a GET (head 0) or HEAD (head 1) of path (the request target's
 * path, percent-encoded, plen bytes) from the directory root (canonical,
 * from site_files_root()) on s. conn_hdr is the connection's header lines
 * ("" or "Connection: ...\r\n").
 *
 * Rules: the path is percent-decoded; a NUL byte or a bad escape is 400; a
 * ".." segment is 403; a path naming a directory serves its index.html
 * (403 without one: no listings); a file that is missing is 404; a file
 * the opened descriptor shows to be outside root (a symbolic link leading
 * out), unreadable, or not a regular file is 403. The Content-Type comes
 * from the extension (html, txt, css, js, json, png, jpg, gif, svg;
 * application/octet-stream otherwise).
 *
 * Returns 0 when the 200 response was sent, a status (400, 403, 404, 500)
 * for the caller to answer, or -1 when the connection must be dropped (a
 * stream error, or a file that shrank under the response). Suspends. */
int site_files_serve(const char *root, weft_stream_t *s, const char *path,
                     size_t plen, int head, const char *conn_hdr);

#endif /* SITE_FILES_H */

/*
 * od_reqhead: the rules a request head must follow before orderd acts on it (RFC 9110, 9112),
 * applied to the fields as the HTTP library parsed them.
 *
 * libmicrohttpd 0.9.75 is lenient where leniency is dangerous: it reads a request carrying both
 * Content-Length and Transfer-Encoding as chunked and keeps the connection open (request
 * smuggling), waits for the close on an unknown transfer coding, keeps "Content-Length " (space
 * before the colon) as a field of another name, accepts HTTP/1.1 without Host and cuts a value
 * at a NUL. These rules refuse all of that, so the front end answers 400, 431 or 501 and closes
 * the connection before any body is read.
 */
#ifndef OD_REQHEAD_H
#define OD_REQHEAD_H

#include <apr.h>

/** One header field as parsed. */
typedef struct od_reqhead_field_t {
    const char *name;
    apr_size_t name_len;
    const char *value;
    apr_size_t value_len;
    int cut; /* the parser dropped bytes of this line (a NUL in the value), or folded it */
} od_reqhead_field_t;

/** A request head. */
typedef struct od_reqhead_t {
    const char *version; /* "HTTP/1.1", "HTTP/1.0" */
    const od_reqhead_field_t *fields;
    int nfields;
    apr_size_t head_bytes; /* request line and fields as received; 0 if unknown */
} od_reqhead_t;

/** Why a head was refused: a status and static strings for a problem body. */
typedef struct od_reqhead_verdict_t {
    int status; /* 0 (acceptable), 400, 431 or 501 */
    const char *title;
    const char *detail;
} od_reqhead_verdict_t;

/**
 * Checks @p head against the rules; a head over @p max_head_bytes (when its size is known) is
 * 431. Fills @p out and returns out->status: 0, or the status to answer (then the connection
 * must be closed: its framing cannot be trusted). Pure and thread-safe; nothing is allocated.
 */
int od_reqhead_check(const od_reqhead_t *head, apr_size_t max_head_bytes,
                     od_reqhead_verdict_t *out);

#endif

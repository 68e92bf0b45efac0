/*
 * od_http_head: a libmicrohttpd request head as od_reqhead sees it.
 *
 * Collects the header fields libmicrohttpd parsed, finds the bytes it dropped (a NUL inside a
 * value ends the C string it hands out, and 0.9.75 silently discards the rest of the line), and
 * applies od_reqhead's rules. Used by od_http on the first call for each request.
 */
#ifndef OD_HTTP_HEAD_H
#define OD_HTTP_HEAD_H

#include "od_reqhead.h"

#include <apr_pools.h>
#include <microhttpd.h>

/**
 * Checks the head of the request on @p conn (its method string @p method, as libmicrohttpd gave
 * it to the access handler, and @p version) against od_reqhead's rules with @p max_head_bytes.
 * Fills @p out and returns out->status (0: acceptable). The field array is allocated from @p p.
 * Call on the connection's thread, from the access handler's first call.
 */
int od_http_head_check(struct MHD_Connection *conn, const char *method, const char *version,
                       apr_size_t max_head_bytes, od_reqhead_verdict_t *out, apr_pool_t *p);

#endif

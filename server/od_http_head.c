/* od_http_head: libmicrohttpd's parsed head, checked by od_reqhead. */
#include "od_http_head.h"

#include <apr_tables.h>
#include <string.h>

/* Most header fields a request may have; beyond it the head is refused as too large. */
#define OD_HTTP_HEAD_MAX_FIELDS 100

/* The library version whose in-place parsing od_http_head_mark_cut relies on. */
#define OD_HTTP_HEAD_INPLACE_MHD "0.9.75"

typedef struct od_http_head_fields_t {
    apr_array_header_t *fields; /* od_reqhead_field_t */
} od_http_head_fields_t;

static enum MHD_Result od_http_head_collect(void *cls, enum MHD_ValueKind kind, const char *key,
                                            size_t key_size, const char *value, size_t value_size)
{
    od_http_head_fields_t *c = cls;

    if (c->fields->nelts > OD_HTTP_HEAD_MAX_FIELDS) {
        return MHD_NO;
    }
    od_reqhead_field_t *f = apr_array_push(c->fields);
    f->name = key;
    f->name_len = key_size;
    f->value = value != NULL ? value : "";
    f->value_len = value != NULL ? value_size : 0;
    f->cut = 0;
    return MHD_YES;
}

/* Whether [from, to) holds nothing but the 1..max NULs that replaced line ends. */
static int od_http_head_only_ends(const char *from, const char *to, long max)
{
    if (to - from < 1 || to - from > max) {
        return 0;
    }
    for (const char *s = from; s < to; s++) {
        if (*s != '\0') {
            return 0;
        }
    }
    return 1;
}

/* Whether @p f lies in the read buffer as libmicrohttpd 0.9.75 leaves it: the name, a NUL for
 * the colon, optional blanks, then the value. */
static int od_http_head_in_place(const od_reqhead_field_t *f)
{
    const char *s = f->name + f->name_len;

    if (f->value < s + 1 || f->value - s > 64 || *s != '\0') {
        return 0;
    }
    while (++s < f->value) {
        if (*s != ' ' && *s != '\t') {
            return 0;
        }
    }
    return 1;
}

/* libmicrohttpd 0.9.75 parses the head in its read buffer: each line's CR LF (or bare LF)
 * becomes NULs, the colon a NUL, and names and values point into the buffer, in order. So
 * between the end of a value (as strlen sees it) and the start of the next name there are
 * exactly the one or two NULs of the line end, and after the last value the line end and the
 * empty line's (two to four NULs, up to the head's end). More than that is what a NUL in the
 * value hid ("X-API-Key: KEY\0junk" would be KEY). A value not in place was folded over lines
 * (obs-fold), which RFC 9112 lets a server refuse. Other libmicrohttpd versions may lay the head
 * out differently, so there the check is not made. */
static void od_http_head_mark_cut(apr_array_header_t *fields, const char *head_end)
{
    od_reqhead_field_t *f = (od_reqhead_field_t *) fields->elts;

    for (int i = 0; i < fields->nelts; i++) {
        const char *end = f[i].value + f[i].value_len;
        int last = i + 1 == fields->nelts;
        const char *next = last ? head_end : f[i + 1].name;
        if (!od_http_head_in_place(&f[i])) {
            f[i].cut = 1;
        } else if (next != NULL && next >= end) {
            f[i].cut = !od_http_head_only_ends(end, next, last ? 4 : 2);
        }
    }
}

int od_http_head_check(struct MHD_Connection *conn, const char *method, const char *version,
                       apr_size_t max_head_bytes, od_reqhead_verdict_t *out, apr_pool_t *p)
{
    od_http_head_fields_t c = {apr_array_make(p, 16, sizeof(od_reqhead_field_t))};
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    apr_size_t size = info != NULL ? info->header_size : 0;

    MHD_get_connection_values_n(conn, MHD_HEADER_KIND, od_http_head_collect, &c);
    if (c.fields->nelts > OD_HTTP_HEAD_MAX_FIELDS) {
        size = max_head_bytes + 1; /* answered as a head too large */
    }
    if (strcmp(MHD_get_version(), OD_HTTP_HEAD_INPLACE_MHD) == 0) {
        /* The method string is where the head begins in the read buffer. */
        od_http_head_mark_cut(c.fields, size > 0 ? method + size : NULL);
    }
    od_reqhead_t head = {version, (const od_reqhead_field_t *) c.fields->elts, c.fields->nelts,
                         size};
    return od_reqhead_check(&head, max_head_bytes, out);
}

/* od_reqhead: request head rules (RFC 9110 §5, RFC 9112 §3.2, §6). */
#include "od_reqhead.h"

#include <apr_lib.h>
#include <string.h>
#include <strings.h>

/* What the framing fields of one head add up to. */
typedef struct od_reqhead_tally_t {
    int hosts;
    int lengths;
    int encodings;
    const od_reqhead_field_t *length;
    int chunked_only; /* every Transfer-Encoding field is exactly "chunked" */
} od_reqhead_tally_t;

static int od_reqhead_refuse(od_reqhead_verdict_t *out, int status, const char *title,
                             const char *detail)
{
    out->status = status;
    out->title = title;
    out->detail = detail;
    return status;
}

/* tchar (RFC 9110 §5.6.2). */
static int od_reqhead_is_tchar(unsigned char c)
{
    return apr_isalnum(c) || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int od_reqhead_is_token(const char *s, apr_size_t len)
{
    for (apr_size_t i = 0; i < len; i++) {
        if (!od_reqhead_is_tchar((unsigned char) s[i])) {
            return 0;
        }
    }
    return len > 0;
}

/* field-value (RFC 9110 §5.5): visible characters, obs-text, SP and HTAB; no other control
 * character, so neither NUL nor a bare CR. */
static int od_reqhead_is_value(const char *s, apr_size_t len)
{
    for (apr_size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            return 0;
        }
    }
    return 1;
}

static int od_reqhead_is(const od_reqhead_field_t *f, const char *name)
{
    return f->name_len == strlen(name) && strncasecmp(f->name, name, f->name_len) == 0;
}

/* Whether @p f's value is "chunked", in any case. Exactly: libmicrohttpd compares the whole
 * value (less the blanks after the colon), and reads anything else, "chunked " included, as a
 * body that ends only when the connection does. */
static int od_reqhead_is_chunked(const od_reqhead_field_t *f)
{
    return f->value_len == 7 && strncasecmp(f->value, "chunked", 7) == 0;
}

/* Content-Length = 1*DIGIT, with at most 18 digits so that it fits any size type. */
static int od_reqhead_is_length(const od_reqhead_field_t *f)
{
    apr_size_t i = 0;

    while (i < f->value_len && apr_isdigit(f->value[i])) {
        i++;
    }
    return i > 0 && i == f->value_len && i <= 18;
}

static void od_reqhead_count(const od_reqhead_field_t *f, od_reqhead_tally_t *t)
{
    if (od_reqhead_is(f, "Host")) {
        t->hosts++;
    } else if (od_reqhead_is(f, "Content-Length")) {
        t->lengths++;
        t->length = f;
    } else if (od_reqhead_is(f, "Transfer-Encoding")) {
        t->encodings++;
        t->chunked_only = t->chunked_only && od_reqhead_is_chunked(f);
    }
}

/* Each field on its own: a token for a name, a clean value, nothing cut by the parser. */
static int od_reqhead_check_fields(const od_reqhead_t *head, od_reqhead_tally_t *t,
                                   od_reqhead_verdict_t *out)
{
    for (int i = 0; i < head->nfields; i++) {
        const od_reqhead_field_t *f = &head->fields[i];
        if (!od_reqhead_is_token(f->name, f->name_len)) {
            return od_reqhead_refuse(out, 400, "Bad Request",
                                     "a header field name is not a token (RFC 9110 5.1); white "
                                     "space before the colon is not allowed");
        }
        if (f->cut || !od_reqhead_is_value(f->value, f->value_len)) {
            return od_reqhead_refuse(out, 400, "Bad Request",
                                     "a header field value contains a control character (NUL, "
                                     "CR, ...) or is folded over lines");
        }
        od_reqhead_count(f, t);
    }
    return 0;
}

/* How the body is framed (RFC 9112 §6): one way only, and only ways orderd implements. */
static int od_reqhead_check_framing(const od_reqhead_t *head, const od_reqhead_tally_t *t,
                                    od_reqhead_verdict_t *out)
{
    if (t->encodings > 0 && t->lengths > 0) {
        return od_reqhead_refuse(out, 400, "Bad Request",
                                 "a request must not carry both Content-Length and "
                                 "Transfer-Encoding");
    }
    if (t->encodings > 0 && strcmp(head->version, "HTTP/1.1") != 0) {
        return od_reqhead_refuse(out, 400, "Bad Request",
                                 "Transfer-Encoding is not allowed before HTTP/1.1");
    }
    if (t->encodings > 0 && (t->encodings > 1 || !t->chunked_only)) {
        return od_reqhead_refuse(out, 501, "Not Implemented",
                                 "the only transfer coding supported is chunked, given once as "
                                 "exactly Transfer-Encoding: chunked");
    }
    if (t->lengths > 1 || (t->lengths == 1 && !od_reqhead_is_length(t->length))) {
        return od_reqhead_refuse(out, 400, "Bad Request",
                                 "Content-Length must be given once, as a decimal number");
    }
    return 0;
}

int od_reqhead_check(const od_reqhead_t *head, apr_size_t max_head_bytes, od_reqhead_verdict_t *out)
{
    od_reqhead_tally_t t = {0, 0, 0, NULL, 1};

    od_reqhead_refuse(out, 0, NULL, NULL);
    if (head->head_bytes > max_head_bytes) {
        return od_reqhead_refuse(out, 431, "Request Header Fields Too Large",
                                 "the request line and header fields are larger than the "
                                 "server accepts (max_header_bytes)");
    }
    if (od_reqhead_check_fields(head, &t, out) != 0 || od_reqhead_check_framing(head, &t, out)) {
        return out->status;
    }
    if (t.hosts > 1 || (t.hosts == 0 && strcmp(head->version, "HTTP/1.1") == 0)) {
        return od_reqhead_refuse(out, 400, "Bad Request",
                                 "an HTTP/1.1 request must carry exactly one Host header field");
    }
    return 0;
}

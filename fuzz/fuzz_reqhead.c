/*
 * fuzz_reqhead: request heads through od_reqhead_check, as orderd sees them once libmicrohttpd
 * has parsed them.
 *
 * The input is a head in the wire's shape: a request line, then one field a line ("Name: value",
 * split at the first colon, the blanks after it skipped as libmicrohttpd does), lines ended by
 * LF or CR LF, up to an empty line. A line starting with '~' stands for one the parser cut (a
 * NUL in its value). The first byte, if any, picks the max_header_bytes the head is judged
 * against. Checked against od_reqhead.h and against an independent count of the framing fields:
 *   - the answer is 0, 400, 431 or 501, with a title and a detail when it is not 0;
 *   - a head over the limit is 431, whatever else is wrong with it;
 *   - an accepted head has no cut field, no control character in a value, token names, not
 *     both Content-Length and Transfer-Encoding, at most one of each, a Transfer-Encoding only
 *     as exactly "chunked", a Content-Length of 1..18 digits, and, for HTTP/1.1, one Host.
 */
#include "od_fuzz.h"
#include "od_reqhead.h"

#include <apr_lib.h>
#include <string.h>
#include <strings.h>

#define FUZZ_REQHEAD_FIELDS 64

/* The framing fields of an accepted head, counted here independently of od_reqhead. */
typedef struct fuzz_reqhead_count_t {
    int hosts, lengths, encodings;
} fuzz_reqhead_count_t;

static int fuzz_reqhead_named(const od_reqhead_field_t *f, const char *name)
{
    return f->name_len == strlen(name) && strncasecmp(f->name, name, f->name_len) == 0;
}

/* What must hold of every field of a head od_reqhead accepted. */
static void fuzz_reqhead_accepted_field(const od_reqhead_field_t *f, fuzz_reqhead_count_t *n)
{
    OD_FUZZ_CHECK(!f->cut, "a field the parser cut is refused");
    OD_FUZZ_CHECK(f->name_len > 0, "an empty field name is refused");
    for (apr_size_t i = 0; i < f->name_len; i++) {
        unsigned char c = (unsigned char) f->name[i];
        OD_FUZZ_CHECK(c > 0x20 && c < 0x7f && c != ':' && c != '(' && c != '"',
                      "a field name is a token");
    }
    for (apr_size_t i = 0; i < f->value_len; i++) {
        unsigned char c = (unsigned char) f->value[i];
        OD_FUZZ_CHECK(c == '\t' || (c >= 0x20 && c != 0x7f), "no control character in a value");
    }
    if (fuzz_reqhead_named(f, "Host")) {
        n->hosts++;
    } else if (fuzz_reqhead_named(f, "Content-Length")) {
        n->lengths++;
        OD_FUZZ_CHECK(f->value_len >= 1 && f->value_len <= 18, "Content-Length has 1..18 digits");
        for (apr_size_t i = 0; i < f->value_len; i++) {
            OD_FUZZ_CHECK(apr_isdigit(f->value[i]), "Content-Length is decimal");
        }
    } else if (fuzz_reqhead_named(f, "Transfer-Encoding")) {
        n->encodings++;
        OD_FUZZ_CHECK(f->value_len == 7 && strncasecmp(f->value, "chunked", 7) == 0,
                      "the only transfer coding is chunked");
    }
}

static void fuzz_reqhead_accepted(const od_reqhead_t *head)
{
    fuzz_reqhead_count_t n = {0, 0, 0};

    for (int i = 0; i < head->nfields; i++) {
        fuzz_reqhead_accepted_field(&head->fields[i], &n);
    }
    OD_FUZZ_CHECK(n.lengths <= 1 && n.encodings <= 1 && !(n.lengths && n.encodings),
                  "the body is framed one way, once");
    OD_FUZZ_CHECK(n.hosts <= 1, "at most one Host");
    OD_FUZZ_CHECK(strcmp(head->version, "HTTP/1.1") != 0 || n.hosts == 1,
                  "HTTP/1.1 has exactly one Host");
    OD_FUZZ_CHECK(n.encodings == 0 || strcmp(head->version, "HTTP/1.1") == 0,
                  "Transfer-Encoding only in HTTP/1.1");
}

/* The next line of [*at, end): its bytes without the LF (or CR LF); NULL at the end. */
static const char *fuzz_reqhead_line(const char **at, const char *end, apr_size_t *len)
{
    const char *start = *at, *lf = memchr(start, '\n', (size_t) (end - start));

    if (start >= end) {
        return NULL;
    }
    *at = lf != NULL ? lf + 1 : end;
    *len = (apr_size_t) ((lf != NULL ? lf : end) - start);
    if (*len > 0 && start[*len - 1] == '\r') {
        (*len)--;
    }
    return start;
}

/* "Name: value" into @p f; a line without a colon is all name, as a broken parser would give. */
static void fuzz_reqhead_field(od_reqhead_field_t *f, const char *line, apr_size_t len)
{
    f->cut = len > 0 && line[0] == '~';
    line += f->cut;
    len -= (apr_size_t) f->cut;
    const char *colon = memchr(line, ':', len);
    const char *value = colon != NULL ? colon + 1 : line + len;
    while (value < line + len && (*value == ' ' || *value == '\t')) {
        value++;
    }
    f->name = line;
    f->name_len = (apr_size_t) ((colon != NULL ? colon : line + len) - line);
    f->value = value;
    f->value_len = (apr_size_t) (line + len - value);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    od_reqhead_field_t fields[FUZZ_REQHEAD_FIELDS];
    const char *at = (const char *) data, *end = at + size, *line;
    apr_size_t len = 0, max = size > 0 ? 64 + (apr_size_t) data[0] * 8 : 1024;
    int n = 0;

    /* The request line's last word is the version (libmicrohttpd accepts 1.0 and 1.1 only). */
    line = fuzz_reqhead_line(&at, end, &len);
    const char *version = line != NULL && len >= 8 && memcmp(line + len - 8, "HTTP/1.0", 8) == 0
                              ? "HTTP/1.0"
                              : "HTTP/1.1";
    while (n < FUZZ_REQHEAD_FIELDS && (line = fuzz_reqhead_line(&at, end, &len)) != NULL &&
           len > 0) {
        fuzz_reqhead_field(&fields[n++], line, len);
    }
    od_reqhead_t head = {version, fields, n, (apr_size_t) (at - (const char *) data)};
    od_reqhead_verdict_t v;
    int status = od_reqhead_check(&head, max, &v);

    OD_FUZZ_CHECK(status == v.status, "the status is returned and filled in");
    OD_FUZZ_CHECK(status == 0 || status == 400 || status == 431 || status == 501,
                  "the answer is 0, 400, 431 or 501, not %d", status);
    OD_FUZZ_CHECK(status == 0 || (v.title != NULL && v.detail != NULL), "a refusal says why");
    OD_FUZZ_CHECK(head.head_bytes <= max || status == 431, "a head over the limit is 431");
    if (status == 0) {
        fuzz_reqhead_accepted(&head);
    }
    return 0;
}

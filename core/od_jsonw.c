/* od_jsonw: a left-to-right JSON writer over json-c's print buffer and string escaping. */
#include "od_jsonw.h"

#include <apr_strings.h>
#include <json-c/json.h>
#include <json-c/printbuf.h>
#include <string.h>

#define OD_JSONW_STRING_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
/* The print buffer starts at this size instead of json-c's 32 bytes, which doubled four times
 * (four reallocs) for a typical order; it stays a small-bin allocation for glibc. */
#define OD_JSONW_INITIAL 512

/* apr_ltoa formats integers without a printf-style format. */
_Static_assert(sizeof(long) >= sizeof(int64_t), "od_jsonw_int needs a 64-bit long");

struct od_jsonw_s {
    struct printbuf *pb;
    json_object *str; /* ours, reset for each string to be escaped; made on first need */
    apr_pool_t *p;
    int first; /* nothing written yet in the innermost object or array, or just after a key */
};

static apr_status_t od_jsonw_cleanup(void *data)
{
    od_jsonw_t *w = data;

    printbuf_free(w->pb);
    json_object_put(w->str);
    return APR_SUCCESS;
}

od_jsonw_t *od_jsonw_create(apr_pool_t *p)
{
    od_jsonw_t *w = apr_palloc(p, sizeof(*w));

    w->pb = printbuf_new();
    w->str = NULL;
    w->p = p;
    w->first = 1;
    if (w->pb == NULL || printbuf_memset(w->pb, 0, 0, OD_JSONW_INITIAL) != 0) {
        abort(); /* json-c could not allocate: fatal, like APR's out-of-memory */
    }
    printbuf_reset(w->pb);
    apr_pool_cleanup_register(p, w, od_jsonw_cleanup, apr_pool_cleanup_null);
    return w;
}

/* A comma before anything that is not first in its container (or a key's value). */
static void od_jsonw_sep(od_jsonw_t *w)
{
    if (!w->first) {
        printbuf_strappend(w->pb, ",");
    }
    w->first = 0;
}

void od_jsonw_open(od_jsonw_t *w, char bracket)
{
    od_jsonw_sep(w);
    printbuf_memappend(w->pb, &bracket, 1);
    w->first = 1;
}

void od_jsonw_close(od_jsonw_t *w, char bracket)
{
    printbuf_memappend(w->pb, &bracket, 1);
    w->first = 0;
}

/* Whether json-c would write @p s as it is: no quote, backslash or control byte (with
 * OD_JSONW_STRING_FLAGS it leaves '/', DEL and UTF-8 alone). Most strings of an order are. */
static int od_jsonw_is_plain(const char *s, apr_size_t n)
{
    for (apr_size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char) s[i];
        if (c < 0x20 || c == '"' || c == '\\') {
            return 0;
        }
    }
    return 1;
}

/* Appends @p s (@p n bytes) as a quoted JSON string, escaped by json-c where it needs escapes;
 * a plain string is copied between quotes, skipping json-c's string object and second buffer. */
static void od_jsonw_escape(od_jsonw_t *w, const char *s, apr_size_t n)
{
    size_t len = 0;

    /* Also keeps "" away from w->str: json-c 0.16 leaks the buffer of a string object set to ""
     * after a longer string. */
    if (od_jsonw_is_plain(s, n)) {
        printbuf_strappend(w->pb, "\"");
        printbuf_memappend(w->pb, s, (int) n);
        printbuf_strappend(w->pb, "\"");
        return;
    }
    if (w->str == NULL) {
        w->str = json_object_new_string_len(s, (int) n);
        if (w->str == NULL) {
            abort(); /* as in od_jsonw_create */
        }
    } else {
        json_object_set_string_len(w->str, s, (int) n);
    }
    const char *esc = json_object_to_json_string_length(w->str, OD_JSONW_STRING_FLAGS, &len);
    printbuf_memappend(w->pb, esc, (int) len);
}

void od_jsonw_key(od_jsonw_t *w, const char *name)
{
    od_jsonw_sep(w);
    printbuf_strappend(w->pb, "\"");
    printbuf_memappend(w->pb, name, (int) strlen(name));
    printbuf_strappend(w->pb, "\":");
    w->first = 1; /* the value follows without a comma */
}

void od_jsonw_key_escaped(od_jsonw_t *w, const char *name, apr_size_t n)
{
    od_jsonw_sep(w);
    od_jsonw_escape(w, name, n);
    printbuf_strappend(w->pb, ":");
    w->first = 1; /* the value follows without a comma */
}

void od_jsonw_string_len(od_jsonw_t *w, const char *s, apr_size_t n)
{
    od_jsonw_sep(w);
    od_jsonw_escape(w, s, n);
}

void od_jsonw_string(od_jsonw_t *w, const char *s)
{
    od_jsonw_string_len(w, s, strlen(s));
}

void od_jsonw_raw(od_jsonw_t *w, const char *token)
{
    od_jsonw_sep(w);
    printbuf_memappend(w->pb, token, (int) strlen(token));
}

void od_jsonw_int(od_jsonw_t *w, int64_t v)
{
    /* apr_ltoa negates a negative value, which INT64_MIN does not survive. */
    od_jsonw_raw(w, v == INT64_MIN ? "-9223372036854775808" : apr_ltoa(w->p, (long) v));
}

void od_jsonw_member_string(od_jsonw_t *w, const char *name, const char *s)
{
    od_jsonw_key(w, name);
    od_jsonw_string(w, s);
}

void od_jsonw_member_int(od_jsonw_t *w, const char *name, int64_t v)
{
    od_jsonw_key(w, name);
    od_jsonw_int(w, v);
}

const char *od_jsonw_finish(od_jsonw_t *w, apr_size_t *len)
{
    const char *doc = apr_pstrmemdup(w->p, w->pb->buf, (apr_size_t) w->pb->bpos);

    if (len != NULL) {
        *len = (apr_size_t) w->pb->bpos;
    }
    apr_pool_cleanup_run(w->p, w, od_jsonw_cleanup);
    return doc;
}

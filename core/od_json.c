/*
 * od_json: strict JSON parsing.
 *
 * json-c does the parsing; a linear lint pass over the raw text then rejects what json-c's strict
 * mode still lets through (single quotes, NaN/Infinity, lax numbers, \u0000, lone surrogates,
 * raw control characters, non-shortest or out-of-range UTF-8). Duplicate keys are found by
 * comparing, object by object, how many keys the text spells with how many json-c kept.
 */
#include "od_json.h"
#include "od_status.h"
#include "od_utf8.h"

#include <apr_hash.h>
#include <apr_strings.h>
#include <apr_tables.h>
#include <limits.h>
#include <math.h>
#include <string.h>

#define OD_JSON_FLAGS (JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8)
/* json-c's default of 32 levels makes each tokener's stack a 1 KiB calloc, which glibc serves
 * from its large bins after consolidating its fast bins: ~4 % of an HTTP thread's samples in a
 * profile of bench scenario 1. 16 levels (512 bytes) is a small-bin allocation; an order nests
 * three deep. */
#define OD_JSON_MAX_DEPTH 16

/* Where a key's string literal (quotes included) sits in the text, and which object owns it. */
typedef struct od_json_key_s {
    int object;
    apr_size_t start;
    apr_size_t len;
} od_json_key_t;

typedef struct od_json_lint_s {
    const unsigned char *s;
    apr_size_t len;
    apr_size_t pos;
    apr_array_header_t *counts; /* int: keys spelt in each object, in order of its '{' */
    apr_array_header_t *open;   /* int: indexes into counts of the objects not yet closed */
    apr_array_header_t *keys;   /* od_json_key_t */
    const char **why;
    apr_pool_t *p;
} od_json_lint_t;

static apr_status_t od_json_put_cleanup(void *doc)
{
    json_object_put(doc);
    return APR_SUCCESS;
}

static int od_json_is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int od_json_is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static apr_status_t od_json_fail_at(od_json_lint_t *l, const char *what)
{
    *l->why = apr_psprintf(l->p, "%s at byte %" APR_SIZE_T_FMT, what, l->pos);
    return OD_EINVAL;
}

/* Reads four hex digits at @p at; returns -1 when they are not there. */
static long od_json_hex4(const od_json_lint_t *l, apr_size_t at)
{
    long unit = 0;

    if (at + 4 > l->len) {
        return -1;
    }
    for (apr_size_t i = at; i < at + 4; i++) {
        unsigned char c = l->s[i];
        int d = od_json_is_digit(c)      ? c - '0'
                : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                         : -1;
        if (d < 0) {
            return -1;
        }
        unit = unit * 16 + d;
    }
    return unit;
}

/* l->pos is at a backslash inside a string. */
static apr_status_t od_json_lint_escape(od_json_lint_t *l)
{
    if (l->pos + 1 >= l->len) {
        return od_json_fail_at(l, "truncated escape");
    }
    if (l->s[l->pos + 1] != 'u') {
        l->pos += 2;
        return APR_SUCCESS;
    }
    long unit = od_json_hex4(l, l->pos + 2);
    if (unit < 0) {
        return od_json_fail_at(l, "malformed \\u escape");
    }
    /* json-c would cut a key short at the NUL, so "a\u0000b" and "a" would collide. */
    if (unit == 0) {
        return od_json_fail_at(l, "\\u0000 escape");
    }
    if (unit >= 0xDC00 && unit <= 0xDFFF) {
        return od_json_fail_at(l, "unpaired surrogate escape");
    }
    if (unit >= 0xD800 && unit <= 0xDBFF) {
        apr_size_t next = l->pos + 6;
        long low = (next + 1 < l->len && l->s[next] == '\\' && l->s[next + 1] == 'u')
                       ? od_json_hex4(l, next + 2)
                       : -1;
        if (low < 0xDC00 || low > 0xDFFF) {
            return od_json_fail_at(l, "unpaired surrogate escape");
        }
        l->pos += 6;
    }
    l->pos += 6;
    return APR_SUCCESS;
}

/* l->pos is at a byte >= 0x80 inside a string. json-c's VALIDATE_UTF8 only checks the byte
 * pattern: overlongs, surrogates and values above U+10FFFF are caught here. */
static apr_status_t od_json_lint_utf8(od_json_lint_t *l)
{
    apr_size_t n = od_utf8_seq_len(l->s + l->pos, l->len - l->pos);

    if (n == 0) {
        return od_json_fail_at(l, "invalid UTF-8");
    }
    l->pos += n;
    return APR_SUCCESS;
}

/* A string just ended at l->pos; if a ':' follows it is a key of the innermost open object. */
static void od_json_lint_key(od_json_lint_t *l, apr_size_t start)
{
    apr_size_t at = l->pos;

    while (at < l->len && od_json_is_ws(l->s[at])) {
        at++;
    }
    if (at >= l->len || l->s[at] != ':' || l->open->nelts == 0) {
        return;
    }
    int object = APR_ARRAY_IDX(l->open, l->open->nelts - 1, int);
    APR_ARRAY_IDX(l->counts, object, int)++;
    od_json_key_t *key = apr_array_push(l->keys);
    key->object = object;
    key->start = start;
    key->len = l->pos - start;
}

static apr_status_t od_json_lint_string(od_json_lint_t *l)
{
    apr_size_t start = l->pos++;
    apr_status_t rv = APR_SUCCESS;

    while (rv == APR_SUCCESS && l->pos < l->len) {
        unsigned char c = l->s[l->pos];
        if (c == '"') {
            l->pos++;
            od_json_lint_key(l, start);
            return APR_SUCCESS;
        }
        if (c == '\\') {
            rv = od_json_lint_escape(l);
        } else if (c < 0x20) {
            rv = od_json_fail_at(l, "control character in string");
        } else if (c >= 0x80) {
            rv = od_json_lint_utf8(l);
        } else {
            l->pos++;
        }
    }
    return rv != APR_SUCCESS ? rv : od_json_fail_at(l, "unterminated string");
}

static apr_size_t od_json_lint_digits(od_json_lint_t *l)
{
    apr_size_t start = l->pos;

    while (l->pos < l->len && od_json_is_digit(l->s[l->pos])) {
        l->pos++;
    }
    return l->pos - start;
}

static int od_json_peek(const od_json_lint_t *l, char c)
{
    return l->pos < l->len && l->s[l->pos] == (unsigned char) c;
}

/* RFC 8259 numbers; json-c also takes "1.", "1.e5", "-01" and "00". */
static apr_status_t od_json_lint_number(od_json_lint_t *l)
{
    apr_size_t start = l->pos;
    int ok = 1;

    if (od_json_peek(l, '-')) {
        l->pos++;
    }
    if (od_json_peek(l, '0')) {
        l->pos++;
    } else {
        ok = od_json_lint_digits(l) > 0;
    }
    if (ok && od_json_peek(l, '.')) {
        l->pos++;
        ok = od_json_lint_digits(l) > 0;
    }
    if (ok && (od_json_peek(l, 'e') || od_json_peek(l, 'E'))) {
        l->pos++;
        if (od_json_peek(l, '+') || od_json_peek(l, '-')) {
            l->pos++;
        }
        ok = od_json_lint_digits(l) > 0;
    }
    if (!ok || (l->pos < l->len && od_json_is_digit(l->s[l->pos]))) {
        l->pos = start;
        return od_json_fail_at(l, "malformed number");
    }
    return APR_SUCCESS;
}

/* Bare words: json-c also takes NaN and Infinity. */
static apr_status_t od_json_lint_word(od_json_lint_t *l)
{
    static const char *const literals[] = {"true", "false", "null"};
    apr_size_t start = l->pos;

    while (l->pos < l->len && ((l->s[l->pos] | 0x20) >= 'a' && (l->s[l->pos] | 0x20) <= 'z')) {
        l->pos++;
    }
    for (size_t i = 0; i < sizeof(literals) / sizeof(literals[0]); i++) {
        if (l->pos - start == strlen(literals[i]) &&
            memcmp(l->s + start, literals[i], l->pos - start) == 0) {
            return APR_SUCCESS;
        }
    }
    l->pos = start;
    return od_json_fail_at(l, "invalid literal");
}

static apr_status_t od_json_lint_punct(od_json_lint_t *l)
{
    unsigned char c = l->s[l->pos];

    if (c == '{') {
        APR_ARRAY_PUSH(l->open, int) = l->counts->nelts;
        APR_ARRAY_PUSH(l->counts, int) = 0;
    } else if (c == '}') {
        if (l->open->nelts > 0) {
            apr_array_pop(l->open);
        }
    } else if (c == '\'') {
        return od_json_fail_at(l, "single-quoted string");
    } else if (c != '[' && c != ']' && c != ',' && c != ':' && !od_json_is_ws(c)) {
        return od_json_fail_at(l, "unexpected character");
    }
    l->pos++;
    return APR_SUCCESS;
}

static apr_status_t od_json_lint_text(od_json_lint_t *l)
{
    apr_status_t rv = APR_SUCCESS;

    while (rv == APR_SUCCESS && l->pos < l->len) {
        unsigned char c = l->s[l->pos];
        if (c == '"') {
            rv = od_json_lint_string(l);
        } else if (c == '-' || od_json_is_digit(c)) {
            rv = od_json_lint_number(l);
        } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') {
            rv = od_json_lint_word(l);
        } else {
            rv = od_json_lint_punct(l);
        }
    }
    return rv;
}

/* Decodes the keys of object @p object with json-c itself, so that escapes such as "\u0071"
 * and "q" compare equal, and names the first key seen twice. */
static apr_status_t od_json_fail_duplicate(od_json_lint_t *l, int object)
{
    struct json_tokener *tok = json_tokener_new_ex(OD_JSON_MAX_DEPTH);
    apr_hash_t *seen = apr_hash_make(l->p);
    const char *dup = NULL;

    for (int i = 0; i < l->keys->nelts && dup == NULL; i++) {
        const od_json_key_t *key = &APR_ARRAY_IDX(l->keys, i, od_json_key_t);
        if (key->object != object) {
            continue;
        }
        json_tokener_reset(tok);
        json_object *name =
            json_tokener_parse_ex(tok, (const char *) l->s + key->start, (int) key->len);
        if (name == NULL) {
            continue;
        }
        const char *copy = apr_pstrmemdup(l->p, json_object_get_string(name),
                                          (apr_size_t) json_object_get_string_len(name));
        json_object_put(name);
        if (apr_hash_get(seen, copy, APR_HASH_KEY_STRING) != NULL) {
            dup = copy;
        }
        apr_hash_set(seen, copy, APR_HASH_KEY_STRING, copy);
    }
    json_tokener_free(tok);
    *l->why = dup != NULL ? apr_psprintf(l->p, "duplicate key '%s'", dup) : "duplicate key";
    return OD_EINVAL;
}

static apr_status_t od_json_walk(od_json_lint_t *l, json_object *v, int *next);

/* Pre-order over the tree meets objects in the order of their '{' as long as no object seen so
 * far lost a key, so the first object with fewer keys than the text spells is the culprit. */
static apr_status_t od_json_walk_object(od_json_lint_t *l, json_object *obj, int *next)
{
    int object = (*next)++;
    struct json_object_iter it;

    if (object >= l->counts->nelts ||
        json_object_object_length(obj) != APR_ARRAY_IDX(l->counts, object, int)) {
        return od_json_fail_duplicate(l, object);
    }
    json_object_object_foreachC(obj, it)
    {
        apr_status_t rv = od_json_walk(l, it.val, next);
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }
    return APR_SUCCESS;
}

static apr_status_t od_json_walk(od_json_lint_t *l, json_object *v, int *next)
{
    switch (json_object_get_type(v)) {
    case json_type_object:
        return od_json_walk_object(l, v, next);
    case json_type_array:
        for (size_t i = 0; i < json_object_array_length(v); i++) {
            apr_status_t rv = od_json_walk(l, json_object_array_get_idx(v, i), next);
            if (rv != APR_SUCCESS) {
                return rv;
            }
        }
        return APR_SUCCESS;
    case json_type_double:
        /* 1e400 is valid syntax but has no value we could store or canonicalise. */
        if (!isfinite(json_object_get_double(v))) {
            *l->why = "number out of range";
            return OD_EINVAL;
        }
        return APR_SUCCESS;
    default:
        return APR_SUCCESS;
    }
}

static apr_status_t od_json_lint(json_object *doc, const char **why, const char *text,
                                 apr_size_t len, apr_pool_t *p)
{
    od_json_lint_t l = {
        .s = (const unsigned char *) text,
        .len = len,
        .counts = apr_array_make(p, 8, sizeof(int)),
        .open = apr_array_make(p, 8, sizeof(int)),
        .keys = apr_array_make(p, 16, sizeof(od_json_key_t)),
        .why = why,
        .p = p,
    };
    int next = 0;
    apr_status_t rv = od_json_lint_text(&l);

    return rv != APR_SUCCESS ? rv : od_json_walk(&l, doc, &next);
}

static int od_json_only_ws(const char *s, apr_size_t len)
{
    for (apr_size_t i = 0; i < len; i++) {
        if (!od_json_is_ws((unsigned char) s[i])) {
            return 0;
        }
    }
    return 1;
}

static apr_status_t od_json_tokenize(json_object **out, const char **why, const char *text,
                                     apr_size_t len, apr_pool_t *p)
{
    struct json_tokener *tok = json_tokener_new_ex(OD_JSON_MAX_DEPTH);

    json_tokener_set_flags(tok, OD_JSON_FLAGS);
    json_object *doc = json_tokener_parse_ex(tok, text, (int) len);
    enum json_tokener_error err = json_tokener_get_error(tok);
    apr_size_t end = json_tokener_get_parse_end(tok);
    if (err == json_tokener_continue) {
        /* A top-level number ends only when json-c sees the byte after it. */
        doc = json_tokener_parse_ex(tok, " ", 1);
        err = json_tokener_get_error(tok);
        end = len;
    }
    json_tokener_free(tok);
    if (err == json_tokener_continue) {
        *why = apr_psprintf(p, "unexpected end of input at byte %" APR_SIZE_T_FMT, len);
    } else if (err != json_tokener_success) {
        *why = apr_psprintf(p, "%s at byte %" APR_SIZE_T_FMT, json_tokener_error_desc(err), end);
    } else if (!od_json_only_ws(text + end, len - end)) {
        *why = apr_psprintf(p, "trailing content at byte %" APR_SIZE_T_FMT, end);
    } else {
        *out = doc;
        return APR_SUCCESS;
    }
    json_object_put(doc);
    return OD_EINVAL;
}

apr_status_t od_json_parse(json_object **out, const char **why, const char *text, apr_size_t len,
                           apr_pool_t *p)
{
    json_object *doc = NULL;
    apr_status_t rv;

    *out = NULL;
    *why = NULL;
    /* json-c takes an int length. */
    if (len >= INT_MAX) {
        *why = "document too large";
        return OD_EINVAL;
    }
    rv = od_json_tokenize(&doc, why, text, len, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = od_json_lint(doc, why, text, len, p);
    if (rv != APR_SUCCESS) {
        json_object_put(doc);
        return rv;
    }
    /* JSON null is a NULL document: nothing to release. */
    if (doc != NULL) {
        apr_pool_cleanup_register(p, doc, od_json_put_cleanup, apr_pool_cleanup_null);
    }
    *out = doc;
    return APR_SUCCESS;
}

/*
 * od_canon: canonical JSON and the idempotency key.
 *
 * The canonical bytes are what the idempotency key is hashed over, so every rule here is part of
 * the stored keys' meaning: changing one (an escape, a number format) changes every key.
 */
#include "od_canon.h"
#include "od_jsonw.h"

#include <apr_strings.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct od_canon_member_s {
    const char *key;
    json_object *value;
} od_canon_member_t;

static void od_canon_int(od_jsonw_t *w, json_object *v)
{
    char tmp[32];
    int64_t i = json_object_get_int64(v);

    /* json-c stores values above INT64_MAX as uint64 and saturates get_int64 there. */
    if (i != INT64_MAX) {
        od_jsonw_int(w, i);
        return;
    }
    snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long) json_object_get_uint64(v));
    od_jsonw_raw(w, tmp);
}

/* Fewest significant digits that read back to the same double (0.1 stays "0.1", not
 * "0.10000000000000001"), written plainly for exponents -5..16 as %g would, else as "1.5e+20".
 * Assumes the "C" numeric locale, as JSON does. */
static void od_canon_double(od_jsonw_t *w, double d)
{
    char tmp[48];
    int prec = 1;

    /* JSON has no spelling for these; od_json never produces them. */
    if (!isfinite(d)) {
        od_jsonw_raw(w, "null");
        return;
    }
    if (d == 0.0) {
        od_jsonw_raw(w, "0");
        return;
    }
    for (; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, d);
        if (strtod(tmp, NULL) == d) {
            break;
        }
    }
    int exp10 = atoi(strchr(tmp, 'e') + 1);
    if (exp10 >= -5 && exp10 < 17) {
        snprintf(tmp, sizeof(tmp), "%.*f", prec - 1 - exp10 > 0 ? prec - 1 - exp10 : 0, d);
    }
    od_jsonw_raw(w, tmp);
}

static int od_canon_member_cmp(const void *a, const void *b)
{
    /* strcmp compares as unsigned char: bytewise UTF-8 order. */
    return strcmp(((const od_canon_member_t *) a)->key, ((const od_canon_member_t *) b)->key);
}

static void od_canon_value(od_jsonw_t *w, json_object *v, apr_pool_t *p);

static void od_canon_object(od_jsonw_t *w, json_object *obj, apr_pool_t *p)
{
    int n = json_object_object_length(obj);
    od_canon_member_t *members = apr_palloc(p, sizeof(*members) * (apr_size_t) (n + 1));
    struct json_object_iter it;
    int i = 0;

    json_object_object_foreachC(obj, it)
    {
        members[i].key = it.key;
        members[i].value = it.val;
        i++;
    }
    qsort(members, (size_t) n, sizeof(*members), od_canon_member_cmp);
    od_jsonw_open(w, '{');
    for (i = 0; i < n; i++) {
        od_jsonw_key_escaped(w, members[i].key, strlen(members[i].key));
        od_canon_value(w, members[i].value, p);
    }
    od_jsonw_close(w, '}');
}

static void od_canon_array(od_jsonw_t *w, json_object *arr, apr_pool_t *p)
{
    size_t n = json_object_array_length(arr);

    od_jsonw_open(w, '[');
    for (size_t i = 0; i < n; i++) {
        od_canon_value(w, json_object_array_get_idx(arr, i), p);
    }
    od_jsonw_close(w, ']');
}

static void od_canon_value(od_jsonw_t *w, json_object *v, apr_pool_t *p)
{
    switch (json_object_get_type(v)) {
    case json_type_null:
        od_jsonw_raw(w, "null");
        break;
    case json_type_boolean:
        od_jsonw_raw(w, json_object_get_boolean(v) ? "true" : "false");
        break;
    case json_type_int:
        od_canon_int(w, v);
        break;
    case json_type_double:
        od_canon_double(w, json_object_get_double(v));
        break;
    case json_type_string:
        od_jsonw_string_len(w, json_object_get_string(v),
                            (apr_size_t) json_object_get_string_len(v));
        break;
    case json_type_object:
        od_canon_object(w, v, p);
        break;
    case json_type_array:
        od_canon_array(w, v, p);
        break;
    }
}

/* Strings are escaped by od_jsonw through a string object of its own: serialising the caller's
 * objects would write into their print buffers, which is neither "does not modify" nor safe if
 * two threads share the document. */
const char *od_canon_serialize(json_object *value, apr_size_t *len, apr_pool_t *p)
{
    od_jsonw_t *w = od_jsonw_create(p);

    od_canon_value(w, value, p);
    return od_jsonw_finish(w, len);
}

const char *od_canon_idempotency_key(const od_sha256_t *h, const char *caller,
                                     const char *canonical, apr_size_t len, apr_pool_t *p)
{
    apr_size_t clen = strlen(caller);
    unsigned char *msg = apr_palloc(p, clen + 1 + len);
    unsigned char md[OD_SHA256_LEN];
    char *out = apr_palloc(p, OD_CANON_KEY_HEX_LEN + 1);

    memcpy(msg, caller, clen + 1);
    memcpy(msg + clen + 1, canonical, len);
    /* Fails only when OpenSSL cannot allocate; like APR's out-of-memory, that is fatal. */
    if (!od_sha256_digest(h, msg, clen + 1 + len, md)) {
        abort();
    }
    od_sha256_hex(out, md, sizeof(md));
    return out;
}

/*
 * fuzz_json: od_json's strict parser, od_canon's canonical form and od_jsonw's writer.
 *
 * For every input, the promises of od_json.h, od_canon.h and od_jsonw.h:
 *   - a rejection has a reason and no document;
 *   - white space around a JSON text changes neither the verdict nor the canonical form;
 *   - the canonical form of an accepted text has no NUL, is accepted again, is its own canonical
 *     form, and has the same value: members sorted bytewise with no duplicates, the same
 *     strings, integers and booleans, and doubles that read back exactly (an integral double may
 *     come back as the integer it spells);
 *   - each string and integer of the document, written by od_jsonw in every position it offers
 *     (array element, escaped key, member value), reads back as itself.
 */
#include "od_fuzz.h"
#include "od_canon.h"
#include "od_json.h"
#include "od_jsonw.h"

#include <apr_strings.h>
#include <apr_tables.h>
#include <json-c/json.h>
#include <string.h>

/* Per input, at most this many strings and integers go through the writer round trip. */
#define FUZZ_JSON_WRITER_MAX 16

typedef struct fuzz_json_scalars_s {
    apr_array_header_t *strings; /* json_object * of type string */
    apr_array_header_t *ints;    /* json_object * of type int */
} fuzz_json_scalars_t;

static int fuzz_json_same_string(json_object *a, json_object *b)
{
    return json_object_is_type(a, json_type_string) && json_object_is_type(b, json_type_string) &&
           json_object_get_string_len(a) == json_object_get_string_len(b) &&
           memcmp(json_object_get_string(a), json_object_get_string(b),
                  (size_t) json_object_get_string_len(a)) == 0;
}

static int fuzz_json_same_value(json_object *a, json_object *b);

/* @p b comes from canonical text: its members are in strictly ascending bytewise order. */
static int fuzz_json_same_object(json_object *a, json_object *b)
{
    struct json_object_iter it;
    const char *prev = NULL;

    if (json_object_object_length(a) != json_object_object_length(b)) {
        return 0;
    }
    json_object_object_foreachC(b, it)
    {
        OD_FUZZ_CHECK(prev == NULL || strcmp(prev, it.key) < 0,
                      "canonical members are sorted and unique: '%s' after '%s'", it.key, prev);
        prev = it.key;
    }
    json_object_object_foreachC(a, it)
    {
        json_object *v = NULL;
        if (!json_object_object_get_ex(b, it.key, &v) || !fuzz_json_same_value(it.val, v)) {
            return 0;
        }
    }
    return 1;
}

static int fuzz_json_same_array(json_object *a, json_object *b)
{
    size_t n = json_object_array_length(a);

    if (json_object_array_length(b) != n) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (!fuzz_json_same_value(json_object_array_get_idx(a, i),
                                  json_object_array_get_idx(b, i))) {
            return 0;
        }
    }
    return 1;
}

static int fuzz_json_same_int(json_object *a, json_object *b)
{
    return json_object_is_type(b, json_type_int) &&
           json_object_get_int64(a) == json_object_get_int64(b) &&
           json_object_get_uint64(a) == json_object_get_uint64(b);
}

/* A double written without fraction or exponent reads back as an integer of the same value. */
static int fuzz_json_same_double(json_object *a, json_object *b)
{
    double d = json_object_get_double(a);

    if (json_object_is_type(b, json_type_int)) {
        return d == (double) json_object_get_int64(b);
    }
    return json_object_is_type(b, json_type_double) && d == json_object_get_double(b);
}

static int fuzz_json_same_value(json_object *a, json_object *b)
{
    switch (json_object_get_type(a)) {
    case json_type_null:
        return json_object_is_type(b, json_type_null);
    case json_type_boolean:
        return json_object_is_type(b, json_type_boolean) &&
               json_object_get_boolean(a) == json_object_get_boolean(b);
    case json_type_int:
        return fuzz_json_same_int(a, b);
    case json_type_double:
        return fuzz_json_same_double(a, b);
    case json_type_string:
        return fuzz_json_same_string(a, b);
    case json_type_object:
        return json_object_is_type(b, json_type_object) && fuzz_json_same_object(a, b);
    case json_type_array:
        return json_object_is_type(b, json_type_array) && fuzz_json_same_array(a, b);
    }
    return 0;
}

/* Parses @p len bytes; checks the contract on rejection. Returns the status. */
static apr_status_t fuzz_json_parse(json_object **doc, const char *text, apr_size_t len,
                                    apr_pool_t *p)
{
    const char *why = NULL;
    apr_status_t rv = od_json_parse(doc, &why, text, len, p);

    if (rv != APR_SUCCESS) {
        OD_FUZZ_CHECK(*doc == NULL && why != NULL && why[0] != '\0',
                      "a rejection has a reason and no document");
    }
    return rv;
}

static void fuzz_json_check_canonical(json_object *doc, const char *canonical, apr_size_t len,
                                      apr_pool_t *p)
{
    json_object *again = NULL;
    apr_size_t len2 = 0;

    OD_FUZZ_CHECK(strlen(canonical) == len, "the canonical form has no NUL");
    OD_FUZZ_CHECK(fuzz_json_parse(&again, canonical, len, p) == APR_SUCCESS,
                  "the canonical form is strict JSON: %s", canonical);
    const char *canonical2 = od_canon_serialize(again, &len2, p);
    OD_FUZZ_CHECK(len2 == len && memcmp(canonical, canonical2, len) == 0,
                  "the canonical form is its own canonical form: %s / %s", canonical, canonical2);
    OD_FUZZ_CHECK(fuzz_json_same_value(doc, again), "the canonical form has the same value: %s",
                  canonical);
}

/* White space (RFC 8259 ws) on both sides of a JSON text is insignificant. */
static void fuzz_json_check_padded(const uint8_t *data, size_t size, apr_status_t rv,
                                   const char *canonical, apr_pool_t *p)
{
    static const char pad[] = " \t\n\r";
    apr_size_t n = sizeof(pad) - 1;
    char *padded = apr_palloc(p, size + 2 * n);
    json_object *doc = NULL;
    apr_size_t len = 0;

    memcpy(padded, pad, n);
    memcpy(padded + n, data, size);
    memcpy(padded + n + size, pad, n);
    apr_status_t rv2 = fuzz_json_parse(&doc, padded, size + 2 * n, p);
    OD_FUZZ_CHECK(rv2 == rv, "white space around the text changes the verdict (%d, %d)", rv, rv2);
    if (rv == APR_SUCCESS) {
        const char *c2 = od_canon_serialize(doc, &len, p);
        OD_FUZZ_CHECK(strcmp(canonical, c2) == 0, "white space changes the canonical form");
    }
}

static void fuzz_json_collect(json_object *v, fuzz_json_scalars_t *out)
{
    struct json_object_iter it;

    switch (json_object_get_type(v)) {
    case json_type_string:
        *(json_object **) apr_array_push(out->strings) = v;
        break;
    case json_type_int:
        *(json_object **) apr_array_push(out->ints) = v;
        break;
    case json_type_array:
        for (size_t i = 0; i < json_object_array_length(v); i++) {
            fuzz_json_collect(json_object_array_get_idx(v, i), out);
        }
        break;
    case json_type_object:
        json_object_object_foreachC(v, it)
        {
            fuzz_json_collect(it.val, out);
        }
        break;
    default:
        break;
    }
}

static json_object *fuzz_json_member(json_object *obj, const char *key)
{
    json_object *v = NULL;

    OD_FUZZ_CHECK(json_object_is_type(obj, json_type_object) &&
                      json_object_object_get_ex(obj, key, &v),
                  "the written object has member '%s'", key);
    return v;
}

/* [s, {s: s}, {"k": s}]: an element, an escaped key and its value, a plain key's value. */
static void fuzz_json_write_string(json_object *s, apr_pool_t *p)
{
    const char *str = json_object_get_string(s);
    apr_size_t n = (apr_size_t) json_object_get_string_len(s);
    od_jsonw_t *w = od_jsonw_create(p);
    json_object *doc = NULL;
    apr_size_t len = 0;

    od_jsonw_open(w, '[');
    od_jsonw_string_len(w, str, n);
    od_jsonw_open(w, '{');
    od_jsonw_key_escaped(w, str, n);
    od_jsonw_string_len(w, str, n);
    od_jsonw_close(w, '}');
    od_jsonw_open(w, '{');
    od_jsonw_member_string(w, "k", str);
    od_jsonw_close(w, '}');
    od_jsonw_close(w, ']');
    const char *text = od_jsonw_finish(w, &len);
    OD_FUZZ_CHECK(fuzz_json_parse(&doc, text, len, p) == APR_SUCCESS &&
                      json_object_is_type(doc, json_type_array) &&
                      json_object_array_length(doc) == 3,
                  "od_jsonw wrote strict JSON: %s", text);
    json_object *keyed = json_object_array_get_idx(doc, 1);
    OD_FUZZ_CHECK(
        fuzz_json_same_string(json_object_array_get_idx(doc, 0), s) &&
            fuzz_json_same_string(fuzz_json_member(keyed, str), s) &&
            fuzz_json_same_string(fuzz_json_member(json_object_array_get_idx(doc, 2), "k"), s),
        "a string written by od_jsonw reads back as itself: %s", text);
}

/* [v, {"i": v}] */
static void fuzz_json_write_int(json_object *i, apr_pool_t *p)
{
    int64_t v = json_object_get_int64(i);
    od_jsonw_t *w = od_jsonw_create(p);
    json_object *doc = NULL;
    apr_size_t len = 0;

    od_jsonw_open(w, '[');
    od_jsonw_int(w, v);
    od_jsonw_open(w, '{');
    od_jsonw_member_int(w, "i", v);
    od_jsonw_close(w, '}');
    od_jsonw_close(w, ']');
    const char *text = od_jsonw_finish(w, &len);
    OD_FUZZ_CHECK(fuzz_json_parse(&doc, text, len, p) == APR_SUCCESS &&
                      json_object_is_type(doc, json_type_array) &&
                      json_object_array_length(doc) == 2,
                  "od_jsonw wrote strict JSON: %s", text);
    json_object *a = json_object_array_get_idx(doc, 0);
    json_object *b = fuzz_json_member(json_object_array_get_idx(doc, 1), "i");
    OD_FUZZ_CHECK(json_object_is_type(a, json_type_int) && json_object_get_int64(a) == v &&
                      json_object_is_type(b, json_type_int) && json_object_get_int64(b) == v,
                  "an integer written by od_jsonw reads back as itself: %s", text);
}

static void fuzz_json_check_writer(json_object *doc, apr_pool_t *p)
{
    fuzz_json_scalars_t s = {.strings = apr_array_make(p, 8, sizeof(json_object *)),
                             .ints = apr_array_make(p, 8, sizeof(json_object *))};

    fuzz_json_collect(doc, &s);
    for (int i = 0; i < s.strings->nelts && i < FUZZ_JSON_WRITER_MAX; i++) {
        fuzz_json_write_string(APR_ARRAY_IDX(s.strings, i, json_object *), p);
    }
    for (int i = 0; i < s.ints->nelts && i < FUZZ_JSON_WRITER_MAX; i++) {
        fuzz_json_write_int(APR_ARRAY_IDX(s.ints, i, json_object *), p);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = od_fuzz_pool();
    json_object *doc = NULL;
    const char *canonical = NULL;
    apr_size_t len = 0;

    apr_status_t rv = fuzz_json_parse(&doc, (const char *) data, size, p);
    if (rv == APR_SUCCESS) {
        canonical = od_canon_serialize(doc, &len, p);
        fuzz_json_check_canonical(doc, canonical, len, p);
        fuzz_json_check_writer(doc, p);
    }
    fuzz_json_check_padded(data, size, rv, canonical, p);
    apr_pool_destroy(p);
    return 0;
}

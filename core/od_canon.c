/*
 * od_canon: canonical JSON and the idempotency key.
 *
 * The canonical bytes are what the idempotency key is hashed over, so every rule here is part of
 * the stored keys' meaning: changing one (an escape, a number format) changes every key.
 */
#include "od_canon.h"

#include <apr_strings.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OD_CANON_STRING_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* An append-only byte buffer in a pool; growth doubles so appends stay amortised O(1). */
typedef struct od_canon_buf_s {
    char *data;
    apr_size_t len;
    apr_size_t cap;
    apr_pool_t *p;
    json_object *str; /* one string object of ours, reused to escape every string */
} od_canon_buf_t;

struct od_canon_hasher_s {
    EVP_MD *sha256;
};

typedef struct od_canon_member_s {
    const char *key;
    json_object *value;
} od_canon_member_t;

static void od_canon_put(od_canon_buf_t *b, const char *s, apr_size_t n)
{
    if (b->len + n + 1 > b->cap) {
        apr_size_t cap = b->cap * 2 > b->len + n + 1 ? b->cap * 2 : b->len + n + 1;
        char *data = apr_palloc(b->p, cap);
        memcpy(data, b->data, b->len);
        b->data = data;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void od_canon_puts(od_canon_buf_t *b, const char *s)
{
    od_canon_put(b, s, strlen(s));
}

/* json-c escapes through a string object of our own: serialising the caller's object would
 * write into its print buffer, which is neither "does not modify" nor safe if two threads share
 * the document. One object per serialisation, reset for each string, keeps that to one
 * allocation of the object and its print buffer. */
static void od_canon_string(od_canon_buf_t *b, const char *s, apr_size_t n)
{
    size_t elen = 0;

    /* json-c 0.16 leaks the buffer of a string object set to "" after a longer string. */
    if (n == 0) {
        od_canon_puts(b, "\"\"");
        return;
    }
    if (b->str == NULL) {
        b->str = json_object_new_string_len(s, (int) n);
    } else {
        json_object_set_string_len(b->str, s, (int) n);
    }
    const char *esc = json_object_to_json_string_length(b->str, OD_CANON_STRING_FLAGS, &elen);
    od_canon_put(b, esc, elen);
}

static void od_canon_int(od_canon_buf_t *b, json_object *v)
{
    char tmp[32];
    int64_t i = json_object_get_int64(v);

    /* json-c stores values above INT64_MAX as uint64 and saturates get_int64 there. */
    if (i == INT64_MAX) {
        snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long) json_object_get_uint64(v));
    } else {
        snprintf(tmp, sizeof(tmp), "%lld", (long long) i);
    }
    od_canon_puts(b, tmp);
}

/* Fewest significant digits that read back to the same double (0.1 stays "0.1", not
 * "0.10000000000000001"), written plainly for exponents -5..16 as %g would, else as "1.5e+20".
 * Assumes the "C" numeric locale, as JSON does. */
static void od_canon_double(od_canon_buf_t *b, double d)
{
    char tmp[48];
    int prec = 1;

    /* JSON has no spelling for these; od_json never produces them. */
    if (!isfinite(d)) {
        od_canon_puts(b, "null");
        return;
    }
    if (d == 0.0) {
        od_canon_puts(b, "0");
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
    od_canon_puts(b, tmp);
}

static int od_canon_member_cmp(const void *a, const void *b)
{
    /* strcmp compares as unsigned char: bytewise UTF-8 order. */
    return strcmp(((const od_canon_member_t *) a)->key, ((const od_canon_member_t *) b)->key);
}

static void od_canon_value(od_canon_buf_t *b, json_object *v);

static void od_canon_object(od_canon_buf_t *b, json_object *obj)
{
    int n = json_object_object_length(obj);
    od_canon_member_t *members = apr_palloc(b->p, sizeof(*members) * (apr_size_t) (n + 1));
    struct json_object_iter it;
    int i = 0;

    json_object_object_foreachC(obj, it)
    {
        members[i].key = it.key;
        members[i].value = it.val;
        i++;
    }
    qsort(members, (size_t) n, sizeof(*members), od_canon_member_cmp);
    od_canon_puts(b, "{");
    for (i = 0; i < n; i++) {
        if (i > 0) {
            od_canon_puts(b, ",");
        }
        od_canon_string(b, members[i].key, strlen(members[i].key));
        od_canon_puts(b, ":");
        od_canon_value(b, members[i].value);
    }
    od_canon_puts(b, "}");
}

static void od_canon_array(od_canon_buf_t *b, json_object *arr)
{
    size_t n = json_object_array_length(arr);

    od_canon_puts(b, "[");
    for (size_t i = 0; i < n; i++) {
        if (i > 0) {
            od_canon_puts(b, ",");
        }
        od_canon_value(b, json_object_array_get_idx(arr, i));
    }
    od_canon_puts(b, "]");
}

static void od_canon_value(od_canon_buf_t *b, json_object *v)
{
    switch (json_object_get_type(v)) {
    case json_type_null:
        od_canon_puts(b, "null");
        break;
    case json_type_boolean:
        od_canon_puts(b, json_object_get_boolean(v) ? "true" : "false");
        break;
    case json_type_int:
        od_canon_int(b, v);
        break;
    case json_type_double:
        od_canon_double(b, json_object_get_double(v));
        break;
    case json_type_string:
        od_canon_string(b, json_object_get_string(v), (apr_size_t) json_object_get_string_len(v));
        break;
    case json_type_object:
        od_canon_object(b, v);
        break;
    case json_type_array:
        od_canon_array(b, v);
        break;
    }
}

const char *od_canon_serialize(json_object *value, apr_size_t *len, apr_pool_t *p)
{
    od_canon_buf_t b = {.data = apr_palloc(p, 256), .len = 0, .cap = 256, .p = p};

    b.data[0] = '\0';
    od_canon_value(&b, value);
    json_object_put(b.str);
    if (len != NULL) {
        *len = b.len;
    }
    return b.data;
}

static apr_status_t od_canon_hasher_cleanup(void *data)
{
    od_canon_hasher_t *h = data;

    EVP_MD_free(h->sha256);
    return APR_SUCCESS;
}

apr_status_t od_canon_hasher_create(od_canon_hasher_t **out, apr_pool_t *p)
{
    od_canon_hasher_t *h = apr_palloc(p, sizeof(*h));

    *out = NULL;
    h->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (h->sha256 == NULL) {
        return APR_EGENERAL;
    }
    apr_pool_cleanup_register(p, h, od_canon_hasher_cleanup, apr_pool_cleanup_null);
    *out = h;
    return APR_SUCCESS;
}

const char *od_canon_idempotency_key(const od_canon_hasher_t *h, const char *caller,
                                     const char *canonical, apr_size_t len, apr_pool_t *p)
{
    static const char hex[] = "0123456789abcdef";
    apr_size_t clen = strlen(caller);
    unsigned char *msg = apr_palloc(p, clen + 1 + len);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char *out = apr_palloc(p, OD_CANON_KEY_HEX_LEN + 1);

    memcpy(msg, caller, clen + 1);
    memcpy(msg + clen + 1, canonical, len);
    /* Fails only when OpenSSL cannot allocate; like APR's out-of-memory, that is fatal. */
    if (EVP_Digest(msg, clen + 1 + len, md, &mdlen, h->sha256, NULL) != 1 || mdlen != 32) {
        abort();
    }
    for (unsigned int i = 0; i < mdlen; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 0x0F];
    }
    out[OD_CANON_KEY_HEX_LEN] = '\0';
    return out;
}

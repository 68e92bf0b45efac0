/*
 * od_order: the order model, its validation, and its JSON renderings.
 *
 * Validation walks the whole document and keeps going after a bad field, so a client learns
 * about every problem from one response instead of fixing them one round trip at a time.
 */
#include "od_order.h"
#include "od_jsonw.h"
#include "od_canon.h"
#include "od_json.h"
#include "od_problem.h"
#include "od_regex.h"
#include "od_status.h"

#include <apr_strings.h>
#include <json-c/json.h>
#include <regex.h>
#include <string.h>

#define OD_ORDER_SKU_MIN 3
#define OD_ORDER_SKU_MAX 32

struct od_order_rules_s {
    regex_t customer_id;
    int max_quantity;
    int max_items;
};

typedef struct od_order_item_s {
    const char *sku;
    apr_int64_t quantity;
    apr_int64_t unit_price_cents;
} od_order_item_t;

struct od_order_s {
    const char *customer_id;
    const char *currency;
    const char *note; /* NULL when the request had none */
    od_order_item_t *items;
    int nitems;
    apr_int64_t total_cents;
    const char *canonical;
    apr_size_t canonical_len;
};

/* State of one validation pass: where errors go and the order being filled in. */
typedef struct od_order_check_s {
    const od_order_rules_t *rules;
    apr_array_header_t *errors;
    od_order_t *order;
    int total_too_large;
    apr_pool_t *p;
} od_order_check_t;

static const char *const od_order_top_fields[] = {"customer_id", "currency", "items", "note", NULL};
static const char *const od_order_item_fields[] = {"sku", "quantity", "unit_price_cents", NULL};

static apr_status_t od_order_regfree_cleanup(void *re)
{
    regfree(re);
    return APR_SUCCESS;
}

apr_status_t od_order_rules_create(od_order_rules_t **out, const char *customer_id_pattern,
                                   int max_quantity, int max_items, const char **errmsg,
                                   apr_pool_t *p)
{
    od_order_rules_t *rules = apr_pcalloc(p, sizeof(*rules));

    *out = NULL;
    *errmsg = NULL;
    if (max_quantity <= 0 || max_items <= 0) {
        *errmsg = apr_psprintf(p, "max_quantity (%d) and max_items (%d) must be positive",
                               max_quantity, max_items);
        return OD_ECONFIG;
    }
    if (customer_id_pattern == NULL) {
        *errmsg = "customer_id pattern is missing";
        return OD_ECONFIG;
    }
    const char *why = NULL;
    if (od_regex_compile(&rules->customer_id, customer_id_pattern, &why, p) != APR_SUCCESS) {
        *errmsg = apr_pstrcat(p, "customer_id pattern ", why, NULL);
        return OD_ECONFIG;
    }
    apr_pool_cleanup_register(p, &rules->customer_id, od_order_regfree_cleanup,
                              apr_pool_cleanup_null);
    rules->max_quantity = max_quantity;
    rules->max_items = max_items;
    *out = rules;
    return APR_SUCCESS;
}

static void od_order_fail(od_order_check_t *c, const char *field, const char *message)
{
    od_problem_add(c->errors, field, message);
}

static const char *od_order_path(od_order_check_t *c, const char *prefix, const char *key)
{
    return prefix[0] == '\0' ? key : apr_pstrcat(c->p, prefix, ".", key, NULL);
}

/* Returns the member's value when it is present and a string, reporting why otherwise. */
static const char *od_order_string(od_order_check_t *c, json_object *obj, const char *path,
                                   const char *key, apr_size_t *len)
{
    json_object *v = NULL;

    if (!json_object_object_get_ex(obj, key, &v)) {
        od_order_fail(c, path, "is required");
        return NULL;
    }
    if (!json_object_is_type(v, json_type_string)) {
        od_order_fail(c, path, "must be a string");
        return NULL;
    }
    *len = (apr_size_t) json_object_get_string_len(v);
    return json_object_get_string(v);
}

/* Only json-c's int type counts: 2.0 and 1e2 are doubles, so they are not integers. */
static int od_order_int(od_order_check_t *c, json_object *obj, const char *prefix, const char *key,
                        apr_int64_t lo, apr_int64_t hi, apr_int64_t *out)
{
    const char *path = od_order_path(c, prefix, key);
    json_object *v = NULL;

    if (!json_object_object_get_ex(obj, key, &v)) {
        od_order_fail(c, path, "is required");
        return 0;
    }
    if (!json_object_is_type(v, json_type_int)) {
        od_order_fail(c, path, "must be an integer");
        return 0;
    }
    /* Values beyond int64 saturate, so they land outside any range here. */
    apr_int64_t n = json_object_get_int64(v);
    if (n < lo || n > hi) {
        od_order_fail(c, path,
                      apr_psprintf(c->p,
                                   "must be between %" APR_INT64_T_FMT " and %" APR_INT64_T_FMT, lo,
                                   hi));
        return 0;
    }
    *out = n;
    return 1;
}

static void od_order_unknown(od_order_check_t *c, json_object *obj, const char *prefix,
                             const char *const *known)
{
    struct json_object_iter it;

    json_object_object_foreachC(obj, it)
    {
        int found = 0;
        for (const char *const *k = known; *k != NULL && !found; k++) {
            found = strcmp(*k, it.key) == 0;
        }
        if (!found) {
            od_order_fail(c, od_order_path(c, prefix, it.key), "unknown field");
        }
    }
}

static void od_order_check_customer(od_order_check_t *c, json_object *doc)
{
    apr_size_t len = 0;
    const char *s = od_order_string(c, doc, "customer_id", "customer_id", &len);

    if (s == NULL) {
        return;
    }
    if (regexec(&c->rules->customer_id, s, 0, NULL, 0) != 0) {
        od_order_fail(c, "customer_id", "does not match the required pattern");
        return;
    }
    c->order->customer_id = apr_pstrmemdup(c->p, s, len);
}

static void od_order_check_currency(od_order_check_t *c, json_object *doc)
{
    apr_size_t len = 0;
    const char *s = od_order_string(c, doc, "currency", "currency", &len);
    int ok = s != NULL && len == 3;

    if (s == NULL) {
        return;
    }
    for (apr_size_t i = 0; ok && i < len; i++) {
        ok = s[i] >= 'A' && s[i] <= 'Z';
    }
    if (!ok) {
        od_order_fail(c, "currency", "must be three upper-case letters");
        return;
    }
    c->order->currency = apr_pstrmemdup(c->p, s, len);
}

/* ^[A-Z0-9][A-Z0-9-]{2,31}$ by hand: no locale-dependent ranges, no second regex to manage. */
static int od_order_sku_ok(const char *s, apr_size_t len)
{
    if (len < OD_ORDER_SKU_MIN || len > OD_ORDER_SKU_MAX || s[0] == '-') {
        return 0;
    }
    for (apr_size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-')) {
            return 0;
        }
    }
    return 1;
}

/* A line is at most INT_MAX * 1e9, well inside int64; only a generous max_quantity times many
 * items can overflow the sum, and then the order is refused rather than mis-totalled. */
static void od_order_add_total(od_order_check_t *c, apr_int64_t line)
{
    if (c->total_too_large || line > APR_INT64_MAX - c->order->total_cents) {
        if (!c->total_too_large) {
            od_order_fail(c, "items", "total is too large");
        }
        c->total_too_large = 1;
        return;
    }
    c->order->total_cents += line;
}

static void od_order_check_item(od_order_check_t *c, json_object *item, int i)
{
    const char *prefix = apr_psprintf(c->p, "items[%d]", i);
    od_order_item_t *it = &c->order->items[i];
    apr_size_t len = 0;

    if (!json_object_is_type(item, json_type_object)) {
        od_order_fail(c, prefix, "must be an object");
        return;
    }
    const char *path = od_order_path(c, prefix, "sku");
    const char *sku = od_order_string(c, item, path, "sku", &len);
    if (sku != NULL && !od_order_sku_ok(sku, len)) {
        od_order_fail(c, path,
                      "must be 3 to 32 upper-case letters, digits or '-', "
                      "not starting with '-'");
    } else if (sku != NULL) {
        it->sku = apr_pstrmemdup(c->p, sku, len);
    }
    od_order_int(c, item, prefix, "quantity", 1, c->rules->max_quantity, &it->quantity);
    od_order_int(c, item, prefix, "unit_price_cents", 0, OD_ORDER_MAX_UNIT_PRICE_CENTS,
                 &it->unit_price_cents);
    od_order_unknown(c, item, prefix, od_order_item_fields);
    od_order_add_total(c, it->quantity * it->unit_price_cents);
}

static void od_order_check_items(od_order_check_t *c, json_object *doc)
{
    json_object *items = NULL;

    if (!json_object_object_get_ex(doc, "items", &items)) {
        od_order_fail(c, "items", "is required");
        return;
    }
    if (!json_object_is_type(items, json_type_array)) {
        od_order_fail(c, "items", "must be an array");
        return;
    }
    int n = (int) json_object_array_length(items);
    if (n < 1 || n > c->rules->max_items) {
        od_order_fail(c, "items",
                      apr_psprintf(c->p, "must have between 1 and %d items", c->rules->max_items));
    }
    c->order->items = apr_pcalloc(c->p, sizeof(od_order_item_t) * (apr_size_t) (n + 1));
    c->order->nitems = n;
    for (int i = 0; i < n; i++) {
        od_order_check_item(c, json_object_array_get_idx(items, (size_t) i), i);
    }
}

/* The body is valid UTF-8 (od_json), so code points are the bytes that are not continuations. */
static void od_order_check_note(od_order_check_t *c, json_object *doc)
{
    apr_size_t len = 0;
    apr_size_t chars = 0;

    if (!json_object_object_get_ex(doc, "note", NULL)) {
        return;
    }
    const char *s = od_order_string(c, doc, "note", "note", &len);
    if (s == NULL) {
        return;
    }
    for (apr_size_t i = 0; i < len; i++) {
        chars += ((unsigned char) s[i] & 0xC0) != 0x80;
    }
    if (chars > OD_ORDER_MAX_NOTE_CHARS) {
        od_order_fail(c, "note",
                      apr_psprintf(c->p, "must be at most %d characters", OD_ORDER_MAX_NOTE_CHARS));
        return;
    }
    c->order->note = apr_pstrmemdup(c->p, s, len);
}

apr_status_t od_order_parse(od_order_t **out, apr_array_header_t **errors,
                            const od_order_rules_t *rules, const char *body, apr_size_t len,
                            apr_pool_t *p)
{
    od_order_check_t c = {.rules = rules,
                          .errors = apr_array_make(p, 4, sizeof(od_field_error_t)),
                          .order = apr_pcalloc(p, sizeof(od_order_t)),
                          .p = p};
    json_object *doc = NULL;
    const char *why = NULL;

    *out = NULL;
    *errors = c.errors;
    if (od_json_parse(&doc, &why, body, len, p) != APR_SUCCESS) {
        od_order_fail(&c, "", apr_pstrcat(p, "malformed JSON: ", why, NULL));
        return OD_EINVAL;
    }
    if (!json_object_is_type(doc, json_type_object)) {
        od_order_fail(&c, "", "must be a JSON object");
        return OD_EINVAL;
    }
    od_order_check_customer(&c, doc);
    od_order_check_currency(&c, doc);
    od_order_check_items(&c, doc);
    od_order_check_note(&c, doc);
    od_order_unknown(&c, doc, "", od_order_top_fields);
    if (c.errors->nelts > 0) {
        return OD_EINVAL;
    }
    c.order->canonical = od_canon_serialize(doc, &c.order->canonical_len, p);
    *errors = NULL;
    *out = c.order;
    return APR_SUCCESS;
}

const char *od_order_canonical(const od_order_t *order, apr_size_t *len)
{
    if (len != NULL) {
        *len = order->canonical_len;
    }
    return order->canonical;
}

apr_int64_t od_order_total_cents(const od_order_t *order)
{
    return order->total_cents;
}

/* Writes @p v as exactly @p n decimal digits (zero-padded; higher digits dropped). */
static char *od_order_digits(char *at, int v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        at[i] = (char) ('0' + v % 10);
        v /= 10;
    }
    return at + n;
}

/* By hand rather than with apr_snprintf: it runs twice per accepted order (the order and its
 * event), where the format cost about 1,600 instructions each. */
char *od_order_format_time(char *buf, apr_time_t t)
{
    apr_time_exp_t tm;
    char *at = buf;

    apr_time_exp_gmt(&tm, t);
    at = od_order_digits(at, tm.tm_year + 1900, 4);
    *at++ = '-';
    at = od_order_digits(at, tm.tm_mon + 1, 2);
    *at++ = '-';
    at = od_order_digits(at, tm.tm_mday, 2);
    *at++ = 'T';
    at = od_order_digits(at, tm.tm_hour, 2);
    *at++ = ':';
    at = od_order_digits(at, tm.tm_min, 2);
    *at++ = ':';
    at = od_order_digits(at, tm.tm_sec, 2);
    *at++ = '.';
    at = od_order_digits(at, tm.tm_usec / 1000, 3);
    *at++ = 'Z';
    *at = '\0';
    return buf;
}

static void od_order_render_items(od_jsonw_t *w, const od_order_t *order)
{
    od_jsonw_key(w, "items");
    od_jsonw_open(w, '[');
    for (int i = 0; i < order->nitems; i++) {
        const od_order_item_t *it = &order->items[i];
        od_jsonw_open(w, '{');
        od_jsonw_member_string(w, "sku", it->sku);
        od_jsonw_member_int(w, "quantity", it->quantity);
        od_jsonw_member_int(w, "unit_price_cents", it->unit_price_cents);
        od_jsonw_close(w, '}');
    }
    od_jsonw_close(w, ']');
}

const char *od_order_render(const od_order_t *order, const char *order_id, apr_time_t created_at,
                            apr_pool_t *p)
{
    od_jsonw_t *w = od_jsonw_create(p);
    char when[32];

    /* The documented member order is part of the API. */
    od_jsonw_open(w, '{');
    od_jsonw_member_string(w, "order_id", order_id);
    od_jsonw_member_string(w, "status", "ACCEPTED");
    od_jsonw_member_string(w, "customer_id", order->customer_id);
    od_jsonw_member_string(w, "currency", order->currency);
    od_order_render_items(w, order);
    if (order->note != NULL) {
        od_jsonw_member_string(w, "note", order->note);
    }
    od_jsonw_member_int(w, "total_cents", order->total_cents);
    od_jsonw_member_string(w, "created_at", od_order_format_time(when, created_at));
    od_jsonw_close(w, '}');
    return od_jsonw_finish(w, NULL);
}

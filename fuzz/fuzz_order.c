/*
 * fuzz_order: request bodies through od_order_parse, as POST /orders sees them.
 *
 * Each input is parsed under two rule sets: the shipped defaults (od_config_defaults) and the
 * widest the configuration allows. A rejection must name at least one field. An accepted order
 * must keep what od_order.h, od_canon.h and the API promise:
 *   - it is accepted under the wide rules too, with the same canonical form and total;
 *   - its canonical form is one JSON text without NUL that parses again (as an order) to the
 *     same canonical form, total and idempotency key (a 64-digit lower-case hex SHA-256);
 *   - its rendering is strict JSON with the documented members in the documented order, and
 *     says what the request said: customer, currency, every item, the note if there was one,
 *     and a total that is the sum of the items.
 */
#include "od_fuzz.h"
#include "od_canon.h"
#include "od_config.h"
#include "od_json.h"
#include "od_order.h"
#include "od_problem.h"
#include "od_sha256.h"

#include <apr_strings.h>
#include <apr_tables.h>
#include <json-c/json.h>
#include <string.h>

#define FUZZ_ORDER_ID "01JD8X2K3M4N5P6Q7R8S9T0V1W"
#define FUZZ_ORDER_CALLER "fuzz-caller"
/* 2026-11-21T10:00:00.123Z, the example in od_order.h. */
#define FUZZ_ORDER_CREATED_AT ((apr_time_t) 1795255200123000)
#define FUZZ_ORDER_CREATED_AT_TEXT "2026-11-21T10:00:00.123Z"

/* What one input is checked with; everything lives in the input's pool. */
typedef struct fuzz_order_s {
    const od_order_rules_t *defaults;
    const od_order_rules_t *wide;
    od_sha256_t *sha256;
    apr_pool_t *p;
} fuzz_order_t;

static void fuzz_order_setup(fuzz_order_t *f, apr_pool_t *p)
{
    od_settings_t s;
    od_order_rules_t *rules = NULL;
    const char *why = NULL;

    od_config_defaults(&s);
    f->p = p;
    OD_FUZZ_CHECK(od_order_rules_create(&rules, s.customer_id_pattern, s.max_quantity, s.max_items,
                                        &why, p) == APR_SUCCESS,
                  "the default rules compile: %s", why);
    f->defaults = rules;
    /* The largest max_quantity and max_items od_config accepts, and a pattern that takes every
     * customer_id the default one does. */
    OD_FUZZ_CHECK(od_order_rules_create(&rules, "^[A-Za-z0-9_-]{1,64}$", 1000000, 1000, &why, p) ==
                      APR_SUCCESS,
                  "the wide rules compile: %s", why);
    f->wide = rules;
    OD_FUZZ_CHECK(od_sha256_create(&f->sha256, p) == APR_SUCCESS, "SHA-256 is available");
}

static void fuzz_order_check_rejected(const od_order_t *order, const apr_array_header_t *errors)
{
    OD_FUZZ_CHECK(order == NULL, "a rejected body gives no order");
    OD_FUZZ_CHECK(errors != NULL && errors->nelts > 0, "a rejected body names a bad field");
    for (int i = 0; i < errors->nelts; i++) {
        const od_field_error_t *e = &APR_ARRAY_IDX(errors, i, od_field_error_t);
        OD_FUZZ_CHECK(e->field != NULL && e->message != NULL && e->message[0] != '\0',
                      "field error %d has a field and a message", i);
    }
}

/* Parses @p len bytes at @p body under @p rules; NULL when rejected (after checking how). */
static od_order_t *fuzz_order_parse(const od_order_rules_t *rules, const char *body, apr_size_t len,
                                    apr_pool_t *p)
{
    od_order_t *order = NULL;
    apr_array_header_t *errors = NULL;

    if (od_order_parse(&order, &errors, rules, body, len, p) != APR_SUCCESS) {
        fuzz_order_check_rejected(order, errors);
        return NULL;
    }
    OD_FUZZ_CHECK(order != NULL && errors == NULL, "an accepted body gives an order, no errors");
    return order;
}

static const char *fuzz_order_key(const fuzz_order_t *f, const od_order_t *order)
{
    apr_size_t len = 0;
    const char *canonical = od_order_canonical(order, &len);
    const char *key = od_canon_idempotency_key(f->sha256, FUZZ_ORDER_CALLER, canonical, len, f->p);

    OD_FUZZ_CHECK(strlen(key) == OD_CANON_KEY_HEX_LEN &&
                      strspn(key, "0123456789abcdef") == OD_CANON_KEY_HEX_LEN,
                  "the idempotency key is 64 lower-case hex digits: '%s'", key);
    return key;
}

static void fuzz_order_check_same(const od_order_t *a, const od_order_t *b, const char *what)
{
    apr_size_t alen = 0, blen = 0;
    const char *ac = od_order_canonical(a, &alen);
    const char *bc = od_order_canonical(b, &blen);

    OD_FUZZ_CHECK(alen == blen && memcmp(ac, bc, alen) == 0, "%s: same canonical form: %s / %s",
                  what, ac, bc);
    OD_FUZZ_CHECK(od_order_total_cents(a) == od_order_total_cents(b), "%s: same total", what);
}

static void fuzz_order_check_canonical(const fuzz_order_t *f, const od_order_rules_t *rules,
                                       const od_order_t *order)
{
    apr_size_t len = 0;
    const char *canonical = od_order_canonical(order, &len);

    OD_FUZZ_CHECK(canonical != NULL && strlen(canonical) == len,
                  "the canonical form is %zu bytes without NUL", (size_t) len);
    od_order_t *again = fuzz_order_parse(rules, canonical, len, f->p);
    OD_FUZZ_CHECK(again != NULL, "the canonical form is a valid order: %s", canonical);
    fuzz_order_check_same(order, again, "canonical form parsed again");
    OD_FUZZ_CHECK(strcmp(fuzz_order_key(f, order), fuzz_order_key(f, again)) == 0,
                  "the canonical form parsed again has the same idempotency key");
}

/* The member @p key of @p obj when it is a string, else NULL. */
static json_object *fuzz_order_string(json_object *obj, const char *key)
{
    json_object *v = NULL;

    return json_object_object_get_ex(obj, key, &v) && json_object_is_type(v, json_type_string)
               ? v
               : NULL;
}

static int fuzz_order_same_string(json_object *a, json_object *b)
{
    return a != NULL && b != NULL &&
           json_object_get_string_len(a) == json_object_get_string_len(b) &&
           memcmp(json_object_get_string(a), json_object_get_string(b),
                  (size_t) json_object_get_string_len(a)) == 0;
}

static void fuzz_order_check_member_order(json_object *doc, int has_note)
{
    static const char *const with_note[] = {"order_id",    "status",     "customer_id",
                                            "currency",    "items",      "note",
                                            "total_cents", "created_at", NULL};
    static const char *const without_note[] = {"order_id", "status",      "customer_id", "currency",
                                               "items",    "total_cents", "created_at",  NULL};
    const char *const *want = has_note ? with_note : without_note;
    struct json_object_iter it;
    int i = 0;

    json_object_object_foreachC(doc, it)
    {
        OD_FUZZ_CHECK(want[i] != NULL && strcmp(it.key, want[i]) == 0,
                      "rendered member %d is '%s', documented '%s'", i, it.key,
                      want[i] != NULL ? want[i] : "(none)");
        i++;
    }
    OD_FUZZ_CHECK(want[i] == NULL, "the rendering has every documented member");
}

static apr_int64_t fuzz_order_int(json_object *obj, const char *key)
{
    json_object *v = NULL;

    OD_FUZZ_CHECK(json_object_object_get_ex(obj, key, &v) && json_object_is_type(v, json_type_int),
                  "'%s' is an integer", key);
    return json_object_get_int64(v);
}

/* Every rendered item is the request's item at the same index; returns the sum of the lines. */
static apr_int64_t fuzz_order_check_items(json_object *rendered, json_object *request)
{
    json_object *ritems = NULL, *qitems = NULL;
    apr_int64_t sum = 0;

    OD_FUZZ_CHECK(json_object_object_get_ex(rendered, "items", &ritems) &&
                      json_object_object_get_ex(request, "items", &qitems),
                  "both documents have items");
    size_t n = json_object_array_length(qitems);
    OD_FUZZ_CHECK(json_object_array_length(ritems) == n, "the rendering has every item");
    for (size_t i = 0; i < n; i++) {
        json_object *r = json_object_array_get_idx(ritems, i);
        json_object *q = json_object_array_get_idx(qitems, i);
        OD_FUZZ_CHECK(
            fuzz_order_same_string(fuzz_order_string(r, "sku"), fuzz_order_string(q, "sku")),
            "item %zu: same sku", i);
        apr_int64_t quantity = fuzz_order_int(r, "quantity");
        apr_int64_t price = fuzz_order_int(r, "unit_price_cents");
        OD_FUZZ_CHECK(quantity == fuzz_order_int(q, "quantity") &&
                          price == fuzz_order_int(q, "unit_price_cents"),
                      "item %zu: same quantity and unit price", i);
        sum += quantity * price;
    }
    return sum;
}

static void fuzz_order_check_render(const fuzz_order_t *f, const od_order_t *order,
                                    const char *body, apr_size_t len)
{
    const char *text = od_order_render(order, FUZZ_ORDER_ID, FUZZ_ORDER_CREATED_AT, f->p);
    json_object *rendered = NULL, *request = NULL;
    const char *why = NULL;

    OD_FUZZ_CHECK(od_json_parse(&rendered, &why, text, strlen(text), f->p) == APR_SUCCESS &&
                      json_object_is_type(rendered, json_type_object),
                  "the rendering is a strict JSON object (%s): %s", why, text);
    OD_FUZZ_CHECK(od_json_parse(&request, &why, body, len, f->p) == APR_SUCCESS,
                  "an accepted body is strict JSON");
    int has_note = json_object_object_get_ex(request, "note", NULL);
    fuzz_order_check_member_order(rendered, has_note);
    OD_FUZZ_CHECK(strcmp(json_object_get_string(fuzz_order_string(rendered, "order_id")),
                         FUZZ_ORDER_ID) == 0 &&
                      strcmp(json_object_get_string(fuzz_order_string(rendered, "status")),
                             "ACCEPTED") == 0 &&
                      strcmp(json_object_get_string(fuzz_order_string(rendered, "created_at")),
                             FUZZ_ORDER_CREATED_AT_TEXT) == 0,
                  "order_id, status and created_at are as given: %s", text);
    static const char *const echoed[] = {"customer_id", "currency", "note"};
    for (size_t i = 0; i < sizeof(echoed) / sizeof(echoed[0]); i++) {
        json_object *q = fuzz_order_string(request, echoed[i]);
        OD_FUZZ_CHECK((q == NULL && !json_object_object_get_ex(rendered, echoed[i], NULL)) ||
                          fuzz_order_same_string(fuzz_order_string(rendered, echoed[i]), q),
                      "'%s' is rendered as the request gave it", echoed[i]);
    }
    apr_int64_t sum = fuzz_order_check_items(rendered, request);
    OD_FUZZ_CHECK(sum == od_order_total_cents(order) &&
                      sum == fuzz_order_int(rendered, "total_cents"),
                  "total_cents is the sum of the items");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = od_fuzz_pool();
    fuzz_order_t f;
    const char *body = (const char *) data;

    fuzz_order_setup(&f, p);
    od_order_t *order = fuzz_order_parse(f.defaults, body, size, p);
    od_order_t *wide = fuzz_order_parse(f.wide, body, size, p);
    if (order != NULL) {
        OD_FUZZ_CHECK(wide != NULL, "an order valid under the default rules is valid under wider");
        fuzz_order_check_same(order, wide, "default and wide rules");
        fuzz_order_check_canonical(&f, f.defaults, order);
        fuzz_order_check_render(&f, order, body, size);
    }
    if (wide != NULL) {
        fuzz_order_check_canonical(&f, f.wide, wide);
        fuzz_order_check_render(&f, wide, body, size);
    }
    apr_pool_destroy(p);
    return 0;
}

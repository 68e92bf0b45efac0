/* Tests for od_order: validation, canonical form and rendering of orders. */
#include "od_canon.h"
#include "od_order.h"
#include "od_problem.h"
#include "od_status.h"
#include "od_suites.h"

#include <apr_strings.h>
#include <string.h>

#define CUSTOMER_PATTERN "^CUST-[0-9]{6}$" /* the shipped default */
#define MAX_QUANTITY 100
#define MAX_ITEMS 10
#define ITEM "{\"sku\":\"ABC-1\",\"quantity\":2,\"unit_price_cents\":1999}"
#define BODY(items) "{\"customer_id\":\"CUST-000123\",\"currency\":\"EUR\",\"items\":[" items "]}"

/* 2026-11-21T10:00:00Z is 1795255200 s after the epoch (date -u -d ... +%s). */
#define FIXED_TIME (APR_INT64_C(1795255200) * APR_USEC_PER_SEC + 123456)

static od_order_rules_t *rules_with(const char *pattern, int max_quantity, int max_items)
{
    od_order_rules_t *rules = NULL;
    const char *errmsg = NULL;
    apr_status_t rv =
        od_order_rules_create(&rules, pattern, max_quantity, max_items, &errmsg, od_test_pool);

    ck_assert_msg(rv == APR_SUCCESS, "rules: %s", errmsg);
    ck_assert_ptr_nonnull(rules);
    return rules;
}

static od_order_rules_t *rules_default(void)
{
    return rules_with(CUSTOMER_PATTERN, MAX_QUANTITY, MAX_ITEMS);
}

static od_order_t *accept_with(const od_order_rules_t *rules, const char *body)
{
    od_order_t *order = NULL;
    apr_array_header_t *errors = (apr_array_header_t *) 1;
    apr_status_t rv = od_order_parse(&order, &errors, rules, body, strlen(body), od_test_pool);

    ck_assert_msg(rv == APR_SUCCESS, "rejected %s: %s: %s", body,
                  rv == APR_SUCCESS || errors->nelts == 0
                      ? "?"
                      : APR_ARRAY_IDX(errors, 0, od_field_error_t).field,
                  rv == APR_SUCCESS || errors->nelts == 0
                      ? "?"
                      : APR_ARRAY_IDX(errors, 0, od_field_error_t).message);
    ck_assert_ptr_nonnull(order);
    ck_assert_ptr_null(errors);
    return order;
}

static od_order_t *accept_body(const char *body)
{
    return accept_with(rules_default(), body);
}

static apr_array_header_t *reject_with(const od_order_rules_t *rules, const char *body,
                                       apr_size_t len)
{
    od_order_t *order = (od_order_t *) 1;
    apr_array_header_t *errors = NULL;
    apr_status_t rv = od_order_parse(&order, &errors, rules, body, len, od_test_pool);

    ck_assert_msg(rv == OD_EINVAL, "accepted %s", body);
    ck_assert_ptr_null(order);
    ck_assert_ptr_nonnull(errors);
    ck_assert_int_gt(errors->nelts, 0);
    return errors;
}

static apr_array_header_t *reject_body(const char *body)
{
    return reject_with(rules_default(), body, strlen(body));
}

static const od_field_error_t *error_at(const apr_array_header_t *errors, int i)
{
    return &APR_ARRAY_IDX(errors, i, od_field_error_t);
}

/* Asserts exactly one error, on @p field, with @p message unless that is NULL. */
static void expect_one(const char *body, const char *field, const char *message)
{
    apr_array_header_t *errors = reject_body(body);

    ck_assert_msg(errors->nelts == 1, "%s: %d errors, first %s: %s", body, errors->nelts,
                  error_at(errors, 0)->field, error_at(errors, 0)->message);
    ck_assert_str_eq(error_at(errors, 0)->field, field);
    if (message != NULL) {
        ck_assert_str_eq(error_at(errors, 0)->message, message);
    }
}

static void expect_fields(const apr_array_header_t *errors, int n, const char *const *fields)
{
    ck_assert_int_eq(errors->nelts, n);
    for (int i = 0; i < n; i++) {
        ck_assert_str_eq(error_at(errors, i)->field, fields[i]);
    }
}

static const char *with_item(const char *item)
{
    return apr_psprintf(od_test_pool, BODY("%s"), item);
}

static const char *with_quantity(const char *q)
{
    return with_item(apr_psprintf(
        od_test_pool, "{\"sku\":\"ABC-1\",\"quantity\":%s,\"unit_price_cents\":1999}", q));
}

static const char *with_price(const char *v)
{
    return with_item(apr_psprintf(od_test_pool,
                                  "{\"sku\":\"ABC-1\",\"quantity\":2,\"unit_price_cents\":%s}", v));
}

static const char *with_sku(const char *v)
{
    return with_item(
        apr_psprintf(od_test_pool, "{\"sku\":%s,\"quantity\":2,\"unit_price_cents\":1999}", v));
}

static const char *with_top(const char *customer, const char *currency)
{
    return apr_psprintf(od_test_pool, "{\"customer_id\":%s,\"currency\":%s,\"items\":[" ITEM "]}",
                        customer, currency);
}

static const char *with_note(const char *note)
{
    return apr_psprintf(od_test_pool,
                        "{\"customer_id\":\"CUST-000123\",\"currency\":\"EUR\",\"items\":[" ITEM
                        "],\"note\":%s}",
                        note);
}

static const char *with_items(int n)
{
    const char *items = "";

    for (int i = 0; i < n; i++) {
        items = apr_pstrcat(od_test_pool, items, i > 0 ? "," : "", ITEM, NULL);
    }
    return with_item(items);
}

/* A JSON string of @p n copies of @p unit. */
static const char *repeat_string(const char *unit, int n)
{
    const char *s = "\"";

    for (int i = 0; i < n; i++) {
        s = apr_pstrcat(od_test_pool, s, unit, NULL);
    }
    return apr_pstrcat(od_test_pool, s, "\"", NULL);
}

static const char *canonical_of(const char *body)
{
    return od_order_canonical(accept_body(body), NULL);
}

START_TEST(test_order_valid_accepted)
{
    od_order_t *order =
        accept_body(BODY(ITEM ",{\"sku\":\"XYZ-9\",\"quantity\":1,\"unit_price_cents\":0}"));

    ck_assert_int_eq(od_order_total_cents(order), 3998);
}
END_TEST

START_TEST(test_order_rules_bad_pattern_rejected)
{
    od_order_rules_t *rules = (od_order_rules_t *) 1;
    const char *errmsg = NULL;

    ck_assert_int_eq(od_order_rules_create(&rules, "^[a-z", 100, 10, &errmsg, od_test_pool),
                     OD_ECONFIG);
    ck_assert_ptr_null(rules);
    ck_assert_ptr_nonnull(errmsg);
    ck_assert_ptr_nonnull(strstr(errmsg, "^[a-z"));
}
END_TEST

/* The rules compile through od_regex too, so a costly pattern never reaches regcomp here. */
START_TEST(test_order_rules_costly_pattern_rejected)
{
    od_order_rules_t *rules = (od_order_rules_t *) 1;
    const char *errmsg = NULL;

    ck_assert_int_eq(
        od_order_rules_create(&rules, "(a{1,100}){1,100}", 100, 10, &errmsg, od_test_pool),
        OD_ECONFIG);
    ck_assert_ptr_null(rules);
    ck_assert_msg(strstr(errmsg, "customer_id pattern '(a{1,100}){1,100}' is too costly") != NULL,
                  "%s", errmsg);
}
END_TEST

START_TEST(test_order_rules_non_positive_limits_rejected)
{
    od_order_rules_t *rules = NULL;
    const char *errmsg = NULL;

    ck_assert_int_eq(od_order_rules_create(&rules, CUSTOMER_PATTERN, 0, 10, &errmsg, od_test_pool),
                     OD_ECONFIG);
    ck_assert_ptr_nonnull(errmsg);
    ck_assert_int_eq(
        od_order_rules_create(&rules, CUSTOMER_PATTERN, 100, -1, &errmsg, od_test_pool),
        OD_ECONFIG);
    ck_assert_ptr_null(rules);
}
END_TEST

START_TEST(test_order_quantity_0_rejected)
{
    expect_one(with_quantity("0"), "items[0].quantity", "must be between 1 and 100");
}
END_TEST

START_TEST(test_order_quantity_1_accepted)
{
    ck_assert_int_eq(od_order_total_cents(accept_body(with_quantity("1"))), 1999);
}
END_TEST

START_TEST(test_order_quantity_100_accepted)
{
    ck_assert_int_eq(od_order_total_cents(accept_body(with_quantity("100"))), 199900);
}
END_TEST

START_TEST(test_order_quantity_101_rejected)
{
    expect_one(with_quantity("101"), "items[0].quantity", "must be between 1 and 100");
}
END_TEST

START_TEST(test_order_quantity_negative_and_huge_rejected)
{
    expect_one(with_quantity("-1"), "items[0].quantity", "must be between 1 and 100");
    expect_one(with_quantity("99999999999999999999"), "items[0].quantity",
               "must be between 1 and 100");
    expect_one(with_quantity("-99999999999999999999"), "items[0].quantity",
               "must be between 1 and 100");
}
END_TEST

START_TEST(test_order_quantity_custom_max)
{
    od_order_rules_t *rules = rules_with(CUSTOMER_PATTERN, 5, MAX_ITEMS);
    apr_array_header_t *errors = NULL;
    const char *body = with_quantity("6");

    accept_with(rules, with_quantity("5"));
    errors = reject_with(rules, body, strlen(body));
    ck_assert_int_eq(errors->nelts, 1);
    ck_assert_str_eq(error_at(errors, 0)->message, "must be between 1 and 5");
}
END_TEST

static const char *const wrong_quantities[] = {"2.5",  "2.0",  "1e2", "\"2\"",
                                               "true", "null", "[]",  "{}"};

START_TEST(test_order_quantity_wrong_type_rejected)
{
    expect_one(with_quantity(wrong_quantities[_i]), "items[0].quantity", "must be an integer");
}
END_TEST

START_TEST(test_order_unit_price_negative_rejected)
{
    expect_one(with_price("-1"), "items[0].unit_price_cents", "must be between 0 and 1000000000");
}
END_TEST

START_TEST(test_order_unit_price_0_accepted)
{
    ck_assert_int_eq(od_order_total_cents(accept_body(with_price("0"))), 0);
}
END_TEST

START_TEST(test_order_unit_price_max_accepted)
{
    ck_assert_int_eq(od_order_total_cents(accept_body(with_price("1000000000"))), 2000000000LL);
}
END_TEST

START_TEST(test_order_unit_price_over_max_rejected)
{
    expect_one(with_price("1000000001"), "items[0].unit_price_cents",
               "must be between 0 and 1000000000");
}
END_TEST

START_TEST(test_order_unit_price_wrong_type_rejected)
{
    expect_one(with_price("19.99"), "items[0].unit_price_cents", "must be an integer");
    expect_one(with_price("\"1999\""), "items[0].unit_price_cents", "must be an integer");
    expect_one(with_price("null"), "items[0].unit_price_cents", "must be an integer");
}
END_TEST

START_TEST(test_order_items_empty_rejected)
{
    expect_one(BODY(""), "items", "must have between 1 and 10 items");
}
END_TEST

START_TEST(test_order_items_max_accepted)
{
    od_order_t *order = accept_body(with_items(MAX_ITEMS));

    ck_assert_int_eq(od_order_total_cents(order), 10 * 3998);
}
END_TEST

START_TEST(test_order_items_over_max_rejected)
{
    expect_one(with_items(MAX_ITEMS + 1), "items", "must have between 1 and 10 items");
}
END_TEST

START_TEST(test_order_items_wrong_type_rejected)
{
    expect_one("{\"customer_id\":\"CUST-000123\",\"currency\":\"EUR\",\"items\":{}}", "items",
               "must be an array");
    expect_one("{\"customer_id\":\"CUST-000123\",\"currency\":\"EUR\",\"items\":null}", "items",
               "must be an array");
}
END_TEST

START_TEST(test_order_item_not_object_rejected)
{
    expect_one(BODY(ITEM "," ITEM ",5"), "items[2]", "must be an object");
    expect_one(BODY("\"ABC-1\""), "items[0]", "must be an object");
}
END_TEST

START_TEST(test_order_extra_top_level_field_rejected)
{
    expect_one("{\"customer_id\":\"CUST-000123\",\"currency\":\"EUR\",\"items\":[" ITEM
               "],\"extra_top_level\":1}",
               "extra_top_level", "unknown field");
}
END_TEST

START_TEST(test_order_unknown_item_field_rejected)
{
    expect_one(BODY(ITEM ",{\"sku\":\"ABC-1\",\"quantity\":2,\"unit_price_cents\":1,"
                         "\"colour\":\"red\"}"),
               "items[1].colour", "unknown field");
}
END_TEST

START_TEST(test_order_missing_customer_id_rejected)
{
    expect_one("{\"currency\":\"EUR\",\"items\":[" ITEM "]}", "customer_id", "is required");
}
END_TEST

START_TEST(test_order_missing_currency_rejected)
{
    expect_one("{\"customer_id\":\"CUST-000123\",\"items\":[" ITEM "]}", "currency", "is required");
}
END_TEST

START_TEST(test_order_missing_items_rejected)
{
    expect_one("{\"customer_id\":\"CUST-000123\",\"currency\":\"EUR\"}", "items", "is required");
}
END_TEST

START_TEST(test_order_missing_sku_rejected)
{
    expect_one(BODY("{\"quantity\":2,\"unit_price_cents\":1}"), "items[0].sku", "is required");
}
END_TEST

START_TEST(test_order_missing_quantity_rejected)
{
    expect_one(BODY("{\"sku\":\"ABC-1\",\"unit_price_cents\":1}"), "items[0].quantity",
               "is required");
}
END_TEST

START_TEST(test_order_missing_unit_price_rejected)
{
    expect_one(BODY("{\"sku\":\"ABC-1\",\"quantity\":2}"), "items[0].unit_price_cents",
               "is required");
}
END_TEST

START_TEST(test_order_empty_object_reports_all_required)
{
    static const char *const fields[] = {"customer_id", "currency", "items"};

    expect_fields(reject_body("{}"), 3, fields);
}
END_TEST

START_TEST(test_order_many_errors_reported_at_once)
{
    static const char *const fields[] = {
        "customer_id",
        "currency",
        "items[0].sku",
        "items[0].quantity",
        "items[0].unit_price_cents",
        "items[0].colour",
        "items[1]",
        "items[2].quantity",
        "note",
        "zzz",
    };
    apr_array_header_t *errors = reject_body(
        "{\"customer_id\":5,\"currency\":\"eur\",\"items\":[{\"sku\":\"a\",\"quantity\":0,"
        "\"unit_price_cents\":-1,\"colour\":\"red\"},7,{\"sku\":\"OK-1\",\"quantity\":2.5,"
        "\"unit_price_cents\":1}],\"note\":1,\"zzz\":true}");

    expect_fields(errors, 10, fields);
    ck_assert_str_eq(error_at(errors, 0)->message, "must be a string");
    ck_assert_str_eq(error_at(errors, 3)->message, "must be between 1 and 100");
    ck_assert_str_eq(error_at(errors, 5)->message, "unknown field");
    ck_assert_str_eq(error_at(errors, 7)->message, "must be an integer");
}
END_TEST

START_TEST(test_order_too_many_items_and_bad_item_both_reported)
{
    static const char *const fields[] = {"items", "items[3].quantity"};
    const char *items = ITEM "," ITEM "," ITEM ",{\"sku\":\"ABC-1\",\"quantity\":0,"
                             "\"unit_price_cents\":1}";
    od_order_rules_t *rules = rules_with(CUSTOMER_PATTERN, MAX_QUANTITY, 3);
    const char *body = with_item(items);

    expect_fields(reject_with(rules, body, strlen(body)), 2, fields);
}
END_TEST

START_TEST(test_order_customer_id_pattern_mismatch_rejected)
{
    expect_one(with_top("\"cust 1\"", "\"EUR\""), "customer_id",
               "does not match the required pattern");
    expect_one(with_top("\"\"", "\"EUR\""), "customer_id", "does not match the required pattern");
    expect_one(with_top("\"caf\\u00e9\"", "\"EUR\""), "customer_id",
               "does not match the required pattern");
    expect_one(with_top("\"CUST-00012\"", "\"EUR\""), "customer_id",
               "does not match the required pattern");
    expect_one(with_top("\"CUST-0001234\"", "\"EUR\""), "customer_id",
               "does not match the required pattern");
    expect_one(with_top("\"cust-000123\"", "\"EUR\""), "customer_id",
               "does not match the required pattern");
}
END_TEST

START_TEST(test_order_customer_id_wrong_type_rejected)
{
    expect_one(with_top("42", "\"EUR\""), "customer_id", "must be a string");
    expect_one(with_top("null", "\"EUR\""), "customer_id", "must be a string");
}
END_TEST

START_TEST(test_order_customer_id_custom_pattern)
{
    od_order_rules_t *rules = rules_with("^C[0-9]{4}$", MAX_QUANTITY, MAX_ITEMS);
    const char *bad = with_top("\"CUST-000123\"", "\"EUR\"");
    const char *bad2 = with_top("\"C12345\"", "\"EUR\"");

    accept_with(rules, with_top("\"C1234\"", "\"EUR\""));
    ck_assert_str_eq(error_at(reject_with(rules, bad, strlen(bad)), 0)->field, "customer_id");
    ck_assert_str_eq(error_at(reject_with(rules, bad2, strlen(bad2)), 0)->field, "customer_id");
}
END_TEST

START_TEST(test_order_currency_lower_case_rejected)
{
    expect_one(with_top("\"CUST-000123\"", "\"eur\""), "currency",
               "must be three upper-case letters");
}
END_TEST

START_TEST(test_order_currency_too_long_rejected)
{
    expect_one(with_top("\"CUST-000123\"", "\"EURO\""), "currency",
               "must be three upper-case letters");
}
END_TEST

START_TEST(test_order_currency_too_short_rejected)
{
    expect_one(with_top("\"CUST-000123\"", "\"EU\""), "currency",
               "must be three upper-case letters");
}
END_TEST

START_TEST(test_order_currency_other_bad_values_rejected)
{
    expect_one(with_top("\"CUST-000123\"", "\"E1R\""), "currency",
               "must be three upper-case letters");
    expect_one(with_top("\"CUST-000123\"", "\"\\u00c9UR\""), "currency",
               "must be three upper-case letters");
    expect_one(with_top("\"CUST-000123\"", "978"), "currency", "must be a string");
}
END_TEST

START_TEST(test_order_sku_3_chars_accepted)
{
    accept_body(with_sku("\"AB1\""));
}
END_TEST

START_TEST(test_order_sku_32_chars_accepted)
{
    accept_body(with_sku("\"A234567890-234567890-234567890-2\""));
}
END_TEST

START_TEST(test_order_sku_2_chars_rejected)
{
    expect_one(with_sku("\"AB\""), "items[0].sku", NULL);
}
END_TEST

START_TEST(test_order_sku_33_chars_rejected)
{
    expect_one(with_sku("\"A234567890-234567890-234567890-23\""), "items[0].sku", NULL);
}
END_TEST

START_TEST(test_order_sku_lower_case_rejected)
{
    expect_one(with_sku("\"abc-1\""), "items[0].sku", NULL);
}
END_TEST

START_TEST(test_order_sku_other_bad_values_rejected)
{
    expect_one(with_sku("\"-ABC\""), "items[0].sku", NULL);
    expect_one(with_sku("\"AB C\""), "items[0].sku", NULL);
    expect_one(with_sku("\"AB_C\""), "items[0].sku", NULL);
    expect_one(with_sku("42"), "items[0].sku", "must be a string");
    accept_body(with_sku("\"0--\""));
}
END_TEST

START_TEST(test_order_note_200_chars_accepted)
{
    /* 200 two-byte and 200 four-byte code points: characters count, not bytes. */
    accept_body(with_note(repeat_string("\xc3\xa9", 200)));
    accept_body(with_note(repeat_string("\xf0\x9f\x98\x80", 200)));
    accept_body(with_note(repeat_string("\\u20ac", 200)));
}
END_TEST

START_TEST(test_order_note_201_chars_rejected)
{
    expect_one(with_note(repeat_string("\xc3\xa9", 201)), "note", "must be at most 200 characters");
    expect_one(with_note(repeat_string("\\ud83d\\ude00", 201)), "note",
               "must be at most 200 characters");
}
END_TEST

START_TEST(test_order_note_wrong_type_rejected)
{
    expect_one(with_note("null"), "note", "must be a string");
    expect_one(with_note("[\"x\"]"), "note", "must be a string");
}
END_TEST

START_TEST(test_order_note_empty_accepted)
{
    const char *out = od_order_render(accept_body(with_note("\"\"")), "X", 0, od_test_pool);

    ck_assert_ptr_nonnull(strstr(out, "\"note\":\"\""));
}
END_TEST

START_TEST(test_order_invalid_utf8_rejected)
{
    expect_one(with_note("\"caf\xc3\""), "", NULL);
    expect_one(with_note("\"\xed\xa0\x80\""), "", NULL);
}
END_TEST

START_TEST(test_order_top_level_array_rejected)
{
    expect_one("[" ITEM "]", "", "must be a JSON object");
}
END_TEST

START_TEST(test_order_top_level_string_rejected)
{
    expect_one("\"order\"", "", "must be a JSON object");
}
END_TEST

START_TEST(test_order_top_level_number_rejected)
{
    expect_one("42", "", "must be a JSON object");
    expect_one("null", "", "must be a JSON object");
}
END_TEST

START_TEST(test_order_empty_body_rejected)
{
    apr_array_header_t *errors = reject_with(rules_default(), "", 0);

    ck_assert_int_eq(errors->nelts, 1);
    ck_assert_str_eq(error_at(errors, 0)->field, "");
}
END_TEST

START_TEST(test_order_duplicate_key_rejected)
{
    apr_array_header_t *errors = reject_body(
        "{\"customer_id\":\"a\",\"customer_id\":\"b\",\"currency\":\"EUR\",\"items\":[" ITEM "]}");

    ck_assert_int_eq(errors->nelts, 1);
    ck_assert_str_eq(error_at(errors, 0)->field, "");
    ck_assert_str_eq(error_at(errors, 0)->message, "malformed JSON: duplicate key 'customer_id'");
}
END_TEST

START_TEST(test_order_duplicate_key_via_escape_rejected)
{
    expect_one("{\"customer_id\":\"a\",\"\\u0063ustomer_id\":\"b\",\"currency\":\"EUR\","
               "\"items\":[" ITEM "]}",
               "", "malformed JSON: duplicate key 'customer_id'");
    expect_one(BODY("{\"sku\":\"ABC-1\",\"quantity\":2,\"quantit\\u0079\":3,"
                    "\"unit_price_cents\":1}"),
               "", "malformed JSON: duplicate key 'quantity'");
}
END_TEST

START_TEST(test_order_single_quotes_rejected)
{
    expect_one("{'customer_id':'CUST-000123','currency':'EUR','items':[" ITEM "]}", "", NULL);
}
END_TEST

START_TEST(test_order_nan_rejected)
{
    expect_one(with_quantity("NaN"), "", NULL);
    expect_one(with_quantity("-Infinity"), "", NULL);
}
END_TEST

START_TEST(test_order_trailing_garbage_rejected)
{
    expect_one(BODY(ITEM) "x", "", NULL);
    expect_one(BODY(ITEM) BODY(ITEM), "", NULL);
}
END_TEST

START_TEST(test_order_nul_escape_rejected)
{
    expect_one(with_top("\"cust\\u0000x\"", "\"EUR\""), "", NULL);
}
END_TEST

START_TEST(test_order_lone_surrogate_rejected)
{
    expect_one(with_note("\"\\ud800\""), "", NULL);
}
END_TEST

START_TEST(test_order_canonical_exact)
{
    apr_size_t len = 0;
    const char *canonical =
        od_order_canonical(accept_body(" {\"items\" : [" ITEM "] ,\"customer_id\":"
                                       "\"CUST-000123\",\"currency\":\"EUR\"}"),
                           &len);

    ck_assert_str_eq(canonical, "{\"currency\":\"EUR\",\"customer_id\":\"CUST-000123\",\"items\":[{"
                                "\"quantity\":2,\"sku\":\"ABC-1\",\"unit_price_cents\":1999}]}");
    ck_assert_uint_eq(len, strlen(canonical));
}
END_TEST

START_TEST(test_order_canonical_invariant)
{
    const char *a = canonical_of(BODY(ITEM));
    const char *b =
        canonical_of("\n{ \"items\": [ { \"unit_price_cents\": 1999, \"quantity\": 2, \"sku\": "
                     "\"ABC\\u002d1\" } "
                     "], \"currency\": \"\\u0045UR\", \"customer_id\": \"CUST\\u002d000123\" }\n");

    ck_assert_str_eq(a, b);
}
END_TEST

START_TEST(test_order_canonical_slash_escape_invariant)
{
    ck_assert_str_eq(canonical_of(with_note("\"a/b\"")), canonical_of(with_note("\"a\\/b\"")));
}
END_TEST

START_TEST(test_order_canonical_sensitive_to_values)
{
    ck_assert_str_ne(canonical_of(with_quantity("2")), canonical_of(with_quantity("3")));
    ck_assert_str_ne(canonical_of(BODY(ITEM)), canonical_of(with_note("\"x\"")));
}
END_TEST

START_TEST(test_order_canonical_item_order_matters)
{
    const char *other = "{\"sku\":\"XYZ-9\",\"quantity\":1,\"unit_price_cents\":5}";

    ck_assert_str_ne(canonical_of(with_item(apr_pstrcat(od_test_pool, ITEM ",", other, NULL))),
                     canonical_of(with_item(apr_pstrcat(od_test_pool, other, ",", ITEM, NULL))));
}
END_TEST

START_TEST(test_order_idempotency_key_known_answer)
{
    apr_size_t len = 0;
    const char *canonical = od_order_canonical(accept_body(BODY(ITEM)), &len);

    /* printf 'anonymous\0%s' '{"currency":"EUR","customer_id":"CUST-000123","items":[{"quantity":
     * 2,"sku":"ABC-1","unit_price_cents":1999}]}' | sha256sum   (joined into one line, no white
     * space; python3 hashlib.sha256 gives the same) */
    od_sha256_t *h = NULL;
    ck_assert_int_eq(od_sha256_create(&h, od_test_pool), APR_SUCCESS);
    ck_assert_str_eq(od_canon_idempotency_key(h, "anonymous", canonical, len, od_test_pool),
                     "115bc535255cb456dbecd5ce1323b34f56af58e6b1f3fbc2501d080403b7832c");
    ck_assert_str_ne(od_canon_idempotency_key(h, "alice", canonical, len, od_test_pool),
                     "115bc535255cb456dbecd5ce1323b34f56af58e6b1f3fbc2501d080403b7832c");
}
END_TEST

START_TEST(test_order_total_max)
{
    const char *item = "{\"sku\":\"ABC-1\",\"quantity\":100,\"unit_price_cents\":1000000000}";
    const char *items = item;

    for (int i = 1; i < MAX_ITEMS; i++) {
        items = apr_pstrcat(od_test_pool, items, ",", item, NULL);
    }
    ck_assert(od_order_total_cents(accept_body(with_item(items))) == APR_INT64_C(1000000000000));
}
END_TEST

START_TEST(test_order_total_overflow_rejected)
{
    od_order_rules_t *rules = rules_with(CUSTOMER_PATTERN, 2147483647, MAX_ITEMS);
    const char *item =
        "{\"sku\":\"ABC-1\",\"quantity\":2147483647,\"unit_price_cents\":1000000000}";
    const char *body = with_item(
        apr_pstrcat(od_test_pool, item, ",", item, ",", item, ",", item, ",", item, NULL));
    apr_array_header_t *errors = reject_with(rules, body, strlen(body));

    ck_assert_int_eq(errors->nelts, 1);
    ck_assert_str_eq(error_at(errors, 0)->field, "items");
    ck_assert_str_eq(error_at(errors, 0)->message, "total is too large");
}
END_TEST

START_TEST(test_order_format_time)
{
    char buf[25];

    ck_assert_str_eq(od_order_format_time(buf, FIXED_TIME), "2026-11-21T10:00:00.123Z");
    ck_assert_str_eq(od_order_format_time(buf, 0), "1970-01-01T00:00:00.000Z");
    ck_assert_str_eq(od_order_format_time(buf, APR_INT64_C(951825599999999)),
                     "2000-02-29T11:59:59.999Z");
}
END_TEST

START_TEST(test_order_render_exact)
{
    od_order_t *order = accept_body("{\"note\":\"leave at door / ring \\u00e9\",\"items\":[" ITEM
                                    ",{\"sku\":\"XYZ-9\",\"unit_price_cents\":500,\"quantity\":1}],"
                                    "\"currency\":\"EUR\",\"customer_id\":\"CUST-000123\"}");

    ck_assert_str_eq(
        od_order_render(order, "01JDQ8Z6V9X4S3R2P1N0M7K5H4", FIXED_TIME, od_test_pool),
        "{\"order_id\":\"01JDQ8Z6V9X4S3R2P1N0M7K5H4\",\"status\":\"ACCEPTED\","
        "\"customer_id\":\"CUST-000123\",\"currency\":\"EUR\",\"items\":[{\"sku\":"
        "\"ABC-1\",\"quantity\":2,\"unit_price_cents\":1999},{\"sku\":\"XYZ-9\","
        "\"quantity\":1,\"unit_price_cents\":500}],\"note\":\"leave at door / ring "
        "\xc3\xa9\",\"total_cents\":4498,\"created_at\":\"2026-11-21T10:00:00.123Z\"}");
}
END_TEST

START_TEST(test_order_render_without_note)
{
    ck_assert_str_eq(
        od_order_render(accept_body(BODY(ITEM)), "ID1", FIXED_TIME, od_test_pool),
        "{\"order_id\":\"ID1\",\"status\":\"ACCEPTED\",\"customer_id\":\"CUST-000123\","
        "\"currency\":\"EUR\",\"items\":[{\"sku\":\"ABC-1\",\"quantity\":2,"
        "\"unit_price_cents\":1999}],\"total_cents\":3998,"
        "\"created_at\":\"2026-11-21T10:00:00.123Z\"}");
}
END_TEST

START_TEST(test_order_survives_body_reuse)
{
    char body[] = BODY(ITEM);
    od_order_t *order = accept_body(body);

    memset(body, 'x', sizeof(body) - 1);
    ck_assert_ptr_nonnull(
        strstr(od_order_render(order, "ID", 0, od_test_pool), "\"customer_id\":\"CUST-000123\""));
}
END_TEST

Suite *od_order_suite(void)
{
    Suite *s = suite_create("order");
    TCase *tc = tcase_create("core");
    int nwrong = (int) (sizeof(wrong_quantities) / sizeof(wrong_quantities[0]));

    tcase_add_checked_fixture(tc, od_test_pool_setup, od_test_pool_teardown);
    tcase_add_test(tc, test_order_valid_accepted);
    tcase_add_test(tc, test_order_rules_bad_pattern_rejected);
    tcase_add_test(tc, test_order_rules_costly_pattern_rejected);
    tcase_add_test(tc, test_order_rules_non_positive_limits_rejected);
    tcase_add_test(tc, test_order_quantity_0_rejected);
    tcase_add_test(tc, test_order_quantity_1_accepted);
    tcase_add_test(tc, test_order_quantity_100_accepted);
    tcase_add_test(tc, test_order_quantity_101_rejected);
    tcase_add_test(tc, test_order_quantity_negative_and_huge_rejected);
    tcase_add_test(tc, test_order_quantity_custom_max);
    tcase_add_loop_test(tc, test_order_quantity_wrong_type_rejected, 0, nwrong);
    tcase_add_test(tc, test_order_unit_price_negative_rejected);
    tcase_add_test(tc, test_order_unit_price_0_accepted);
    tcase_add_test(tc, test_order_unit_price_max_accepted);
    tcase_add_test(tc, test_order_unit_price_over_max_rejected);
    tcase_add_test(tc, test_order_unit_price_wrong_type_rejected);
    tcase_add_test(tc, test_order_items_empty_rejected);
    tcase_add_test(tc, test_order_items_max_accepted);
    tcase_add_test(tc, test_order_items_over_max_rejected);
    tcase_add_test(tc, test_order_items_wrong_type_rejected);
    tcase_add_test(tc, test_order_item_not_object_rejected);
    tcase_add_test(tc, test_order_extra_top_level_field_rejected);
    tcase_add_test(tc, test_order_unknown_item_field_rejected);
    tcase_add_test(tc, test_order_missing_customer_id_rejected);
    tcase_add_test(tc, test_order_missing_currency_rejected);
    tcase_add_test(tc, test_order_missing_items_rejected);
    tcase_add_test(tc, test_order_missing_sku_rejected);
    tcase_add_test(tc, test_order_missing_quantity_rejected);
    tcase_add_test(tc, test_order_missing_unit_price_rejected);
    tcase_add_test(tc, test_order_empty_object_reports_all_required);
    tcase_add_test(tc, test_order_many_errors_reported_at_once);
    tcase_add_test(tc, test_order_too_many_items_and_bad_item_both_reported);
    tcase_add_test(tc, test_order_customer_id_pattern_mismatch_rejected);
    tcase_add_test(tc, test_order_customer_id_wrong_type_rejected);
    tcase_add_test(tc, test_order_customer_id_custom_pattern);
    tcase_add_test(tc, test_order_currency_lower_case_rejected);
    tcase_add_test(tc, test_order_currency_too_long_rejected);
    tcase_add_test(tc, test_order_currency_too_short_rejected);
    tcase_add_test(tc, test_order_currency_other_bad_values_rejected);
    tcase_add_test(tc, test_order_sku_3_chars_accepted);
    tcase_add_test(tc, test_order_sku_32_chars_accepted);
    tcase_add_test(tc, test_order_sku_2_chars_rejected);
    tcase_add_test(tc, test_order_sku_33_chars_rejected);
    tcase_add_test(tc, test_order_sku_lower_case_rejected);
    tcase_add_test(tc, test_order_sku_other_bad_values_rejected);
    tcase_add_test(tc, test_order_note_200_chars_accepted);
    tcase_add_test(tc, test_order_note_201_chars_rejected);
    tcase_add_test(tc, test_order_note_wrong_type_rejected);
    tcase_add_test(tc, test_order_note_empty_accepted);
    tcase_add_test(tc, test_order_invalid_utf8_rejected);
    tcase_add_test(tc, test_order_top_level_array_rejected);
    tcase_add_test(tc, test_order_top_level_string_rejected);
    tcase_add_test(tc, test_order_top_level_number_rejected);
    tcase_add_test(tc, test_order_empty_body_rejected);
    tcase_add_test(tc, test_order_duplicate_key_rejected);
    tcase_add_test(tc, test_order_duplicate_key_via_escape_rejected);
    tcase_add_test(tc, test_order_single_quotes_rejected);
    tcase_add_test(tc, test_order_nan_rejected);
    tcase_add_test(tc, test_order_trailing_garbage_rejected);
    tcase_add_test(tc, test_order_nul_escape_rejected);
    tcase_add_test(tc, test_order_lone_surrogate_rejected);
    tcase_add_test(tc, test_order_canonical_exact);
    tcase_add_test(tc, test_order_canonical_invariant);
    tcase_add_test(tc, test_order_canonical_slash_escape_invariant);
    tcase_add_test(tc, test_order_canonical_sensitive_to_values);
    tcase_add_test(tc, test_order_canonical_item_order_matters);
    tcase_add_test(tc, test_order_idempotency_key_known_answer);
    tcase_add_test(tc, test_order_total_max);
    tcase_add_test(tc, test_order_total_overflow_rejected);
    tcase_add_test(tc, test_order_format_time);
    tcase_add_test(tc, test_order_render_exact);
    tcase_add_test(tc, test_order_render_without_note);
    tcase_add_test(tc, test_order_survives_body_reuse);
    suite_add_tcase(s, tc);
    return s;
}

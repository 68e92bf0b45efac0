/* Tests for od_canon: canonical JSON and idempotency keys. */
#include "od_canon.h"
#include "od_json.h"
#include "od_suites.h"

#include <stdio.h>
#include <string.h>

static const char *canon(const char *text)
{
    json_object *doc = NULL;
    const char *why = NULL;
    apr_size_t len = 0;

    ck_assert_msg(od_json_parse(&doc, &why, text, strlen(text), od_test_pool) == APR_SUCCESS,
                  "'%s' rejected: %s", text, why);
    const char *out = od_canon_serialize(doc, &len, od_test_pool);
    ck_assert_uint_eq(len, strlen(out));
    return out;
}

static const char *key_of(const char *caller, const char *canonical)
{
    od_sha256_t *h = NULL;

    ck_assert_int_eq(od_sha256_create(&h, od_test_pool), APR_SUCCESS);
    return od_canon_idempotency_key(h, caller, canonical, strlen(canonical), od_test_pool);
}

/* The request used for the known-answer vectors, already in canonical form. */
#define CANON_ORDER                                                                                \
    "{\"currency\":\"EUR\",\"customer_id\":\"cust-1\",\"items\":[{\"quantity\":2,\"sku\":"         \
    "\"ABC-1\",\"unit_price_cents\":1999}]}"

START_TEST(test_canon_exact_output)
{
    ck_assert_str_eq(canon("{ \"b\" : [1, {\"d\":null, \"c\":true}], \"a\":\"x/y\", \"e\":false }"),
                     "{\"a\":\"x/y\",\"b\":[1,{\"c\":true,\"d\":null}],\"e\":false}");
}
END_TEST

START_TEST(test_canon_member_order_invariant)
{
    const char *a = canon("{\"customer_id\":\"cust-1\",\"currency\":\"EUR\",\"items\":[{\"sku\":"
                          "\"ABC-1\",\"quantity\":2,\"unit_price_cents\":1999}]}");
    const char *b = canon("{\"items\":[{\"unit_price_cents\":1999,\"quantity\":2,\"sku\":\"ABC-1\"}"
                          "],\"currency\":\"EUR\",\"customer_id\":\"cust-1\"}");

    ck_assert_str_eq(a, CANON_ORDER);
    ck_assert_str_eq(b, CANON_ORDER);
}
END_TEST

START_TEST(test_canon_whitespace_invariant)
{
    ck_assert_str_eq(canon("\n{ \"currency\" :\t\"EUR\" ,\r\n \"customer_id\": \"cust-1\", "
                           "\"items\" : [ { \"quantity\" : 2 , \"sku\" : \"ABC-1\" , "
                           "\"unit_price_cents\" : 1999 } ] }\n"),
                     CANON_ORDER);
}
END_TEST

START_TEST(test_canon_escape_invariant)
{
    ck_assert_str_eq(canon("{\"\\u0061\":\"\\u0041\\/\\u00e9\"}"), canon("{\"a\":\"A/\xc3\xa9\"}"));
    ck_assert_str_eq(canon("{\"a\":\"\\/\"}"), "{\"a\":\"/\"}");
    ck_assert_str_eq(canon("[\"\\ud83d\\ude00\"]"), "[\"\xf0\x9f\x98\x80\"]");
}
END_TEST

START_TEST(test_canon_string_escaping_fixed)
{
    ck_assert_str_eq(canon("[\"q\\\"b\\\\n\\n\\t\\r\\b\\f\\u0001\\u001f\"]"),
                     "[\"q\\\"b\\\\n\\n\\t\\r\\b\\f\\u0001\\u001f\"]");
}
END_TEST

/* Strings are escaped one after another through one reused json-c object: a long string, then
 * shorter ones, an empty one and one with a control character each come out whole and alone. */
START_TEST(test_canon_strings_in_sequence)
{
    char in[512], want[512];
    char longer[201];

    memset(longer, 'L', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';
    snprintf(in, sizeof(in), "{\"a\":\"%s\",\"b\":\"x\",\"c\":\"\",\"d\":\"n\\u0001ul\"}", longer);
    snprintf(want, sizeof(want), "{\"a\":\"%s\",\"b\":\"x\",\"c\":\"\",\"d\":\"n\\u0001ul\"}",
             longer);
    ck_assert_str_eq(canon(in), want);
}
END_TEST

START_TEST(test_canon_keys_sorted_bytewise)
{
    ck_assert_str_eq(canon("{\"\xc3\xa9\":1,\"a\":2,\"_\":3,\"Z\":4,\"B\":5,\"aa\":6,\"\":7}"),
                     "{\"\":7,\"B\":5,\"Z\":4,\"_\":3,\"a\":2,\"aa\":6,\"\xc3\xa9\":1}");
}
END_TEST

START_TEST(test_canon_nested_objects_sorted)
{
    ck_assert_str_eq(canon("{\"z\":{\"y\":{\"b\":1,\"a\":2}},\"a\":[{\"d\":1,\"c\":2}]}"),
                     "{\"a\":[{\"c\":2,\"d\":1}],\"z\":{\"y\":{\"a\":2,\"b\":1}}}");
}
END_TEST

START_TEST(test_canon_numbers)
{
    ck_assert_str_eq(canon("[-0,0,-7,1.5,0.1,1e2,1E+2,2.50,-0.0,1.25e-7,123456789.125]"),
                     "[0,0,-7,1.5,0.1,100,100,2.5,0,1.25e-07,123456789.125]");
    ck_assert_str_eq(canon("[1e300,-1.5e20,1e17,1e16,0.00001,0.000001,0.1e1,12.50e-1]"),
                     "[1e+300,-1.5e+20,1e+17,10000000000000000,0.00001,1e-06,1,1.25]");
    ck_assert_str_eq(canon("[0.30000000000000004,5e-324,1.7976931348623157e308]"),
                     "[0.30000000000000004,5e-324,1.7976931348623157e+308]");
    ck_assert_str_eq(canon("[18446744073709551615,9223372036854775807,-9223372036854775808]"),
                     "[18446744073709551615,9223372036854775807,-9223372036854775808]");
}
END_TEST

START_TEST(test_canon_scalars_and_empties)
{
    ck_assert_str_eq(canon("null"), "null");
    ck_assert_str_eq(canon("\"s\""), "\"s\"");
    ck_assert_str_eq(canon("{ }"), "{}");
    ck_assert_str_eq(canon("[ ]"), "[]");
    ck_assert_str_eq(canon("[{},[],[[]]]"), "[{},[],[[]]]");
}
END_TEST

START_TEST(test_canon_value_sensitive)
{
    ck_assert_str_ne(canon("{\"a\":1}"), canon("{\"a\":2}"));
    ck_assert_str_ne(canon("{\"a\":1}"), canon("{\"a\":\"1\"}"));
    ck_assert_str_ne(canon("{\"a\":\"x\"}"), canon("{\"a\":\"X\"}"));
    ck_assert_str_ne(canon("{\"a\":1}"), canon("{\"b\":1}"));
}
END_TEST

START_TEST(test_canon_array_order_matters)
{
    ck_assert_str_ne(canon("{\"items\":[{\"sku\":\"A\"},{\"sku\":\"B\"}]}"),
                     canon("{\"items\":[{\"sku\":\"B\"},{\"sku\":\"A\"}]}"));
}
END_TEST

START_TEST(test_canon_input_not_modified)
{
    json_object *doc = NULL;
    const char *why = NULL;
    const char *text = "{\"b\":1,\"a\":[\"x\"]}";

    ck_assert_int_eq(od_json_parse(&doc, &why, text, strlen(text), od_test_pool), APR_SUCCESS);
    od_canon_serialize(doc, NULL, od_test_pool);
    ck_assert_str_eq(json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN), text);
}
END_TEST

START_TEST(test_canon_key_known_answer)
{
    /* printf 'anonymous\0%s' "$CANON_ORDER" | sha256sum */
    ck_assert_str_eq(key_of("anonymous", CANON_ORDER),
                     "f591099f388653ba66b25e465abc5a186ddb96bce6aceb1c91b9dfc097f9de95");
    /* printf 'alice\0%s' "$CANON_ORDER" | sha256sum */
    ck_assert_str_eq(key_of("alice", CANON_ORDER),
                     "3c47aa91fe96e778f6d07b168ccbaeccfa78ed9a7d1c9dd9710b5c0a212658bb");
    /* printf 'anonymous\0{}' | sha256sum */
    ck_assert_str_eq(key_of("anonymous", "{}"),
                     "a6974d0600e0df70b335972acbf4527ca88650bdb7fc7e5f601a0987c8347ed5");
    /* printf '\0' | sha256sum: empty caller, empty body, just the separator */
    ck_assert_str_eq(key_of("", ""),
                     "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
}
END_TEST

START_TEST(test_canon_key_uses_len_not_nul)
{
    /* Only the first two bytes count. */
    od_sha256_t *h = NULL;

    ck_assert_int_eq(od_sha256_create(&h, od_test_pool), APR_SUCCESS);
    ck_assert_str_eq(od_canon_idempotency_key(h, "anonymous", "{}garbage", 2, od_test_pool),
                     "a6974d0600e0df70b335972acbf4527ca88650bdb7fc7e5f601a0987c8347ed5");
}
END_TEST

START_TEST(test_canon_key_caller_scoped)
{
    const char *body = canon("{\"a\":1}");

    ck_assert_str_ne(key_of("alice", body), key_of("bob", body));
    ck_assert_str_eq(key_of("alice", body), key_of("alice", body));
}
END_TEST

START_TEST(test_canon_key_separator_unambiguous)
{
    ck_assert_str_ne(key_of("ab", "c"), key_of("a", "bc"));
}
END_TEST

START_TEST(test_canon_key_format)
{
    const char *key = key_of("anonymous", CANON_ORDER);

    ck_assert_uint_eq(strlen(key), OD_CANON_KEY_HEX_LEN);
    ck_assert_uint_eq(strspn(key, "0123456789abcdef"), OD_CANON_KEY_HEX_LEN);
}
END_TEST

START_TEST(test_canon_key_same_for_equivalent_bodies)
{
    const char *a = canon("{\"q\":1,\"s\":\"\\u0041\"}");
    const char *b = canon(" { \"s\" : \"A\" , \"q\" : 1 } ");

    ck_assert_str_eq(key_of("anonymous", a), key_of("anonymous", b));
    ck_assert_str_ne(key_of("anonymous", a), key_of("anonymous", canon("{\"q\":2,\"s\":\"A\"}")));
}
END_TEST

Suite *od_canon_suite(void)
{
    Suite *s = suite_create("canon");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, od_test_pool_setup, od_test_pool_teardown);
    tcase_add_test(tc, test_canon_exact_output);
    tcase_add_test(tc, test_canon_member_order_invariant);
    tcase_add_test(tc, test_canon_whitespace_invariant);
    tcase_add_test(tc, test_canon_escape_invariant);
    tcase_add_test(tc, test_canon_strings_in_sequence);
    tcase_add_test(tc, test_canon_string_escaping_fixed);
    tcase_add_test(tc, test_canon_keys_sorted_bytewise);
    tcase_add_test(tc, test_canon_nested_objects_sorted);
    tcase_add_test(tc, test_canon_numbers);
    tcase_add_test(tc, test_canon_scalars_and_empties);
    tcase_add_test(tc, test_canon_value_sensitive);
    tcase_add_test(tc, test_canon_array_order_matters);
    tcase_add_test(tc, test_canon_input_not_modified);
    tcase_add_test(tc, test_canon_key_known_answer);
    tcase_add_test(tc, test_canon_key_uses_len_not_nul);
    tcase_add_test(tc, test_canon_key_caller_scoped);
    tcase_add_test(tc, test_canon_key_separator_unambiguous);
    tcase_add_test(tc, test_canon_key_format);
    tcase_add_test(tc, test_canon_key_same_for_equivalent_bodies);
    suite_add_tcase(s, tc);
    return s;
}

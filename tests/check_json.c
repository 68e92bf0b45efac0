/* Tests for od_json: strict JSON on top of json-c. */
#include "od_json.h"
#include "od_status.h"
#include "od_suites.h"

#include <string.h>

static json_object *parse_ok(const char *text, apr_size_t len)
{
    json_object *doc = NULL;
    const char *why = "unset";
    apr_status_t rv = od_json_parse(&doc, &why, text, len, od_test_pool);

    ck_assert_msg(rv == APR_SUCCESS, "'%.*s' rejected: %s", (int) len, text, why);
    return doc;
}

/* Returns the message, for tests that check it. */
static const char *parse_bad(const char *text, apr_size_t len)
{
    json_object *doc = (json_object *) 1;
    const char *why = NULL;
    apr_status_t rv = od_json_parse(&doc, &why, text, len, od_test_pool);

    ck_assert_msg(rv == OD_EINVAL, "'%.*s' accepted", (int) len, text);
    ck_assert_ptr_null(doc);
    ck_assert_ptr_nonnull(why);
    ck_assert_str_ne(why, "");
    return why;
}

#define OK(s) parse_ok((s), sizeof(s) - 1)
#define BAD(s) parse_bad((s), sizeof(s) - 1)

START_TEST(test_json_object_parses)
{
    json_object *doc = OK("{\"a\":1,\"b\":[true,null,\"x\"],\"c\":{\"d\":-2.5}}");
    json_object *v = NULL;

    ck_assert(json_object_is_type(doc, json_type_object));
    ck_assert(json_object_object_get_ex(doc, "a", &v));
    ck_assert_int_eq(json_object_get_int64(v), 1);
    ck_assert(json_object_object_get_ex(doc, "b", &v));
    ck_assert_int_eq(json_object_array_length(v), 3);
    ck_assert_str_eq(json_object_get_string(json_object_array_get_idx(v, 2)), "x");
    ck_assert(json_object_object_get_ex(doc, "c", &v));
    ck_assert(json_object_object_get_ex(v, "d", &v));
    ck_assert(json_object_get_double(v) == -2.5);
}
END_TEST

START_TEST(test_json_surrounding_whitespace_ok)
{
    json_object *doc = OK(" \t\r\n{\"a\" : [ 1 , 2 ] }\n\r\t ");

    ck_assert_int_eq(json_object_object_length(doc), 1);
}
END_TEST

START_TEST(test_json_top_level_number_ok)
{
    json_object *doc = OK("123");

    ck_assert(json_object_is_type(doc, json_type_int));
    ck_assert_int_eq(json_object_get_int64(doc), 123);
    doc = OK("-4.5 ");
    ck_assert(json_object_get_double(doc) == -4.5);
}
END_TEST

START_TEST(test_json_top_level_null_ok)
{
    ck_assert_ptr_null(OK("null"));
}
END_TEST

START_TEST(test_json_length_is_respected)
{
    /* Only the first 7 bytes are the document; what follows is not looked at. */
    json_object *doc = parse_ok("{\"a\":1}garbage", 7);

    ck_assert_int_eq(json_object_object_length(doc), 1);
}
END_TEST

START_TEST(test_json_trailing_garbage_rejected)
{
    const char *why = BAD("{\"a\":1} x");

    ck_assert_ptr_nonnull(strstr(why, "byte 8"));
    BAD("{\"a\":1}}");
    BAD("{}{}");
    BAD("[1]x");
    BAD("1 2");
}
END_TEST

START_TEST(test_json_trailing_nul_rejected)
{
    BAD("{\"a\":1}\0");
}
END_TEST

START_TEST(test_json_empty_rejected)
{
    const char *why = BAD("");

    ck_assert_ptr_nonnull(strstr(why, "end of input"));
    BAD("   ");
}
END_TEST

START_TEST(test_json_truncated_rejected)
{
    BAD("{\"a\":1");
    BAD("{\"a\":");
    BAD("[1,2");
    BAD("\"abc");
}
END_TEST

START_TEST(test_json_syntax_errors_rejected)
{
    BAD("{\"a\":1,}");
    BAD("[1,]");
    BAD("{a:1}");
    BAD("/*c*/{}");
    BAD("\xef\xbb\xbf{}");
    BAD("{\"a\" 1}");
}
END_TEST

START_TEST(test_json_single_quotes_rejected)
{
    const char *why = BAD("{'q':1}");

    ck_assert_ptr_nonnull(strstr(why, "single-quoted"));
    ck_assert_ptr_nonnull(strstr(why, "byte 1"));
    BAD("{\"q\":'x'}");
    BAD("'x'");
}
END_TEST

START_TEST(test_json_single_quote_inside_string_ok)
{
    json_object *doc = OK("{\"it's\":\"a'b\"}");
    json_object *v = NULL;

    ck_assert(json_object_object_get_ex(doc, "it's", &v));
    ck_assert_str_eq(json_object_get_string(v), "a'b");
}
END_TEST

START_TEST(test_json_nan_rejected)
{
    const char *why = BAD("{\"q\":NaN}");

    ck_assert_ptr_nonnull(strstr(why, "invalid literal"));
    BAD("[NaN]");
    BAD("NaN");
}
END_TEST

START_TEST(test_json_infinity_rejected)
{
    BAD("Infinity");
    BAD("-Infinity");
    BAD("{\"q\":-Infinity}");
}
END_TEST

START_TEST(test_json_literals_ok)
{
    json_object *doc = OK("[true,false,null]");

    ck_assert(json_object_get_boolean(json_object_array_get_idx(doc, 0)));
    ck_assert(!json_object_get_boolean(json_object_array_get_idx(doc, 1)));
    ck_assert_ptr_null(json_object_array_get_idx(doc, 2));
    BAD("[True]");
    BAD("[nul]");
}
END_TEST

START_TEST(test_json_lax_numbers_rejected)
{
    BAD("[1.]");
    BAD("1.");
    BAD("[1.e5]");
    BAD("[-01]");
    BAD("[00]");
    BAD("[+1]");
    BAD("[.5]");
    BAD("[0x10]");
}
END_TEST

START_TEST(test_json_numbers_ok)
{
    json_object *doc = OK("[0,-0,0.5,-1.5e-3,1e5,1E+2,10]");

    ck_assert_int_eq(json_object_array_length(doc), 7);
    ck_assert(json_object_get_double(json_object_array_get_idx(doc, 3)) == -1.5e-3);
    ck_assert(json_object_get_double(json_object_array_get_idx(doc, 5)) == 100.0);
}
END_TEST

START_TEST(test_json_huge_double_rejected)
{
    const char *why = BAD("[1e400]");

    ck_assert_str_eq(why, "number out of range");
    BAD("{\"a\":-1e999}");
}
END_TEST

START_TEST(test_json_huge_integer_saturates)
{
    json_object *doc = OK("[99999999999999999999,-99999999999999999999]");

    ck_assert(json_object_is_type(json_object_array_get_idx(doc, 0), json_type_int));
    ck_assert(json_object_get_int64(json_object_array_get_idx(doc, 0)) == INT64_MAX);
    ck_assert(json_object_get_int64(json_object_array_get_idx(doc, 1)) == INT64_MIN);
}
END_TEST

START_TEST(test_json_duplicate_key_rejected)
{
    const char *why = BAD("{\"q\":1,\"q\":2}");

    ck_assert_str_eq(why, "duplicate key 'q'");
}
END_TEST

START_TEST(test_json_duplicate_key_escaped_rejected)
{
    const char *why = BAD("{\"q\":1,\"\\u0071\":2}");

    ck_assert_str_eq(why, "duplicate key 'q'");
    why = BAD("{\"a/b\":1,\"a\\/b\":2}");
    ck_assert_str_eq(why, "duplicate key 'a/b'");
}
END_TEST

/* @p depth nested arrays with @p inner at the centre, in the test's pool. */
static const char *nested(int depth, const char *inner)
{
    char *text = apr_palloc(od_test_pool, (apr_size_t) depth * 2 + strlen(inner) + 1);
    char *at = text;

    for (int i = 0; i < depth; i++) {
        *at++ = '[';
    }
    memcpy(at, inner, strlen(inner));
    at += strlen(inner);
    for (int i = 0; i < depth; i++) {
        *at++ = ']';
    }
    *at = '\0';
    return text;
}

START_TEST(test_json_nesting_limit)
{
    const char *ok = nested(16, "");
    const char *deep = nested(17, "");
    const char *deep_object = nested(16, "{}");

    parse_ok(ok, strlen(ok));
    ck_assert_str_eq(parse_bad(deep, strlen(deep)), "nesting too deep at byte 16");
    ck_assert_str_eq(parse_bad(deep_object, strlen(deep_object)), "nesting too deep at byte 16");
}
END_TEST

START_TEST(test_json_duplicate_key_nested_rejected)
{
    const char *why =
        BAD("{\"a\":{\"x\":{}},\"b\":[{\"c\":1},{\"d\":{\"e\":1},\"c\":1,\"sku\":2,\"sku\":3}]}");

    ck_assert_str_eq(why, "duplicate key 'sku'");
}
END_TEST

START_TEST(test_json_duplicate_key_with_object_values_rejected)
{
    /* The first value's nested object vanishes from json-c's tree; detection must not drift. */
    const char *why = BAD("{\"a\":{\"x\":1},\"b\":{},\"a\":{}}");

    ck_assert_str_eq(why, "duplicate key 'a'");
    why = BAD("[{\"k\":{\"y\":1,\"y\":2}},{\"k\":1}]");
    ck_assert_str_eq(why, "duplicate key 'y'");
}
END_TEST

START_TEST(test_json_same_key_in_different_objects_ok)
{
    json_object *doc = OK("{\"a\":{\"q\":1},\"b\":[{\"q\":2},{\"q\":3}],\"q\":{\"q\":{}}}");

    ck_assert_int_eq(json_object_object_length(doc), 3);
}
END_TEST

START_TEST(test_json_colon_inside_string_value_ok)
{
    json_object *doc = OK("{\"a\":\"x\",\"b\":[\"y\" , \":\"],\"c\":\"q\"}");

    ck_assert_int_eq(json_object_object_length(doc), 3);
}
END_TEST

START_TEST(test_json_nul_escape_rejected)
{
    const char *why = BAD("{\"a\\u0000b\":1,\"a\":2}");

    ck_assert_ptr_nonnull(strstr(why, "\\u0000"));
    BAD("{\"a\\u0000b\":1}");
    BAD("[\"x\\u0000\"]");
}
END_TEST

START_TEST(test_json_lone_surrogate_rejected)
{
    const char *why = BAD("\"\\ud800\"");

    ck_assert_ptr_nonnull(strstr(why, "surrogate"));
    BAD("\"\\udc00\"");
    BAD("\"\\uDBFF\"");
    BAD("\"\\ud800\\u0041\"");
    BAD("\"\\ud800x\"");
    BAD("\"\\ude00\\ud83d\"");
    BAD("\"\\ud800\\ud800\"");
}
END_TEST

START_TEST(test_json_surrogate_pair_ok)
{
    json_object *doc = OK("\"\\ud83d\\ude00\"");

    ck_assert_str_eq(json_object_get_string(doc), "\xf0\x9f\x98\x80");
    doc = OK("\"\\uDBFF\\uDFFF\"");
    ck_assert_str_eq(json_object_get_string(doc), "\xf4\x8f\xbf\xbf");
}
END_TEST

START_TEST(test_json_invalid_utf8_rejected)
{
    const char *why = BAD("\"\xff\"");

    /* json-c catches this one and spells it in lower case. */
    ck_assert_ptr_nonnull(strstr(why, "utf-8"));
    why = BAD("\"\xc0\x80\"");
    ck_assert_ptr_nonnull(strstr(why, "invalid UTF-8"));
    BAD("\"\xc3\"");
    BAD("\"\xc3(\"");
    BAD("\"\x80\"");
    BAD("{\"\xe2\x82\":1}");
}
END_TEST

START_TEST(test_json_non_shortest_utf8_rejected)
{
    BAD("\"\xc0\x80\"");
    BAD("\"\xc1\xbf\"");
    BAD("\"\xe0\x80\x80\"");
    BAD("\"\xf0\x80\x80\x80\"");
}
END_TEST

START_TEST(test_json_utf8_surrogate_and_range_rejected)
{
    BAD("\"\xed\xa0\x80\"");
    BAD("\"\xed\xbf\xbf\"");
    BAD("\"\xf4\x90\x80\x80\"");
    BAD("\"\xf5\x80\x80\x80\"");
}
END_TEST

START_TEST(test_json_valid_utf8_ok)
{
    json_object *doc = OK("[\"\xc3\xa9\",\"\xe2\x82\xac\",\"\xf0\x9f\x98\x80\",\"\xed\x9f\xbf\","
                          "\"\xee\x80\x80\",\"\xf4\x8f\xbf\xbf\"]");

    ck_assert_int_eq(json_object_array_length(doc), 6);
    ck_assert_str_eq(json_object_get_string(json_object_array_get_idx(doc, 1)), "\xe2\x82\xac");
}
END_TEST

START_TEST(test_json_raw_control_character_rejected)
{
    const char *why = BAD("\"a\tb\"");

    ck_assert_ptr_nonnull(strstr(why, "control character"));
    BAD("{\"a\nb\":1}");
    BAD("\"\x1f\"");
}
END_TEST

START_TEST(test_json_escapes_decoded)
{
    json_object *doc = OK("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041\\u00e9\"");

    ck_assert_str_eq(json_object_get_string(doc), "\"\\/\b\f\n\r\tA\xc3\xa9");
}
END_TEST

START_TEST(test_json_document_released_with_pool)
{
    apr_pool_t *sub = NULL;
    json_object *doc = NULL;
    const char *why = NULL;

    ck_assert_int_eq(apr_pool_create(&sub, od_test_pool), APR_SUCCESS);
    ck_assert_int_eq(od_json_parse(&doc, &why, "{\"a\":1}", 7, sub), APR_SUCCESS);
    json_object_get(doc);
    apr_pool_destroy(sub);
    /* The test pool's cleanup dropped its reference, so ours is the last one. */
    ck_assert_int_eq(json_object_put(doc), 1);
}
END_TEST

Suite *od_json_suite(void)
{
    Suite *s = suite_create("json");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, od_test_pool_setup, od_test_pool_teardown);
    tcase_add_test(tc, test_json_object_parses);
    tcase_add_test(tc, test_json_surrounding_whitespace_ok);
    tcase_add_test(tc, test_json_top_level_number_ok);
    tcase_add_test(tc, test_json_top_level_null_ok);
    tcase_add_test(tc, test_json_length_is_respected);
    tcase_add_test(tc, test_json_trailing_garbage_rejected);
    tcase_add_test(tc, test_json_trailing_nul_rejected);
    tcase_add_test(tc, test_json_empty_rejected);
    tcase_add_test(tc, test_json_truncated_rejected);
    tcase_add_test(tc, test_json_syntax_errors_rejected);
    tcase_add_test(tc, test_json_single_quotes_rejected);
    tcase_add_test(tc, test_json_single_quote_inside_string_ok);
    tcase_add_test(tc, test_json_nan_rejected);
    tcase_add_test(tc, test_json_infinity_rejected);
    tcase_add_test(tc, test_json_literals_ok);
    tcase_add_test(tc, test_json_lax_numbers_rejected);
    tcase_add_test(tc, test_json_numbers_ok);
    tcase_add_test(tc, test_json_huge_double_rejected);
    tcase_add_test(tc, test_json_huge_integer_saturates);
    tcase_add_test(tc, test_json_duplicate_key_rejected);
    tcase_add_test(tc, test_json_duplicate_key_escaped_rejected);
    tcase_add_test(tc, test_json_duplicate_key_nested_rejected);
    tcase_add_test(tc, test_json_nesting_limit);
    tcase_add_test(tc, test_json_duplicate_key_with_object_values_rejected);
    tcase_add_test(tc, test_json_same_key_in_different_objects_ok);
    tcase_add_test(tc, test_json_colon_inside_string_value_ok);
    tcase_add_test(tc, test_json_nul_escape_rejected);
    tcase_add_test(tc, test_json_lone_surrogate_rejected);
    tcase_add_test(tc, test_json_surrogate_pair_ok);
    tcase_add_test(tc, test_json_invalid_utf8_rejected);
    tcase_add_test(tc, test_json_non_shortest_utf8_rejected);
    tcase_add_test(tc, test_json_utf8_surrogate_and_range_rejected);
    tcase_add_test(tc, test_json_valid_utf8_ok);
    tcase_add_test(tc, test_json_raw_control_character_rejected);
    tcase_add_test(tc, test_json_escapes_decoded);
    tcase_add_test(tc, test_json_document_released_with_pool);
    suite_add_tcase(s, tc);
    return s;
}

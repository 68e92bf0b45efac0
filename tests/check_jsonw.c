/* Tests for od_jsonw: the left-to-right JSON writer (commas, nesting, escaping, release). */
#include "od_jsonw.h"
#include "od_suites.h"

#include <json-c/json.h>
#include <stdint.h>
#include <string.h>

START_TEST(test_jsonw_nested_commas)
{
    od_jsonw_t *w = od_jsonw_create(od_test_pool);
    apr_size_t len = 0;

    od_jsonw_open(w, '{');
    od_jsonw_member_int(w, "a", 1);
    od_jsonw_key(w, "b");
    od_jsonw_open(w, '[');
    for (int i = 0; i < 2; i++) {
        od_jsonw_open(w, '{');
        od_jsonw_member_string(w, "x", i == 0 ? "y" : "z");
        od_jsonw_member_int(w, "n", i);
        od_jsonw_close(w, '}');
    }
    od_jsonw_string(w, "s");
    od_jsonw_int(w, 7);
    od_jsonw_close(w, ']');
    od_jsonw_member_string(w, "c", "d");
    od_jsonw_close(w, '}');
    const char *doc = od_jsonw_finish(w, &len);
    ck_assert_str_eq(doc, "{\"a\":1,\"b\":[{\"x\":\"y\",\"n\":0},{\"x\":\"z\",\"n\":1},\"s\",7],"
                          "\"c\":\"d\"}");
    ck_assert_uint_eq(len, strlen(doc));
}
END_TEST

START_TEST(test_jsonw_empty_containers)
{
    od_jsonw_t *w = od_jsonw_create(od_test_pool);

    od_jsonw_open(w, '{');
    od_jsonw_key(w, "a");
    od_jsonw_open(w, '[');
    od_jsonw_close(w, ']');
    od_jsonw_key(w, "o");
    od_jsonw_open(w, '{');
    od_jsonw_close(w, '}');
    od_jsonw_close(w, '}');
    ck_assert_str_eq(od_jsonw_finish(w, NULL), "{\"a\":[],\"o\":{}}");
}
END_TEST

/* Strings come out exactly as json-c writes them with the same flags, whatever they hold. */
START_TEST(test_jsonw_escapes_as_json_c_does)
{
    static const char *const cases[] = {
        "",          "plain",      "q\"uote",      "back\\slash",
        "a/b",       "\b\f\n\r\t", "\x01\x1f\x7f", "caf\xc3\xa9 \xe2\x82\xac",
        "</script>", "del\x7f",    "tab\tlast",    "\"",
        "\\",        "SKU-1001",   "ctl\x1f",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        od_jsonw_t *w = od_jsonw_create(od_test_pool);
        od_jsonw_string(w, cases[i]);
        json_object *ref = json_object_new_string(cases[i]);
        const char *want = json_object_to_json_string_ext(ref, JSON_C_TO_STRING_PLAIN |
                                                                   JSON_C_TO_STRING_NOSLASHESCAPE);
        ck_assert_str_eq(od_jsonw_finish(w, NULL), want);
        json_object_put(ref);
    }
}
END_TEST

/* One writer reuses one json-c string object: strings of any length in any order, the empty one
 * included (json-c leaks when its object is set to "" after a longer string; the sanitizer
 * build's leak check sees it). */
START_TEST(test_jsonw_strings_in_sequence)
{
    od_jsonw_t *w = od_jsonw_create(od_test_pool);

    od_jsonw_open(w, '[');
    od_jsonw_string(w, "a longer string first");
    od_jsonw_string(w, "");
    od_jsonw_string(w, "s");
    od_jsonw_string(w, "");
    od_jsonw_string(w, "\"");
    od_jsonw_close(w, ']');
    ck_assert_str_eq(od_jsonw_finish(w, NULL),
                     "[\"a longer string first\",\"\",\"s\",\"\",\"\\\"\"]");
}
END_TEST

START_TEST(test_jsonw_int_extremes)
{
    od_jsonw_t *w = od_jsonw_create(od_test_pool);

    od_jsonw_open(w, '[');
    od_jsonw_int(w, INT64_MIN);
    od_jsonw_int(w, INT64_MAX);
    od_jsonw_int(w, 0);
    od_jsonw_int(w, -1);
    od_jsonw_close(w, ']');
    ck_assert_str_eq(od_jsonw_finish(w, NULL), "[-9223372036854775808,9223372036854775807,0,-1]");
}
END_TEST

/* A long document grows the buffer; a writer never finished is released with its pool (the
 * sanitizer build's leak check would report it otherwise). */
START_TEST(test_jsonw_long_and_unfinished)
{
    od_jsonw_t *w = od_jsonw_create(od_test_pool);
    char big[3000];
    apr_size_t len = 0;

    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    od_jsonw_open(w, '[');
    for (int i = 0; i < 10; i++) {
        od_jsonw_string(w, big);
    }
    od_jsonw_close(w, ']');
    const char *doc = od_jsonw_finish(w, &len);
    ck_assert_uint_eq(len, 2 + 10 * (sizeof(big) - 1 + 2) + 9);
    ck_assert_uint_eq(strlen(doc), len);
    od_jsonw_t *abandoned = od_jsonw_create(od_test_pool);
    od_jsonw_open(abandoned, '{');
    od_jsonw_member_string(abandoned, "k", big);
}
END_TEST

Suite *od_jsonw_suite(void)
{
    Suite *s = suite_create("jsonw");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, od_test_pool_setup, od_test_pool_teardown);
    tcase_add_test(tc, test_jsonw_nested_commas);
    tcase_add_test(tc, test_jsonw_empty_containers);
    tcase_add_test(tc, test_jsonw_escapes_as_json_c_does);
    tcase_add_test(tc, test_jsonw_strings_in_sequence);
    tcase_add_test(tc, test_jsonw_int_extremes);
    tcase_add_test(tc, test_jsonw_long_and_unfinished);
    suite_add_tcase(s, tc);
    return s;
}

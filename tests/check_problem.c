/* Tests for od_problem: RFC 9457 problem bodies. */
#include "od_problem.h"
#include "od_suites.h"

#include <json-c/json.h>
#include <string.h>

static apr_status_t put_cleanup(void *doc)
{
    json_object_put(doc);
    return APR_SUCCESS;
}

/* Parses a rendered body back, strictly, and ties the result to the test's pool. */
static json_object *reparse(const char *body)
{
    json_tokener *tok = json_tokener_new();
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    json_object *doc = json_tokener_parse_ex(tok, body, (int) strlen(body));

    ck_assert_int_eq(json_tokener_get_error(tok), json_tokener_success);
    ck_assert_uint_eq(json_tokener_get_parse_end(tok), strlen(body));
    json_tokener_free(tok);
    ck_assert(json_object_is_type(doc, json_type_object));
    apr_pool_cleanup_register(od_test_pool, doc, put_cleanup, apr_pool_cleanup_null);
    return doc;
}

static const char *member_str(json_object *obj, const char *key)
{
    json_object *v = NULL;

    ck_assert_msg(json_object_object_get_ex(obj, key, &v), "no member '%s'", key);
    ck_assert(json_object_is_type(v, json_type_string));
    return json_object_get_string(v);
}

START_TEST(test_problem_render_all_members)
{
    apr_array_header_t *errors = apr_array_make(od_test_pool, 2, sizeof(od_field_error_t));
    od_problem_add(errors, "items[0].quantity", "must be between 1 and 100");
    od_problem_add(errors, "", "malformed JSON");
    const char *body =
        od_problem_render(422, "https://orderd.example/problems/validation", "Validation failed",
                          "2 fields are invalid", errors, od_test_pool);
    json_object *doc = reparse(body);
    json_object *v = NULL;

    ck_assert_str_eq(member_str(doc, "type"), "https://orderd.example/problems/validation");
    ck_assert_str_eq(member_str(doc, "title"), "Validation failed");
    ck_assert(json_object_object_get_ex(doc, "status", &v));
    ck_assert(json_object_is_type(v, json_type_int));
    ck_assert_int_eq(json_object_get_int(v), 422);
    ck_assert_str_eq(member_str(doc, "detail"), "2 fields are invalid");
    ck_assert(json_object_object_get_ex(doc, "errors", &v));
    ck_assert_int_eq(json_object_array_length(v), 2);
    ck_assert_str_eq(member_str(json_object_array_get_idx(v, 0), "field"), "items[0].quantity");
    ck_assert_str_eq(member_str(json_object_array_get_idx(v, 0), "message"),
                     "must be between 1 and 100");
    ck_assert_str_eq(member_str(json_object_array_get_idx(v, 1), "field"), "");
    ck_assert_int_eq(json_object_object_length(doc), 5);
}
END_TEST

START_TEST(test_problem_render_member_order)
{
    static const char *const order[] = {"type", "title", "status", "detail", "errors"};
    apr_array_header_t *errors = apr_array_make(od_test_pool, 1, sizeof(od_field_error_t));
    od_problem_add(errors, "note", "must be a string");
    json_object *doc = reparse(od_problem_render(400, NULL, "Bad", "d", errors, od_test_pool));
    struct json_object_iter it;
    int i = 0;

    json_object_object_foreachC(doc, it)
    {
        ck_assert_int_lt(i, 5);
        ck_assert_str_eq(it.key, order[i]);
        i++;
    }
    ck_assert_int_eq(i, 5);
}
END_TEST

START_TEST(test_problem_render_exact)
{
    apr_array_header_t *errors = apr_array_make(od_test_pool, 1, sizeof(od_field_error_t));
    od_problem_add(errors, "customer_id", "is required");

    ck_assert_str_eq(
        od_problem_render(422, "about:blank", "Unprocessable", "see errors", errors, od_test_pool),
        "{\"type\":\"about:blank\",\"title\":\"Unprocessable\",\"status\":422,"
        "\"detail\":\"see errors\",\"errors\":[{\"field\":\"customer_id\","
        "\"message\":\"is required\"}]}");
}
END_TEST

START_TEST(test_problem_render_defaults)
{
    ck_assert_str_eq(od_problem_render(404, NULL, "Not Found", NULL, NULL, od_test_pool),
                     "{\"type\":\"about:blank\",\"title\":\"Not Found\",\"status\":404}");
}
END_TEST

START_TEST(test_problem_render_empty_errors_omitted)
{
    apr_array_header_t *errors = apr_array_make(od_test_pool, 1, sizeof(od_field_error_t));

    ck_assert_str_eq(od_problem_render(503, NULL, "Unavailable", "retry", errors, od_test_pool),
                     "{\"type\":\"about:blank\",\"title\":\"Unavailable\",\"status\":503,"
                     "\"detail\":\"retry\"}");
}
END_TEST

START_TEST(test_problem_render_escapes_round_trip)
{
    const char *detail = "quote \" back \\ slash / nl \n tab \t e \xc3\xa9 ctl \x01";
    json_object *doc = reparse(od_problem_render(400, NULL, "T", detail, NULL, od_test_pool));

    ck_assert_str_eq(member_str(doc, "detail"), detail);
}
END_TEST

START_TEST(test_problem_add_copies)
{
    apr_array_header_t *errors = apr_array_make(od_test_pool, 1, sizeof(od_field_error_t));
    char field[] = "note";
    char message[] = "too long";

    od_problem_add(errors, field, message);
    field[0] = 'X';
    message[0] = 'X';
    ck_assert_int_eq(errors->nelts, 1);
    ck_assert_str_eq(APR_ARRAY_IDX(errors, 0, od_field_error_t).field, "note");
    ck_assert_str_eq(APR_ARRAY_IDX(errors, 0, od_field_error_t).message, "too long");
}
END_TEST

START_TEST(test_problem_add_appends_in_order)
{
    apr_array_header_t *errors = apr_array_make(od_test_pool, 1, sizeof(od_field_error_t));

    od_problem_add(errors, "a", "1");
    od_problem_add(errors, "b", "2");
    od_problem_add(errors, "c", "3");
    ck_assert_int_eq(errors->nelts, 3);
    ck_assert_str_eq(APR_ARRAY_IDX(errors, 2, od_field_error_t).field, "c");
    ck_assert_str_eq(APR_ARRAY_IDX(errors, 1, od_field_error_t).message, "2");
}
END_TEST

START_TEST(test_problem_content_type)
{
    ck_assert_str_eq(OD_PROBLEM_CONTENT_TYPE, "application/problem+json");
}
END_TEST

Suite *od_problem_suite(void)
{
    Suite *s = suite_create("problem");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, od_test_pool_setup, od_test_pool_teardown);
    tcase_add_test(tc, test_problem_render_all_members);
    tcase_add_test(tc, test_problem_render_member_order);
    tcase_add_test(tc, test_problem_render_exact);
    tcase_add_test(tc, test_problem_render_defaults);
    tcase_add_test(tc, test_problem_render_empty_errors_omitted);
    tcase_add_test(tc, test_problem_render_escapes_round_trip);
    tcase_add_test(tc, test_problem_add_copies);
    tcase_add_test(tc, test_problem_add_appends_in_order);
    tcase_add_test(tc, test_problem_content_type);
    suite_add_tcase(s, tc);
    return s;
}

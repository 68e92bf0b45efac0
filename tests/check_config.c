/* Tests of od_config: defaults, every value type, and every error names file and line. */
#include "od_config.h"

#include <json-c/json.h>
#include "od_status.h"
#include "od_suites.h"

#include <apr_pools.h>
#include <stdio.h>
#include <string.h>

static apr_status_t parse(od_settings_t *s, const char *text, const char **err)
{
    return od_config_parse(s, text, strlen(text), "t.conf", err, od_test_pool);
}

/* Asserts that text is refused with a message that starts with want. */
static void assert_refused(const char *text, const char *want)
{
    od_settings_t s;
    const char *err = NULL;

    ck_assert_int_eq(parse(&s, text, &err), OD_ECONFIG);
    ck_assert_ptr_nonnull(err);
    ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "got '%s', want '%s...'", err, want);
}

START_TEST(test_config_empty_gives_defaults)
{
    od_settings_t s;
    const char *err = NULL;

    ck_assert_int_eq(parse(&s, "", &err), APR_SUCCESS);
    ck_assert_int_eq(s.max_body_bytes, 1024);
    ck_assert_int_eq(s.idempotency_ttl_s, 15);
    ck_assert_int_eq(s.max_quantity, 100);
    ck_assert_int_eq(s.max_items, 10);
    ck_assert_str_eq(s.customer_id_pattern, "^CUST-[0-9]{6}$");
    ck_assert_int_eq(s.store, OD_STORE_KIND_SQLITE);
    ck_assert_ptr_null(s.api_keys_file);
    ck_assert_int_eq(s.log_level, OD_LOG_INFO);
    ck_assert_int_eq(s.events_batch_max, 1000);
    ck_assert_int_eq(s.header_timeout_s, 10);
    ck_assert_int_eq(s.connection_timeout_s, 30);
}
END_TEST

START_TEST(test_config_every_type_parses)
{
    od_settings_t s;
    const char *err = NULL;
    const char *text = "# a comment\n"
                       "\n"
                       "  listen_address = ::1  \r\n"
                       "listen_port=0\n"
                       "worker_threads = 3\n"
                       "store = dynamodb\n"
                       "log_level = debug\n"
                       "customer_id_pattern = ^C#[0-9]+$\n"
                       "api_keys_file = /etc/orderd/keys\n";

    ck_assert_int_eq(parse(&s, text, &err), APR_SUCCESS);
    ck_assert_str_eq(s.listen_address, "::1");
    ck_assert_int_eq(s.listen_port, 0);
    ck_assert_int_eq(s.worker_threads, 3);
    ck_assert_int_eq(s.store, OD_STORE_KIND_DYNAMODB);
    ck_assert_int_eq(s.log_level, OD_LOG_DEBUG);
    ck_assert_str_eq(s.customer_id_pattern, "^C#[0-9]+$");
    ck_assert_str_eq(s.api_keys_file, "/etc/orderd/keys");
}
END_TEST

START_TEST(test_config_unknown_key_names_line)
{
    assert_refused("listen_port = 1\n\n# c\ncolour = blue\n", "t.conf:4: unknown key 'colour'");
}
END_TEST

START_TEST(test_config_missing_equals_refused)
{
    assert_refused("listen_port 8080\n", "t.conf:1: expected 'key = value'");
}
END_TEST

START_TEST(test_config_integer_bounds)
{
    od_settings_t s;
    const char *err = NULL;

    ck_assert_int_eq(parse(&s, "listen_port = 65535\n", &err), APR_SUCCESS);
    assert_refused("listen_port = 65536\n", "t.conf:1: listen_port: '65536' is not an integer");
    assert_refused("listen_port = -1\n", "t.conf:1: listen_port:");
    assert_refused("worker_threads = 0\n", "t.conf:1: worker_threads:");
    assert_refused("worker_threads = 4x\n", "t.conf:1: worker_threads:");
    assert_refused("worker_threads =\n", "t.conf:1: worker_threads:");
    assert_refused("queue_limit = 99999999999999999999\n", "t.conf:1: queue_limit:");
    ck_assert_int_eq(parse(&s, "header_timeout_s = 3600\n", &err), APR_SUCCESS);
    ck_assert_int_eq(s.header_timeout_s, 3600);
    assert_refused("header_timeout_s = 0\n", "t.conf:1: header_timeout_s:");
    assert_refused("header_timeout_s = 3601\n", "t.conf:1: header_timeout_s:");
}
END_TEST

START_TEST(test_config_enum_lists_choices)
{
    assert_refused("store = postgres\n",
                   "t.conf:1: store: 'postgres' is not one of: sqlite | dynamodb");
    assert_refused("log_level = loud\n", "t.conf:1: log_level:");
}
END_TEST

START_TEST(test_config_bad_regex_refused)
{
    assert_refused("customer_id_pattern = ^(CUST\n", "t.conf:1: customer_id_pattern:");
}
END_TEST

/* Measured before regcomp (od_regex): this one would take glibc minutes and gigabytes. */
START_TEST(test_config_costly_regex_refused)
{
    od_settings_t s;
    const char *err = NULL;

    assert_refused("max_items = 5\ncustomer_id_pattern = a++++++++++++++++++++++\n",
                   "t.conf:2: customer_id_pattern: 'a++++++++++++++++++++++' is too costly to "
                   "compile");
    assert_refused("customer_id_pattern = ^(a*)\\1$\n", "t.conf:1: customer_id_pattern: "
                                                        "'^(a*)\\1$' has a back-reference");
    ck_assert_int_eq(parse(&s, "customer_id_pattern = ^[A-Z]{2}-[0-9]{4,12}$\n", &err),
                     APR_SUCCESS);
}
END_TEST

START_TEST(test_config_repeated_key_refused)
{
    assert_refused("max_items = 5\nmax_items = 6\n",
                   "t.conf:2: key 'max_items' is already set on line 1");
}
END_TEST

START_TEST(test_config_empty_string_refused)
{
    assert_refused("sqlite_path =   \n", "t.conf:1: sqlite_path: value is empty");
}
END_TEST

START_TEST(test_config_nul_byte_refused)
{
    od_settings_t s;
    const char *err = NULL;
    const char text[] = "listen_port = 1\0\n";

    ck_assert_int_eq(od_config_parse(&s, text, sizeof(text) - 1, "t.conf", &err, od_test_pool),
                     OD_ECONFIG);
    ck_assert_str_eq(err, "t.conf: file contains a NUL byte");
}
END_TEST

START_TEST(test_config_shipped_file_is_valid)
{
    /* conf/orderd.conf documents every key commented out; uncommenting each must parse. */
    od_settings_t s;
    const char *err = NULL;
    FILE *f = fopen(ORDERD_SOURCE_DIR "/conf/orderd.conf", "r");
    char text[16384];

    ck_assert_ptr_nonnull(f);
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    ck_assert_int_eq(parse(&s, text, &err), APR_SUCCESS);
    /* Uncomment every "#key = value" line and parse again. */
    for (char *c = text; (c = strstr(c, "\n#")) != NULL; c++) {
        if (c[2] >= 'a' && c[2] <= 'z') {
            c[1] = ' ';
        }
    }
    ck_assert_msg(parse(&s, text, &err) == APR_SUCCESS, "%s", err);
    ck_assert_int_eq(s.max_body_bytes, 1024);
}
END_TEST

START_TEST(test_config_events_max_in_flight)
{
    od_settings_t s;
    const char *err = NULL;

    ck_assert_int_eq(parse(&s, "", &err), APR_SUCCESS);
    ck_assert_int_eq(s.events_max_in_flight, 32);
    ck_assert_int_eq(s.aws_max_connections, 96);
    ck_assert_int_eq(parse(&s, "events_max_in_flight = 256\naws_max_connections = 256\n", &err),
                     APR_SUCCESS);
    ck_assert_int_eq(s.events_max_in_flight, 256);
    assert_refused("events_max_in_flight = 0\n", "t.conf:1: events_max_in_flight: '0' is not an "
                                                 "integer between 1 and 256");
    assert_refused("events_max_in_flight = 257\n", "t.conf:1: events_max_in_flight:");
}
END_TEST

/* Every event call in flight holds one of the AWS client's connections: more in flight than
 * connections is refused whenever events go through AWS (a sink there, or their marks in a
 * DynamoDB store), and only then. */
START_TEST(test_config_events_in_flight_within_aws_connections)
{
    od_settings_t s;
    const char *err = NULL;
    const char *want = "t.conf: events_max_in_flight (9) exceeds aws_max_connections (8): each "
                       "event call in flight needs a connection of its own";

    assert_refused("events_sink = sqs\naws_max_connections = 8\nevents_max_in_flight = 9\n", want);
    assert_refused("events_max_in_flight = 9\nevents_sink = eventbridge\naws_max_connections = 8\n",
                   want);
    assert_refused("store = dynamodb\naws_max_connections = 8\nevents_max_in_flight = 9\n", want);
    assert_refused("events_sink = sns\naws_max_connections = 8\n",
                   "t.conf: events_max_in_flight (32) exceeds aws_max_connections (8)");
    ck_assert_int_eq(
        parse(&s, "events_sink = sns\naws_max_connections = 9\nevents_max_in_flight = 9\n", &err),
        APR_SUCCESS);
    /* No events through AWS: the client's pool is the store's alone, or unused. */
    ck_assert_int_eq(
        parse(&s, "store = dynamodb\nevents_sink = none\naws_max_connections = 3\n", &err),
        APR_SUCCESS);
    ck_assert_int_eq(parse(&s, "aws_max_connections = 1\nevents_max_in_flight = 64\n", &err),
                     APR_SUCCESS);
}
END_TEST

START_TEST(test_config_json_masks_secrets)
{
    od_settings_t s;
    const char *err = NULL;

    ck_assert_int_eq(parse(&s,
                           "aws_secret_access_key = hunter2\naws_session_token = tok\n"
                           "aws_access_key_id = AKID\nlisten_port = 9\n",
                           &err),
                     APR_SUCCESS);
    json_object *o = od_config_to_json(&s);
    const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
    ck_assert_ptr_null(strstr(text, "hunter2"));
    ck_assert_ptr_null(strstr(text, "tok\""));
    ck_assert_ptr_nonnull(strstr(text, "\"aws_secret_access_key\":\"***\""));
    ck_assert_ptr_nonnull(strstr(text, "\"aws_access_key_id\":\"AKID\""));
    ck_assert_ptr_nonnull(strstr(text, "\"listen_port\":9"));
    ck_assert_ptr_nonnull(strstr(text, "\"api_keys_file\":null"));
    json_object_put(o);
}
END_TEST

Suite *od_config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("parse");

    tcase_add_checked_fixture(tc, od_test_pool_setup, od_test_pool_teardown);
    tcase_add_test(tc, test_config_empty_gives_defaults);
    tcase_add_test(tc, test_config_every_type_parses);
    tcase_add_test(tc, test_config_unknown_key_names_line);
    tcase_add_test(tc, test_config_missing_equals_refused);
    tcase_add_test(tc, test_config_integer_bounds);
    tcase_add_test(tc, test_config_enum_lists_choices);
    tcase_add_test(tc, test_config_bad_regex_refused);
    tcase_add_test(tc, test_config_costly_regex_refused);
    tcase_add_test(tc, test_config_repeated_key_refused);
    tcase_add_test(tc, test_config_empty_string_refused);
    tcase_add_test(tc, test_config_nul_byte_refused);
    tcase_add_test(tc, test_config_shipped_file_is_valid);
    tcase_add_test(tc, test_config_json_masks_secrets);
    tcase_add_test(tc, test_config_events_max_in_flight);
    tcase_add_test(tc, test_config_events_in_flight_within_aws_connections);
    suite_add_tcase(s, tc);
    return s;
}

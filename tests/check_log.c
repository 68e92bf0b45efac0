/*
 * Tests of od_log: every line is one valid JSON text whatever bytes its strings carry, and
 * repeated lines of one kind are held back beyond a burst and counted; then, end to end, an
 * access line for a request whose path and method are not UTF-8.
 */
#include "od_json.h"
#include "od_log.h"
#include "od_suites.h"
#include "od_test_util.h"

#include <apr_strings.h>
#include <apr_tables.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* A logger at @p level on a fresh temporary file (closed at exit of the forked test). */
static od_log_t *log_on(FILE **f, od_log_level_e level)
{
    od_log_t *log = NULL;

    *f = tmpfile();
    ck_assert_ptr_nonnull(*f);
    ck_assert_int_eq(od_log_create(&log, level, *f, od_test_pool), APR_SUCCESS);
    return log;
}

/* The lines written to @p f so far (NUL-terminated copies, newline removed), from the start. */
static apr_array_header_t *lines_of(FILE *f)
{
    apr_array_header_t *lines = apr_array_make(od_test_pool, 16, sizeof(char *));
    char buf[16384];

    fflush(f);
    rewind(f);
    while (fgets(buf, sizeof(buf), f) != NULL) {
        size_t n = strlen(buf);
        ck_assert_msg(n > 0 && buf[n - 1] == '\n', "a line without its newline: %s", buf);
        APR_ARRAY_PUSH(lines, char *) = apr_pstrndup(od_test_pool, buf, n - 1);
    }
    fseek(f, 0, SEEK_END);
    return lines;
}

/* Line @p i parsed strictly (od_json: valid UTF-8, no overlongs or surrogates); owned by the
 * test pool. */
static json_object *parse_line(apr_array_header_t *lines, int i)
{
    json_object *doc = NULL;
    const char *why = NULL, *line = APR_ARRAY_IDX(lines, i, char *);

    ck_assert_msg(od_json_parse(&doc, &why, line, strlen(line), od_test_pool) == APR_SUCCESS,
                  "line %d is not valid JSON (%s): %s", i, why, line);
    return doc;
}

static const char *str_field(json_object *doc, const char *key)
{
    json_object *v = NULL;
    return json_object_object_get_ex(doc, key, &v) ? json_object_get_string(v) : NULL;
}

static int int_field(json_object *doc, const char *key)
{
    json_object *v = NULL;
    return json_object_object_get_ex(doc, key, &v) ? json_object_get_int(v) : -1;
}

/* Every line of the file at @p path parses with Python's json.loads after a strict UTF-8
 * decode. */
static void assert_python_parses(const char *path)
{
    char cmd[PATH_MAX + 256];

    snprintf(cmd, sizeof(cmd),
             "python3 -c 'import json,sys\n"
             "for l in open(sys.argv[1], encoding=\"utf-8\", errors=\"strict\"): json.loads(l)' "
             "%s",
             path);
    int rc = system(cmd);
    ck_assert_msg(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "python3 could not parse %s", path);
}

/* Copies the lines of @p f to a file python can open; returns its path. */
static const char *copy_to_file(FILE *f)
{
    char *path = apr_pstrdup(od_test_pool, "/tmp/od-log-XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    FILE *out = fdopen(fd, "w");
    apr_array_header_t *lines = lines_of(f);
    for (int i = 0; i < lines->nelts; i++) {
        fprintf(out, "%s\n", APR_ARRAY_IDX(lines, i, char *));
    }
    fclose(out);
    return path;
}

/* ---- UTF-8 ---- */

START_TEST(test_log_invalid_utf8_replaced_valid_kept)
{
    FILE *f = NULL;
    od_log_t *log = log_on(&f, OD_LOG_INFO);
    /* Invalid bytes, an overlong '/', a surrogate, a truncated sequence at the end; and valid
     * 2-, 3- and 4-byte characters, which must come out byte for byte. */
    const char *bad = "/orders/\xff\xfe/\xc0\xaf/\xed\xa0\x80/\xe2\x82";
    const char *good = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";

    od_log_error(log, "path %s then %s", bad, good);
    json_object *fields = json_object_new_object();
    json_object_object_add(fields, "path", json_object_new_string(bad));
    json_object_object_add(fields, "k\xff", json_object_new_string(good));
    json_object *nested = json_object_new_array();
    json_object_array_add(nested, json_object_new_string("\xc3"));
    json_object_object_add(fields, "nested", nested);
    od_log_fields(log, OD_LOG_INFO, fields);
    /* A message cut at 4 KiB in the middle of a character. */
    char *longmsg = apr_palloc(od_test_pool, 5000);
    for (int i = 0; i + 1 < 5000; i += 2) {
        memcpy(longmsg + i, "\xc3\xa9", 2);
    }
    longmsg[4999] = '\0';
    od_log_warn(log, "x%s", longmsg);

    apr_array_header_t *lines = lines_of(f);
    ck_assert_int_eq(lines->nelts, 3);
    const char *r = "\xef\xbf\xbd";
    json_object *doc = parse_line(lines, 0);
    ck_assert_str_eq(str_field(doc, "msg"),
                     apr_pstrcat(od_test_pool, "path /orders/", r, r, "/", r, r, "/", r, r, r, "/",
                                 r, r, " then ", good, NULL));
    doc = parse_line(lines, 1);
    ck_assert_str_eq(str_field(doc, "path"), apr_pstrcat(od_test_pool, "/orders/", r, r, "/", r, r,
                                                         "/", r, r, r, "/", r, r, NULL));
    ck_assert_str_eq(str_field(doc, apr_pstrcat(od_test_pool, "k", r, NULL)), good);
    doc = parse_line(lines, 2);
    ck_assert_uint_ge(strlen(str_field(doc, "msg")), 4000);
    assert_python_parses(copy_to_file(f));
}
END_TEST

/* ---- the rate limit ---- */

START_TEST(test_log_identical_errors_held_back_and_counted)
{
    FILE *f = NULL;
    od_log_t *log = log_on(&f, OD_LOG_INFO);

    /* Defaults: 10 lines of a kind per 10 s; 1000 in a row are far quicker than that. */
    for (int i = 0; i < 1000; i++) {
        od_log_error(log, "events: writing %s failed: %s", "/x/events.jsonl",
                     "No space left on device");
    }
    apr_array_header_t *lines = lines_of(f);
    ck_assert_int_le(lines->nelts, OD_LOG_BURST + 1);
    ck_assert_int_eq(lines->nelts, OD_LOG_BURST);
    for (int i = 0; i < lines->nelts; i++) {
        ck_assert_str_eq(str_field(parse_line(lines, i), "msg"),
                         "events: writing /x/events.jsonl failed: No space left on device");
    }
}
END_TEST

START_TEST(test_log_summary_after_window_then_logged_again)
{
    FILE *f = NULL;
    od_log_t *log = log_on(&f, OD_LOG_INFO);

    od_log_set_limit(log, 10, apr_time_from_sec(2));
    for (int i = 0; i < 1000; i++) {
        od_log_error(log, "sqlite: writing %d failed", i);
    }
    ck_assert_int_eq(lines_of(f)->nelts, 10);
    od_test_sleep_ms(2200);
    od_log_error(log, "sqlite: writing %d failed", 1000);
    apr_array_header_t *lines = lines_of(f);
    ck_assert_int_eq(lines->nelts, 12);
    json_object *sum = parse_line(lines, 10);
    ck_assert_str_eq(str_field(sum, "level"), "error");
    ck_assert_int_eq(int_field(sum, "suppressed"), 990);
    ck_assert_str_eq(str_field(sum, "msg"),
                     "990 similar messages suppressed; the last: sqlite: writing 999 failed");
    ck_assert_str_eq(str_field(parse_line(lines, 11), "msg"), "sqlite: writing 1000 failed");
    /* A new window: a burst again. */
    for (int i = 0; i < 20; i++) {
        od_log_error(log, "sqlite: writing %d failed", i);
    }
    ck_assert_int_eq(lines_of(f)->nelts, 12 + 9);
}
END_TEST

START_TEST(test_log_distinct_kinds_not_held_back)
{
    FILE *f = NULL;
    od_log_t *log = log_on(&f, OD_LOG_DEBUG);

    od_log_set_limit(log, 2, apr_time_from_sec(60));
    /* One call site's flood does not hold back other call sites, or another level. */
    for (int i = 0; i < 50; i++) {
        od_log_error(log, "flood %d", i);
    }
    od_log_error(log, "a");
    od_log_error(log, "b");
    od_log_warn(log, "flood %d", 0);
    od_log_info(log, "c %d", 1);
    /* More call sites than the table has slots: each still gets its burst. */
    for (int i = 0; i < 3; i++) {
#define DISTINCT(n) od_log_debug(log, "site " #n " %d", i)
        DISTINCT(0), DISTINCT(1), DISTINCT(2), DISTINCT(3), DISTINCT(4), DISTINCT(5);
        DISTINCT(6), DISTINCT(7), DISTINCT(8), DISTINCT(9), DISTINCT(10), DISTINCT(11);
        DISTINCT(12), DISTINCT(13), DISTINCT(14), DISTINCT(15), DISTINCT(16), DISTINCT(17);
        DISTINCT(18), DISTINCT(19), DISTINCT(20), DISTINCT(21), DISTINCT(22), DISTINCT(23);
        DISTINCT(24), DISTINCT(25), DISTINCT(26), DISTINCT(27), DISTINCT(28), DISTINCT(29);
        DISTINCT(30), DISTINCT(31), DISTINCT(32), DISTINCT(33), DISTINCT(34), DISTINCT(35);
#undef DISTINCT
    }
    apr_array_header_t *lines = lines_of(f);
    int sites = 0, flood = 0, summaries = 0;
    for (int i = 0; i < lines->nelts; i++) {
        json_object *doc = parse_line(lines, i);
        const char *msg = str_field(doc, "msg");
        sites += strncmp(msg, "site ", 5) == 0;
        flood += strncmp(msg, "flood ", 6) == 0;
        if (strstr(msg, "; the last: flood 49") != NULL) {
            summaries++;
            ck_assert_int_eq(int_field(doc, "suppressed"), 48);
        }
    }
    /* Each site is logged at least twice (its burst); a third time if its slot was taken by
     * another site meanwhile. */
    ck_assert_int_ge(sites, 36 * 2);
    ck_assert_int_eq(flood, 2 + 1);
    ck_assert_ptr_nonnull(strstr(APR_ARRAY_IDX(lines, 2, char *), "\"msg\":\"a\""));
    ck_assert_ptr_nonnull(strstr(APR_ARRAY_IDX(lines, 3, char *), "\"msg\":\"b\""));
    /* The flood's slot, the oldest, was taken first: its count was reported then, once. */
    ck_assert_int_eq(summaries, 1);
}
END_TEST

START_TEST(test_log_fields_never_held_back)
{
    FILE *f = NULL;
    od_log_t *log = log_on(&f, OD_LOG_INFO);

    for (int i = 0; i < 1000; i++) {
        json_object *fields = json_object_new_object();
        json_object_object_add(fields, "msg", json_object_new_string("request"));
        od_log_fields(log, OD_LOG_INFO, fields);
    }
    ck_assert_int_eq(lines_of(f)->nelts, 1000);
}
END_TEST

/* ---- end to end: the access log ---- */

START_TEST(test_log_access_line_of_non_utf8_request_parses)
{
    od_test_env_t *env = od_test_env_create(NULL);
    char reply[256];
    static const struct {
        const char *data;
        size_t len;
    } raw[] = {
#define RAW(s) {s, sizeof(s) - 1}
        RAW("GET /orders/\xff\xfe\xc0\xaf\xe2\x82 HTTP/1.1\r\nHost: x\r\n\r\n"),
        RAW("GET /orders/%ff%fe%c0%af%e2%82 HTTP/1.1\r\nHost: x\r\n\r\n"),
        RAW("G\xff\xfeT /healthz HTTP/1.1\r\nHost: x\r\n\r\n"),
#undef RAW
    };

    ck_assert_ptr_nonnull(env);
    ck_assert_int_eq(od_test_env_write_config(env, "log_level = info\n"), 0);
    ck_assert_int_eq(od_test_server_start(env), 0);
    for (size_t i = 0; i < sizeof(raw) / sizeof(raw[0]); i++) {
        ck_assert_int_ge(od_test_send_raw(env, raw[i].data, raw[i].len, reply, sizeof(reply), 2000),
                         0);
    }
    ck_assert_int_eq(od_test_server_stop(env, 20000), 0);
    char *text = od_test_server_log(env);
    ck_assert_ptr_nonnull(text);
    int access = 0, n = 0;
    for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n"), n++) {
        json_object *doc = NULL;
        const char *why = NULL;
        ck_assert_msg(od_json_parse(&doc, &why, line, strlen(line), od_test_pool) == APR_SUCCESS,
                      "log line %d is not valid JSON (%s): %s", n, why, line);
        const char *msg = str_field(doc, "msg");
        access += msg != NULL && strcmp(msg, "request") == 0;
    }
    ck_assert_int_ge(access, 2); /* the method's line may be refused before it is a request */
    free(text);
    assert_python_parses(apr_pstrcat(od_test_pool, od_test_env_dir(env), "/orderd.log", NULL));
    od_test_env_destroy(env);
}
END_TEST

Suite *od_log_suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("core");
    TCase *e2e = tcase_create("e2e");

    tcase_add_checked_fixture(tc, od_test_pool_setup, od_test_pool_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_log_invalid_utf8_replaced_valid_kept);
    tcase_add_test(tc, test_log_identical_errors_held_back_and_counted);
    tcase_add_test(tc, test_log_summary_after_window_then_logged_again);
    tcase_add_test(tc, test_log_distinct_kinds_not_held_back);
    tcase_add_test(tc, test_log_fields_never_held_back);
    suite_add_tcase(s, tc);
    tcase_add_checked_fixture(e2e, od_test_pool_setup, od_test_pool_teardown);
    tcase_set_timeout(e2e, 60);
    tcase_add_test(e2e, test_log_access_line_of_non_utf8_request_parses);
    suite_add_tcase(s, e2e);
    return s;
}

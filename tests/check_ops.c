/*
 * Operations end to end, on the real binary: /healthz and /readyz (public), /metrics checked by
 * an independent parser (promtool) and against the requests made, request ids, the JSON
 * access log (one line per request, never a key), reloads (SIGHUP), the keys file, and the
 * one-shot modes (-t, --init-store).
 */
#include "od_suites.h"
#include "od_test_util.h"

#include <json-c/json.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Suite *od_ops_suite(void);

#define OPS_KEY "ops-secret-key-123456"
#define OPS_ORDER                                                                                  \
    "{\"customer_id\":\"CUST-000777\",\"currency\":\"EUR\",\"items\":[{\"sku\":\"SKU-7\","         \
    "\"quantity\":1,\"unit_price_cents\":%d}]}"

static const od_test_key_t ops_keys[] = {{"shop", OPS_KEY}};

/* "api_keys_file = PATH" for a keys file written by the test itself. */
static const char *keys_line(const char *path)
{
    static char line[PATH_MAX + 32];
    snprintf(line, sizeof(line), "api_keys_file = %s\n", path);
    return line;
}

static od_test_env_t *start(const char *extra)
{
    od_test_env_t *env = od_test_env_create(NULL);

    ck_assert_ptr_nonnull(env);
    ck_assert_int_eq(od_test_env_write_keys(env, ops_keys, 1), 0);
    ck_assert_int_eq(od_test_env_write_config(env, extra), 0);
    ck_assert_msg(od_test_server_start(env) == 0, "%s", od_test_server_log(env));
    return env;
}

/* Stops orderd (exit 0 required) but keeps the directory, to read the log. */
static void finish_keep(od_test_env_t *env)
{
    ck_assert_int_eq(od_test_server_stop(env, 15000), 0);
}

static void finish(od_test_env_t *env)
{
    finish_keep(env);
    od_test_env_destroy(env);
}

static long get(od_test_env_t *env, const char *path, const char *unused, od_test_response_t *out)
{
    od_test_request_t req = {.method = "GET", .path = path};
    (void) unused;
    ck_assert_int_eq(od_test_http(env, &req, out), 0);
    return out->status;
}

static long post(od_test_env_t *env, int price, const char *key)
{
    char body[256];
    od_test_request_t req = {.method = "POST", .path = "/orders", .body = body, .api_key = key};
    od_test_response_t resp;

    snprintf(body, sizeof(body), OPS_ORDER, price);
    req.body_len = strlen(body);
    ck_assert_int_eq(od_test_http(env, &req, &resp), 0);
    long status = resp.status;
    od_test_response_free(&resp);
    return status;
}

START_TEST(test_ops_health_and_ready_need_no_key)
{
    od_test_env_t *env = start(NULL);
    od_test_response_t resp;

    ck_assert_int_eq(get(env, "/healthz", NULL, &resp), 200);
    ck_assert_str_eq(resp.body, "{\"status\":\"ok\"}");
    od_test_response_free(&resp);
    ck_assert_int_eq(get(env, "/readyz", NULL, &resp), 200);
    od_test_response_free(&resp);
    /* Orders still need the key. */
    ck_assert_int_eq(post(env, 1, NULL), 401);
    finish(env);
}
END_TEST

START_TEST(test_ops_readyz_503_when_store_unreachable)
{
    /* A DynamoDB store on a port where nothing listens: up, but not ready. */
    setenv("AWS_ACCESS_KEY_ID", "AKIDOPS", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "x", 1);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    od_test_env_t *env = od_test_env_create(NULL);
    od_test_response_t resp;

    ck_assert_int_eq(od_test_env_write_config(env, "store = dynamodb\naws_region = us-east-1\n"
                                                   "dynamodb_endpoint = http://127.0.0.1:9\n"
                                                   "events_sink = none\naws_max_attempts = 1\n"),
                     0);
    od_test_env_skip_init_store(env);
    ck_assert_int_eq(od_test_server_start(env), 0);
    ck_assert_int_eq(get(env, "/healthz", NULL, &resp), 200);
    od_test_response_free(&resp);
    ck_assert_int_eq(get(env, "/readyz", NULL, &resp), 503);
    ck_assert_ptr_nonnull(strstr(resp.body, "not reachable"));
    od_test_response_free(&resp);
    finish(env);
}
END_TEST

/* The value of the sample @p series ("name{labels}") in exposition @p text, or -1. */
static double sample(const char *text, const char *series)
{
    char want[256];
    snprintf(want, sizeof(want), "\n%s ", series);
    const char *at = strstr(text, want);
    return at != NULL ? strtod(at + strlen(want), NULL) : -1;
}

static int promtool_check(od_test_env_t *env, const char *text)
{
    char *path = od_test_env_write_file(env, "metrics.txt", text);
    char cmd[PATH_MAX + 64];

    snprintf(cmd, sizeof(cmd), "promtool check metrics < %s > %s.out 2>&1", path, path);
    int rc = system(cmd);
    free(path);
    return rc;
}

/* /metrics once @p series reads @p want, or after 2 s: a request is counted when libmicrohttpd
 * reports it complete, which for a connection it closes (a 401 refuses the body) can come just
 * after the client has read the answer. */
static void metrics_with(od_test_env_t *env, const char *series, double want,
                         od_test_response_t *resp)
{
    for (int i = 0; i < 40; i++) {
        ck_assert_int_eq(get(env, "/metrics", NULL, resp), 200);
        if (sample(resp->body, series) == want) {
            return;
        }
        od_test_response_free(resp);
        od_test_sleep_ms(50);
    }
    ck_assert_int_eq(get(env, "/metrics", NULL, resp), 200);
}

START_TEST(test_ops_metrics_parse_and_count)
{
    od_test_env_t *env = start(NULL);
    od_test_response_t resp;

    ck_assert_int_eq(post(env, 10, OPS_KEY), 201);
    ck_assert_int_eq(post(env, 11, OPS_KEY), 201);
    ck_assert_int_eq(post(env, 10, OPS_KEY), 200); /* a replay from the hot cache */
    ck_assert_int_eq(post(env, 12, "wrong"), 401);
    metrics_with(env, "orderd_http_request_duration_seconds_count{route=\"post_orders\"}", 4,
                 &resp);
    ck_assert_ptr_nonnull(strstr(od_test_response_header(&resp, "Content-Type"), "text/plain"));
    ck_assert_msg(promtool_check(env, resp.body) == 0, "promtool rejected:\n%s", resp.body);
    const char *t = resp.body;
    ck_assert_int_eq(
        (int) sample(t, "orderd_http_requests_total{route=\"post_orders\",code=\"201\"}"), 2);
    ck_assert_int_eq(
        (int) sample(t, "orderd_http_requests_total{route=\"post_orders\",code=\"200\"}"), 1);
    ck_assert_int_eq(
        (int) sample(t, "orderd_http_requests_total{route=\"post_orders\",code=\"401\"}"), 1);
    ck_assert_int_eq(
        (int) sample(t, "orderd_http_request_duration_seconds_count{route=\"post_orders\"}"), 4);
    ck_assert_int_eq((int) sample(t, "orderd_hot_cache_hits_total"), 1);
    ck_assert_int_eq((int) sample(t, "orderd_workers_queued"), 0);
    ck_assert_int_eq((int) sample(t, "orderd_store_operation_duration_seconds_count{op=\"put\"}"),
                     2);
    /* The SQLite store's idempotency index holds the two new orders (well within their window). */
    ck_assert_int_eq((int) sample(t, "orderd_idempotency_index_entries"), 2);
    ck_assert_int_eq((int) sample(t, "orderd_idempotency_index_capacity"), 1 << 20);
    od_test_response_free(&resp);
    finish(env);
}
END_TEST

/* The access line of @p request_id in the log, parsed; NULL if none. */
static json_object *access_line(const char *log, const char *request_id)
{
    char want[256];
    snprintf(want, sizeof(want), "\"request_id\":\"%s\"", request_id);
    const char *at = strstr(log, want);
    if (at == NULL) {
        return NULL;
    }
    while (at > log && at[-1] != '\n') {
        at--;
    }
    return json_tokener_parse(at); /* stops at the end of the first object */
}

static const char *field(json_object *o, const char *name)
{
    json_object *v = NULL;
    return json_object_object_get_ex(o, name, &v) ? json_object_get_string(v) : NULL;
}

static json_object *post_with_id(od_test_env_t *env, const char *header, int price, char *rid,
                                 size_t rid_size)
{
    od_test_request_t req = {
        .method = "POST", .path = "/orders", .api_key = OPS_KEY, .header = header};
    od_test_response_t resp;
    char body[256];

    snprintf(body, sizeof(body), OPS_ORDER, price);
    req.body = body;
    req.body_len = strlen(body);
    ck_assert_int_eq(od_test_http(env, &req, &resp), 0);
    ck_assert_int_eq(resp.status, 201);
    const char *h = od_test_response_header(&resp, "X-Request-Id");
    ck_assert_ptr_nonnull(h);
    snprintf(rid, rid_size, "%s", h);
    json_object *order = json_tokener_parse(resp.body);
    od_test_response_free(&resp);
    return order;
}

/* The access line of @p rid has every field, and the order and caller it concerned. */
static void assert_access_line(const char *log, const char *rid, json_object *order)
{
    json_object *line = access_line(log, rid), *v = NULL;

    ck_assert_msg(line != NULL, "no access line for %s in:\n%s", rid, log);
    ck_assert_str_eq(field(line, "level"), "info");
    ck_assert_ptr_nonnull(field(line, "time"));
    ck_assert_str_eq(field(line, "method"), "POST");
    ck_assert_str_eq(field(line, "path"), "/orders");
    ck_assert_str_eq(field(line, "status"), "201");
    ck_assert(json_object_object_get_ex(line, "duration_ms", &v));
    ck_assert_str_eq(field(line, "caller"), "shop");
    ck_assert_str_eq(field(line, "order_id"), field(order, "order_id"));
    json_object_put(line);
}

START_TEST(test_ops_request_id_and_access_log)
{
    od_test_env_t *env = start(NULL);
    char rid[160];

    /* No X-Request-Id: one is generated (a ULID) and echoed. */
    json_object *a = post_with_id(env, NULL, 90, rid, sizeof(rid));
    ck_assert_uint_eq(strlen(rid), 26);
    char generated[sizeof(rid)];
    memcpy(generated, rid, sizeof(rid));
    /* The client's own id is kept and echoed ... */
    json_object *b = post_with_id(env, "X-Request-Id: lb-1234.abc_Z", 91, rid, sizeof(rid));
    ck_assert_str_eq(rid, "lb-1234.abc_Z");
    /* ... unless it is not a sane token. */
    json_object *c = post_with_id(env, "X-Request-Id: bad id\"{}", 92, rid, sizeof(rid));
    ck_assert_uint_eq(strlen(rid), 26);
    finish_keep(env);
    char *log = od_test_server_log(env);
    assert_access_line(log, generated, a);
    assert_access_line(log, "lb-1234.abc_Z", b);
    /* Every line is JSON, and the key never appears. */
    ck_assert_ptr_null(strstr(log, OPS_KEY));
    for (char *l = log, *nl = NULL; *l != '\0'; l = nl + 1) {
        nl = strchr(l, '\n');
        ck_assert_ptr_nonnull(nl);
        *nl = '\0';
        json_object *o = json_tokener_parse(l);
        ck_assert_msg(o != NULL && field(o, "level") != NULL, "not a JSON log line: %s", l);
        json_object_put(o);
    }
    free(log);
    json_object_put(a);
    json_object_put(b);
    json_object_put(c);
    od_test_env_destroy(env);
}
END_TEST

START_TEST(test_ops_rate_limit_429_with_retry_after)
{
    /* The default: 1/s with a burst of 3; this caller's own line is not limited further. */
    od_test_env_t *env = start("rate_limit_per_s = 1\nrate_limit_burst = 3\n");
    od_test_request_t req = {
        .method = "GET", .path = "/orders/01ARZ3NDEKTSV4RRFFQ69G5FAV", .api_key = OPS_KEY};
    od_test_response_t resp;
    int ok = 0, limited = 0;

    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(od_test_http(env, &req, &resp), 0);
        ok += resp.status == 404;
        if (resp.status == 429) {
            limited++;
            ck_assert_str_eq(od_test_response_header(&resp, "Retry-After"), "1");
        }
        od_test_response_free(&resp);
    }
    ck_assert_int_eq(ok, 3);
    ck_assert_int_eq(limited, 3);
    /* Health checks are never limited. */
    ck_assert_int_eq(get(env, "/healthz", NULL, &resp), 200);
    od_test_response_free(&resp);
    finish(env);
}
END_TEST

/* Writes the keys file again with one more caller and reloads with SIGHUP while a keep-alive
 * client keeps going: the new caller works, the old one still does, nothing is dropped. */
START_TEST(test_ops_sighup_reloads_keys_and_level)
{
    static const od_test_key_t more[] = {{"shop", OPS_KEY}, {"late", "late-key-0987654321"}};
    od_test_env_t *env = start(NULL);

    ck_assert_int_eq(post(env, 500, "late-key-0987654321"), 401);
    ck_assert_int_eq(od_test_env_write_keys(env, more, 2), 0);
    ck_assert_int_eq(od_test_server_signal(env, SIGHUP), 0);
    int reloaded = 0;
    for (int i = 0; i < 50 && !reloaded; i++) {
        od_test_sleep_ms(100);
        char *log = od_test_server_log(env);
        reloaded = strstr(log, "reloaded") != NULL;
        free(log);
    }
    ck_assert(reloaded);
    ck_assert_int_eq(post(env, 501, "late-key-0987654321"), 201);
    ck_assert_int_eq(post(env, 502, OPS_KEY), 201);
    /* A broken keys file is refused and the running set kept. */
    char *bad = od_test_env_write_file(env, "broken", "no-hash-here\n");
    ck_assert_int_eq(rename(bad, od_test_env_keys_path(env)), 0);
    chmod(od_test_env_keys_path(env), 0600);
    ck_assert_int_eq(od_test_server_signal(env, SIGHUP), 0);
    od_test_sleep_ms(500);
    ck_assert_int_eq(post(env, 503, "late-key-0987654321"), 201);
    free(bad);
    finish(env);
}
END_TEST

/* Waits (up to 5 s) until the log shows the outcome of a reload; returns whether it failed. */
static int await_reload(od_test_env_t *env, long offset)
{
    for (int i = 0; i < 50; i++) {
        char *log = od_test_server_log(env);
        int ok = strstr(log + offset, "server: reloaded") != NULL;
        int failed = strstr(log + offset, "reload failed") != NULL;
        free(log);
        if (ok || failed) {
            return failed;
        }
        od_test_sleep_ms(100);
    }
    ck_abort_msg("no reload in the log");
    return -1;
}

static long log_size(od_test_env_t *env)
{
    char *log = od_test_server_log(env);
    long n = (long) strlen(log);
    free(log);
    return n;
}

/* Writes the config again without its api_keys_file line, plus @p extra (or NULL). */
static void rewrite_config(od_test_env_t *env, const char *extra)
{
    char text[8192] = "", line[PATH_MAX + 64];
    FILE *f = fopen(od_test_env_config_path(env), "r");

    ck_assert_ptr_nonnull(f);
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "api_keys_file", 13) != 0) {
            strncat(text, line, sizeof(text) - strlen(text) - 1);
        }
    }
    fclose(f);
    strncat(text, extra != NULL ? extra : "", sizeof(text) - strlen(text) - 1);
    free(od_test_env_write_file(env, "orderd.conf", text));
}

/* Removing api_keys_file from the config and reloading must not let everyone in. */
START_TEST(test_ops_sighup_cannot_turn_authentication_off)
{
    od_test_env_t *env = start(NULL);
    long offset = log_size(env);

    rewrite_config(env, NULL);
    ck_assert_int_eq(od_test_server_signal(env, SIGHUP), 0);
    ck_assert_int_eq(await_reload(env, offset), 1);
    ck_assert_int_eq(post(env, 700, NULL), 401);
    ck_assert_int_eq(post(env, 701, "any-key-at-all"), 401);
    ck_assert_int_eq(post(env, 702, OPS_KEY), 201);
    char *log = od_test_server_log(env);
    ck_assert_msg(strstr(log + offset, "cannot turn authentication off") != NULL, "%s",
                  log + offset);
    free(log);
    finish(env);
}
END_TEST

/* A keys file that lists nobody is refused by a reload: the running callers keep working. */
START_TEST(test_ops_sighup_to_empty_keys_file_refused)
{
    od_test_env_t *env = start(NULL);
    long offset = log_size(env);
    char *empty = od_test_env_write_file(env, "empty", "# nobody yet\n\n");

    ck_assert_int_eq(rename(empty, od_test_env_keys_path(env)), 0);
    chmod(od_test_env_keys_path(env), 0600);
    ck_assert_int_eq(od_test_server_signal(env, SIGHUP), 0);
    ck_assert_int_eq(await_reload(env, offset), 1);
    ck_assert_int_eq(post(env, 710, OPS_KEY), 201);
    ck_assert_int_eq(post(env, 711, NULL), 401);
    char *log = od_test_server_log(env);
    ck_assert_msg(strstr(log + offset, "no callers") != NULL, "%s", log + offset);
    free(log);
    free(empty);
    finish(env);
}
END_TEST

/* A server started without keys may get them by a reload: that only turns authentication on. */
START_TEST(test_ops_sighup_can_turn_authentication_on)
{
    od_test_env_t *env = od_test_env_create(NULL);

    ck_assert_int_eq(od_test_env_write_config(env, NULL), 0);
    ck_assert_int_eq(od_test_server_start(env), 0);
    ck_assert_int_eq(post(env, 720, NULL), 201);
    long offset = log_size(env);
    ck_assert_int_eq(od_test_env_write_keys(env, ops_keys, 1), 0);
    rewrite_config(env, keys_line(od_test_env_keys_path(env)));
    ck_assert_int_eq(od_test_server_signal(env, SIGHUP), 0);
    ck_assert_int_eq(await_reload(env, offset), 0);
    ck_assert_int_eq(post(env, 721, NULL), 401);
    ck_assert_int_eq(post(env, 722, OPS_KEY), 201);
    finish(env);
}
END_TEST

START_TEST(test_ops_empty_keys_file_refused_at_start)
{
    od_test_env_t *env = od_test_env_create(NULL);
    char *keys = od_test_env_write_file(env, "keys", "# callers, one a line\n\n   \n");
    char *err = NULL;

    chmod(keys, 0600);
    ck_assert_int_eq(od_test_env_write_config(env, keys_line(keys)), 0);
    ck_assert_int_eq(od_test_check_config(env, od_test_env_config_path(env), &err), 1);
    ck_assert_msg(strstr(err, ": no callers") != NULL && strstr(err, keys) != NULL, "%s", err);
    ck_assert_int_eq(od_test_server_start(env), -1);
    char *log = od_test_server_log(env);
    ck_assert_msg(strstr(log, ": no callers") != NULL, "%s", log);
    free(log);
    free(err);
    free(keys);
    od_test_env_destroy(env);
}
END_TEST

/* A pattern glibc would take minutes and gigabytes to compile is refused before regcomp: the
 * check ends within the harness's bound (10 s) with the reason. */
START_TEST(test_ops_costly_pattern_check_fails_fast)
{
    od_test_env_t *env = od_test_env_create(NULL);
    char *err = NULL;

    ck_assert_int_eq(
        od_test_env_write_config(env, "customer_id_pattern = a++++++++++++++++++++++\n"), 0);
    ck_assert_int_eq(od_test_check_config(env, od_test_env_config_path(env), &err), 1);
    ck_assert_msg(strstr(err, "customer_id_pattern: 'a++++++++++++++++++++++' is too costly") !=
                      NULL,
                  "%s", err);
    free(err);
    od_test_env_destroy(env);
}
END_TEST

/* The one-shot modes do not take signals with sigwait: SIGTERM (or SIGINT) ends them even while
 * they block, here opening a configuration that is a FIFO nobody writes to. */
START_TEST(test_ops_one_shot_modes_end_on_sigterm)
{
    od_test_env_t *env = od_test_env_create(NULL);
    char fifo[PATH_MAX];
    const char *consumer = getenv("ORDERD_CONSUMER_BIN");

    ck_assert_ptr_nonnull(consumer);
    snprintf(fifo, sizeof(fifo), "%s/config.fifo", od_test_env_dir(env));
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    ck_assert_int_eq(od_test_signal_when_blocked(env, NULL, "-t", fifo, SIGTERM, 5000),
                     128 + SIGTERM);
    ck_assert_int_eq(od_test_signal_when_blocked(env, NULL, "-t", fifo, SIGINT, 5000),
                     128 + SIGINT);
    ck_assert_int_eq(od_test_signal_when_blocked(env, NULL, "--init-store", fifo, SIGTERM, 5000),
                     128 + SIGTERM);
    ck_assert_int_eq(od_test_signal_when_blocked(env, consumer, "-t", fifo, SIGTERM, 5000),
                     128 + SIGTERM);
    od_test_env_destroy(env);
}
END_TEST

START_TEST(test_ops_keys_file_readable_by_others_refused)
{
    od_test_env_t *env = od_test_env_create(NULL);
    char *err = NULL;

    ck_assert_int_eq(od_test_env_write_keys(env, ops_keys, 1), 0);
    ck_assert_int_eq(od_test_env_write_config(env, NULL), 0);
    chmod(od_test_env_keys_path(env), 0644);
    ck_assert_int_eq(od_test_check_config(env, od_test_env_config_path(env), &err), 1);
    ck_assert_msg(strstr(err, "accessible by other users") != NULL, "%s", err);
    free(err);
    od_test_env_destroy(env);
}
END_TEST

START_TEST(test_ops_second_process_on_same_sqlite_refused)
{
    od_test_env_t *env = start(NULL);
    char *err = NULL;

    /* --init-store opens the store as the daemon does, on the same file. */
    ck_assert_int_eq(od_test_run_once(env, "--init-store", od_test_env_config_path(env), &err), 1);
    ck_assert_msg(strstr(err, "in use by another process") != NULL, "%s", err);
    free(err);
    ck_assert_int_eq(post(env, 601, OPS_KEY), 201); /* the running orderd goes on */
    finish_keep(env);
    /* Once it has stopped, the file is free again. */
    ck_assert_int_eq(od_test_run_once(env, "--init-store", od_test_env_config_path(env), &err), 0);
    free(err);
    od_test_env_destroy(env);
}
END_TEST

START_TEST(test_ops_keygen_line_authenticates)
{
    char cmd[PATH_MAX + 32], out[1024], key[128] = "", line[256] = "";
    snprintf(cmd, sizeof(cmd), "%s keygen shop-9", getenv("ORDERD_BIN"));
    FILE *f = popen(cmd, "r");
    size_t n = fread(out, 1, sizeof(out) - 1, f);
    out[n] = '\0';
    ck_assert_int_eq(pclose(f), 0);
    ck_assert_int_eq(sscanf(strstr(out, "odk_"), "%127s", key), 1);
    ck_assert_int_eq(sscanf(strstr(out, "\nshop-9 ") + 1, "%255[^\n]", line), 1);
    ck_assert_uint_eq(strlen(key), 4 + 48);

    od_test_env_t *env = od_test_env_create(NULL);
    char *keys = od_test_env_write_file(env, "keys", line);
    chmod(keys, 0600);
    ck_assert_int_eq(od_test_env_write_config(env, keys_line(keys)), 0);
    ck_assert_msg(od_test_server_start(env) == 0, "%s", od_test_server_log(env));
    ck_assert_int_eq(post(env, 600, key), 201);
    ck_assert_int_eq(post(env, 601, "odk_0000"), 401);
    finish(env);
    free(keys);
}
END_TEST

/* Reads the datagrams orderd sent to the notify socket so far (bounded wait). */
static void notify_read(int fd, char *all, size_t size, long wait_ms)
{
    char msg[512];

    for (long waited = 0; waited < wait_ms; waited += 50) {
        ssize_t n;
        while ((n = recv(fd, msg, sizeof(msg) - 1, MSG_DONTWAIT)) > 0) {
            msg[n] = '\0';
            strncat(all, msg, size - strlen(all) - 2);
            strncat(all, "|", size - strlen(all) - 1);
        }
        od_test_sleep_ms(50);
    }
}

/* systemd's notify protocol (Type=notify, WatchdogSec=): READY once listening, watchdog pings,
 * RELOADING/READY around SIGHUP, STOPPING on SIGTERM. */
START_TEST(test_ops_systemd_notify_protocol)
{
    od_test_env_t *env = od_test_env_create(NULL);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    char got[4096] = "";

    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/notify", od_test_env_dir(env));
    ck_assert_int_eq(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
    setenv("NOTIFY_SOCKET", sa.sun_path, 1);
    setenv("WATCHDOG_USEC", "400000", 1);
    ck_assert_int_eq(od_test_env_write_config(env, NULL), 0);
    ck_assert_int_eq(od_test_server_start(env), 0);
    notify_read(fd, got, sizeof(got), 700);
    ck_assert_msg(strstr(got, "READY=1") == got, "first message: %s", got);
    ck_assert_msg(strstr(got, "WATCHDOG=1") != NULL, "no watchdog ping: %s", got);
    ck_assert_int_eq(od_test_server_signal(env, SIGHUP), 0);
    notify_read(fd, got, sizeof(got), 500);
    ck_assert_msg(strstr(got, "RELOADING=1|READY=1") != NULL, "reload: %s", got);
    ck_assert_int_eq(od_test_server_signal(env, SIGTERM), 0);
    notify_read(fd, got, sizeof(got), 500);
    ck_assert_msg(strstr(got, "STOPPING=1") != NULL, "stop: %s", got);
    ck_assert_int_eq(od_test_server_stop(env, 15000), 0);
    close(fd);
    od_test_env_destroy(env);
}
END_TEST

Suite *od_ops_suite(void)
{
    Suite *s = suite_create("ops");
    TCase *tc = tcase_create("observability");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_ops_health_and_ready_need_no_key);
    tcase_add_test(tc, test_ops_readyz_503_when_store_unreachable);
    tcase_add_test(tc, test_ops_metrics_parse_and_count);
    tcase_add_test(tc, test_ops_request_id_and_access_log);
    tcase_add_test(tc, test_ops_rate_limit_429_with_retry_after);
    tcase_add_test(tc, test_ops_sighup_reloads_keys_and_level);
    tcase_add_test(tc, test_ops_sighup_cannot_turn_authentication_off);
    tcase_add_test(tc, test_ops_sighup_to_empty_keys_file_refused);
    tcase_add_test(tc, test_ops_sighup_can_turn_authentication_on);
    tcase_add_test(tc, test_ops_empty_keys_file_refused_at_start);
    tcase_add_test(tc, test_ops_costly_pattern_check_fails_fast);
    tcase_add_test(tc, test_ops_one_shot_modes_end_on_sigterm);
    tcase_add_test(tc, test_ops_keys_file_readable_by_others_refused);
    tcase_add_test(tc, test_ops_second_process_on_same_sqlite_refused);
    tcase_add_test(tc, test_ops_keygen_line_authenticates);
    tcase_add_test(tc, test_ops_systemd_notify_protocol);
    suite_add_tcase(s, tc);
    return s;
}

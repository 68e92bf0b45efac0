/*
 * End-to-end tests: each test starts its own orderd ($ORDERD_BIN) through od_test_util and
 * speaks HTTP to it on 127.0.0.1. Run in Check's fork mode.
 */
#ifndef _GNU_SOURCE /* APR's pkg-config flags may already define it */
#define _GNU_SOURCE /* timegm, pthread_barrier_t */
#endif

#include "od_suites.h"
#include "od_test_engines.h"
#include "od_test_util.h"

#include <json-c/json.h>
#include <limits.h>
#include <pthread.h>
#include <regex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define E2E_ORDER                                                                                  \
    "{\"customer_id\":\"CUST-000123\",\"currency\":\"EUR\",\"items\":[{\"sku\":\"SKU-1001\","      \
    "\"quantity\":2,\"unit_price_cents\":1999},{\"sku\":\"SKU-2002\",\"quantity\":1,"              \
    "\"unit_price_cents\":500}],\"note\":\"leave at the door\"}"
#define E2E_ORDER_TOTAL 4498 /* 2 * 1999 + 500 */
#define E2E_UNKNOWN_ULID "01ARYZ6S41TSV4RRFFQ69G5FAV"
#define E2E_ULID_ALPHABET "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
#define E2E_JSON "application/json"
#define E2E_PROBLEM "application/problem+json"
#define E2E_STOP_MS 15000L

static const od_test_key_t e2e_keys[] = {{"alice", "alice-key-0123456789"},
                                         {"bob", "bob-key-9876543210"}};
#define E2E_ALICE "alice-key-0123456789"
#define E2E_BOB "bob-key-9876543210"

/* Every test's environment lives under this directory, which an unchecked fixture makes and
 * removes in the runner process: a failing test _exits (fork mode) without cleaning up, and
 * its orderd dies with it (PR_SET_PDEATHSIG), so only the files would be left behind. */
static char e2e_base[PATH_MAX];

/* ORDERD_TEST_STORE=moto or ddblocal runs the whole suite on the DynamoDB store against that
 * engine, started once here in the runner process; the harness then gives each test its own
 * table. Unset (or sqlite): the embedded store. */
static od_test_engine_t *e2e_engine;

static void e2e_engine_start(void)
{
    const char *which = getenv("ORDERD_TEST_STORE");

    if (which == NULL || *which == '\0' || strcmp(which, "sqlite") == 0) {
        return;
    }
    if (strcmp(which, "moto") == 0) {
        e2e_engine = od_test_moto_start(NULL);
    } else if (strcmp(which, "ddblocal") == 0) {
        e2e_engine = od_test_ddblocal_start();
    } else {
        ck_abort_msg("ORDERD_TEST_STORE=%s: expected sqlite, moto or ddblocal", which);
    }
    char conf[512];
    snprintf(conf, sizeof(conf),
             "store = dynamodb\naws_region = us-east-1\ndynamodb_endpoint = %s\n"
             "aws_max_connections = 16\nevents_max_in_flight = 16",
             od_test_engine_url(e2e_engine));
    setenv("ORDERD_TEST_STORE_CONF", conf, 1);
    setenv("AWS_ACCESS_KEY_ID", "AKIDTESTING", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "testing-secret", 1);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
}

static void e2e_base_setup(void)
{
    snprintf(e2e_base, sizeof(e2e_base), "/tmp/orderd-e2e-suite-XXXXXX");
    if (mkdtemp(e2e_base) == NULL) {
        e2e_base[0] = '\0';
    }
    e2e_engine_start();
}

static void e2e_base_teardown(void)
{
    od_test_engine_stop(e2e_engine);
    e2e_engine = NULL;
    unsetenv("ORDERD_TEST_STORE_CONF");
    if (e2e_base[0] != '\0') {
        od_test_remove_tree(e2e_base);
    }
}

/* ---- helpers: servers and requests ---- */

static od_test_env_t *e2e_env(const char *extra, const od_test_key_t *keys, size_t nkeys)
{
    od_test_env_t *env = od_test_env_create(e2e_base[0] != '\0' ? e2e_base : NULL);

    ck_assert_ptr_nonnull(env);
    if (nkeys > 0) {
        ck_assert_int_eq(od_test_env_write_keys(env, keys, nkeys), 0);
    }
    ck_assert_int_eq(od_test_env_write_config(env, extra), 0);
    return env;
}

static void e2e_start(od_test_env_t *env)
{
    if (od_test_server_start(env) != 0) {
        char *log = od_test_server_log(env);
        ck_abort_msg("orderd did not start; its log:\n%s", log != NULL ? log : "(none)");
    }
}

static od_test_env_t *e2e_up(const char *extra, const od_test_key_t *keys, size_t nkeys)
{
    od_test_env_t *env = e2e_env(extra, keys, nkeys);
    e2e_start(env);
    return env;
}

static void e2e_send(const od_test_env_t *env, const od_test_request_t *req,
                     od_test_response_t *out)
{
    int rc = od_test_http(env, req, out);
    ck_assert_msg(rc == 0, "%s %s: no complete response (status %ld): %s", req->method, req->path,
                  out->status, out->error);
}

static void e2e_post_n(const od_test_env_t *env, const char *key, const char *body, size_t len,
                       od_test_response_t *out)
{
    od_test_request_t req = {.method = "POST", .path = "/orders", .api_key = key};

    req.body = body;
    req.body_len = len;
    e2e_send(env, &req, out);
}

static void e2e_post(const od_test_env_t *env, const char *key, const char *body,
                     od_test_response_t *out)
{
    e2e_post_n(env, key, body, strlen(body), out);
}

static void e2e_get(const od_test_env_t *env, const char *key, const char *path,
                    od_test_response_t *out)
{
    od_test_request_t req = {.method = "GET", .path = path, .api_key = key};
    e2e_send(env, &req, out);
}

/* Stops orderd and requires exit 0: under the sanitizer builds a report (or a leak found at
 * exit) makes the exit status non-zero, and the log's tail then shows it. */
/* Stops orderd with SIGTERM; anything but exit status 0 fails the test with the log's tail. */
static void e2e_stop(od_test_env_t *env)
{
    int rc = od_test_server_stop(env, E2E_STOP_MS);
    if (rc != 0) {
        char *log = od_test_server_log(env);
        size_t n = log != NULL ? strlen(log) : 0;
        ck_abort_msg("orderd exit status %d on SIGTERM; log tail:\n%s", rc,
                     n > 3000 ? log + n - 3000 : (log != NULL ? log : ""));
    }
}

static void e2e_finish(od_test_env_t *env)
{
    e2e_stop(env);
    od_test_env_destroy(env);
}

/* ---- helpers: response bodies ---- */

/* Parses a body as a JSON object; the caller puts it. */
static json_object *e2e_json(const od_test_response_t *resp)
{
    json_tokener *tok = json_tokener_new();
    json_object *obj = json_tokener_parse_ex(tok, resp->body, (int) resp->body_len);
    int complete = json_tokener_get_error(tok) == json_tokener_success;

    json_tokener_free(tok);
    ck_assert_msg(complete && json_object_is_type(obj, json_type_object),
                  "status %ld: body is not a JSON object: %s", resp->status, resp->body);
    return obj;
}

static json_object *e2e_member(json_object *obj, const char *key, json_type type)
{
    json_object *v = NULL;

    ck_assert_msg(json_object_object_get_ex(obj, key, &v), "no member '%s' in %s", key,
                  json_object_to_json_string(obj));
    ck_assert_msg(json_object_is_type(v, type), "member '%s' has type %s", key,
                  json_type_to_name(json_object_get_type(v)));
    return v;
}

static const char *e2e_str(json_object *obj, const char *key)
{
    return json_object_get_string(e2e_member(obj, key, json_type_string));
}

static int64_t e2e_int(json_object *obj, const char *key)
{
    return json_object_get_int64(e2e_member(obj, key, json_type_int));
}

static void e2e_assert_header(const od_test_response_t *resp, const char *name, const char *want)
{
    const char *got = od_test_response_header(resp, name);
    ck_assert_msg(got != NULL && strcmp(got, want) == 0, "header %s: want '%s', got '%s'", name,
                  want, got != NULL ? got : "(absent)");
}

/* Asserts an RFC 9457 problem with @p status; returns it parsed (the caller puts it). */
static json_object *e2e_problem(const od_test_response_t *resp, long status)
{
    ck_assert_msg(resp->status == status, "want %ld, got %ld: %s", status, resp->status,
                  resp->body);
    e2e_assert_header(resp, "Content-Type", E2E_PROBLEM);
    json_object *obj = e2e_json(resp);
    ck_assert_int_eq(e2e_int(obj, "status"), status);
    ck_assert_str_ne(e2e_str(obj, "title"), "");
    return obj;
}

static void e2e_assert_problem(const od_test_response_t *resp, long status)
{
    json_object_put(e2e_problem(resp, status));
}

/* The order_id of an order document (malloc'd), asserting it is a ULID. */
static char *e2e_order_id(const od_test_response_t *resp)
{
    json_object *obj = e2e_json(resp);
    char *id = strdup(e2e_str(obj, "order_id"));

    json_object_put(obj);
    ck_assert_ptr_nonnull(id);
    ck_assert_msg(strlen(id) == 26 && strspn(id, E2E_ULID_ALPHABET) == 26 && id[0] <= '7',
                  "'%s' is not a ULID", id);
    return id;
}

static void e2e_assert_same_body(const od_test_response_t *a, const od_test_response_t *b)
{
    ck_assert_msg(a->body_len == b->body_len && memcmp(a->body, b->body, a->body_len) == 0,
                  "bodies differ:\n%s\n%s", a->body, b->body);
}

/* Asserts a 201 of a new order and returns its id (malloc'd). */
static char *e2e_created(const od_test_response_t *resp)
{
    char location[64];

    ck_assert_msg(resp->status == 201, "want 201, got %ld: %s", resp->status, resp->body);
    e2e_assert_header(resp, "Content-Type", E2E_JSON);
    ck_assert_ptr_null(od_test_response_header(resp, "Idempotent-Replayed"));
    char *id = e2e_order_id(resp);
    snprintf(location, sizeof(location), "/orders/%s", id);
    e2e_assert_header(resp, "Location", location);
    return id;
}

/* Asserts a replay of @p first: 200, Idempotent-Replayed: true, the very same bytes. */
static void e2e_replayed(const od_test_response_t *resp, const od_test_response_t *first)
{
    ck_assert_msg(resp->status == 200, "want 200, got %ld: %s", resp->status, resp->body);
    e2e_assert_header(resp, "Idempotent-Replayed", "true");
    e2e_assert_header(resp, "Location", od_test_response_header(first, "Location"));
    e2e_assert_same_body(resp, first);
}

/* ---- helpers: time ---- */

static int64_t e2e_ulid_ms(const char *id)
{
    int64_t ms = 0;

    for (int i = 0; i < 10; i++) {
        ms = ms * 32 + (int64_t) (strchr(E2E_ULID_ALPHABET, id[i]) - E2E_ULID_ALPHABET);
    }
    return ms;
}

/* Milliseconds since the epoch of "YYYY-MM-DDTHH:MM:SS.mmmZ", asserting exactly that form. */
static int64_t e2e_rfc3339_ms(const char *ts)
{
    regex_t re;
    struct tm tm;
    int ms = 0;

    ck_assert_int_eq(regcomp(&re,
                             "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z$",
                             REG_EXTENDED | REG_NOSUB),
                     0);
    int match = regexec(&re, ts, 0, NULL, 0);
    regfree(&re);
    ck_assert_msg(match == 0, "created_at '%s' is not RFC 3339 UTC with milliseconds", ts);
    memset(&tm, 0, sizeof(tm));
    sscanf(ts, "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
           &tm.tm_min, &tm.tm_sec, &ms);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t) timegm(&tm) * 1000 + ms;
}

/* ---- helpers: bodies ---- */

/* E2E_ORDER padded with spaces before its closing brace to exactly @p total bytes. */
static char *e2e_padded_order(size_t total)
{
    size_t base = strlen(E2E_ORDER);
    char *s = malloc(total + 1);

    ck_assert_ptr_nonnull(s);
    ck_assert_uint_gt(total, base);
    memcpy(s, E2E_ORDER, base - 1);
    memset(s + base - 1, ' ', total - base);
    s[total - 1] = '}';
    s[total] = '\0';
    return s;
}

/* A valid order whose note makes it unique. */
static void e2e_unique_order(char *buf, size_t size, int a, int b)
{
    snprintf(buf, size,
             "{\"customer_id\":\"CUST-%06d\",\"currency\":\"USD\",\"items\":[{\"sku\":\"SKU-7\","
             "\"quantity\":1,\"unit_price_cents\":%d}],\"note\":\"n%d-%d\"}",
             a % 1000000, b, a, b);
}

/* ---- helpers: concurrent requests ---- */

typedef struct e2e_shot_t {
    const od_test_env_t *env;
    pthread_barrier_t *barrier;
    const char *api_key;
    char body[512];
    int rc;
    od_test_response_t resp;
} e2e_shot_t;

static void *e2e_shot_run(void *arg)
{
    e2e_shot_t *s = arg;
    od_test_request_t req = {.method = "POST", .path = "/orders", .api_key = s->api_key};

    req.body = s->body;
    req.body_len = strlen(s->body);
    pthread_barrier_wait(s->barrier);
    s->rc = od_test_http(s->env, &req, &s->resp);
    return NULL;
}

/* Runs the @p n prepared shots at once (released together by a barrier) and joins them. */
static void e2e_fire(e2e_shot_t *shots, int n)
{
    pthread_t *threads = calloc((size_t) n, sizeof(*threads));
    pthread_barrier_t barrier;

    ck_assert_ptr_nonnull(threads);
    ck_assert_int_eq(pthread_barrier_init(&barrier, NULL, (unsigned) n), 0);
    for (int i = 0; i < n; i++) {
        shots[i].barrier = &barrier;
        ck_assert_int_eq(pthread_create(&threads[i], NULL, e2e_shot_run, &shots[i]), 0);
    }
    for (int i = 0; i < n; i++) {
        pthread_join(threads[i], NULL);
    }
    pthread_barrier_destroy(&barrier);
    free(threads);
}

static void e2e_free_shots(e2e_shot_t *shots, int n)
{
    for (int i = 0; i < n; i++) {
        od_test_response_free(&shots[i].resp);
    }
    free(shots);
}

/* ---- POST /orders: creation and idempotency ---- */

static void e2e_assert_member_order(json_object *obj)
{
    static const char *const want[] = {"order_id", "status", "customer_id", "currency",
                                       "items",    "note",   "total_cents", "created_at"};
    size_t i = 0;

    json_object_object_foreach(obj, key, val)
    {
        (void) val;
        ck_assert_uint_lt(i, sizeof(want) / sizeof(want[0]));
        ck_assert_str_eq(key, want[i]);
        i++;
    }
    ck_assert_uint_eq(i, sizeof(want) / sizeof(want[0]));
}

static void e2e_assert_items(json_object *obj)
{
    json_object *items = e2e_member(obj, "items", json_type_array);

    ck_assert_uint_eq(json_object_array_length(items), 2);
    json_object *first = json_object_array_get_idx(items, 0);
    ck_assert_str_eq(e2e_str(first, "sku"), "SKU-1001");
    ck_assert_int_eq(e2e_int(first, "quantity"), 2);
    ck_assert_int_eq(e2e_int(first, "unit_price_cents"), 1999);
    ck_assert_str_eq(e2e_str(json_object_array_get_idx(items, 1), "sku"), "SKU-2002");
}

START_TEST(test_e2e_post_created_shape)
{
    od_test_env_t *env = e2e_up(NULL, NULL, 0);
    od_test_response_t resp;

    e2e_post(env, NULL, E2E_ORDER, &resp);
    char *id = e2e_created(&resp);
    json_object *obj = e2e_json(&resp);
    e2e_assert_member_order(obj);
    e2e_assert_items(obj);
    ck_assert_str_eq(e2e_str(obj, "status"), "ACCEPTED");
    ck_assert_str_eq(e2e_str(obj, "customer_id"), "CUST-000123");
    ck_assert_str_eq(e2e_str(obj, "currency"), "EUR");
    ck_assert_str_eq(e2e_str(obj, "note"), "leave at the door");
    ck_assert_int_eq(e2e_int(obj, "total_cents"), E2E_ORDER_TOTAL);
    int64_t created = e2e_rfc3339_ms(e2e_str(obj, "created_at"));
    /* The id is minted at creation: its time part is created_at's millisecond. */
    ck_assert_int_eq(e2e_ulid_ms(id), created);
    ck_assert_int_lt(llabs((long long) (created / 1000 - (int64_t) time(NULL))), 60);
    /* No white space: the body is json-c's plain rendering of itself. */
    ck_assert_str_eq(resp.body, json_object_to_json_string_ext(
                                    obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(obj);
    free(id);
    od_test_response_free(&resp);
    e2e_finish(env);
}
END_TEST

START_TEST(test_e2e_replay_is_byte_identical)
{
    od_test_env_t *env = e2e_up(NULL, NULL, 0);
    od_test_response_t first, other, again;
    char body[512];

    e2e_post(env, NULL, E2E_ORDER, &first);
    char *id = e2e_created(&first);
    e2e_unique_order(body, sizeof(body), 1, 2);
    e2e_post(env, NULL, body, &other);
    char *other_id = e2e_created(&other);
    ck_assert_str_ne(id, other_id);
    for (int i = 0; i < 3; i++) {
        e2e_post(env, NULL, E2E_ORDER, &again);
        e2e_replayed(&again, &first);
        od_test_response_free(&again);
    }
    free(id);
    free(other_id);
    od_test_response_free(&first);
    od_test_response_free(&other);
    e2e_finish(env);
}
END_TEST

START_TEST(test_e2e_replay_canonical_json)
{
    /* E2E_ORDER with members reordered, white space added and escapes spelt differently. */
    static const char variant[] =
        " {\n\t\"note\" : \"leave at the door\",\r\n \"items\" : [ {\"unit_price_cents\": 1999,"
        " \"quantity\" : 2, \"sku\" : \"SKU\\u002d1001\"} ,\n{ \"quantity\":1,\"unit_price_cents\""
        ":500,\"sku\":\"SKU-2002\"} ],\n \"currency\":\"\\u0045UR\", \"customer_id\" : "
        "\"CUST-000123\" }\n";
    static const char different[] =
        "{\"customer_id\":\"CUST-000123\",\"currency\":\"EUR\",\"items\":[{\"sku\":\"SKU-2002\","
        "\"quantity\":1,\"unit_price_cents\":500},{\"sku\":\"SKU-1001\",\"quantity\":2,"
        "\"unit_price_cents\":1999}],\"note\":\"leave at the door\"}";
    od_test_env_t *env = e2e_up(NULL, NULL, 0);
    od_test_response_t first, again, swapped;

    e2e_post(env, NULL, E2E_ORDER, &first);
    char *id = e2e_created(&first);
    e2e_post(env, NULL, variant, &again);
    e2e_replayed(&again, &first);
    /* Items are an ordered array: swapping them is a different order. */
    e2e_post(env, NULL, different, &swapped);
    char *swapped_id = e2e_created(&swapped);
    ck_assert_str_ne(id, swapped_id);
    free(id);
    free(swapped_id);
    od_test_response_free(&first);
    od_test_response_free(&again);
    od_test_response_free(&swapped);
    e2e_finish(env);
}
END_TEST

START_TEST(test_e2e_ttl_expiry_creates_new_order)
{
    od_test_env_t *env = e2e_up("idempotency_ttl_s = 1", NULL, 0);
    od_test_response_t first, replay, later, later_replay;

    e2e_post(env, NULL, E2E_ORDER, &first);
    char *id = e2e_created(&first);
    e2e_post(env, NULL, E2E_ORDER, &replay);
    e2e_replayed(&replay, &first);
    od_test_sleep_ms(1200);
    e2e_post(env, NULL, E2E_ORDER, &later);
    char *later_id = e2e_created(&later);
    ck_assert_str_ne(id, later_id);
    e2e_post(env, NULL, E2E_ORDER, &later_replay);
    e2e_replayed(&later_replay, &later);
    free(id);
    free(later_id);
    od_test_response_free(&first);
    od_test_response_free(&replay);
    od_test_response_free(&later);
    od_test_response_free(&later_replay);
    e2e_finish(env);
}
END_TEST

START_TEST(test_e2e_concurrent_identical_posts_one_order)
{
    enum { N = 50 };
    od_test_env_t *env = e2e_up(NULL, NULL, 0);
    e2e_shot_t *shots = calloc(N, sizeof(*shots));
    int created = -1, replays = 0;

    ck_assert_ptr_nonnull(shots);
    for (int i = 0; i < N; i++) {
        shots[i].env = env;
        snprintf(shots[i].body, sizeof(shots[i].body), "%s", E2E_ORDER);
    }
    e2e_fire(shots, N);
    for (int i = 0; i < N; i++) {
        ck_assert_msg(shots[i].rc == 0, "request %d: no complete response: %s", i,
                      shots[i].resp.error);
        ck_assert_msg(shots[i].resp.status == 201 || shots[i].resp.status == 200,
                      "request %d: status %ld", i, shots[i].resp.status);
        if (shots[i].resp.status == 201) {
            ck_assert_msg(created < 0, "requests %d and %d both got 201", created, i);
            created = i;
        }
    }
    ck_assert_msg(created >= 0, "no request got 201");
    char *id = e2e_created(&shots[created].resp);
    for (int i = 0; i < N; i++) {
        if (i != created) {
            e2e_replayed(&shots[i].resp, &shots[created].resp);
            replays++;
        }
    }
    ck_assert_int_eq(replays, N - 1);
    free(id);
    e2e_free_shots(shots, N);
    e2e_finish(env);
}
END_TEST

/* ---- callers ---- */

static void e2e_assert_get_status(const od_test_env_t *env, const char *key, const char *id,
                                  long status)
{
    char path[64];
    od_test_response_t resp;

    snprintf(path, sizeof(path), "/orders/%s", id);
    e2e_get(env, key, path, &resp);
    if (status == 200) {
        ck_assert_msg(resp.status == 200, "GET %s: %ld %s", path, resp.status, resp.body);
    } else {
        e2e_assert_problem(&resp, status);
    }
    od_test_response_free(&resp);
}

START_TEST(test_e2e_callers_are_isolated)
{
    od_test_env_t *env = e2e_up(NULL, e2e_keys, 2);
    od_test_response_t a, b, a_again;

    e2e_post(env, E2E_ALICE, E2E_ORDER, &a);
    e2e_post(env, E2E_BOB, E2E_ORDER, &b);
    char *a_id = e2e_created(&a);
    char *b_id = e2e_created(&b);
    ck_assert_str_ne(a_id, b_id);
    e2e_post(env, E2E_ALICE, E2E_ORDER, &a_again);
    e2e_replayed(&a_again, &a);
    e2e_assert_get_status(env, E2E_ALICE, a_id, 200);
    e2e_assert_get_status(env, E2E_BOB, b_id, 200);
    e2e_assert_get_status(env, E2E_BOB, a_id, 404);
    e2e_assert_get_status(env, E2E_ALICE, b_id, 404);
    free(a_id);
    free(b_id);
    od_test_response_free(&a);
    od_test_response_free(&b);
    od_test_response_free(&a_again);
    e2e_finish(env);
}
END_TEST

START_TEST(test_e2e_missing_or_unknown_key_401)
{
    od_test_env_t *env = e2e_up(NULL, e2e_keys, 2);
    od_test_response_t resp;

    e2e_post(env, NULL, E2E_ORDER, &resp);
    e2e_assert_problem(&resp, 401);
    od_test_response_free(&resp);
    e2e_post(env, "not-a-known-key", E2E_ORDER, &resp);
    e2e_assert_problem(&resp, 401);
    od_test_response_free(&resp);
    e2e_assert_get_status(env, NULL, E2E_UNKNOWN_ULID, 401);
    e2e_assert_get_status(env, "alice", E2E_UNKNOWN_ULID, 401); /* a name is not a key */
    /* Nothing was stored for the refused requests: the first authenticated POST is new. */
    e2e_post(env, E2E_ALICE, E2E_ORDER, &resp);
    free(e2e_created(&resp));
    od_test_response_free(&resp);
    e2e_finish(env);
}
END_TEST

/* ---- errors ---- */

/* Asserts that the problem's errors name exactly the @p n fields of @p want, each once. */
static void e2e_assert_error_fields(json_object *problem, const char *const *want, size_t n)
{
    json_object *errors = e2e_member(problem, "errors", json_type_array);
    size_t len = json_object_array_length(errors);

    ck_assert_msg(len == n, "want %zu errors, got %s", n, json_object_to_json_string(errors));
    for (size_t i = 0; i < n; i++) {
        int found = 0;
        for (size_t j = 0; j < len; j++) {
            json_object *e = json_object_array_get_idx(errors, j);
            if (strcmp(e2e_str(e, "field"), want[i]) == 0) {
                ck_assert_str_ne(e2e_str(e, "message"), "");
                found++;
            }
        }
        ck_assert_msg(found == 1, "field '%s' reported %d times in %s", want[i], found,
                      json_object_to_json_string(errors));
    }
}

START_TEST(test_e2e_invalid_order_lists_every_error)
{
    static const char bad[] =
        "{\"customer_id\":\"CUST-12\",\"currency\":\"eur\",\"items\":[{\"sku\":\"sku!\","
        "\"quantity\":0,\"unit_price_cents\":-5}],\"note\":\"fine\",\"coupon\":\"FREE\"}";
    static const char *const fields[] = {
        "customer_id", "currency", "items[0].sku", "items[0].quantity", "items[0].unit_price_cents",
        "coupon"};
    static const char *const whole[] = {""};
    od_test_env_t *env = e2e_up(NULL, NULL, 0);
    od_test_response_t resp;

    e2e_post(env, NULL, bad, &resp);
    json_object *problem = e2e_problem(&resp, 400);
    ck_assert_str_eq(e2e_str(problem, "type"), "urn:orderd:problem:invalid-order");
    e2e_assert_error_fields(problem, fields, sizeof(fields) / sizeof(fields[0]));
    json_object_put(problem);
    od_test_response_free(&resp);
    e2e_post(env, NULL, "this is not JSON", &resp);
    problem = e2e_problem(&resp, 400);
    e2e_assert_error_fields(problem, whole, 1);
    json_object_put(problem);
    od_test_response_free(&resp);
    e2e_finish(env);
}
END_TEST

START_TEST(test_e2e_get_non_ulid_400)
{
    static const char *const paths[] = {"/orders/not-a-ulid", "/orders/01ARYZ6S41UUUUUUUUUUUUUUUU",
                                        "/orders/01ARYZ6S41TSV4RRFFQ69G5FAVX", "/orders/123"};
    static const char *const order_id[] = {"order_id"};
    od_test_env_t *env = e2e_up(NULL, NULL, 0);
    od_test_response_t resp;

    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        e2e_get(env, NULL, paths[i], &resp);
        json_object *problem = e2e_problem(&resp, 400);
        e2e_assert_error_fields(problem, order_id, 1);
        json_object_put(problem);
        od_test_response_free(&resp);
    }
    e2e_finish(env);
}
END_TEST

START_TEST(test_e2e_get_unknown_order_404)
{
    od_test_env_t *env = e2e_up(NULL, NULL, 0);

    e2e_assert_get_status(env, NULL, E2E_UNKNOWN_ULID, 404);
    e2e_finish(env);
}
END_TEST

START_TEST(test_e2e_unknown_path_404)
{
    static const char *const paths[] = {"/", "/nope", "/orders/" E2E_UNKNOWN_ULID "/items",
                                        "/orders/", "/ordersX"};
    od_test_env_t *env = e2e_up(NULL, NULL, 0);
    od_test_response_t resp;
    od_test_request_t post = {.method = "POST", .path = "/order", .body = E2E_ORDER};

    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        e2e_get(env, NULL, paths[i], &resp);
        e2e_assert_problem(&resp, 404);
        od_test_response_free(&resp);
    }
    post.body_len = strlen(E2E_ORDER);
    e2e_send(env, &post, &resp);
    e2e_assert_problem(&resp, 404);
    od_test_response_free(&resp);
    e2e_finish(env);
}
END_TEST

static void e2e_assert_405(const od_test_env_t *env, const char *method, const char *path,
                           const char *allow)
{
    od_test_request_t req = {.method = method, .path = path};
    od_test_response_t resp;

    e2e_send(env, &req, &resp);
    e2e_assert_problem(&resp, 405);
    e2e_assert_header(&resp, "Allow", allow);
    od_test_response_free(&resp);
}

START_TEST(test_e2e_wrong_method_405_with_allow)
{
    od_test_env_t *env = e2e_up(NULL, NULL, 0);

    e2e_assert_405(env, "GET", "/orders", "POST");
    e2e_assert_405(env, "DELETE", "/orders", "POST");
    e2e_assert_405(env, "PUT", "/orders/" E2E_UNKNOWN_ULID, "GET, HEAD");
    e2e_assert_405(env, "DELETE", "/orders/" E2E_UNKNOWN_ULID, "GET, HEAD");
    e2e_finish(env);
}
END_TEST

/* ---- body limits and media type ---- */

START_TEST(test_e2e_body_limit_content_length)
{
    od_test_env_t *env = e2e_up(NULL, NULL, 0); /* max_body_bytes defaults to 1024 */
    char *fits = e2e_padded_order(1024);
    char *over = e2e_padded_order(1025);
    od_test_response_t resp;

    e2e_post(env, NULL, over, &resp);
    e2e_assert_problem(&resp, 413);
    od_test_response_free(&resp);
    e2e_post(env, NULL, fits, &resp);
    free(e2e_created(&resp));
    od_test_response_free(&resp);
    free(fits);
    free(over);
    e2e_finish(env);
}
END_TEST

static void e2e_post_chunked(const od_test_env_t *env, const char *body, od_test_response_t *out)
{
    od_test_request_t req = {.method = "POST", .path = "/orders", .chunked = 1};

    req.body = body;
    req.body_len = strlen(body);
    e2e_send(env, &req, out);
}

START_TEST(test_e2e_body_limit_chunked)
{
    od_test_env_t *env = e2e_up(NULL, NULL, 0);
    char *fits = e2e_padded_order(1024);
    char *over = e2e_padded_order(1025);
    char *far_over = e2e_padded_order(8000);
    od_test_response_t resp;

    e2e_post_chunked(env, over, &resp);
    e2e_assert_problem(&resp, 413);
    od_test_response_free(&resp);
    e2e_post_chunked(env, far_over, &resp);
    e2e_assert_problem(&resp, 413);
    od_test_response_free(&resp);
    /* Chunked bodies within the limit are served: the 413s above were about size. */
    e2e_post_chunked(env, fits, &resp);
    free(e2e_created(&resp));
    od_test_response_free(&resp);
    free(fits);
    free(over);
    free(far_over);
    e2e_finish(env);
}
END_TEST

static long e2e_post_typed(const od_test_env_t *env, const char *type, od_test_response_t *out)
{
    od_test_request_t req = {.method = "POST", .path = "/orders", .content_type = type};

    req.body = E2E_ORDER;
    req.body_len = strlen(E2E_ORDER);
    e2e_send(env, &req, out);
    return out->status;
}

START_TEST(test_e2e_unsupported_media_type_415)
{
    static const char *const refused[] = {"text/plain", "", "application/x-www-form-urlencoded",
                                          "application/json; charset=latin1"};
    od_test_env_t *env = e2e_up(NULL, NULL, 0);
    od_test_response_t resp;

    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        e2e_post_typed(env, refused[i], &resp);
        e2e_assert_problem(&resp, 415);
        od_test_response_free(&resp);
    }
    e2e_post_typed(env, "application/json; charset=utf-8", &resp);
    free(e2e_created(&resp));
    od_test_response_free(&resp);
    e2e_finish(env);
}
END_TEST

/* ---- overload ---- */

/* One burst of @p n unique POSTs; asserts every answer is 201/200/503 (503 with Retry-After)
 * and returns how many were 503. */
static int e2e_burst(const od_test_env_t *env, int round, int n)
{
    e2e_shot_t *shots = calloc((size_t) n, sizeof(*shots));
    int unavailable = 0;

    ck_assert_ptr_nonnull(shots);
    for (int i = 0; i < n; i++) {
        shots[i].env = env;
        e2e_unique_order(shots[i].body, sizeof(shots[i].body), round, i);
    }
    e2e_fire(shots, n);
    for (int i = 0; i < n; i++) {
        od_test_response_t *r = &shots[i].resp;
        ck_assert_msg(shots[i].rc == 0, "request %d: no complete response: %s", i, r->error);
        ck_assert_msg(r->status == 201 || r->status == 200 || r->status == 503,
                      "request %d: status %ld %s", i, r->status, r->body);
        if (r->status == 503) {
            e2e_assert_problem(r, 503);
            ck_assert_ptr_nonnull(od_test_response_header(r, "Retry-After"));
            unavailable++;
        }
    }
    e2e_free_shots(shots, n);
    return unavailable;
}

START_TEST(test_e2e_overload_503_with_retry_after)
{
    od_test_env_t *env = e2e_up("worker_threads = 1\nqueue_limit = 1", NULL, 0);
    od_test_response_t resp;
    int unavailable = 0;

    /* Bounded retries: one burst nearly always finds more than one request waiting (for the
     * single worker, or for the SQLite writer). */
    for (int round = 0; round < 5 && unavailable == 0; round++) {
        unavailable += e2e_burst(env, round, 48);
    }
    ck_assert_int_gt(unavailable, 0);
    /* Overload is transient: the server serves again afterwards. */
    e2e_post(env, NULL, E2E_ORDER, &resp);
    free(e2e_created(&resp));
    od_test_response_free(&resp);
    e2e_finish(env);
}
END_TEST

/* ---- configuration check ---- */

static void e2e_assert_check_fails(od_test_env_t *env, const char *name, const char *text, int line)
{
    char want[PATH_MAX + 32];
    char *err = NULL;
    char *path = od_test_env_write_file(env, name, text);

    ck_assert_ptr_nonnull(path);
    int rc = od_test_check_config(env, path, &err);
    ck_assert_msg(rc == 1, "orderd -t %s: exit %d", path, rc);
    snprintf(want, sizeof(want), "orderd: %s:%d: ", path, line);
    ck_assert_msg(err != NULL && strstr(err, want) != NULL, "want '%s' in stderr: %s", want,
                  err != NULL ? err : "(none)");
    free(err);
    free(path);
}

START_TEST(test_e2e_config_check)
{
    od_test_env_t *env = e2e_env("worker_threads = 4", e2e_keys, 2);
    char *err = NULL;

    int rc = od_test_check_config(env, od_test_env_config_path(env), &err);
    ck_assert_msg(rc == 0, "orderd -t on a good config: exit %d: %s", rc, err ? err : "");
    free(err);
    e2e_assert_check_fails(env, "bad-value.conf",
                           "listen_address = 127.0.0.1\n# a comment\n\nworker_threads = zero\n", 4);
    e2e_assert_check_fails(env, "unknown-key.conf", "listen_port = 0\nno_such_key = 1\n", 2);
    e2e_assert_check_fails(env, "repeated.conf",
                           "queue_limit = 10\nmax_items = 5\nqueue_limit = 11\n", 3);
    e2e_assert_check_fails(env, "no-equals.conf", "listen_port 8080\n", 1);
    od_test_env_destroy(env);
}
END_TEST

/* ---- GET, restarts and durability ---- */

START_TEST(test_e2e_get_returns_created_bytes)
{
    od_test_env_t *env = e2e_up(NULL, NULL, 0);
    od_test_response_t created, got, after;

    e2e_post(env, NULL, E2E_ORDER, &created);
    free(e2e_created(&created));
    const char *location = od_test_response_header(&created, "Location");
    e2e_get(env, NULL, location, &got);
    ck_assert_int_eq(got.status, 200);
    e2e_assert_header(&got, "Content-Type", E2E_JSON);
    ck_assert_ptr_null(od_test_response_header(&got, "Idempotent-Replayed"));
    e2e_assert_same_body(&got, &created);
    /* And the same bytes again from a restarted server, i.e. from the database. */
    e2e_stop(env);
    e2e_start(env);
    e2e_get(env, NULL, location, &after);
    ck_assert_int_eq(after.status, 200);
    e2e_assert_same_body(&after, &created);
    od_test_response_free(&created);
    od_test_response_free(&got);
    od_test_response_free(&after);
    e2e_finish(env);
}
END_TEST

START_TEST(test_e2e_sigterm_exits_gracefully)
{
    od_test_env_t *env = e2e_up(NULL, NULL, 0);
    od_test_response_t resp;

    e2e_post(env, NULL, E2E_ORDER, &resp);
    free(e2e_created(&resp));
    od_test_response_free(&resp);
    e2e_stop(env);
    char *log = od_test_server_log(env);
    ck_assert_msg(log != NULL && strstr(log, "server: stopped") != NULL, "log: %s", log);
    free(log);
    od_test_env_destroy(env);
}
END_TEST

/* One loader thread of the kill -9 test: POSTs unique orders until told to stop or the server
 * is gone, recording every 201 (id and body). */
typedef struct e2e_loader_t {
    const od_test_env_t *env;
    atomic_int *stop;
    int no;
    size_t n;
    char (*ids)[27];
    char **bodies;
} e2e_loader_t;

#define E2E_LOADER_MAX 20000

static void e2e_loader_record(e2e_loader_t *l, const od_test_response_t *resp)
{
    json_object *obj = json_tokener_parse(resp->body);
    json_object *id = NULL;

    if (json_object_object_get_ex(obj, "order_id", &id) && l->n < E2E_LOADER_MAX) {
        snprintf(l->ids[l->n], sizeof(l->ids[l->n]), "%s", json_object_get_string(id));
        l->bodies[l->n++] = strdup(resp->body);
    }
    json_object_put(obj);
}

static void *e2e_loader_run(void *arg)
{
    e2e_loader_t *l = arg;
    char body[512];
    od_test_request_t req = {.method = "POST", .path = "/orders", .body = body};

    req.timeout_ms = 5000;
    for (int i = 0; i < E2E_LOADER_MAX && !atomic_load(l->stop); i++) {
        od_test_response_t resp;
        e2e_unique_order(body, sizeof(body), l->no, i);
        req.body_len = strlen(body);
        int rc = od_test_http(l->env, &req, &resp);
        if (rc == 0 && resp.status == 201) {
            e2e_loader_record(l, &resp);
        }
        od_test_response_free(&resp);
        if (rc != 0) {
            break; /* the server is gone */
        }
    }
    return NULL;
}

/* Every recorded order must be served, byte for byte, by the restarted server. */
static size_t e2e_loader_verify(const od_test_env_t *env, e2e_loader_t *l)
{
    char path[64];

    for (size_t i = 0; i < l->n; i++) {
        od_test_response_t resp;
        snprintf(path, sizeof(path), "/orders/%s", l->ids[i]);
        e2e_get(env, NULL, path, &resp);
        ck_assert_msg(resp.status == 200, "acknowledged order %s lost: GET gave %ld", l->ids[i],
                      resp.status);
        ck_assert_str_eq(resp.body, l->bodies[i]);
        od_test_response_free(&resp);
        free(l->bodies[i]);
    }
    free(l->bodies);
    free(l->ids);
    return l->n;
}

START_TEST(test_e2e_kill9_under_load_keeps_acknowledged_orders)
{
    enum { THREADS = 4 };
    od_test_env_t *env = e2e_up(NULL, NULL, 0);
    e2e_loader_t loaders[THREADS];
    pthread_t threads[THREADS];
    atomic_int stop = 0;
    size_t verified = 0;

    for (int i = 0; i < THREADS; i++) {
        loaders[i] = (e2e_loader_t){env, &stop, i + 1, 0, NULL, NULL};
        loaders[i].ids = calloc(E2E_LOADER_MAX, sizeof(*loaders[i].ids));
        loaders[i].bodies = calloc(E2E_LOADER_MAX, sizeof(char *));
        ck_assert(loaders[i].ids != NULL && loaders[i].bodies != NULL);
        ck_assert_int_eq(pthread_create(&threads[i], NULL, e2e_loader_run, &loaders[i]), 0);
    }
    od_test_sleep_ms(1000);
    ck_assert_int_eq(od_test_server_kill(env), 0);
    od_test_sleep_ms(1000);
    atomic_store(&stop, 1);
    for (int i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
    }
    e2e_start(env);
    for (int i = 0; i < THREADS; i++) {
        verified += e2e_loader_verify(env, &loaders[i]);
    }
    ck_assert_uint_gt(verified, 0);
    e2e_finish(env);
}
END_TEST

/* ---- hostile input ---- */

typedef struct e2e_blob_t {
    const char *data;
    size_t len;
} e2e_blob_t;

#define E2E_BLOB(s)                                                                                \
    {                                                                                              \
        s, sizeof(s) - 1                                                                           \
    }

/* Bodies that are not valid orders in assorted hostile ways; each must get a 400. */
static const e2e_blob_t e2e_garbage[] = {
    E2E_BLOB(""),
    E2E_BLOB("\x00\x01\x02\xff\xfe\x00garbage\x80"),
    E2E_BLOB(
        "{\"customer_id\":\"CUST-000123\",\"currency\":\"EUR\",\"items\":[{\"sku\":"
        "\"SKU-1001\",\"quantity\":2,\"unit_price_cents\":1999}],\"note\":\"\xff\xfe\xc0\xaf\"}"),
    E2E_BLOB("{\"customer_id\":\"CUST-000123\",\"currency\":\"EUR\",\"items\":[{\"sku\":"
             "\"SKU-1001\",\"quantity\":2,\"unit_price_cents\":1999}],\"note\":\"\\ud800\"}"),
    E2E_BLOB("{\"customer_id\":\"CUST-0\x00"
             "00123\",\"currency\":\"EUR\"}"),
    E2E_BLOB("{\"customer_id\":\"CUST-000123\",\"customer_id\":\"CUST-000124\"}"),
    E2E_BLOB("{\"customer_id\":\"CUST-000123\",\"currency\":\"EUR\",\"items\":[{\"sku\":"
             "\"SKU-1001\",\"quantity\":1e999,\"unit_price_cents\":99999999999999999999999999}]}"),
    E2E_BLOB("{\"customer_id\":\"CUST-000123\",\"currency\":\"EUR\",\"items\":[{\"sku\":"
             "\"SKU-1001\",\"quantity\":2.0,\"unit_price_cents\":-0}]}"),
    E2E_BLOB("{\"customer_id\":"),
    E2E_BLOB("[]"),
    E2E_BLOB("null"),
    E2E_BLOB("\"just a string\""),
    E2E_BLOB("12345"),
    E2E_BLOB("{\"items\":{\"items\":{\"items\":[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]}}}"),
    E2E_BLOB("\xef\xbb\xbf{}"),
    E2E_BLOB("{} {}"),
};

/* @p depth copies of @p open then as many of @p close (malloc'd). */
static char *e2e_nested(const char *open, const char *close, int depth)
{
    size_t lo = strlen(open), lc = strlen(close);
    char *s = malloc((lo + lc) * (size_t) depth + 1);
    char *p = s;

    ck_assert_ptr_nonnull(s);
    for (int i = 0; i < depth; i++, p += lo) {
        memcpy(p, open, lo);
    }
    for (int i = 0; i < depth; i++, p += lc) {
        memcpy(p, close, lc);
    }
    *p = '\0';
    return s;
}

static void e2e_assert_400(const od_test_env_t *env, const char *body, size_t len)
{
    od_test_response_t resp;

    e2e_post_n(env, NULL, body, len, &resp);
    e2e_assert_problem(&resp, 400);
    od_test_response_free(&resp);
}

static void e2e_send_nested(const od_test_env_t *env)
{
    char *arrays_1k = e2e_nested("[", "", 1024); /* 1 KiB, never closed */
    char *arrays = e2e_nested("[", "]", 10000);
    char *objects = e2e_nested("{\"a\":", "}", 5000);

    e2e_assert_400(env, arrays_1k, strlen(arrays_1k));
    e2e_assert_400(env, arrays, strlen(arrays));
    e2e_assert_400(env, objects, strlen(objects));
    free(arrays_1k);
    free(arrays);
    free(objects);
}

/* Raw bytes that are not (valid) HTTP; the answers do not matter, only survival. */
static void e2e_send_raw_garbage(const od_test_env_t *env)
{
    static const e2e_blob_t raw[] = {
        E2E_BLOB("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not really TLS\r\n\r\n"),
        E2E_BLOB("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n"),
        E2E_BLOB("POST /orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 "Transfer-Encoding: chunked\r\n\r\nZZZ\r\nabc\r\n0\r\n\r\n"),
        E2E_BLOB("POST /orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 "Content-Length: 100\r\n\r\n{\"truncated\":"),
        E2E_BLOB("\r\n\r\n\r\n\x00\x00\x00 HTTP/9.9 \xff\xff\r\n\r\n"),
    };
    char reply[256];

    for (size_t i = 0; i < sizeof(raw) / sizeof(raw[0]); i++) {
        long n = od_test_send_raw(env, raw[i].data, raw[i].len, reply, sizeof(reply), 2000);
        ck_assert_msg(n >= 0, "raw garbage %zu: could not connect or send", i);
    }
}

START_TEST(test_e2e_malformed_input_never_crashes)
{
    /* A half-closed connection with a truncated body stays "in flight" inside libmicrohttpd
     * until connection_timeout_s; a short shutdown_timeout_s keeps the final stop quick. */
    od_test_env_t *env = e2e_up("max_body_bytes = 65536\nshutdown_timeout_s = 2", NULL, 0);
    od_test_response_t resp;

    for (size_t i = 0; i < sizeof(e2e_garbage) / sizeof(e2e_garbage[0]); i++) {
        e2e_assert_400(env, e2e_garbage[i].data, e2e_garbage[i].len);
    }
    e2e_send_nested(env);
    e2e_send_raw_garbage(env);
    /* Still alive and well: it serves a valid order and then stops cleanly (exit 0, no signal). */
    e2e_post(env, NULL, E2E_ORDER, &resp);
    free(e2e_created(&resp));
    od_test_response_free(&resp);
    e2e_finish(env);
}
END_TEST

Suite *od_e2e_suite(void)
{
    Suite *s = suite_create("e2e");
    TCase *tc = tcase_create("e2e");

    tcase_add_unchecked_fixture(tc, e2e_base_setup, e2e_base_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_e2e_post_created_shape);
    tcase_add_test(tc, test_e2e_replay_is_byte_identical);
    tcase_add_test(tc, test_e2e_replay_canonical_json);
    tcase_add_test(tc, test_e2e_ttl_expiry_creates_new_order);
    tcase_add_test(tc, test_e2e_concurrent_identical_posts_one_order);
    tcase_add_test(tc, test_e2e_callers_are_isolated);
    tcase_add_test(tc, test_e2e_missing_or_unknown_key_401);
    tcase_add_test(tc, test_e2e_invalid_order_lists_every_error);
    tcase_add_test(tc, test_e2e_get_non_ulid_400);
    tcase_add_test(tc, test_e2e_get_unknown_order_404);
    tcase_add_test(tc, test_e2e_unknown_path_404);
    tcase_add_test(tc, test_e2e_wrong_method_405_with_allow);
    tcase_add_test(tc, test_e2e_body_limit_content_length);
    tcase_add_test(tc, test_e2e_body_limit_chunked);
    tcase_add_test(tc, test_e2e_unsupported_media_type_415);
    tcase_add_test(tc, test_e2e_overload_503_with_retry_after);
    tcase_add_test(tc, test_e2e_config_check);
    tcase_add_test(tc, test_e2e_get_returns_created_bytes);
    tcase_add_test(tc, test_e2e_sigterm_exits_gracefully);
    tcase_add_test(tc, test_e2e_kill9_under_load_keeps_acknowledged_orders);
    tcase_add_test(tc, test_e2e_malformed_input_never_crashes);
    suite_add_tcase(s, tc);
    return s;
}

/*
 * Request heads end to end, on the real binary over raw connections: what od_http_head refuses
 * (request smuggling with Content-Length and Transfer-Encoding together, unknown transfer
 * codings, white space before a colon, HTTP/1.1 without Host, a NUL inside a header value, a
 * head over max_header_bytes) is answered at once with problem+json, the connection is closed,
 * and nothing is stored.
 */
#include "od_suites.h"
#include "od_test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Suite *od_http_head_suite(void);

#define HH_KEY "head-test-key-0123456789"
#define HH_ORDER                                                                                   \
    "{\"customer_id\":\"CUST-000042\",\"currency\":\"EUR\",\"items\":[{\"sku\":\"SKU-42\","        \
    "\"quantity\":1,\"unit_price_cents\":%d}]}"
#define HH_REPLY 8192

static const od_test_key_t hh_keys[] = {{"shop", HH_KEY}};

static od_test_env_t *start(const char *extra)
{
    od_test_env_t *env = od_test_env_create(NULL);

    ck_assert_ptr_nonnull(env);
    ck_assert_int_eq(od_test_env_write_keys(env, hh_keys, 1), 0);
    ck_assert_int_eq(od_test_env_write_config(env, extra), 0);
    ck_assert_int_eq(od_test_server_start(env), 0);
    return env;
}

static void finish(od_test_env_t *env)
{
    ck_assert_int_eq(od_test_server_stop(env, 15000), 0);
    od_test_env_destroy(env);
}

/* "POST /orders HTTP/1.1" with the key, @p framing header line(s) and @p body, in @p buf. */
static size_t post_raw(char *buf, size_t size, const char *framing, const char *body)
{
    int n = snprintf(buf, size,
                     "POST /orders HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: " HH_KEY "\r\n"
                     "Content-Type: application/json\r\n%s\r\n%s",
                     framing, body);
    ck_assert_int_lt(n, (int) size);
    return (size_t) n;
}

/* The number of HTTP responses in @p reply: heads end with an empty line, JSON bodies have
 * none. */
static int responses(const char *reply)
{
    int n = 0;
    for (const char *s = reply; (s = strstr(s, "\r\n\r\n")) != NULL; s++) {
        n++;
    }
    return n;
}

/* One refused exchange: exactly one answer, @p status, problem+json, the connection closed. */
static void expect_refused(od_test_env_t *env, const char *req, size_t len, const char *status)
{
    char *reply = malloc(HH_REPLY);

    /* Not half-closed: the server must close by itself (a keep-alive answer would time out). */
    long n = od_test_exchange_raw(env, req, len, reply, HH_REPLY, 3000);
    ck_assert_msg(n > 0, "no answer");
    ck_assert_msg(strncmp(reply, status, strlen(status)) == 0, "answer: %s", reply);
    ck_assert_msg(strstr(reply, "Content-Type: application/problem+json") != NULL, "%s", reply);
    ck_assert_msg(strstr(reply, "Connection: close") != NULL, "%s", reply);
    ck_assert_int_eq(responses(reply), 1);
    free(reply);
}

START_TEST(test_http_head_smuggled_request_never_runs)
{
    od_test_env_t *env = start(NULL);
    char hidden[1024], order[256], body[1400], req[2048];

    /* The body, read as chunked, ends at "0\r\n\r\n"; what follows would be a second request
     * on the same connection: a valid order no front proxy ever saw. */
    char framing[128];
    snprintf(order, sizeof(order), HH_ORDER, 1);
    snprintf(framing, sizeof(framing), "Content-Length: %zu\r\n", strlen(order));
    size_t hlen = post_raw(hidden, sizeof(hidden), framing, order);
    snprintf(body, sizeof(body), "0\r\n\r\n%.*s", (int) hlen, hidden);
    snprintf(framing, sizeof(framing), "Content-Length: %zu\r\nTransfer-Encoding: chunked\r\n",
             strlen(body));
    size_t len = post_raw(req, sizeof(req), framing, body);
    expect_refused(env, req, len, "HTTP/1.1 400");
    ck_assert_int_eq(od_test_stored_orders(env), 0);
    finish(env);
}
END_TEST

START_TEST(test_http_head_unknown_transfer_coding_501)
{
    od_test_env_t *env = start(NULL);
    static const char *const codings[] = {"xchunked", "identity", "gzip, chunked", "chunked "};
    char req[1024], framing[128];

    for (size_t i = 0; i < sizeof(codings) / sizeof(codings[0]); i++) {
        snprintf(framing, sizeof(framing), "Transfer-Encoding: %s\r\n", codings[i]);
        size_t len = post_raw(req, sizeof(req), framing, "5\r\nhello\r\n0\r\n\r\n");
        expect_refused(env, req, len, "HTTP/1.1 501");
    }
    ck_assert_int_eq(od_test_stored_orders(env), 0);
    finish(env);
}
END_TEST

START_TEST(test_http_head_space_before_colon_400)
{
    od_test_env_t *env = start(NULL);
    char req[1024], order[256], framing[64];

    snprintf(order, sizeof(order), HH_ORDER, 2);
    snprintf(framing, sizeof(framing), "Content-Length : %zu\r\n", strlen(order));
    size_t len = post_raw(req, sizeof(req), framing, order);
    expect_refused(env, req, len, "HTTP/1.1 400");
    ck_assert_int_eq(od_test_stored_orders(env), 0);
    finish(env);
}
END_TEST

START_TEST(test_http_head_host_required_in_http11)
{
    od_test_env_t *env = start(NULL);
    char req[1024], order[256];
    char *reply = malloc(HH_REPLY);

    snprintf(order, sizeof(order), HH_ORDER, 3);
    int len = snprintf(req, sizeof(req),
                       "POST /orders HTTP/1.1\r\nX-API-Key: " HH_KEY "\r\n"
                       "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                       strlen(order), order);
    expect_refused(env, req, (size_t) len, "HTTP/1.1 400");
    len = snprintf(req, sizeof(req), "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
    expect_refused(env, req, (size_t) len, "HTTP/1.1 400");
    ck_assert_int_eq(od_test_stored_orders(env), 0);
    /* HTTP/1.0 has no Host requirement: served. */
    len = snprintf(req, sizeof(req), "GET /healthz HTTP/1.0\r\n\r\n");
    ck_assert_int_gt(od_test_exchange_raw(env, req, (size_t) len, reply, HH_REPLY, 3000), 0);
    ck_assert_msg(strncmp(reply, "HTTP/1.1 200", 12) == 0, "%s", reply);
    free(reply);
    finish(env);
}
END_TEST

START_TEST(test_http_head_nul_in_header_value_400)
{
    od_test_env_t *env = start(NULL);
    char order[256], req[1024];
    char *reply = malloc(HH_REPLY);

    snprintf(order, sizeof(order), HH_ORDER, 4);
    /* "X-API-Key: KEY\0junk": libmicrohttpd would hand over "KEY" alone. */
    int len = snprintf(req, sizeof(req),
                       "POST /orders HTTP/1.1\r\nHost: x\r\nX-API-Key: " HH_KEY "#junk\r\n"
                       "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                       strlen(order), order);
    *strchr(req, '#') = '\0';
    expect_refused(env, req, (size_t) len, "HTTP/1.1 400");
    /* The same NUL in a field that is not last, and with more NULs after it. */
    static const char nuls[] = "GET /healthz HTTP/1.1\r\nX-A: a\0b\r\nHost: x\r\n\r\n";
    expect_refused(env, nuls, sizeof(nuls) - 1, "HTTP/1.1 400");
    static const char tail[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\0\0\0\0\0\r\n\r\n";
    expect_refused(env, tail, sizeof(tail) - 1, "HTTP/1.1 400");
    ck_assert_int_eq(od_test_stored_orders(env), 0);
    /* The key alone is valid: the refusal was for the NUL, not the key. */
    snprintf(req, sizeof(req),
             "POST /orders HTTP/1.1\r\nHost: x\r\nX-API-Key: " HH_KEY "\r\nConnection: close\r\n"
             "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
             strlen(order), order);
    ck_assert_int_gt(od_test_exchange_raw(env, req, strlen(req), reply, HH_REPLY, 3000), 0);
    ck_assert_msg(strncmp(reply, "HTTP/1.1 201", 12) == 0, "%s", reply);
    ck_assert_int_eq(od_test_stored_orders(env), 1);
    free(reply);
    finish(env);
}
END_TEST

/* A GET /healthz whose head is exactly @p size bytes, in @p buf. */
static size_t head_of(char *buf, size_t size)
{
    static const char start[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: ";
    size_t pad = size - (sizeof(start) - 1) - 4;

    memcpy(buf, start, sizeof(start) - 1);
    memset(buf + sizeof(start) - 1, 'a', pad);
    memcpy(buf + sizeof(start) - 1 + pad, "\r\n\r\n", 4);
    return size;
}

START_TEST(test_http_head_over_limit_431_problem_json)
{
    od_test_env_t *env = start("max_header_bytes = 8192\n");
    char *req = malloc(64 * 1024), *reply = malloc(HH_REPLY);

    /* The documented figure holds exactly: 8192 bytes pass, 8193 do not. */
    ck_assert_int_gt(od_test_send_raw(env, req, head_of(req, 8192), reply, HH_REPLY, 3000), 0);
    ck_assert_msg(strncmp(reply, "HTTP/1.1 200", 12) == 0, "%s", reply);
    for (size_t size = 8193; size <= 2 * 8192 - 1024; size += 1024) {
        expect_refused(env, req, head_of(req, size), "HTTP/1.1 431");
    }
    /* Far beyond, libmicrohttpd answers 431 itself (text/html; see docs/http.md). */
    ck_assert_int_gt(od_test_send_raw(env, req, head_of(req, 60000), reply, HH_REPLY, 3000), 0);
    ck_assert_msg(strncmp(reply, "HTTP/1.1 431", 12) == 0, "%s", reply);
    free(req);
    free(reply);
    finish(env);
}
END_TEST

/* docs/http.md: a client that half-closes after a new order may get no answer (libmicrohttpd
 * 0.9.75), but the order is stored once and the same request again returns it. */
START_TEST(test_http_head_half_closed_post_stored_once)
{
    od_test_env_t *env = start(NULL);
    char order[256], framing[64], req[1024];
    char *reply = malloc(HH_REPLY);
    od_test_response_t resp;

    snprintf(order, sizeof(order), HH_ORDER, 5);
    snprintf(framing, sizeof(framing), "Content-Length: %zu\r\n", strlen(order));
    size_t len = post_raw(req, sizeof(req), framing, order);
    od_test_send_raw(env, req, len, reply, HH_REPLY, 3000);
    ck_assert_int_eq(od_test_stored_orders(env), 1);
    od_test_request_t again = {.method = "POST",
                               .path = "/orders",
                               .api_key = HH_KEY,
                               .body = order,
                               .body_len = strlen(order)};
    ck_assert_int_eq(od_test_http(env, &again, &resp), 0);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_str_eq(od_test_response_header(&resp, "Idempotent-Replayed"), "true");
    od_test_response_free(&resp);
    ck_assert_int_eq(od_test_stored_orders(env), 1);
    free(reply);
    finish(env);
}
END_TEST

START_TEST(test_http_head_401_says_how_to_authenticate)
{
    od_test_env_t *env = start(NULL);
    od_test_request_t req = {.method = "GET", .path = "/orders/01ARZ3NDEKTSV4RRFFQ69G5FAV"};
    od_test_response_t resp;

    ck_assert_int_eq(od_test_http(env, &req, &resp), 0);
    ck_assert_int_eq(resp.status, 401);
    const char *www = od_test_response_header(&resp, "WWW-Authenticate");
    ck_assert_ptr_nonnull(www);
    ck_assert_ptr_nonnull(strstr(www, "X-API-Key"));
    od_test_response_free(&resp);
    finish(env);
}
END_TEST

Suite *od_http_head_suite(void)
{
    Suite *s = suite_create("http_head");
    TCase *tc = tcase_create("raw");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_http_head_smuggled_request_never_runs);
    tcase_add_test(tc, test_http_head_unknown_transfer_coding_501);
    tcase_add_test(tc, test_http_head_space_before_colon_400);
    tcase_add_test(tc, test_http_head_host_required_in_http11);
    tcase_add_test(tc, test_http_head_nul_in_header_value_400);
    tcase_add_test(tc, test_http_head_over_limit_431_problem_json);
    tcase_add_test(tc, test_http_head_half_closed_post_stored_once);
    tcase_add_test(tc, test_http_head_401_says_how_to_authenticate);
    suite_add_tcase(s, tc);
    return s;
}

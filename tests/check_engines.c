/*
 * Tests of the test engines themselves: moto_server, DynamoDB Local and the fault proxy, spoken
 * to with libcurl the way orderd's AWS client does (SigV4-signed DynamoDB JSON calls).
 *
 * Each engine is started once per test case by an unchecked fixture, in the runner process, so
 * the forked tests inherit its URL; a proxy is started per test by a checked fixture, in the
 * test's own process, because threads do not survive fork().
 */
#ifndef _GNU_SOURCE /* APR's pkg-config flags may already define it */
#define _GNU_SOURCE
#endif

#include "od_suites.h"
#include "od_test_engines.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

Suite *od_engines_suite(void);

#define ENG_PARALLEL 3

static od_test_engine_t *eng_engine; /* the current test case's engine */
static od_test_proxy_t *eng_proxy;   /* the current test's proxy to it */

/* ---- fixtures ---- */

static void eng_moto_setup(void)
{
    eng_engine = od_test_moto_start(NULL);
}

static void eng_ddblocal_setup(void)
{
    eng_engine = od_test_ddblocal_start();
}

static void eng_engine_teardown(void)
{
    od_test_engine_stop(eng_engine);
    eng_engine = NULL;
}

/* Also initialises libcurl here, before any test starts threads that use it. */
static void eng_proxy_setup(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    eng_proxy = od_test_proxy_start(od_test_engine_url(eng_engine));
}

static void eng_proxy_teardown(void)
{
    od_test_proxy_stop(eng_proxy);
    eng_proxy = NULL;
    curl_global_cleanup();
}

/* ---- requests ---- */

typedef struct eng_reply_t {
    CURLcode rc;
    long status;
    char body[4096];
    size_t len;
} eng_reply_t;

static size_t eng_on_body(char *data, size_t size, size_t nmemb, void *baton)
{
    eng_reply_t *r = baton;
    size_t n = size * nmemb, room = sizeof(r->body) - 1 - r->len;
    size_t take = n < room ? n : room;

    memcpy(r->body + r->len, data, take);
    r->len += take;
    r->body[r->len] = '\0';
    return n;
}

/* Signing, bounds and the reply buffer; the caller sets the headers and the body. */
static void eng_set_common(CURL *c, const char *url, eng_reply_t *r)
{
    memset(r, 0, sizeof(*r));
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_AWS_SIGV4, "aws:amz:us-east-1:dynamodb");
    curl_easy_setopt(c, CURLOPT_USERNAME, "testing");
    curl_easy_setopt(c, CURLOPT_PASSWORD, "testing");
    curl_easy_setopt(c, CURLOPT_PROXY, ""); /* never via a proxy from the environment */
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, eng_on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
}

/*
 * A SigV4-signed DynamoDB ListTables on @p c, which may be reused to keep its connection (moto
 * sends unsigned requests to its S3 backend, so the signature matters).
 */
static CURLcode eng_list_tables(CURL *c, const char *url, eng_reply_t *r)
{
    struct curl_slist *h = curl_slist_append(NULL, "X-Amz-Target: DynamoDB_20120810.ListTables");

    h = curl_slist_append(h, "Content-Type: application/x-amz-json-1.0");
    h = curl_slist_append(h, "Expect:");
    eng_set_common(c, url, r);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, "{}");
    r->rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(h);
    return r->rc;
}

/* One request on a fresh handle (so a fresh connection). */
static void eng_list_tables_once(const char *url, eng_reply_t *r)
{
    CURL *c = curl_easy_init();

    ck_assert_ptr_nonnull(c);
    eng_list_tables(c, url, r);
    curl_easy_cleanup(c);
}

static void eng_assert_tables(const eng_reply_t *r)
{
    ck_assert_msg(r->rc == CURLE_OK, "curl: %s", curl_easy_strerror(r->rc));
    ck_assert_msg(r->status == 200, "status %ld: %s", r->status, r->body);
    ck_assert_msg(strstr(r->body, "\"TableNames\"") != NULL, "body: %s", r->body);
}

static void eng_assert_fault(const eng_reply_t *r, long status, const char *type)
{
    ck_assert_msg(r->rc == CURLE_OK, "curl: %s", curl_easy_strerror(r->rc));
    ck_assert_int_eq(r->status, status);
    ck_assert_msg(strstr(r->body, type) != NULL, "body: %s", r->body);
}

/* ---- engines ---- */

START_TEST(test_engines_moto_answers_list_tables)
{
    eng_reply_t r;

    eng_list_tables_once(od_test_engine_url(eng_engine), &r);
    eng_assert_tables(&r);
}
END_TEST

START_TEST(test_engines_ddblocal_answers_list_tables)
{
    eng_reply_t r;

    eng_list_tables_once(od_test_engine_url(eng_engine), &r);
    eng_assert_tables(&r);
}
END_TEST

/* ---- the proxy ---- */

START_TEST(test_engines_proxy_forwards_and_counts)
{
    eng_reply_t r;

    eng_list_tables_once(od_test_proxy_url(eng_proxy), &r);
    eng_assert_tables(&r);
    ck_assert_uint_eq(od_test_proxy_connects(eng_proxy), 1);
    ck_assert_uint_eq(od_test_proxy_requests(eng_proxy), 1);
}
END_TEST

/* Also through moto, which closes its side after every response: the client's stays open. */
START_TEST(test_engines_proxy_keeps_one_connection_for_keep_alive_requests)
{
    eng_reply_t r;
    CURL *c = curl_easy_init();

    ck_assert_ptr_nonnull(c);
    for (int i = 0; i < 2; i++) {
        eng_list_tables(c, od_test_proxy_url(eng_proxy), &r);
        eng_assert_tables(&r);
    }
    curl_easy_cleanup(c);
    ck_assert_uint_eq(od_test_proxy_connects(eng_proxy), 1);
    ck_assert_uint_eq(od_test_proxy_requests(eng_proxy), 2);
}
END_TEST

START_TEST(test_engines_proxy_throttles_next_requests_then_passes)
{
    eng_reply_t r;
    CURL *c = curl_easy_init();

    ck_assert_ptr_nonnull(c);
    od_test_proxy_set_mode(eng_proxy, OD_PROXY_THROTTLE, 2);
    for (int i = 0; i < 2; i++) {
        eng_list_tables(c, od_test_proxy_url(eng_proxy), &r);
        eng_assert_fault(&r, 400, "#ThrottlingException\"");
    }
    eng_list_tables(c, od_test_proxy_url(eng_proxy), &r);
    curl_easy_cleanup(c);
    eng_assert_tables(&r);
    ck_assert_uint_eq(od_test_proxy_requests(eng_proxy), 3);
    ck_assert_uint_eq(od_test_proxy_connects(eng_proxy), 1); /* faults keep the connection */
}
END_TEST

START_TEST(test_engines_proxy_answers_500_until_changed)
{
    eng_reply_t r;
    CURL *c = curl_easy_init();

    ck_assert_ptr_nonnull(c);
    od_test_proxy_set_mode(eng_proxy, OD_PROXY_ERROR500, -1);
    for (int i = 0; i < 3; i++) {
        eng_list_tables(c, od_test_proxy_url(eng_proxy), &r);
        eng_assert_fault(&r, 500, "#InternalServerError\"");
    }
    od_test_proxy_set_mode(eng_proxy, OD_PROXY_PASS, -1);
    eng_list_tables(c, od_test_proxy_url(eng_proxy), &r);
    curl_easy_cleanup(c);
    eng_assert_tables(&r);
}
END_TEST

/*
 * curl sends Expect: 100-continue for large bodies, and here waits 20 s for the 100 (longer than
 * the transfer may take) before sending the body: only the proxy's own 100 gets it through.
 */
START_TEST(test_engines_proxy_answers_expect_100_continue)
{
    char body[3000];
    eng_reply_t r;
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "X-Amz-Target: DynamoDB_20120810.ListTables");

    snprintf(body, sizeof(body), "{\"Limit\":5,\"pad\":\"%*s\"}", 2500, "x");
    h = curl_slist_append(h, "Content-Type: application/x-amz-json-1.0");
    h = curl_slist_append(h, "Expect: 100-continue");
    ck_assert_ptr_nonnull(c);
    eng_set_common(c, od_test_proxy_url(eng_proxy), &r);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_EXPECT_100_TIMEOUT_MS, 20000L);
    r.rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    eng_assert_tables(&r);
}
END_TEST

/* A fresh handle each time: on a reused connection curl would silently retry the request. */
START_TEST(test_engines_proxy_drop_gives_a_curl_error)
{
    eng_reply_t r;

    od_test_proxy_set_mode(eng_proxy, OD_PROXY_DROP, 1);
    eng_list_tables_once(od_test_proxy_url(eng_proxy), &r);
    ck_assert_msg(r.rc != CURLE_OK, "a dropped request got status %ld", r.status);
    ck_assert_int_eq(r.status, 0);
    eng_list_tables_once(od_test_proxy_url(eng_proxy), &r);
    eng_assert_tables(&r);
    ck_assert_uint_eq(od_test_proxy_requests(eng_proxy), 2);
    ck_assert_uint_eq(od_test_proxy_connects(eng_proxy), 2);
}
END_TEST

typedef struct eng_client_t {
    pthread_t thread;
    pthread_barrier_t *start;
    CURL *curl; /* kept open by the main thread until it has read max_open */
    eng_reply_t reply;
} eng_client_t;

static void *eng_client_main(void *arg)
{
    eng_client_t *cl = arg;

    pthread_barrier_wait(cl->start);
    eng_list_tables(cl->curl, od_test_proxy_url(eng_proxy), &cl->reply);
    return NULL;
}

/* Each handle keeps its connection until cleaned up, so all three are open at once. */
START_TEST(test_engines_proxy_max_open_counts_parallel_connections)
{
    eng_client_t cl[ENG_PARALLEL];
    pthread_barrier_t start;

    pthread_barrier_init(&start, NULL, ENG_PARALLEL);
    for (int i = 0; i < ENG_PARALLEL; i++) {
        cl[i].start = &start;
        cl[i].curl = curl_easy_init();
        ck_assert_ptr_nonnull(cl[i].curl);
        ck_assert_int_eq(pthread_create(&cl[i].thread, NULL, eng_client_main, &cl[i]), 0);
    }
    for (int i = 0; i < ENG_PARALLEL; i++) {
        pthread_join(cl[i].thread, NULL);
        eng_assert_tables(&cl[i].reply);
    }
    ck_assert_uint_eq(od_test_proxy_max_open(eng_proxy), ENG_PARALLEL);
    ck_assert_uint_eq(od_test_proxy_connects(eng_proxy), ENG_PARALLEL);
    for (int i = 0; i < ENG_PARALLEL; i++) {
        curl_easy_cleanup(cl[i].curl);
    }
    pthread_barrier_destroy(&start);
}
END_TEST

/* ---- the suite ---- */

static TCase *eng_tcase(const char *name, void (*engine_setup)(void))
{
    TCase *tc = tcase_create(name);

    tcase_add_unchecked_fixture(tc, engine_setup, eng_engine_teardown);
    tcase_add_checked_fixture(tc, eng_proxy_setup, eng_proxy_teardown);
    tcase_set_timeout(tc, 30);
    return tc;
}

Suite *od_engines_suite(void)
{
    Suite *s = suite_create("engines");
    TCase *moto = eng_tcase("moto", eng_moto_setup);
    TCase *ddb = eng_tcase("ddblocal", eng_ddblocal_setup);

    tcase_add_test(moto, test_engines_moto_answers_list_tables);
    tcase_add_test(moto, test_engines_proxy_forwards_and_counts);
    tcase_add_test(moto, test_engines_proxy_keeps_one_connection_for_keep_alive_requests);
    tcase_add_test(moto, test_engines_proxy_throttles_next_requests_then_passes);
    tcase_add_test(moto, test_engines_proxy_answers_500_until_changed);
    tcase_add_test(moto, test_engines_proxy_answers_expect_100_continue);
    tcase_add_test(moto, test_engines_proxy_drop_gives_a_curl_error);
    tcase_add_test(moto, test_engines_proxy_max_open_counts_parallel_connections);
    suite_add_tcase(s, moto);
    tcase_add_test(ddb, test_engines_ddblocal_answers_list_tables);
    tcase_add_test(ddb, test_engines_proxy_forwards_and_counts);
    tcase_add_test(ddb, test_engines_proxy_keeps_one_connection_for_keep_alive_requests);
    suite_add_tcase(s, ddb);
    return s;
}

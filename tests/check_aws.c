/*
 * Tests of od_aws, the pooled AWS client, against DynamoDB Local and moto through the
 * fault-injecting proxy: success and keep-alive reuse, which failures are retried and how often,
 * the retry budget, the bound of the connection pool and waiting for it, timeouts, what is
 * logged, the endpoint and region precedence, and the signed request itself.
 *
 * Engines start once per test case in unchecked fixtures (in the runner, so forked tests inherit
 * their URLs); the proxy, client and logger are per test, in the test's own process, because
 * threads do not survive fork(). The log goes to a temporary file so tests can read it back.
 */
#ifndef _GNU_SOURCE /* APR's pkg-config flags may already define it */
#define _GNU_SOURCE /* accept4, strcasestr, setenv */
#endif

#include "od_aws.h"
#include "od_status.h"
#include "od_suites.h"
#include "od_test_engines.h"

#include <apr_strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

Suite *od_aws_suite(void);

#define DDB(op) "DynamoDB_20120810." op
#define AKID "AKIDODAWSTEST"
#define LAST_BUCKET (OD_AWS_LATENCY_BUCKETS - 1)
#define BUDGET 500   /* od_aws.h: the retry budget's tokens */
#define RETRY_COST 5 /* ... and what one retry after an error answer costs */
#define THREADS 8    /* pool bound: threads at once */
#define SLOW_MS 300L /* request timeout of the tests that wait for one */
#define WAIT_MS 2000 /* longest wait for a socket event in a test */

static od_test_engine_t *engine; /* the test case's engine, or NULL */
static apr_pool_t *pool;
static FILE *log_file;
static od_log_t *log_;
static od_aws_creds_t *creds;
static od_test_proxy_t *proxy; /* to the engine, or NULL without one */

/* ---- fixtures ---- */

static void ddblocal_setup(void)
{
    engine = od_test_ddblocal_start();
}

static void moto_setup(void)
{
    engine = od_test_moto_start(NULL);
}

/* moto checking signatures from the first request on: unknown keys are refused. */
static void moto_auth_setup(void)
{
    static const char *const env[] = {"INITIAL_NO_AUTH_ACTION_COUNT=0", NULL};

    engine = od_test_moto_start(env);
}

static void engine_teardown(void)
{
    od_test_engine_stop(engine);
    engine = NULL;
}

static od_aws_creds_t *make_creds(const char *session_token)
{
    od_aws_creds_options_t o = {.access_key_id = AKID,
                                .secret_access_key = "od-aws-test-secret",
                                .session_token = session_token};
    od_aws_creds_t *c = NULL;

    ck_assert_int_eq(od_aws_creds_create(&c, &o, log_, pool), APR_SUCCESS);
    return c;
}

/* Loopback calls must not go through a proxy from the environment. */
static void setup(void)
{
    static const char *const proxies[] = {"http_proxy",  "HTTP_PROXY", "https_proxy",
                                          "HTTPS_PROXY", "all_proxy",  "ALL_PROXY"};

    for (size_t i = 0; i < sizeof(proxies) / sizeof(proxies[0]); i++) {
        unsetenv(proxies[i]);
    }
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    apr_pool_create(&pool, NULL);
    log_file = tmpfile();
    ck_assert_ptr_nonnull(log_file);
    od_log_create(&log_, OD_LOG_WARN, log_file, pool);
    creds = make_creds(NULL);
    proxy = engine != NULL ? od_test_proxy_start(od_test_engine_url(engine)) : NULL;
}

/* The pool first: it closes the clients' connections, so the proxy has nothing left open. */
static void teardown(void)
{
    apr_pool_destroy(pool);
    od_test_proxy_stop(proxy);
    proxy = NULL;
    fclose(log_file);
}

/* ---- helpers ---- */

static od_aws_t *client_with(int max_connections, int max_attempts, long timeout_ms,
                             od_aws_creds_t *c)
{
    /* Backoff of at most 1 ms, so retry tests run fast. */
    od_aws_options_t o = {"us-east-1", max_connections, 1000, timeout_ms, max_attempts, 1, 1};
    od_aws_t *aws = NULL;

    ck_assert_int_eq(od_aws_create(&aws, &o, c, log_, pool), APR_SUCCESS);
    ck_assert_ptr_nonnull(aws);
    return aws;
}

static od_aws_t *client(int max_connections, int max_attempts, long timeout_ms)
{
    return client_with(max_connections, max_attempts, timeout_ms, creds);
}

static od_aws_request_t ddb_request(const char *endpoint, const char *target, const char *body)
{
    od_aws_request_t r = {"dynamodb", endpoint,     target, "application/x-amz-json-1.0",
                          body,       strlen(body), NULL};
    return r;
}

static apr_status_t call(od_aws_t *aws, const char *endpoint, const char *target, const char *body,
                         od_aws_response_t *r)
{
    od_aws_request_t req = ddb_request(endpoint, target, body);

    return od_aws_call(aws, &req, r, pool);
}

static apr_status_t list_tables(od_aws_t *aws, const char *endpoint, od_aws_response_t *r)
{
    return call(aws, endpoint, DDB("ListTables"), "{}", r);
}

static void assert_tables(apr_status_t rv, const od_aws_response_t *r, int attempts)
{
    ck_assert_msg(rv == APR_SUCCESS, "status %d, %s: %s", rv, r->error_code, r->error_message);
    ck_assert_int_eq(r->http_status, 200);
    ck_assert_int_eq(r->attempts, attempts);
    ck_assert_ptr_null(r->error_code);
    ck_assert_msg(strstr(r->body, "\"TableNames\"") != NULL, "body: %s", r->body);
    ck_assert_uint_eq(r->body_len, strlen(r->body));
}

static void assert_failed(apr_status_t rv, apr_status_t want, const od_aws_response_t *r, long http,
                          const char *code, int attempts)
{
    ck_assert_msg(rv == want, "status %d, not %d (%s: %s)", rv, want, r->error_code,
                  r->error_message);
    ck_assert_int_eq(r->http_status, http);
    ck_assert_pstr_eq(r->error_code, code);
    ck_assert_int_eq(r->attempts, attempts);
}

static od_aws_stats_t stats(od_aws_t *aws)
{
    od_aws_stats_t s;

    od_aws_stats(aws, &s);
    return s;
}

static long ms_since(apr_time_t start)
{
    return (long) apr_time_as_msec(apr_time_now() - start);
}

/* Everything logged so far (from the pool); @p lines gets the number of lines. */
static const char *log_text(int *lines)
{
    char *buf = apr_pcalloc(pool, 65536);
    size_t n = 0;

    ck_assert_int_eq(fflush(log_file), 0);
    rewind(log_file);
    n = fread(buf, 1, 65535, log_file);
    fseek(log_file, 0, SEEK_END); /* reading and writing must be separated by a seek */
    *lines = 0;
    for (size_t i = 0; i < n; i++) {
        *lines += buf[i] == '\n';
    }
    return buf;
}

/* The log has @p lines lines, and (unless NULL) each one mentions @p what. */
static void assert_log(int lines, const char *what)
{
    int n = 0;
    const char *text = log_text(&n);
    int hits = 0;

    for (const char *s = text; what != NULL && (s = strstr(s, what)) != NULL; s++) {
        hits++;
    }
    ck_assert_msg(n == lines, "%d log lines, not %d:\n%s", n, lines, text);
    ck_assert_msg(what == NULL || hits == lines, "%d of %d lines name %s:\n%s", hits, lines, what,
                  text);
}

/* ---- sockets of the test's own ---- */

static int bound_socket(int *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *) &a, sizeof(a)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *) &a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/*
 * A listener that never accepts: the kernel completes the handshakes and buffers the requests,
 * so clients wait for an answer that never comes. Closed by the caller.
 */
static int hang_listen(const char **url)
{
    int port = 0;
    int fd = bound_socket(&port);

    ck_assert_int_eq(listen(fd, 64), 0);
    *url = apr_psprintf(pool, "http://127.0.0.1:%d", port);
    return fd;
}

/* Bound but not listening, so connections are refused; the port stays ours while it is open. */
static int refusing_socket(const char **url)
{
    int port = 0;
    int fd = bound_socket(&port);

    *url = apr_psprintf(pool, "http://127.0.0.1:%d", port);
    return fd;
}

/* Whether a connection waits on the listener @p lfd within @p ms. */
static int hang_has_client(int lfd, int ms)
{
    struct pollfd pfd = {lfd, POLLIN, 0};

    return poll(&pfd, 1, ms) == 1;
}

/* The bytes a client sent on the first connection waiting on @p lfd, until it closed. */
static const char *hang_take_request(int lfd)
{
    char *buf = apr_pcalloc(pool, 16384);
    size_t len = 0;

    ck_assert_msg(hang_has_client(lfd, WAIT_MS), "no connection arrived");
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    /* Bounded: at most 64 reads, each waiting at most WAIT_MS. */
    for (int i = 0; i < 64 && len < 16383; i++) {
        struct pollfd pfd = {fd, POLLIN, 0};
        ssize_t n = poll(&pfd, 1, WAIT_MS) == 1 ? recv(fd, buf + len, 16383 - len, 0) : -1;
        if (n <= 0) {
            break;
        }
        len += (size_t) n;
    }
    close(fd);
    return buf;
}

/* ---- success and connection reuse ---- */

START_TEST(test_aws_call_succeeds_through_proxy)
{
    od_aws_t *aws = client(4, 3, 5000);
    od_aws_response_t r;

    assert_tables(list_tables(aws, od_test_proxy_url(proxy), &r), &r, 1);
    od_aws_stats_t s = stats(aws);
    ck_assert_uint_eq(s.calls, 1);
    ck_assert_uint_eq(s.attempts, 1);
    ck_assert_uint_eq(s.retries, 0);
    ck_assert_uint_eq(s.failed, 0);
    ck_assert_uint_eq(s.connects, 1);
    ck_assert_uint_gt(s.latency_us_sum, 0);
    ck_assert_uint_eq(s.latency_le[LAST_BUCKET], 1); /* buckets are cumulative */
    ck_assert_uint_eq(od_test_proxy_connects(proxy), 1);
    ck_assert_uint_eq(od_test_proxy_requests(proxy), 1);
    ck_assert_str_eq(od_aws_region(aws), "us-east-1");
    assert_log(0, NULL);
}
END_TEST

START_TEST(test_aws_keep_alive_reuses_one_connection)
{
    od_aws_t *aws = client(4, 3, 5000);
    od_aws_response_t r;

    for (int i = 0; i < 20; i++) {
        assert_tables(list_tables(aws, od_test_proxy_url(proxy), &r), &r, 1);
    }
    od_aws_stats_t s = stats(aws);
    ck_assert_uint_eq(s.calls, 20);
    ck_assert_uint_eq(s.attempts, 20);
    ck_assert_uint_eq(s.connects, 1);
    ck_assert_uint_eq(od_test_proxy_connects(proxy), 1);
    ck_assert_uint_eq(od_test_proxy_requests(proxy), 20);
    for (int i = 1; i < OD_AWS_LATENCY_BUCKETS; i++) {
        ck_assert_uint_ge(s.latency_le[i], s.latency_le[i - 1]);
    }
}
END_TEST

/* ---- retried failures ---- */

START_TEST(test_aws_throttled_then_pass_retries)
{
    od_aws_t *aws = client(4, 3, 5000);
    od_aws_response_t r;

    od_test_proxy_set_mode(proxy, OD_PROXY_THROTTLE, 2);
    assert_tables(list_tables(aws, od_test_proxy_url(proxy), &r), &r, 3);
    od_aws_stats_t s = stats(aws);
    ck_assert_uint_eq(s.calls, 1);
    ck_assert_uint_eq(s.attempts, 3);
    ck_assert_uint_eq(s.retries, 2);
    ck_assert_uint_eq(s.throttled, 2);
    ck_assert_uint_eq(s.failed, 0);
    ck_assert_uint_eq(s.connects, 1); /* a 400 keeps the connection */
    ck_assert_uint_eq(od_test_proxy_requests(proxy), 3);
    assert_log(0, NULL);
}
END_TEST

static const int throttle_max_attempts[] = {3, 1};

START_TEST(test_aws_throttled_forever_gives_up_after_max_attempts)
{
    int max = throttle_max_attempts[_i];
    od_aws_t *aws = client(4, max, 5000);
    od_aws_response_t r;

    od_test_proxy_set_mode(proxy, OD_PROXY_THROTTLE, -1);
    apr_status_t rv = list_tables(aws, od_test_proxy_url(proxy), &r);
    assert_failed(rv, OD_ETHROTTLED, &r, 400, "ThrottlingException", max);
    ck_assert_pstr_eq(r.error_message, "Rate exceeded");
    ck_assert_int_eq(r.maybe_applied, 0); /* a throttled request was not applied */
    od_aws_stats_t s = stats(aws);
    ck_assert_uint_eq(s.attempts, (unsigned) max);
    ck_assert_uint_eq(s.retries, (unsigned) max - 1);
    ck_assert_uint_eq(s.failed, 1);
    ck_assert_uint_eq(s.budget_refusals, 0);
    ck_assert_uint_eq(od_test_proxy_requests(proxy), (unsigned) max);
    assert_log(1, "ThrottlingException"); /* once per call, not per attempt */
}
END_TEST

/* od_aws.h: throttled counts "attempts answered with a throttling error", the last one too. */
START_TEST(test_aws_throttled_counts_every_throttled_attempt)
{
    int max = throttle_max_attempts[_i];
    od_aws_t *aws = client(4, max, 5000);
    od_aws_response_t r;

    od_test_proxy_set_mode(proxy, OD_PROXY_THROTTLE, -1);
    ck_assert_int_eq(list_tables(aws, od_test_proxy_url(proxy), &r), OD_ETHROTTLED);
    ck_assert_uint_eq(od_test_proxy_requests(proxy), (unsigned) max);
    ck_assert_uint_eq(stats(aws).throttled, (unsigned) max);
}
END_TEST

START_TEST(test_aws_server_error_forever_is_unavailable)
{
    od_aws_t *aws = client(4, 3, 5000);
    od_aws_response_t r;

    od_test_proxy_set_mode(proxy, OD_PROXY_ERROR500, -1);
    apr_status_t rv = list_tables(aws, od_test_proxy_url(proxy), &r);
    assert_failed(rv, OD_EUNAVAIL, &r, 500, "InternalServerError", 3);
    ck_assert_int_eq(r.maybe_applied, 1); /* a 5xx may come after the write was applied */
    od_aws_stats_t s = stats(aws);
    ck_assert_uint_eq(s.retries, 2);
    ck_assert_uint_eq(s.throttled, 0);
    ck_assert_uint_eq(s.failed, 1);
    ck_assert_uint_eq(od_test_proxy_requests(proxy), 3);
    assert_log(1, "InternalServerError");
}
END_TEST

/* A fresh client, so the dropped request is on a new connection (curl silently resends one
 * that failed on a reused connection). */
START_TEST(test_aws_dropped_connection_is_retried)
{
    od_aws_t *aws = client(4, 3, 5000);
    od_aws_response_t r;

    od_test_proxy_set_mode(proxy, OD_PROXY_DROP, 1);
    assert_tables(list_tables(aws, od_test_proxy_url(proxy), &r), &r, 2);
    ck_assert_int_eq(r.maybe_applied, 1); /* the dropped request was sent: the client cannot
                                             know that the proxy did not forward it */
    od_aws_stats_t s = stats(aws);
    ck_assert_uint_eq(s.retries, 1);
    ck_assert_uint_eq(s.connects, 2);
    ck_assert_uint_eq(od_test_proxy_connects(proxy), 2);
    ck_assert_uint_eq(od_test_proxy_requests(proxy), 2);
}
END_TEST

START_TEST(test_aws_connection_refused_is_unavailable)
{
    const char *url = NULL;
    int fd = refusing_socket(&url);
    od_aws_t *aws = client(4, 3, 5000);
    od_aws_response_t r;

    apr_status_t rv = list_tables(aws, url, &r);
    close(fd);
    assert_failed(rv, OD_EUNAVAIL, &r, 0, "curl:7", 3); /* CURLE_COULDNT_CONNECT, retried */
    ck_assert_int_eq(r.maybe_applied, 0);               /* never sent */
    ck_assert_ptr_nonnull(r.error_message);
    ck_assert_str_eq(r.body, "");
    ck_assert_uint_eq(r.body_len, 0);
    od_aws_stats_t s = stats(aws);
    ck_assert_uint_eq(s.retries, 2);
    ck_assert_uint_eq(s.connects, 0);
    ck_assert_uint_eq(s.failed, 1);
    assert_log(1, "curl:7");
}
END_TEST

/* ---- failures never retried ---- */

/* A table of this test's own: DynamoDB Local lives for the whole test case. */
static const char *create_table(od_aws_t *aws)
{
    const char *name = apr_psprintf(pool, "od_aws_%ld", (long) getpid());
    const char *body = apr_psprintf(
        pool,
        "{\"TableName\":\"%s\",\"KeySchema\":[{\"AttributeName\":\"pk\",\"KeyType\":\"HASH\"}],"
        "\"AttributeDefinitions\":[{\"AttributeName\":\"pk\",\"AttributeType\":\"S\"}],"
        "\"BillingMode\":\"PAY_PER_REQUEST\"}",
        name);
    od_aws_response_t r;

    apr_status_t rv = call(aws, od_test_engine_url(engine), DDB("CreateTable"), body, &r);
    ck_assert_msg(rv == APR_SUCCESS, "CreateTable: %s: %s", r.error_code, r.error_message);
    return name;
}

START_TEST(test_aws_conditional_check_failure_not_retried)
{
    od_aws_t *aws = client(4, 3, 5000);
    od_aws_response_t r;
    const char *body = apr_psprintf(pool,
                                    "{\"TableName\":\"%s\",\"Item\":{\"pk\":{\"S\":\"missing\"}},"
                                    "\"ConditionExpression\":\"attribute_exists(pk)\"}",
                                    create_table(aws));

    apr_status_t rv = call(aws, od_test_proxy_url(proxy), DDB("PutItem"), body, &r);
    assert_failed(rv, OD_ECONFLICT, &r, 400, "ConditionalCheckFailedException", 1);
    ck_assert_int_eq(r.maybe_applied, 0);
    ck_assert_uint_eq(od_test_proxy_requests(proxy), 1);
    ck_assert_uint_eq(stats(aws).retries, 0);
    ck_assert_uint_eq(stats(aws).failed, 1);
    assert_log(0, NULL); /* the caller handles conflicts */
}
END_TEST

START_TEST(test_aws_validation_errors_not_retried)
{
    od_aws_t *aws = client(4, 3, 5000);
    od_aws_response_t r;

    apr_status_t rv = call(aws, od_test_proxy_url(proxy), DDB("DescribeTable"),
                           "{\"TableName\":\"od_aws_no_such_table\"}", &r);
    assert_failed(rv, OD_EINVAL, &r, 400, "ResourceNotFoundException", 1);
    ck_assert_ptr_nonnull(r.error_message);
    /* A malformed body would do on AWS (SerializationException), but DynamoDB Local answers one
     * with 500 InternalFailure, which is rightly retried: break a rule instead. */
    rv = call(aws, od_test_proxy_url(proxy), DDB("ListTables"), "{\"Limit\":-1}", &r);
    assert_failed(rv, OD_EINVAL, &r, 400, "ValidationException", 1);
    ck_assert_uint_eq(od_test_proxy_requests(proxy), 2);
    ck_assert_uint_eq(stats(aws).retries, 0);
    assert_log(2, "DynamoDB_20120810.");
}
END_TEST

/*
 * The proxy forwards a conditional write and loses its answer: the engine stored the item, the
 * client cannot know it, and says so (maybe_applied) even after the retry's definitive refusal,
 * which is the condition failing on the item the first attempt stored. A fresh client, so that
 * curl does not silently resend the request as it would on a reused connection.
 */
START_TEST(test_aws_lost_answer_may_have_been_applied)
{
    od_aws_t *aws = client(4, 3, 5000);
    od_aws_response_t r;
    const char *table = create_table(aws);
    const char *put = apr_psprintf(pool,
                                   "{\"TableName\":\"%s\",\"Item\":{\"pk\":{\"S\":\"lost\"}},"
                                   "\"ConditionExpression\":\"attribute_not_exists(pk)\"}",
                                   table);
    const char *get = apr_psprintf(
        pool, "{\"TableName\":\"%s\",\"Key\":{\"pk\":{\"S\":\"lost\"}},\"ConsistentRead\":true}",
        table);

    od_test_proxy_set_mode(proxy, OD_PROXY_LOSE, 1);
    apr_status_t rv = call(aws, od_test_proxy_url(proxy), DDB("PutItem"), put, &r);
    assert_failed(rv, OD_ECONFLICT, &r, 400, "ConditionalCheckFailedException", 2);
    ck_assert_int_eq(r.maybe_applied, 1);
    ck_assert_uint_eq(od_test_proxy_requests(proxy), 2);
    rv = call(aws, od_test_engine_url(engine), DDB("GetItem"), get, &r);
    ck_assert_int_eq(rv, APR_SUCCESS);
    ck_assert_msg(strstr(r.body, "\"lost\"") != NULL, "no item: %s", r.body);
    ck_assert_int_eq(r.maybe_applied, 0);
}
END_TEST

/* ---- timeouts ---- */

/* Through the proxy to a listener that never answers: each attempt times out. */
START_TEST(test_aws_request_timeout_is_unavailable)
{
    const char *hang = NULL;
    int lfd = hang_listen(&hang);
    od_test_proxy_t *slow = od_test_proxy_start(hang);
    od_aws_t *aws = client(2, 2, SLOW_MS);
    od_aws_response_t r;
    apr_time_t start = apr_time_now();

    apr_status_t rv = list_tables(aws, od_test_proxy_url(slow), &r);
    long took = ms_since(start);
    unsigned int requests = od_test_proxy_requests(slow);
    od_test_proxy_stop(slow);
    close(lfd);
    assert_failed(rv, OD_EUNAVAIL, &r, 0, "curl:28", 2); /* CURLE_OPERATION_TIMEDOUT */
    ck_assert_int_eq(r.maybe_applied, 1);                /* sent, then no answer in time */
    ck_assert_msg(took >= 2 * SLOW_MS * 9 / 10 && took < 2 * SLOW_MS + 1000, "took %ld ms", took);
    ck_assert_uint_eq(requests, 2);
    ck_assert_uint_eq(stats(aws).retries, 1);
    assert_log(1, "curl:28");
}
END_TEST

typedef struct stuck_call_t {
    pthread_t thread;
    od_aws_t *aws;
    const char *endpoint;
    apr_pool_t *pool; /* the thread's own */
    apr_status_t rv;
    od_aws_response_t resp;
} stuck_call_t;

static void *stuck_call_main(void *arg)
{
    stuck_call_t *c = arg;
    od_aws_request_t req = ddb_request(c->endpoint, DDB("ListTables"), "{}");

    c->rv = od_aws_call(c->aws, &req, &c->resp, c->pool);
    return NULL;
}

/*
 * One connection, held by a call stuck for max_attempts request timeouts: a second caller waits
 * at most about one request timeout for it, then gets OD_EUNAVAIL "PoolTimeout" without trying.
 */
START_TEST(test_aws_pool_exhaustion_times_out)
{
    const char *hang = NULL;
    int lfd = hang_listen(&hang);
    od_aws_t *aws = client(1, 3, SLOW_MS);
    stuck_call_t stuck = {.aws = aws, .endpoint = hang};
    od_aws_response_t r;

    apr_pool_create(&stuck.pool, NULL);
    ck_assert_int_eq(pthread_create(&stuck.thread, NULL, stuck_call_main, &stuck), 0);
    ck_assert_msg(hang_has_client(lfd, WAIT_MS), "the stuck call never connected");
    apr_time_t start = apr_time_now();
    apr_status_t rv = list_tables(aws, od_test_proxy_url(proxy), &r);
    long took = ms_since(start);
    pthread_join(stuck.thread, NULL);
    close(lfd);
    assert_failed(rv, OD_EUNAVAIL, &r, 0, "PoolTimeout", 0);
    ck_assert_msg(took >= SLOW_MS * 8 / 10 && took <= 2 * SLOW_MS, "waited %ld ms", took);
    ck_assert_uint_eq(od_test_proxy_requests(proxy), 0);
    assert_failed(stuck.rv, OD_EUNAVAIL, &stuck.resp, 0, "curl:28", 3);
    apr_pool_destroy(stuck.pool);
    /* The connection is back in the pool. */
    assert_tables(list_tables(aws, od_test_proxy_url(proxy), &r), &r, 1);
}
END_TEST

/* ---- the retry budget ---- */

/* Throttled calls until the budget is empty: each pays max_attempts - 1 retries. */
static void drain_budget(od_aws_t *aws, int max_attempts)
{
    int full_calls = BUDGET / (RETRY_COST * (max_attempts - 1));
    od_aws_response_t r;

    od_test_proxy_set_mode(proxy, OD_PROXY_THROTTLE, -1);
    for (int i = 0; i < full_calls; i++) {
        ck_assert_int_eq(list_tables(aws, od_test_proxy_url(proxy), &r), OD_ETHROTTLED);
        ck_assert_msg(r.attempts == max_attempts, "call %d: %d attempts", i, r.attempts);
    }
}

/*
 * On the drained budget: standard mode gives back one token per first-try success, so 5 of them
 * pay for one retry again. (Part of the test above: draining takes 150 requests.)
 */
static void assert_budget_refills(od_aws_t *aws)
{
    od_aws_response_t r;

    for (int i = 0; i < RETRY_COST; i++) {
        assert_tables(list_tables(aws, od_test_proxy_url(proxy), &r), &r, 1);
    }
    od_test_proxy_set_mode(proxy, OD_PROXY_THROTTLE, 1);
    assert_tables(list_tables(aws, od_test_proxy_url(proxy), &r), &r, 2);
    /* The success gave back what its retry cost, 5 tokens: one retry, not two. */
    od_test_proxy_set_mode(proxy, OD_PROXY_THROTTLE, -1);
    ck_assert_int_eq(list_tables(aws, od_test_proxy_url(proxy), &r), OD_ETHROTTLED);
    ck_assert_int_eq(r.attempts, 2);
    od_test_proxy_set_mode(proxy, OD_PROXY_PASS, -1);
}

START_TEST(test_aws_retry_budget_limits_and_refills)
{
    od_aws_t *aws = client(4, 3, 5000);
    od_aws_response_t r;

    drain_budget(aws, 3); /* 50 calls of 3 attempts */
    for (int i = 0; i < 10; i++) {
        ck_assert_int_eq(list_tables(aws, od_test_proxy_url(proxy), &r), OD_ETHROTTLED);
        ck_assert_int_eq(r.attempts, 1);
        ck_assert_pstr_eq(r.error_code, "ThrottlingException");
    }
    od_test_proxy_set_mode(proxy, OD_PROXY_PASS, -1);
    od_aws_stats_t s = stats(aws);
    ck_assert_uint_eq(s.calls, 60);
    ck_assert_uint_eq(s.retries, 100);
    ck_assert_uint_eq(s.budget_refusals, 10);
    ck_assert_uint_eq(s.failed, 60);
    ck_assert_uint_eq(od_test_proxy_requests(proxy), 160); /* not 3 x 60 */
    assert_budget_refills(aws);
}
END_TEST

/* ---- the pool bound ---- */

typedef struct worker_t {
    pthread_t thread;
    od_aws_t *aws;
    apr_pool_t *pool; /* the thread's own */
    int calls;
    int ok; /* calls that succeeded at the first attempt */
} worker_t;

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    od_aws_request_t req = ddb_request(od_test_proxy_url(proxy), DDB("ListTables"), "{}");

    for (int i = 0; i < w->calls; i++) {
        od_aws_response_t r;
        apr_status_t rv = od_aws_call(w->aws, &req, &r, w->pool);
        w->ok += rv == APR_SUCCESS && r.attempts == 1 && strstr(r.body, "TableNames") != NULL;
    }
    return NULL;
}

/* Connections and calls per thread; one connection means much waiting, so fewer calls. */
static const int pool_shapes[][2] = {{3, 25}, {1, 5}};

START_TEST(test_aws_pool_bounds_connections)
{
    unsigned int n = (unsigned) pool_shapes[_i][0];
    int per_thread = pool_shapes[_i][1];
    od_aws_t *aws = client((int) n, 1, 10000);
    worker_t w[THREADS];

    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker_t){.aws = aws, .calls = per_thread};
        apr_pool_create(&w[i].pool, NULL);
        ck_assert_int_eq(pthread_create(&w[i].thread, NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(w[i].thread, NULL);
        apr_pool_destroy(w[i].pool);
        ck_assert_int_eq(w[i].ok, per_thread);
    }
    od_aws_stats_t s = stats(aws);
    ck_assert_uint_eq(s.calls, (unsigned) (THREADS * per_thread));
    ck_assert_uint_le(s.connects, n);
    ck_assert_uint_eq(od_test_proxy_requests(proxy), (unsigned) (THREADS * per_thread));
    ck_assert_uint_le(od_test_proxy_max_open(proxy), n);
    ck_assert_uint_le(od_test_proxy_connects(proxy), n);
    assert_log(0, NULL);
}
END_TEST

/* ---- logging ---- */

START_TEST(test_aws_expected_error_is_not_logged)
{
    od_aws_t *aws = client(4, 3, 5000);
    const char *body = "{\"TableName\":\"od_aws_no_such_table\"}";
    od_aws_request_t req = ddb_request(od_test_proxy_url(proxy), DDB("DescribeTable"), body);
    od_aws_response_t r;

    req.expected_error = "ResourceNotFoundException";
    assert_failed(od_aws_call(aws, &req, &r, pool), OD_EINVAL, &r, 400, "ResourceNotFoundException",
                  1);
    assert_log(0, NULL);
    req.expected_error = NULL;
    ck_assert_int_eq(od_aws_call(aws, &req, &r, pool), OD_EINVAL);
    assert_log(1, "ResourceNotFoundException");
    req.expected_error = "ConditionalCheckFailedException"; /* another code: still logged */
    ck_assert_int_eq(od_aws_call(aws, &req, &r, pool), OD_EINVAL);
    assert_log(2, "ResourceNotFoundException");
}
END_TEST

/* ---- creation ---- */

START_TEST(test_aws_create_failure_undoes_everything)
{
    od_aws_options_t o = {"us-east-1", 0, 1000, 1000, 3, 1, 1}; /* no connections at all */
    od_aws_t *aws = (od_aws_t *) 1;
    int lines = 0;

    ck_assert_int_ne(od_aws_create(&aws, &o, creds, log_, pool), APR_SUCCESS);
    ck_assert_ptr_null(aws);
    log_text(&lines);
    ck_assert_int_eq(lines, 1);
    /* The teardown's pool destroy must not run the client's cleanup a second time. */
}
END_TEST

START_TEST(test_aws_region_is_copied)
{
    char region[] = "eu-west-3";
    od_aws_options_t o = {region, 2, 1000, 1000, 3, 1, 1};
    od_aws_t *aws = NULL;

    ck_assert_int_eq(od_aws_create(&aws, &o, creds, log_, pool), APR_SUCCESS);
    region[0] = 'X';
    ck_assert_str_eq(od_aws_region(aws), "eu-west-3");
}
END_TEST

/* ---- region and endpoint resolution ---- */

static void clear_aws_env(void)
{
    unsetenv("AWS_REGION");
    unsetenv("AWS_DEFAULT_REGION");
    unsetenv("AWS_ENDPOINT_URL");
    unsetenv("AWS_ENDPOINT_URL_DYNAMODB");
}

START_TEST(test_aws_resolve_region_precedence)
{
    clear_aws_env();
    ck_assert_ptr_null(od_aws_resolve_region(NULL));
    setenv("AWS_DEFAULT_REGION", "eu-central-1", 1);
    ck_assert_pstr_eq(od_aws_resolve_region(NULL), "eu-central-1");
    setenv("AWS_REGION", "eu-west-1", 1);
    ck_assert_pstr_eq(od_aws_resolve_region(NULL), "eu-west-1");
    ck_assert_pstr_eq(od_aws_resolve_region("us-west-2"), "us-west-2");
    unsetenv("AWS_REGION");
    ck_assert_pstr_eq(od_aws_resolve_region("us-west-2"), "us-west-2");
    clear_aws_env();
}
END_TEST

static const char *endpoint(const char *configured, const char *env_name, const char *host)
{
    return od_aws_resolve_endpoint(configured, env_name, host, "eu-west-1", pool);
}

START_TEST(test_aws_resolve_endpoint_precedence)
{
    clear_aws_env();
    ck_assert_str_eq(endpoint(NULL, "DYNAMODB", "dynamodb"),
                     "https://dynamodb.eu-west-1.amazonaws.com");
    setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1", 1);
    ck_assert_str_eq(endpoint(NULL, "DYNAMODB", "dynamodb"), "http://127.0.0.1:1");
    setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:2", 1);
    ck_assert_str_eq(endpoint(NULL, "DYNAMODB", "dynamodb"), "http://127.0.0.1:2");
    ck_assert_str_eq(endpoint(NULL, "SNS", "sns"), "http://127.0.0.1:1"); /* not DynamoDB's */
    ck_assert_str_eq(endpoint("http://127.0.0.1:3", "DYNAMODB", "dynamodb"), "http://127.0.0.1:3");
    unsetenv("AWS_ENDPOINT_URL");
    ck_assert_str_eq(endpoint(NULL, "SNS", "sns"), "https://sns.eu-west-1.amazonaws.com");
    clear_aws_env();
}
END_TEST

/* ---- the signed request ---- */

/* moto sends unsigned DynamoDB calls to another backend: a JSON answer proves the signature. */
START_TEST(test_aws_signed_call_to_moto)
{
    od_aws_t *aws = client(2, 3, 5000);
    od_aws_response_t r;

    for (int i = 0; i < 2; i++) {
        assert_tables(list_tables(aws, od_test_proxy_url(proxy), &r), &r, 1);
    }
    ck_assert_uint_eq(od_test_proxy_requests(proxy), 2);
    assert_log(0, NULL);
}
END_TEST

/* moto checking signatures: an access key it does not know is refused, and not retried. */
START_TEST(test_aws_refused_credentials_are_eauth)
{
    od_aws_t *aws = client(2, 3, 5000);
    od_aws_response_t r;

    apr_status_t rv = list_tables(aws, od_test_proxy_url(proxy), &r);
    ck_assert_msg(rv == OD_EAUTH, "status %d, HTTP %ld, %s: %s", rv, r.http_status, r.error_code,
                  r.error_message);
    ck_assert_int_eq(r.attempts, 1);
    ck_assert_ptr_nonnull(r.error_code);
    ck_assert_uint_eq(od_test_proxy_requests(proxy), 1);
    assert_log(1, r.error_code);
}
END_TEST

/* What a client with @p c sends: read from a listener that never answers. */
static const char *sent_request(od_aws_creds_t *c)
{
    const char *hang = NULL;
    int lfd = hang_listen(&hang);
    od_aws_t *aws = client_with(1, 1, SLOW_MS, c);
    od_aws_response_t r;

    ck_assert_int_eq(list_tables(aws, hang, &r), OD_EUNAVAIL);
    const char *text = hang_take_request(lfd);
    close(lfd);
    return text;
}

static void assert_has(const char *text, const char *what)
{
    ck_assert_msg(strcasestr(text, what) != NULL, "request lacks \"%s\":\n%s", what, text);
}

START_TEST(test_aws_request_is_signed)
{
    const char *text = sent_request(creds);

    ck_assert_msg(strncmp(text, "POST / HTTP/1.1\r\n", 17) == 0, "request:\n%s", text);
    assert_has(text, "\r\nAuthorization: AWS4-HMAC-SHA256 Credential=" AKID "/");
    assert_has(text, "/us-east-1/dynamodb/aws4_request, SignedHeaders=");
    assert_has(text, "\r\nX-Amz-Date: ");
    assert_has(text, "\r\nX-Amz-Target: DynamoDB_20120810.ListTables\r\n");
    assert_has(text, "\r\nContent-Type: application/x-amz-json-1.0\r\n");
    assert_has(text, "\r\nContent-Length: 2\r\n");
    ck_assert_msg(strcasestr(text, "X-Amz-Security-Token") == NULL, "request:\n%s", text);
    ck_assert_msg(strcasestr(text, "\r\nExpect:") == NULL, "request:\n%s", text);
    ck_assert_str_eq(strstr(text, "\r\n\r\n"), "\r\n\r\n{}");
}
END_TEST

START_TEST(test_aws_session_token_is_sent)
{
    const char *text = sent_request(make_creds("od-session-token/+="));

    assert_has(text, "\r\nX-Amz-Security-Token: od-session-token/+=\r\n");
    assert_has(text, "\r\nAuthorization: AWS4-HMAC-SHA256 Credential=" AKID "/");
}
END_TEST

/* ---- the suite ---- */

static TCase *engine_tcase(const char *name, void (*engine_setup)(void))
{
    TCase *tc = tcase_create(name);

    if (engine_setup != NULL) {
        tcase_add_unchecked_fixture(tc, engine_setup, engine_teardown);
    }
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    return tc;
}

static void add_ddblocal_tests(TCase *tc)
{
    tcase_add_test(tc, test_aws_call_succeeds_through_proxy);
    tcase_add_test(tc, test_aws_keep_alive_reuses_one_connection);
    tcase_add_test(tc, test_aws_throttled_then_pass_retries);
    tcase_add_loop_test(tc, test_aws_throttled_forever_gives_up_after_max_attempts, 0, 2);
    tcase_add_loop_test(tc, test_aws_throttled_counts_every_throttled_attempt, 0, 2);
    tcase_add_test(tc, test_aws_server_error_forever_is_unavailable);
    tcase_add_test(tc, test_aws_dropped_connection_is_retried);
    tcase_add_test(tc, test_aws_conditional_check_failure_not_retried);
    tcase_add_test(tc, test_aws_validation_errors_not_retried);
    tcase_add_test(tc, test_aws_lost_answer_may_have_been_applied);
    tcase_add_test(tc, test_aws_request_timeout_is_unavailable);
    tcase_add_test(tc, test_aws_pool_exhaustion_times_out);
    tcase_add_test(tc, test_aws_retry_budget_limits_and_refills);
    tcase_add_loop_test(tc, test_aws_pool_bounds_connections, 0, 2);
    tcase_add_test(tc, test_aws_expected_error_is_not_logged);
}

static void add_local_tests(TCase *tc)
{
    tcase_add_test(tc, test_aws_connection_refused_is_unavailable);
    tcase_add_test(tc, test_aws_create_failure_undoes_everything);
    tcase_add_test(tc, test_aws_region_is_copied);
    tcase_add_test(tc, test_aws_resolve_region_precedence);
    tcase_add_test(tc, test_aws_resolve_endpoint_precedence);
    tcase_add_test(tc, test_aws_request_is_signed);
    tcase_add_test(tc, test_aws_session_token_is_sent);
}

Suite *od_aws_suite(void)
{
    Suite *s = suite_create("aws");
    TCase *local = engine_tcase("local", NULL);
    TCase *ddb = engine_tcase("ddblocal", ddblocal_setup);
    TCase *moto = engine_tcase("moto", moto_setup);
    TCase *moto_auth = engine_tcase("moto_auth", moto_auth_setup);

    add_local_tests(local);
    suite_add_tcase(s, local);
    add_ddblocal_tests(ddb);
    suite_add_tcase(s, ddb);
    tcase_add_test(moto, test_aws_signed_call_to_moto);
    suite_add_tcase(s, moto);
    tcase_add_test(moto_auth, test_aws_refused_credentials_are_eauth);
    suite_add_tcase(s, moto_auth);
    return s;
}

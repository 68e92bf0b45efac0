/*
 * Tests of the DynamoDB store and the AWS client against the real local engines, through the
 * real orderd binary: signing verified by moto's IAM enforcement (long-term and session
 * credentials, and a wrong secret), two instances sharing one table, throttling and dropped
 * connections through a fault-injecting proxy, the connection pool's bound, and an independent
 * client (the AWS CLI) reading what orderd wrote.
 */
#include "od_aws.h"
#include "od_suites.h"
#include "od_test_aws.h"
#include "od_test_engines.h"
#include "od_test_util.h"

#include <apr_strings.h>
#include <curl/curl.h>
#include <json-c/json.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DDB_STOP_MS 15000L
#define DDB_ORDER_FMT                                                                              \
    "{\"customer_id\":\"CUST-%06d\",\"currency\":\"EUR\",\"items\":[{\"sku\":\"SKU-1001\","        \
    "\"quantity\":1,\"unit_price_cents\":%d}]}"

/* Started once per test case by an unchecked fixture, in the runner process. */
static od_test_engine_t *engine;
static char base[PATH_MAX];

static void base_make(void)
{
    snprintf(base, sizeof(base), "/tmp/orderd-ddb-suite-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(base));
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    unsetenv("ORDERD_TEST_STORE_CONF");
}

static void ddblocal_setup(void)
{
    base_make();
    /* DynamoDB Local checks that requests are signed, not by whom. */
    setenv("AWS_ACCESS_KEY_ID", "AKIDLOCAL", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "local-secret", 1);
    engine = od_test_ddblocal_start();
}

static void moto_auth_setup(void)
{
    /* The readiness probe and five set-up calls (see iam_setup) pass unauthenticated; then moto
     * enforces IAM and SigV4. */
    static const char *const env[] = {"INITIAL_NO_AUTH_ACTION_COUNT=6", NULL};
    base_make();
    engine = od_test_moto_start(env);
}

static void engine_teardown(void)
{
    od_test_engine_stop(engine);
    engine = NULL;
    od_test_remove_tree(base);
}

/* ---- orderd processes ---- */

/* Config lines for the DynamoDB store at @p endpoint, table @p table, plus @p more. */
static const char *ddb_conf(apr_pool_t *p, const char *endpoint, const char *table,
                            const char *more)
{
    return apr_psprintf(p,
                        "store = dynamodb\naws_region = us-east-1\ndynamodb_endpoint = %s\n"
                        "dynamodb_table = %s\naws_retry_base_ms = 5\naws_retry_cap_ms = 50\n"
                        "events_sink = none\n%s",
                        endpoint, table, more != NULL ? more : "");
}

static od_test_env_t *start(const char *conf)
{
    od_test_env_t *env = od_test_env_create(base);

    ck_assert_ptr_nonnull(env);
    ck_assert_int_eq(od_test_env_write_config(env, conf), 0);
    if (od_test_server_start(env) != 0) {
        char *log = od_test_server_log(env);
        ck_abort_msg("orderd did not start:\n%s", log != NULL ? log : "");
    }
    return env;
}

static void finish(od_test_env_t *env)
{
    int rc = od_test_server_stop(env, DDB_STOP_MS);
    if (rc != 0) {
        char *log = od_test_server_log(env);
        size_t n = log != NULL ? strlen(log) : 0;
        ck_abort_msg("orderd exit %d; log tail:\n%s", rc, n > 3000 ? log + n - 3000 : log);
    }
    od_test_env_destroy(env);
}

static long post(od_test_env_t *env, const char *body, char *order_id)
{
    od_test_request_t req = {
        .method = "POST", .path = "/orders", .body = body, .body_len = strlen(body)};
    od_test_response_t resp;

    ck_assert_int_eq(od_test_http(env, &req, &resp), 0);
    long status = resp.status;
    if (order_id != NULL) {
        json_object *doc = json_tokener_parse(resp.body), *id = NULL;
        order_id[0] = '\0';
        if (doc != NULL && json_object_object_get_ex(doc, "order_id", &id)) {
            snprintf(order_id, 32, "%s", json_object_get_string(id));
        }
        json_object_put(doc);
    }
    if (status == 503) {
        ck_assert_ptr_nonnull(od_test_response_header(&resp, "Retry-After"));
    }
    od_test_response_free(&resp);
    return status;
}

/* One request; its status, and the answer's body (from @p p) in @p *answer. */
static long exchange(od_test_env_t *env, const char *method, const char *path, const char *body,
                     const char **answer, apr_pool_t *p)
{
    od_test_request_t req = {
        .method = method, .path = path, .body = body, .body_len = body != NULL ? strlen(body) : 0};
    od_test_response_t resp;

    ck_assert_int_eq(od_test_http(env, &req, &resp), 0);
    long status = resp.status;
    *answer = apr_pstrmemdup(p, resp.body, resp.body_len);
    if (status == 503) {
        ck_assert_ptr_nonnull(od_test_response_header(&resp, "Retry-After"));
    }
    od_test_response_free(&resp);
    return status;
}

/* A 503 for a write whose outcome is unknown: it says so, and never that nothing was stored. */
static void assert_outcome_unknown(long status, const char *answer)
{
    ck_assert_int_eq(status, 503);
    ck_assert_msg(strstr(answer, "may or may not have been") != NULL &&
                      strstr(answer, "Retrying the same request within") != NULL &&
                      strstr(answer, "nothing was stored") == NULL,
                  "answer: %s", answer);
}

static char *order_body(apr_pool_t *p, int customer, int price)
{
    return apr_psprintf(p, DDB_ORDER_FMT, customer, price);
}

static int log_has(od_test_env_t *env, const char *needle)
{
    char *log = od_test_server_log(env);
    int found = log != NULL && strstr(log, needle) != NULL;
    free(log);
    return found;
}

/* ---- IAM set-up on moto, through our own client (the query protocol) ---- */

typedef struct iam_keys_t {
    const char *id;
    const char *secret;
    const char *role_arn;
} iam_keys_t;

/* The five calls moto lets through unauthenticated: a user with an access key, a role it may
 * assume, and a policy allowing DynamoDB and AssumeRole on both. */
static iam_keys_t iam_setup(apr_pool_t *p)
{
    od_aws_t *aws = od_test_aws_client(p, "AKIDBOOTSTRAP", "bootstrap", 5000);
    const char *policy =
        od_test_url_escape(p, "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":"
                              "\"Allow\",\"Action\":[\"dynamodb:*\",\"sts:AssumeRole\"],"
                              "\"Resource\":\"*\"}]}");
    const char *trust =
        od_test_url_escape(p, "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":"
                              "\"Allow\",\"Principal\":{\"AWS\":\"*\"},"
                              "\"Action\":\"sts:AssumeRole\"}]}");
    const char *v = "&Version=2010-05-08";
    iam_keys_t k;

    od_test_aws_query(p, aws, engine, "iam",
                      apr_pstrcat(p, "Action=CreateUser&UserName=orderd", v, NULL));
    od_test_aws_query(
        p, aws, engine, "iam",
        apr_pstrcat(p, "Action=PutUserPolicy&UserName=orderd&PolicyName=p&PolicyDocument=", policy,
                    v, NULL));
    const char *key = od_test_aws_query(
        p, aws, engine, "iam", apr_pstrcat(p, "Action=CreateAccessKey&UserName=orderd", v, NULL));
    const char *role = od_test_aws_query(p, aws, engine, "iam",
                                         apr_pstrcat(p,
                                                     "Action=CreateRole&RoleName=orderd-role&"
                                                     "AssumeRolePolicyDocument=",
                                                     trust, v, NULL));
    od_test_aws_query(p, aws, engine, "iam",
                      apr_pstrcat(p,
                                  "Action=PutRolePolicy&RoleName=orderd-role&PolicyName=p&"
                                  "PolicyDocument=",
                                  policy, v, NULL));
    k.id = od_test_xml_text(p, key, "AccessKeyId");
    k.secret = od_test_xml_text(p, key, "SecretAccessKey");
    k.role_arn = od_test_xml_text(p, role, "Arn");
    return k;
}

static const char *creds_conf(apr_pool_t *p, const char *id, const char *secret, const char *token)
{
    return apr_psprintf(p, "aws_access_key_id = %s\naws_secret_access_key = %s\n%s%s\n", id, secret,
                        token != NULL ? "aws_session_token = " : "", token != NULL ? token : "");
}

START_TEST(test_dynamodb_sigv4_verified_by_moto_iam)
{
    apr_pool_t *p = NULL;
    char id[32];

    apr_pool_create(&p, NULL);
    iam_keys_t k = iam_setup(p);
    const char *url = od_test_engine_url(engine);

    /* The right key: --init-store and orders work under IAM enforcement. */
    od_test_env_t *good = start(ddb_conf(p, url, "signed", creds_conf(p, k.id, k.secret, NULL)));
    ck_assert_int_eq(post(good, order_body(p, 1, 100), id), 201);
    ck_assert_int_eq(post(good, order_body(p, 1, 100), NULL), 200);
    finish(good);

    /* The same key with a wrong secret: a clean 503, a clear log line, still serving. */
    od_test_env_t *bad = od_test_env_create(base);
    ck_assert_int_eq(
        od_test_env_write_config(
            bad, ddb_conf(p, url, "signed", creds_conf(p, k.id, "wrong-secret", NULL))),
        0);
    ck_assert_int_eq(od_test_server_start(bad), -1); /* --init-store is refused too */
    ck_assert(log_has(bad, "SignatureDoesNotMatch") || log_has(bad, "InvalidSignature"));
    od_test_env_destroy(bad);
    apr_pool_destroy(p);
}
END_TEST

/* AssumeRole with the user's key: temporary credentials with a session token. */
static iam_keys_t assume_role(apr_pool_t *p, const iam_keys_t *user, const char **token)
{
    od_aws_t *aws = od_test_aws_client(p, user->id, user->secret, 5000);
    const char *xml = od_test_aws_query(
        p, aws, engine, "sts",
        apr_pstrcat(p, "Action=AssumeRole&RoleSessionName=orderd&RoleArn=",
                    od_test_url_escape(p, user->role_arn), "&Version=2011-06-15", NULL));
    iam_keys_t t = {od_test_xml_text(p, xml, "AccessKeyId"),
                    od_test_xml_text(p, xml, "SecretAccessKey"), NULL};

    *token = od_test_xml_text(p, xml, "SessionToken");
    return t;
}

/* An orderd on an existing table with credentials the engine refuses: it starts (no AWS call is
 * made at start), answers orders with a clean 503 + Retry-After, logs @p code, and stops cleanly.
 */
static void assert_refused_cleanly(apr_pool_t *p, const char *conf, const char *code)
{
    od_test_env_t *env = od_test_env_create(base);
    char id[32];

    ck_assert_int_eq(od_test_env_write_config(env, conf), 0);
    od_test_env_skip_init_store(env);
    ck_assert_int_eq(od_test_server_start(env), 0);
    ck_assert_int_eq(post(env, order_body(p, 3, 300), id), 503);
    ck_assert_int_eq(post(env, order_body(p, 3, 300), id), 503);
    ck_assert_msg(log_has(env, code), "no %s in the log", code);
    finish(env);
}

START_TEST(test_dynamodb_session_token_and_refusals_503)
{
    apr_pool_t *p = NULL;
    const char *token = NULL;

    apr_pool_create(&p, NULL);
    iam_keys_t user = iam_setup(p);
    iam_keys_t temp = assume_role(p, &user, &token);
    const char *url = od_test_engine_url(engine);

    ck_assert_msg(strncmp(temp.id, "ASIA", 4) == 0, "temporary key id %s", temp.id);
    od_test_env_t *env =
        start(ddb_conf(p, url, "session", creds_conf(p, temp.id, temp.secret, token)));
    ck_assert_int_eq(post(env, order_body(p, 2, 200), NULL), 201);
    finish(env);
    assert_refused_cleanly(p, ddb_conf(p, url, "session", creds_conf(p, user.id, "wrong", NULL)),
                           "SignatureDoesNotMatch");
    assert_refused_cleanly(
        p, ddb_conf(p, url, "session", creds_conf(p, temp.id, temp.secret, "bogus-token")),
        "InvalidClientTokenId");
    apr_pool_destroy(p);
}
END_TEST

/* ---- DynamoDB Local ---- */

#define SHARED_THREADS 8

typedef struct racer_t {
    od_test_env_t *env;
    const char *body;
    long status;
    char id[32];
} racer_t;

static void *race(void *data)
{
    racer_t *r = data;
    r->status = post(r->env, r->body, r->id);
    return NULL;
}

START_TEST(test_dynamodb_two_instances_share_table)
{
    apr_pool_t *p = NULL;
    char first[32], second[32];
    racer_t racers[SHARED_THREADS];
    pthread_t t[SHARED_THREADS];
    int created = 0;

    apr_pool_create(&p, NULL);
    const char *conf = ddb_conf(p, od_test_engine_url(engine), "shared", NULL);
    od_test_env_t *a = start(conf), *b = start(conf);
    /* Sequential: b's hot cache has never seen the order, so only the table can tell. */
    const char *body = order_body(p, 10, 1000);
    ck_assert_int_eq(post(a, body, first), 201);
    ck_assert_int_eq(post(b, body, second), 200);
    ck_assert_str_eq(first, second);
    /* Concurrent, half on each instance: exactly one order. */
    body = order_body(p, 11, 1100);
    for (int i = 0; i < SHARED_THREADS; i++) {
        racers[i] = (racer_t){i % 2 ? a : b, body, 0, ""};
        pthread_create(&t[i], NULL, race, &racers[i]);
    }
    for (int i = 0; i < SHARED_THREADS; i++) {
        pthread_join(t[i], NULL);
        ck_assert_msg(racers[i].status == 201 || racers[i].status == 200, "status %ld",
                      racers[i].status);
        created += racers[i].status == 201;
        ck_assert_str_eq(racers[i].id, racers[0].id);
    }
    ck_assert_int_eq(created, 1);
    finish(a);
    finish(b);
    apr_pool_destroy(p);
}
END_TEST

START_TEST(test_dynamodb_throttling_bounded_retries_then_503)
{
    apr_pool_t *p = NULL;

    apr_pool_create(&p, NULL);
    od_test_proxy_t *proxy = od_test_proxy_start(od_test_engine_url(engine));
    od_test_env_t *env =
        start(ddb_conf(p, od_test_proxy_url(proxy), "throttled", "aws_max_attempts = 3\n"));
    unsigned int before = od_test_proxy_requests(proxy);

    od_test_proxy_set_mode(proxy, OD_PROXY_THROTTLE, -1);
    const char *answer = NULL;
    ck_assert_int_eq(exchange(env, "POST", "/orders", order_body(p, 20, 1), &answer, p), 503);
    ck_assert_uint_eq(od_test_proxy_requests(proxy) - before, 3); /* bounded: 3 attempts */
    /* Throttled means refused: a definitive "not stored". */
    ck_assert_msg(strstr(answer, "nothing was stored") != NULL, "answer: %s", answer);
    ck_assert(log_has(env, "ThrottlingException"));
    /* Throttled twice, then through: the third attempt stores it. */
    od_test_proxy_set_mode(proxy, OD_PROXY_THROTTLE, 2);
    ck_assert_int_eq(post(env, order_body(p, 21, 1), NULL), 201);
    finish(env);
    od_test_proxy_stop(proxy);
    apr_pool_destroy(p);
}
END_TEST

START_TEST(test_dynamodb_dropped_connections_retried)
{
    apr_pool_t *p = NULL;
    char id[32];

    apr_pool_create(&p, NULL);
    od_test_proxy_t *proxy = od_test_proxy_start(od_test_engine_url(engine));
    od_test_env_t *env = start(ddb_conf(p, od_test_proxy_url(proxy), "dropped", NULL));

    od_test_proxy_set_mode(proxy, OD_PROXY_DROP, 2);
    ck_assert_int_eq(post(env, order_body(p, 30, 1), id), 201);
    /* A 5xx outage longer than the attempts: a 500 may come after the write was applied, and
     * the read-back gets 500s too, so the 503 says the outcome is unknown. The proxy forwarded
     * nothing, so the same request, retried as the answer advises, stores the order once. */
    const char *answer = NULL;
    od_test_proxy_set_mode(proxy, OD_PROXY_ERROR500, -1);
    long status = exchange(env, "POST", "/orders", order_body(p, 31, 1), &answer, p);
    assert_outcome_unknown(status, answer);
    od_test_proxy_set_mode(proxy, OD_PROXY_PASS, -1);
    ck_assert_int_eq(post(env, order_body(p, 31, 1), NULL), 201);
    ck_assert_int_eq(post(env, order_body(p, 30, 1), NULL), 200);
    finish(env);
    od_test_proxy_stop(proxy);
    apr_pool_destroy(p);
}
END_TEST

static const int lost_max_attempts[] = {1, 3};

/*
 * Every TransactWriteItems is forwarded, so DynamoDB commits it, and its answer is lost (the
 * proxy closes the connection). The order is stored, so the client gets it (201, read back by
 * its idempotency record), not a 503 saying that nothing was stored; the order can be read, and
 * the same order on another instance (no hot cache) is its replay (200).
 */
START_TEST(test_dynamodb_lost_answer_resolved_by_read_back)
{
    apr_pool_t *p = NULL;
    const char *answer = NULL;
    char id[32], again[32];
    int max = lost_max_attempts[_i];

    apr_pool_create(&p, NULL);
    od_test_proxy_t *proxy = od_test_proxy_start(od_test_engine_url(engine));
    const char *conf = ddb_conf(p, od_test_proxy_url(proxy), apr_psprintf(p, "lost%d", max),
                                apr_psprintf(p, "aws_max_attempts = %d\n", max));
    od_test_env_t *env = start(conf);
    const char *body = order_body(p, 50 + max, 5000);

    od_test_proxy_set_target(proxy, "TransactWriteItems");
    od_test_proxy_set_mode(proxy, OD_PROXY_LOSE, -1);
    unsigned int before = od_test_proxy_requests(proxy);
    ck_assert_int_eq(post(env, body, id), 201);
    ck_assert_uint_ge(od_test_proxy_requests(proxy) - before, (unsigned) max + 1);
    ck_assert_int_eq(strlen(id), 26);
    ck_assert(log_has(env, apr_psprintf(p,
                                        "order %s: no answer to TransactWriteItems; read back:"
                                        " stored",
                                        id)));
    od_test_proxy_set_mode(proxy, OD_PROXY_PASS, -1);
    ck_assert_int_eq(exchange(env, "GET", apr_pstrcat(p, "/orders/", id, NULL), NULL, &answer, p),
                     200);
    ck_assert_ptr_nonnull(strstr(answer, id));
    /* Its answer lost too, the other instance's write (cancelled: the key is taken) reads back
     * the original. */
    od_test_env_t *other = start(conf);
    od_test_proxy_set_mode(proxy, OD_PROXY_LOSE, -1);
    ck_assert_int_eq(post(other, body, again), 200);
    ck_assert_str_eq(again, id);
    ck_assert(log_has(other, apr_pstrcat(p, "read back: the key is order ", id, NULL)));
    finish(other);
    finish(env);
    od_test_proxy_stop(proxy);
    apr_pool_destroy(p);
}
END_TEST

/*
 * The engine stalls: it applies what it is sent, but no answer arrives in time, the read-back's
 * neither. The outcome is unknown and the 503 says so, not that nothing was stored; the same
 * request once the engine answers again is the replay of the order the stall stored.
 */
START_TEST(test_dynamodb_stalled_engine_outcome_unknown)
{
    apr_pool_t *p = NULL;
    const char *answer = NULL;

    apr_pool_create(&p, NULL);
    od_test_proxy_t *proxy = od_test_proxy_start(od_test_engine_url(engine));
    od_test_env_t *env = start(ddb_conf(p, od_test_proxy_url(proxy), "stalled",
                                        "aws_request_timeout_ms = 500\naws_max_attempts = 2\n"));
    const char *body = order_body(p, 60, 6000);

    od_test_proxy_set_mode(proxy, OD_PROXY_HOLD, -1);
    long status = exchange(env, "POST", "/orders", body, &answer, p);
    assert_outcome_unknown(status, answer);
    ck_assert(log_has(env, "outcome unknown"));
    od_test_proxy_set_mode(proxy, OD_PROXY_PASS, -1);
    ck_assert_int_eq(post(env, body, NULL), 200);
    finish(env);
    od_test_proxy_stop(proxy);
    apr_pool_destroy(p);
}
END_TEST

#define POOL_CLIENTS 12
#define POOL_ORDERS 15

typedef struct loader_t {
    od_test_env_t *env;
    int index;
    int ok;
} loader_t;

static void *load(void *data)
{
    loader_t *l = data;
    char body[256];

    for (int i = 0; i < POOL_ORDERS; i++) {
        snprintf(body, sizeof(body), DDB_ORDER_FMT, 100 + l->index, 1 + i);
        l->ok += post(l->env, body, NULL) == 201;
    }
    return NULL;
}

START_TEST(test_dynamodb_pool_bounded_and_reused)
{
    apr_pool_t *p = NULL;
    loader_t loaders[POOL_CLIENTS];
    pthread_t t[POOL_CLIENTS];

    apr_pool_create(&p, NULL);
    od_test_proxy_t *proxy = od_test_proxy_start(od_test_engine_url(engine));
    od_test_env_t *env = start(ddb_conf(p, od_test_proxy_url(proxy), "pooled",
                                        "aws_max_connections = 3\nworker_threads = 12\n"));
    for (int i = 0; i < POOL_CLIENTS; i++) {
        loaders[i] = (loader_t){env, i, 0};
        pthread_create(&t[i], NULL, load, &loaders[i]);
    }
    for (int i = 0; i < POOL_CLIENTS; i++) {
        pthread_join(t[i], NULL);
        ck_assert_int_eq(loaders[i].ok, POOL_ORDERS);
    }
    /* 180 orders (plus --init-store's calls, made by another process with its own
     * connections) over at most 3 kept-alive connections. */
    ck_assert_uint_le(od_test_proxy_max_open(proxy), 3 + 1);
    ck_assert_uint_le(od_test_proxy_connects(proxy), 3 + 1 + 1);
    finish(env);
    od_test_proxy_stop(proxy);
    apr_pool_destroy(p);
}
END_TEST

START_TEST(test_dynamodb_awscli_reads_order_item)
{
    apr_pool_t *p = NULL;
    char id[32], out[4096];

    apr_pool_create(&p, NULL);
    const char *url = od_test_engine_url(engine);
    od_test_env_t *env = start(ddb_conf(p, url, "cli", NULL));
    ck_assert_int_eq(post(env, order_body(p, 40, 4242), id), 201);
    finish(env);
    const char *cmd =
        apr_psprintf(p,
                     /* The fixture's key: DynamoDB Local keeps one database per key and region. */
                     "AWS_DEFAULT_REGION=us-east-1 "
                     "aws dynamodb get-item --endpoint-url %s --table-name cli --consistent-read "
                     "--key '{\"pk\":{\"S\":\"ORDER#%s\"}}' --output json 2>&1",
                     url, id);
    FILE *f = popen(cmd, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(out, 1, sizeof(out) - 1, f);
    out[n] = '\0';
    int rc = pclose(f);
    ck_assert_msg(rc == 0, "aws exit %d: %s", rc, out);
    json_object *doc = json_tokener_parse(out), *item = NULL, *body = NULL, *s = NULL;
    ck_assert_msg(doc != NULL && json_object_object_get_ex(doc, "Item", &item), "%s", out);
    ck_assert(json_object_object_get_ex(item, "body", &body));
    ck_assert(json_object_object_get_ex(body, "S", &s));
    ck_assert_ptr_nonnull(strstr(json_object_get_string(s), id));
    ck_assert_ptr_nonnull(strstr(json_object_get_string(s), "\"unit_price_cents\":4242"));
    json_object_put(doc);
    apr_pool_destroy(p);
}
END_TEST

Suite *od_dynamodb_suite(void)
{
    Suite *s = suite_create("dynamodb");
    TCase *iam = tcase_create("moto-iam");
    TCase *local = tcase_create("ddblocal");

    /* Each IAM test needs a moto whose unauthenticated allowance is fresh. */
    tcase_add_checked_fixture(iam, moto_auth_setup, engine_teardown);
    tcase_set_timeout(iam, 120);
    tcase_add_test(iam, test_dynamodb_sigv4_verified_by_moto_iam);
    tcase_add_test(iam, test_dynamodb_session_token_and_refusals_503);
    suite_add_tcase(s, iam);
    tcase_add_unchecked_fixture(local, ddblocal_setup, engine_teardown);
    tcase_set_timeout(local, 120);
    tcase_add_test(local, test_dynamodb_two_instances_share_table);
    tcase_add_test(local, test_dynamodb_throttling_bounded_retries_then_503);
    tcase_add_test(local, test_dynamodb_dropped_connections_retried);
    tcase_add_loop_test(local, test_dynamodb_lost_answer_resolved_by_read_back, 0, 2);
    tcase_add_test(local, test_dynamodb_stalled_engine_outcome_unknown);
    tcase_add_test(local, test_dynamodb_pool_bounded_and_reused);
    tcase_add_test(local, test_dynamodb_awscli_reads_order_item);
    suite_add_tcase(s, local);
    return s;
}

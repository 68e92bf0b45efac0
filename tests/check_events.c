/*
 * End-to-end tests of order.accepted events: the real orderd, its outbox and each sink, checked
 * downstream (the file, or SQS queues fed by SNS, SQS itself and an EventBridge rule) and by
 * scripts/verify-events, which must report `lost 0`.
 */
#ifndef _GNU_SOURCE /* APR's pkg-config flags may already define it */
#define _GNU_SOURCE /* prlimit */
#endif
#include "od_aws.h"
#include "od_event.h"
#include "od_suites.h"
#include "od_test_aws.h"
#include "od_test_engines.h"
#include "od_test_responder.h"
#include "od_test_util.h"

#include <apr_hash.h>
#include <apr_strings.h>
#include <curl/curl.h>
#include <json-c/json.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

Suite *od_events_suite(void);

#define EV_ORDER_FMT                                                                               \
    "{\"customer_id\":\"CUST-%06d\",\"currency\":\"EUR\",\"items\":[{\"sku\":\"SKU-2002\","        \
    "\"quantity\":%d,\"unit_price_cents\":500}]}"
#define EV_STOP_MS 20000L

static od_test_engine_t *engine;
static char base[PATH_MAX];

static void base_setup(void)
{
    snprintf(base, sizeof(base), "/tmp/orderd-events-suite-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(base));
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    setenv("AWS_ACCESS_KEY_ID", "AKIDEVENTS", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "events-secret", 1);
    unsetenv("ORDERD_TEST_STORE_CONF");
}

static void moto_setup(void)
{
    base_setup();
    engine = od_test_moto_start(NULL);
}

static void teardown(void)
{
    od_test_engine_stop(engine);
    engine = NULL;
    od_test_remove_tree(base);
}

/* ---- orderd ---- */

static od_test_env_t *env_new(void)
{
    od_test_env_t *env = od_test_env_create(base);
    ck_assert_ptr_nonnull(env);
    return env;
}

static void run(od_test_env_t *env, const char *conf)
{
    ck_assert_int_eq(od_test_env_write_config(env, conf), 0);
    ck_assert_msg(od_test_server_start(env) == 0, "orderd did not start: %s",
                  od_test_server_log(env));
}

static void finish(od_test_env_t *env)
{
    int rc = od_test_server_stop(env, EV_STOP_MS);
    ck_assert_msg(rc == 0, "orderd exit %d: %s", rc, od_test_server_log(env));
    od_test_env_destroy(env);
}

/* POSTs order @p n; appends the id of a 201 to @p ids. Returns the status. */
static long post(od_test_env_t *env, int n, FILE *ids, long *ms)
{
    char body[256], when[64];
    od_test_request_t req = {.method = "POST", .path = "/orders", .body = body};
    od_test_response_t resp;
    apr_time_t t0 = apr_time_now();

    snprintf(body, sizeof(body), EV_ORDER_FMT, n, 1 + n % 100);
    req.body_len = strlen(body);
    ck_assert_int_eq(od_test_http(env, &req, &resp), 0);
    if (ms != NULL) {
        *ms = (long) apr_time_as_msec(apr_time_now() - t0);
    }
    json_object *doc = json_tokener_parse(resp.body), *id = NULL;
    if (resp.status == 201 && ids != NULL && json_object_object_get_ex(doc, "order_id", &id)) {
        fprintf(ids, "%s\n", json_object_get_string(id));
    }
    (void) when;
    json_object_put(doc);
    long status = resp.status;
    od_test_response_free(&resp);
    return status;
}

/* Posts @p n new orders and @p n / 3 replays; returns the file of 201 ids (closed). */
static char *post_many(od_test_env_t *env, int first, int n, long *max_ms)
{
    char *path = od_test_env_write_file(env, "accepted.txt", "");
    FILE *ids = fopen(path, "a");
    long ms = 0;

    *max_ms = 0;
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(post(env, first + i, ids, &ms), 201);
        *max_ms = ms > *max_ms ? ms : *max_ms;
    }
    for (int i = 0; i < n; i += 3) {
        ck_assert_int_eq(post(env, first + i, ids, NULL), 200);
    }
    fclose(ids);
    return path;
}

static int count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    int n = 0, c;

    while (f != NULL && (c = fgetc(f)) != EOF) {
        n += c == '\n';
    }
    if (f != NULL) {
        fclose(f);
    }
    return n;
}

/* Waits (bounded) until @p path has at least @p n lines. */
static int await_lines(const char *path, int n, long timeout_ms)
{
    for (long waited = 0; waited <= timeout_ms; waited += 100) {
        if (count_lines(path) >= n) {
            return count_lines(path);
        }
        od_test_sleep_ms(100);
    }
    return count_lines(path);
}

/* Runs scripts/verify-events; it must report every accepted order stored and delivered. */
static void verify(od_test_env_t *env, const char *accepted, const char *events, int n)
{
    char cmd[PATH_MAX * 3], line[256] = "", want[128];
    snprintf(cmd, sizeof(cmd),
             "python3 %s/scripts/verify-events --accepted %s --events %s "
             "--url http://127.0.0.1:%d 2>&1",
             ORDERD_SOURCE_DIR, accepted, events, od_test_server_port(env));
    FILE *f = popen(cmd, "r");
    ck_assert_ptr_nonnull(f);
    char *got = fgets(line, sizeof(line), f);
    char rest[4096] = "";
    size_t n_rest = fread(rest, 1, sizeof(rest) - 1, f);
    rest[n_rest] = '\0';
    int rc = pclose(f);
    snprintf(want, sizeof(want), "accepted %d, stored %d, delivered %d, lost 0, corrupt 0\n", n, n,
             n);
    ck_assert_msg(got != NULL && strcmp(line, want) == 0 && rc == 0,
                  "verify-events: %s%s (exit %d)", line, rest, rc);
}

/* Every line of @p path is an envelope; each event_id appears exactly once (the file sink and
 * the raw SNS queue in a run without failures: a duplicate there means a publish path is
 * repeating itself, which at-least-once allows but a healthy run should not show). */
static void assert_envelopes_unique(const char *path, int n)
{
    FILE *f = fopen(path, "r");
    char line[8192];
    apr_pool_t *p = NULL;

    apr_pool_create(&p, NULL);
    apr_hash_t *seen = apr_hash_make(p);
    ck_assert_ptr_nonnull(f);
    while (fgets(line, sizeof(line), f) != NULL) {
        json_object *doc = json_tokener_parse(line), *v = NULL;
        ck_assert_msg(doc != NULL, "not JSON: %s", line);
        ck_assert(json_object_object_get_ex(doc, "event_type", &v));
        ck_assert_str_eq(json_object_get_string(v), "order.accepted");
        ck_assert(json_object_object_get_ex(doc, "schema_version", &v));
        ck_assert_int_eq(json_object_get_int(v), 1);
        ck_assert(json_object_object_get_ex(doc, "event_id", &v));
        const char *id = apr_pstrdup(p, json_object_get_string(v));
        ck_assert_msg(apr_hash_get(seen, id, APR_HASH_KEY_STRING) == NULL, "twice: %s", id);
        apr_hash_set(seen, id, APR_HASH_KEY_STRING, id);
        json_object_put(doc);
    }
    fclose(f);
    ck_assert_int_eq((int) apr_hash_count(seen), n);
    apr_pool_destroy(p);
}

/* ---- the file sink ---- */

static const char *file_conf(apr_pool_t *p, const char *dir, const char *more)
{
    return apr_psprintf(p, "events_sink = file\nevents_file = %s/events.jsonl\n%s", dir,
                        more != NULL ? more : "");
}

START_TEST(test_events_file_sink_matches_accepted)
{
    apr_pool_t *p = NULL;
    long max_ms = 0;

    apr_pool_create(&p, NULL);
    od_test_env_t *env = env_new();
    const char *events = apr_pstrcat(p, od_test_env_dir(env), "/events.jsonl", NULL);
    run(env, file_conf(p, od_test_env_dir(env), "events_retry_after_s = 2\n"));
    char *accepted = post_many(env, 1, 30, &max_ms);
    ck_assert_int_eq(await_lines(events, 30, 10000), 30);
    verify(env, accepted, events, 30);
    ck_assert_int_eq(od_test_server_stop(env, EV_STOP_MS), 0);
    assert_envelopes_unique(events, 30); /* and nothing more after the flush at stop */
    od_test_env_destroy(env);
    free(accepted);
    apr_pool_destroy(p);
}
END_TEST

/* Writes @p n padding envelopes (4 KiB each, events of no accepted order) to @p path. */
static void pad_events(const char *path, int n)
{
    FILE *f = fopen(path, "w");

    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < n; i++) {
        fprintf(f,
                "{\"event_id\":\"PAD%08d\",\"event_type\":\"order.accepted\",\"schema_version\":1,"
                "\"order\":{\"order_id\":\"PAD%08d\",\"pad\":\"%04000d\"}}\n",
                i, i, i);
    }
    ck_assert_int_eq(fclose(f), 0);
}

/* The events file's file system fills up mid-run. A file size limit on orderd (prlimit) makes a
 * write past it stop short and then fail with EFBIG, as ENOSPC does on a full disk; SIGXFSZ,
 * ignored here, stays ignored in orderd. The limit holds for every file orderd writes, so the
 * events file starts at 8 MiB of padding, far beyond SQLite's files in this run: only its writes
 * reach the limit. Orders keep their 201, the file never holds a cut line, and once there is
 * room again the relay publishes every event that failed, each exactly once. */
START_TEST(test_events_file_full_then_every_event_once)
{
    apr_pool_t *p = NULL;
    long max_ms = 0;
    const int npad = 2048;

    apr_pool_create(&p, NULL);
    od_test_env_t *env = env_new();
    const char *events = apr_pstrcat(p, od_test_env_dir(env), "/events.jsonl", NULL);
    pad_events(events, npad);
    signal(SIGXFSZ, SIG_IGN);
    run(env, file_conf(p, od_test_env_dir(env), "events_retry_after_s = 1\n"));
    struct stat st;
    ck_assert_int_eq(stat(events, &st), 0);
    ck_assert_int_eq(od_test_server_limit_fsize(env, (long long) st.st_size + 1000),
                     0); /* room for two events */
    char *accepted = post_many(env, 700, 20, &max_ms);
    od_test_sleep_ms(2500); /* prompt rounds and relay rounds against the full file */
    int full = count_lines(events);
    ck_assert_int_lt(full, npad + 20);
    assert_envelopes_unique(events, full); /* whole lines only, none twice */
    ck_assert_int_eq(od_test_server_limit_fsize(env, -1), 0);
    ck_assert_int_eq(await_lines(events, npad + 20, 30000), npad + 20);
    verify(env, accepted, events, 20);
    ck_assert_int_eq(od_test_server_stop(env, EV_STOP_MS), 0);
    assert_envelopes_unique(events, npad + 20); /* and nothing more after the flush at stop */
    od_test_env_destroy(env);
    free(accepted);
    apr_pool_destroy(p);
}
END_TEST

#ifdef ORDERD_FAULT_INJECTION
/* orderd dies between storing orders and publishing their events (the fault switch makes the
 * prompt path never publish, then kill -9): after a restart the relay delivers every one. */
START_TEST(test_events_kill9_between_store_and_publish)
{
    apr_pool_t *p = NULL;
    long max_ms = 0;

    apr_pool_create(&p, NULL);
    od_test_env_t *env = env_new();
    const char *events = apr_pstrcat(p, od_test_env_dir(env), "/events.jsonl", NULL);
    setenv("ORDERD_FAULT_SKIP_PROMPT_PUBLISH", "1", 1);
    run(env, file_conf(p, od_test_env_dir(env), "events_retry_after_s = 2\n"));
    unsetenv("ORDERD_FAULT_SKIP_PROMPT_PUBLISH");
    char *accepted = post_many(env, 100, 12, &max_ms);
    ck_assert_int_eq(count_lines(events), 0); /* nothing published before the "crash" */
    ck_assert_int_eq(od_test_server_kill(env), 0);
    ck_assert_int_eq(od_test_server_start(env), 0);
    ck_assert_int_eq(await_lines(events, 12, 15000), 12);
    verify(env, accepted, events, 12);
    finish(env);
    free(accepted);
    apr_pool_destroy(p);
}
END_TEST
#endif

#ifdef ORDERD_FAULT_INJECTION
/* The same on the DynamoDB store (DynamoDB Local): the events wait in the sparse outbox index,
 * and the relay finds them there after the restart and marks them published. */
START_TEST(test_events_dynamodb_outbox_relay_after_kill9)
{
    apr_pool_t *p = NULL;
    long max_ms = 0;

    apr_pool_create(&p, NULL);
    od_test_env_t *env = env_new();
    const char *events = apr_pstrcat(p, od_test_env_dir(env), "/events.jsonl", NULL);
    setenv("ORDERD_FAULT_SKIP_PROMPT_PUBLISH", "1", 1);
    run(env, apr_psprintf(p,
                          "%sstore = dynamodb\naws_region = us-east-1\ndynamodb_endpoint = %s\n"
                          "dynamodb_table = outbox_relay\n",
                          file_conf(p, od_test_env_dir(env), "events_retry_after_s = 2\n"),
                          od_test_engine_url(engine)));
    unsetenv("ORDERD_FAULT_SKIP_PROMPT_PUBLISH");
    char *accepted = post_many(env, 500, 12, &max_ms);
    ck_assert_int_eq(count_lines(events), 0);
    ck_assert_int_eq(od_test_server_kill(env), 0);
    ck_assert_int_eq(od_test_server_start(env), 0);
    ck_assert_int_eq(await_lines(events, 12, 20000), 12);
    verify(env, accepted, events, 12);
    /* Marked published: nothing more is relayed later. */
    od_test_sleep_ms(3500);
    ck_assert_int_eq(count_lines(events), 12);
    finish(env);
    free(accepted);
    apr_pool_destroy(p);
}
END_TEST

static void ddblocal_setup(void)
{
    base_setup();
    engine = od_test_ddblocal_start();
}
#endif

/* ---- AWS sinks on moto ---- */

/* A JSON-protocol call; returns the parsed answer (owned by the caller: put it). */
static json_object *json_call(apr_pool_t *p, od_aws_t *aws, const char *service, const char *target,
                              const char *ctype, const char *body)
{
    od_aws_request_t req = {service, od_test_engine_url(engine), target, ctype, body, strlen(body),
                            NULL};
    od_aws_response_t resp;
    ck_assert_msg(od_aws_call(aws, &req, &resp, p) == APR_SUCCESS, "%s: %s", target, resp.body);
    return json_tokener_parse(resp.body);
}

static const char *json_str(apr_pool_t *p, json_object *doc, const char *a, const char *b)
{
    json_object *v = NULL;
    ck_assert(json_object_object_get_ex(doc, a, &v));
    if (b != NULL) {
        ck_assert(json_object_object_get_ex(v, b, &v));
    }
    return apr_pstrdup(p, json_object_get_string(v));
}

static const char *sqs(apr_pool_t *p, od_aws_t *aws, const char *op, const char *body,
                       const char *a, const char *b)
{
    json_object *doc = json_call(p, aws, "sqs", apr_pstrcat(p, "AmazonSQS.", op, NULL),
                                 "application/x-amz-json-1.0", body);
    const char *v = a != NULL ? json_str(p, doc, a, b) : NULL;
    json_object_put(doc);
    return v;
}

typedef struct queue_t {
    const char *url;
    const char *arn;
} queue_t;

static queue_t queue_create(apr_pool_t *p, od_aws_t *aws, const char *name)
{
    queue_t q;
    q.url = sqs(p, aws, "CreateQueue", apr_psprintf(p, "{\"QueueName\":\"%s\"}", name), "QueueUrl",
                NULL);
    q.arn = sqs(p, aws, "GetQueueAttributes",
                apr_psprintf(p, "{\"QueueUrl\":\"%s\",\"AttributeNames\":[\"QueueArn\"]}", q.url),
                "Attributes", "QueueArn");
    return q;
}

/* The event_id inside a delivered message: the envelope itself, an SNS notification whose
 * Message is the envelope, or an EventBridge event whose detail is. NULL if none. */
static const char *event_id_of(apr_pool_t *p, json_object *msg)
{
    json_object *v = NULL, *inner = NULL;
    const char *id = NULL;

    if (json_object_object_get_ex(msg, "detail", &v)) {
        msg = v;
    } else if (json_object_object_get_ex(msg, "Message", &v)) {
        inner = json_tokener_parse(json_object_get_string(v));
        msg = inner;
    }
    if (msg != NULL && json_object_object_get_ex(msg, "event_id", &v)) {
        id = apr_pstrdup(p, json_object_get_string(v));
    }
    json_object_put(inner);
    return id;
}

/* Receives (and deletes) messages until @p n distinct events arrived or @p timeout_ms passed;
 * writes each body as one line of @p path. Delivery is at least once, so a duplicate may come
 * too: it is written, but does not count. Returns the number of distinct events. */
static int queue_drain(apr_pool_t *p, od_aws_t *aws, const queue_t *q, const char *path, int n,
                       long timeout_ms)
{
    FILE *out = fopen(path, "w");
    apr_hash_t *seen = apr_hash_make(p);
    int got = 0;
    apr_time_t deadline = apr_time_now() + apr_time_from_msec(timeout_ms);

    while (got < n && apr_time_now() < deadline) {
        json_object *doc =
            json_call(p, aws, "sqs", "AmazonSQS.ReceiveMessage", "application/x-amz-json-1.0",
                      apr_psprintf(p,
                                   "{\"QueueUrl\":\"%s\",\"MaxNumberOfMessages\":10,"
                                   "\"WaitTimeSeconds\":1}",
                                   q->url));
        json_object *msgs = NULL;
        if (json_object_object_get_ex(doc, "Messages", &msgs)) {
            for (size_t i = 0; i < json_object_array_length(msgs); i++) {
                json_object *m = json_object_array_get_idx(msgs, i), *v = NULL, *h = NULL;
                json_object_object_get_ex(m, "Body", &v);
                json_object_object_get_ex(m, "ReceiptHandle", &h);
                /* One message a line: an SNS envelope may be pretty-printed over several. */
                json_object *body = json_tokener_parse(json_object_get_string(v));
                const char *id = body != NULL ? event_id_of(p, body) : NULL;
                if (id != NULL && apr_hash_get(seen, id, APR_HASH_KEY_STRING) == NULL) {
                    apr_hash_set(seen, id, APR_HASH_KEY_STRING, id);
                    got++;
                }
                fprintf(out, "%s\n",
                        body != NULL ? json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN)
                                     : json_object_get_string(v));
                json_object_put(body);
                json_object *hs = json_object_new_string(json_object_get_string(h));
                sqs(p, aws, "DeleteMessage",
                    apr_psprintf(p, "{\"QueueUrl\":\"%s\",\"ReceiptHandle\":%s}", q->url,
                                 json_object_to_json_string(hs)),
                    NULL, NULL);
                json_object_put(hs);
            }
        }
        json_object_put(doc);
    }
    fclose(out);
    return got;
}

/* The relay re-publishes after events_retry_after_s: short where an outage is simulated, else
 * long enough that a slow prompt publish is not raced by the relay. */
static const char *aws_conf(apr_pool_t *p, const char *more)
{
    return apr_psprintf(
        p, "aws_region = us-east-1\n%s%s",
        strstr(more, "events_retry_after_s") == NULL ? "events_retry_after_s = 5\n" : "", more);
}

static void subscribe(apr_pool_t *p, od_aws_t *aws, const char *topic, const queue_t *q, int raw)
{
    od_test_aws_query(p, aws, engine, "sns",
                      apr_pstrcat(p, "Action=Subscribe&Version=2010-03-31&Protocol=sqs&TopicArn=",
                                  od_test_url_escape(p, topic),
                                  "&Endpoint=", od_test_url_escape(p, q->arn),
                                  raw ? "&Attributes.entry.1.key=RawMessageDelivery"
                                        "&Attributes.entry.1.value=true"
                                      : "",
                                  NULL));
}

/* Every accepted order reaches a raw and an enveloped subscription exactly once. */
START_TEST(test_events_sns_raw_and_enveloped_subscriptions)
{
    apr_pool_t *p = NULL;
    long max_ms = 0;

    apr_pool_create(&p, NULL);
    od_aws_t *aws = od_test_aws_client(p, "AKIDEVENTS", "x", 30000);
    const char *topic =
        od_test_xml_text(p,
                         od_test_aws_query(p, aws, engine, "sns",
                                           "Action=CreateTopic&Name=orders&Version=2010-03-31"),
                         "TopicArn");
    queue_t raw = queue_create(p, aws, "raw"), env_q = queue_create(p, aws, "enveloped");
    subscribe(p, aws, topic, &raw, 1);
    subscribe(p, aws, topic, &env_q, 0);
    od_test_env_t *env = env_new();
    run(env, aws_conf(p, apr_psprintf(p,
                                      "events_sink = sns\nsns_topic_arn = %s\n"
                                      "sns_endpoint = %s\n",
                                      topic, od_test_engine_url(engine))));
    char *accepted = post_many(env, 200, 15, &max_ms);
    const char *d = od_test_env_dir(env);
    const char *raw_out = apr_pstrcat(p, d, "/raw.jsonl", NULL);
    const char *env_out = apr_pstrcat(p, d, "/enveloped.jsonl", NULL);
    ck_assert_int_eq(queue_drain(p, aws, &raw, raw_out, 15, 20000), 15);
    ck_assert_int_eq(queue_drain(p, aws, &env_q, env_out, 15, 20000), 15);
    assert_envelopes_unique(raw_out, 15);
    verify(env, accepted, raw_out, 15);
    verify(env, accepted, env_out, 15);
    /* Nothing more arrives: each event was published once. */
    ck_assert_int_eq(queue_drain(p, aws, &raw, raw_out, 1, 1500), 0);
    finish(env);
    free(accepted);
    apr_pool_destroy(p);
}
END_TEST

#ifdef ORDERD_FAULT_INJECTION
#define EV_SLOW_ORDERS 200
#define EV_SLOW_IN_FLIGHT 8
#define EV_SLOW_RETRY_S 5

/* What a slow SQS endpoint received: each entry's Id (the event id) and MessageBody. */
typedef struct ev_slow_t {
    pthread_mutex_t lock;
    int n;
    int dups;
    char *ids[EV_SLOW_ORDERS];
    char *bodies[EV_SLOW_ORDERS];
} ev_slow_t;

static void ev_slow_note(ev_slow_t *s, const char *id, const char *body)
{
    int dup = 0;

    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < s->n && !dup; i++) {
        dup = strcmp(s->ids[i], id) == 0;
    }
    if (dup || s->n == EV_SLOW_ORDERS) {
        s->dups++;
    } else {
        s->ids[s->n] = strdup(id);
        s->bodies[s->n++] = strdup(body);
    }
    pthread_mutex_unlock(&s->lock);
}

/* SendMessageBatch's answer: every entry accepted. */
static char *ev_slow_answer(void *baton, const char *body, size_t len)
{
    json_object *req = json_tokener_parse(body), *entries = NULL, *ok = json_object_new_array();
    json_object *answer = json_object_new_object(), *v = NULL;

    json_object_object_get_ex(req, "Entries", &entries);
    for (size_t i = 0; entries != NULL && i < json_object_array_length(entries); i++) {
        json_object *entry = json_object_array_get_idx(entries, i), *e = json_object_new_object();
        const char *id =
            json_object_object_get_ex(entry, "Id", &v) ? json_object_get_string(v) : "";
        ev_slow_note(baton, id,
                     json_object_object_get_ex(entry, "MessageBody", &v) ? json_object_get_string(v)
                                                                         : "");
        json_object_object_add(e, "Id", json_object_new_string(id));
        json_object_object_add(e, "MessageId", json_object_new_string("m"));
        json_object_array_add(ok, e);
    }
    json_object_object_add(answer, "Successful", ok);
    json_object_object_add(answer, "Failed", json_object_new_array());
    char *text = strdup(json_object_to_json_string_ext(answer, JSON_C_TO_STRING_PLAIN));
    json_object_put(answer);
    json_object_put(req);
    (void) len;
    return text;
}

static int ev_slow_count(ev_slow_t *s)
{
    pthread_mutex_lock(&s->lock);
    int n = s->n;
    pthread_mutex_unlock(&s->lock);
    return n;
}

/* Writes the bodies received, one a line, to @p path (for verify-events); frees them. */
static void ev_slow_save(ev_slow_t *s, const char *path)
{
    FILE *f = fopen(path, "w");

    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < s->n; i++) {
        fprintf(f, "%s\n", s->bodies[i]);
        free(s->bodies[i]);
        free(s->ids[i]);
    }
    fclose(f);
}

/* The relay publishes a round of many pending events to a slow SQS endpoint (20 ms a call) as
 * concurrent batches, events_max_in_flight at once, and marks each published once its batch was
 * accepted: every event is sent exactly once, and none again in the relay rounds after. The
 * orders are stored by an orderd that never publishes promptly and stops before they are due;
 * the next one finds all of them due in its first relay round. (The endpoint holds the first
 * requests until 8 are in flight, up to 5 s: the request timeout is longer than that.) */
START_TEST(test_events_relay_batches_in_flight)
{
    static ev_slow_t seen = {.lock = PTHREAD_MUTEX_INITIALIZER};
    apr_pool_t *p = NULL;
    long max_ms = 0;

    apr_pool_create(&p, NULL);
    od_test_responder_t *r = od_test_responder_start(20, EV_SLOW_IN_FLIGHT, ev_slow_answer, &seen);
    od_test_env_t *env = env_new();
    setenv("ORDERD_FAULT_SKIP_PROMPT_PUBLISH", "1", 1);
    run(env,
        aws_conf(p, apr_psprintf(p,
                                 "events_sink = sqs\nsqs_queue_url = https://q.example/1/q\n"
                                 "sqs_endpoint = %s\nevents_max_in_flight = %d\n"
                                 "events_retry_after_s = %d\naws_request_timeout_ms = 10000\n",
                                 od_test_responder_url(r), EV_SLOW_IN_FLIGHT, EV_SLOW_RETRY_S)));
    unsetenv("ORDERD_FAULT_SKIP_PROMPT_PUBLISH");
    char *accepted = post_many(env, 700, EV_SLOW_ORDERS, &max_ms);
    ck_assert_int_eq(od_test_server_stop(env, EV_STOP_MS), 0);
    ck_assert_msg(od_test_responder_requests(r) == 0, "events became due while posting");
    od_test_sleep_ms(EV_SLOW_RETRY_S * 1000 + 200);
    ck_assert_int_eq(od_test_server_start(env), 0);
    for (long waited = 0; waited < 30000 && ev_slow_count(&seen) < EV_SLOW_ORDERS; waited += 100) {
        od_test_sleep_ms(100);
    }
    od_test_sleep_ms(2500); /* two more relay rounds: an event left pending would go again */
    unsigned int requests = od_test_responder_requests(r),
                 peak = od_test_responder_max_in_flight(r);
    od_test_responder_stop(r);
    fprintf(stderr, "test_events_relay_batches_in_flight: %u requests, at most %u in flight\n",
            requests, peak);
    ck_assert_int_eq(seen.n, EV_SLOW_ORDERS);
    ck_assert_int_eq(seen.dups, 0);
    ck_assert_uint_eq(requests, EV_SLOW_ORDERS / 10);
    ck_assert_uint_eq(peak, EV_SLOW_IN_FLIGHT);
    const char *out = apr_pstrcat(p, od_test_env_dir(env), "/sqs.jsonl", NULL);
    ev_slow_save(&seen, out);
    verify(env, accepted, out, EV_SLOW_ORDERS);
    finish(env);
    free(accepted);
    apr_pool_destroy(p);
}
END_TEST
#endif

/* The message service fails for a while: orders keep their 201 at the usual latency, and once
 * it is back every pending event is delivered. */
START_TEST(test_events_sqs_outage_then_delivered)
{
    apr_pool_t *p = NULL;
    long max_ms = 0;

    apr_pool_create(&p, NULL);
    od_aws_t *aws = od_test_aws_client(p, "AKIDEVENTS", "x", 30000);
    queue_t q = queue_create(p, aws, "orders");
    od_test_proxy_t *proxy = od_test_proxy_start(od_test_engine_url(engine));
    od_test_env_t *env = env_new();
    run(env, aws_conf(p, apr_psprintf(p,
                                      "events_sink = sqs\nsqs_queue_url = %s\n"
                                      "sqs_endpoint = %s\naws_max_attempts = 2\n",
                                      q.url, od_test_proxy_url(proxy))));
    od_test_proxy_set_mode(proxy, OD_PROXY_ERROR500, -1);
    char *accepted = post_many(env, 300, 15, &max_ms);
    ck_assert_msg(max_ms < 500, "an order took %ld ms during the outage", max_ms);
    od_test_sleep_ms(1500);
    od_test_proxy_set_mode(proxy, OD_PROXY_PASS, -1);
    const char *out = apr_pstrcat(p, od_test_env_dir(env), "/sqs.jsonl", NULL);
    ck_assert_int_eq(queue_drain(p, aws, &q, out, 15, 30000), 15);
    verify(env, accepted, out, 15);
    finish(env);
    od_test_proxy_stop(proxy);
    free(accepted);
    apr_pool_destroy(p);
}
END_TEST

START_TEST(test_events_eventbridge_rule_to_queue)
{
    apr_pool_t *p = NULL;
    long max_ms = 0;
    const char *ct = "application/x-amz-json-1.1";

    apr_pool_create(&p, NULL);
    od_aws_t *aws = od_test_aws_client(p, "AKIDEVENTS", "x", 30000);
    queue_t q = queue_create(p, aws, "bridged");
    json_object_put(json_call(p, aws, "events", "AWSEvents.PutRule", ct,
                              "{\"Name\":\"orders\",\"EventPattern\":"
                              "\"{\\\"source\\\":[\\\"shop.orderd\\\"]}\"}"));
    json_object_put(json_call(p, aws, "events", "AWSEvents.PutTargets", ct,
                              apr_psprintf(p,
                                           "{\"Rule\":\"orders\",\"Targets\":[{\"Id\":\"q\","
                                           "\"Arn\":\"%s\"}]}",
                                           q.arn)));
    od_test_env_t *env = env_new();
    run(env, aws_conf(p, apr_psprintf(p,
                                      "events_sink = eventbridge\neventbridge_source = "
                                      "shop.orderd\neventbridge_endpoint = %s\n",
                                      od_test_engine_url(engine))));
    char *accepted = post_many(env, 400, 12, &max_ms);
    const char *out = apr_pstrcat(p, od_test_env_dir(env), "/bridged.jsonl", NULL);
    ck_assert_int_eq(queue_drain(p, aws, &q, out, 12, 20000), 12);
    verify(env, accepted, out, 12);
    finish(env);
    free(accepted);
    apr_pool_destroy(p);
}
END_TEST

/* The envelope, byte for byte: the relay renders it again from the stored order and must get
 * what the prompt publish sent (docs/events.md). */
START_TEST(test_events_envelope_bytes)
{
    apr_pool_t *p = NULL;
    apr_size_t len = 0;

    apr_pool_create(&p, NULL);
    const char *doc = "{\"order_id\":\"01J0000000000000000000000A\",\"n\":[1,{\"k\":\"v\"}]}";
    const char *env =
        od_event_render("01J0000000000000000000000B", doc, APR_INT64_C(1795082400123456), &len, p);
    const char *want =
        "{\"event_id\":\"01J0000000000000000000000B\",\"event_type\":"
        "\"order.accepted\",\"occurred_at\":\"2026-11-19T10:00:00.123Z\","
        "\"schema_version\":1,\"order\":{\"order_id\":\"01J0000000000000000000000A\","
        "\"n\":[1,{\"k\":\"v\"}]}}";
    ck_assert_str_eq(env, want);
    ck_assert_uint_eq(len, strlen(want));
    ck_assert_ptr_nonnull(od_event_render("E", "{}", 0, NULL, p));
    ck_assert_str_eq(od_event_render("E", "{}", 0, NULL, p),
                     "{\"event_id\":\"E\",\"event_type\":\"order.accepted\",\"occurred_at\":"
                     "\"1970-01-01T00:00:00.000Z\",\"schema_version\":1,\"order\":{}}");
    apr_pool_destroy(p);
}
END_TEST

Suite *od_events_suite(void)
{
    Suite *s = suite_create("events");
    TCase *envelope = tcase_create("envelope");
    TCase *file = tcase_create("file");
    TCase *aws = tcase_create("aws");

    tcase_add_test(envelope, test_events_envelope_bytes);
    suite_add_tcase(s, envelope);
    tcase_add_unchecked_fixture(file, base_setup, teardown);
    tcase_set_timeout(file, 120);
    tcase_add_test(file, test_events_file_sink_matches_accepted);
    tcase_add_test(file, test_events_file_full_then_every_event_once);
#ifdef ORDERD_FAULT_INJECTION
    tcase_add_test(file, test_events_kill9_between_store_and_publish);
    tcase_add_test(file, test_events_relay_batches_in_flight);
#endif
    suite_add_tcase(s, file);
    tcase_add_unchecked_fixture(aws, moto_setup, teardown);
    tcase_set_timeout(aws, 120);
    tcase_add_test(aws, test_events_sns_raw_and_enveloped_subscriptions);
    tcase_add_test(aws, test_events_sqs_outage_then_delivered);
    tcase_add_test(aws, test_events_eventbridge_rule_to_queue);
    suite_add_tcase(s, aws);
#ifdef ORDERD_FAULT_INJECTION
    TCase *ddb = tcase_create("dynamodb");
    tcase_add_unchecked_fixture(ddb, ddblocal_setup, teardown);
    tcase_set_timeout(ddb, 120);
    tcase_add_test(ddb, test_events_dynamodb_outbox_relay_after_kill9);
    suite_add_tcase(s, ddb);
#endif
    return s;
}

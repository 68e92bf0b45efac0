/*
 * Tests of the AWS event sinks (SNS, SQS, EventBridge) against moto: events published in
 * several batches are received back from an SQS queue (directly, through an SNS subscription
 * with and without raw delivery, or through an EventBridge rule) and compared with what was
 * sent; per-entry failures, missing destinations and unreachable endpoints. A canned-answer
 * HTTP server covers answers moto cannot produce (SQS per-entry failures, short answers) and
 * shows the requests as sent.
 *
 * moto starts once per test case in an unchecked fixture (in the runner, so forked tests inherit
 * its URL); the client, logger and canned server are per test, in the test's own process,
 * because threads do not survive fork(). The log goes to a temporary file so tests can read it.
 */
#ifndef _GNU_SOURCE /* APR's pkg-config flags may already define it */
#define _GNU_SOURCE /* strcasestr, setenv */
#endif

#include "od_aws.h"
#include "od_aws_sinks.h"
#include "od_status.h"
#include "od_suites.h"
#include "od_test_aws.h"
#include "od_test_engines.h"
#include "od_test_responder.h"

#include <apr_strings.h>
#include <arpa/inet.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

Suite *od_aws_sinks_suite(void);

#define ACCOUNT "123456789012"
#define N_EVENTS 23 /* batches of 10 + 10 + 3 */
#define RECEIVE_ROUNDS 20
#define SOURCE "orderd.test"
#define DETAIL_TYPE "OrderAccepted"
#define JSON10 "application/x-amz-json-1.0"
#define JSON11 "application/x-amz-json-1.1"
#define FORM "application/x-www-form-urlencoded; charset=utf-8"
#define CANNED_MAX (256 * 1024)
#define IN_FLIGHT 4 /* events_max_in_flight of the sinks under test */

static od_test_engine_t *engine; /* the test case's moto, or NULL */
static apr_pool_t *pool;
static FILE *log_file;
static od_log_t *log_;
static od_aws_t *aws;

/* ---- fixtures ---- */

static void moto_setup(void)
{
    engine = od_test_moto_start(NULL);
}

static void moto_teardown(void)
{
    od_test_engine_stop(engine);
    engine = NULL;
}

/* Loopback calls must not go through a proxy from the environment. */
static void setup(void)
{
    static const char *const proxies[] = {"http_proxy",  "HTTP_PROXY", "https_proxy",
                                          "HTTPS_PROXY", "all_proxy",  "ALL_PROXY"};
    od_aws_creds_options_t co = {.access_key_id = "AKIDSINKTEST",
                                 .secret_access_key = "sink-test-secret"};
    /* Two attempts, 1 ms backoff: failure tests stay fast. One connection: the canned server
     * serves one at a time. */
    od_aws_options_t o = {"us-east-1", 1, 1000, 10000, 2, 1, 1};
    od_aws_creds_t *creds = NULL;

    for (size_t i = 0; i < sizeof(proxies) / sizeof(proxies[0]); i++) {
        unsetenv(proxies[i]);
    }
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    apr_pool_create(&pool, NULL);
    log_file = tmpfile();
    ck_assert_ptr_nonnull(log_file);
    od_log_create(&log_, OD_LOG_WARN, log_file, pool);
    ck_assert_int_eq(od_aws_creds_create(&creds, &co, log_, pool), APR_SUCCESS);
    ck_assert_int_eq(od_aws_create(&aws, &o, creds, log_, pool), APR_SUCCESS);
}

static void teardown(void)
{
    apr_pool_destroy(pool);
    fclose(log_file);
}

/* ---- helpers ---- */

static apr_status_t json_owned_put(void *obj)
{
    json_object_put(obj);
    return APR_SUCCESS;
}

static json_object *parse(const char *text)
{
    json_object *doc = json_tokener_parse(text);

    if (doc != NULL) {
        apr_pool_cleanup_register(pool, doc, json_owned_put, apr_pool_cleanup_null);
    }
    return doc;
}

static const char *jstr(json_object *obj, const char *key)
{
    json_object *v = NULL;

    return json_object_object_get_ex(obj, key, &v) ? json_object_get_string(v) : NULL;
}

static json_object *jget(json_object *obj, const char *key)
{
    json_object *v = NULL;

    return json_object_object_get_ex(obj, key, &v) ? v : NULL;
}

/* What was logged so far. */
static char *log_text(void)
{
    fflush(log_file);
    long len = ftell(log_file);
    char *text = apr_pcalloc(pool, (apr_size_t) len + 1);

    rewind(log_file);
    ck_assert_uint_eq(fread(text, 1, (size_t) len, log_file), (size_t) len);
    return text;
}

static int count(const char *text, const char *needle)
{
    int n = 0;

    for (const char *at = strstr(text, needle); at != NULL; at = strstr(at + 1, needle)) {
        n++;
    }
    return n;
}

/* One set-up call to moto that must succeed; returns the answer's body. */
static const char *aws_ok(const char *service, const char *target, const char *type,
                          const char *body)
{
    od_aws_request_t req = {service, od_test_engine_url(engine), target, type, body, strlen(body),
                            NULL};
    od_aws_response_t resp;
    apr_status_t rv = od_aws_call(aws, &req, &resp, pool);

    ck_assert_msg(rv == APR_SUCCESS, "%s %s: %d %s: %s\n%s", service, target ? target : body, rv,
                  resp.error_code, resp.error_message, resp.body);
    return resp.body;
}

static json_object *sqs(const char *op, const char *body)
{
    json_object *doc =
        parse(aws_ok("sqs", apr_pstrcat(pool, "AmazonSQS.", op, NULL), JSON10, body));

    ck_assert_ptr_nonnull(doc);
    return doc;
}

static void events_call(const char *op, const char *body)
{
    aws_ok("events", apr_pstrcat(pool, "AWSEvents.", op, NULL), JSON11, body);
}

static const char *queue_create(const char *name)
{
    json_object *doc = sqs("CreateQueue", apr_psprintf(pool, "{\"QueueName\":\"%s\"}", name));

    return jstr(doc, "QueueUrl");
}

static const char *queue_arn(const char *url)
{
    json_object *doc =
        sqs("GetQueueAttributes", apr_psprintf(pool,
                                               "{\"QueueUrl\":\"%s\",\"AttributeNames\":"
                                               "[\"QueueArn\"]}",
                                               url));

    return jstr(jget(doc, "Attributes"), "QueueArn");
}

static const char *topic_create(const char *name)
{
    return od_test_xml_text(
        pool,
        aws_ok("sns", NULL, FORM,
               apr_pstrcat(pool, "Action=CreateTopic&Version=2010-03-31&Name=", name, NULL)),
        "TopicArn");
}

static void subscribe(const char *topic, const char *queue, int raw)
{
    aws_ok("sns", NULL, FORM,
           apr_psprintf(pool,
                        "Action=Subscribe&Version=2010-03-31&TopicArn=%s&Protocol=sqs&"
                        "Endpoint=%s&Attributes.entry.1.key=RawMessageDelivery&"
                        "Attributes.entry.1.value=%s",
                        topic, queue_arn(queue), raw ? "true" : "false"));
}

/* A bus whose rule sends events of SOURCE to @p queue. */
static void bus_create(const char *bus, const char *queue)
{
    events_call("CreateEventBus", apr_psprintf(pool, "{\"Name\":\"%s\"}", bus));
    events_call("PutRule", apr_psprintf(pool,
                                        "{\"Name\":\"to-queue\",\"EventBusName\":\"%s\","
                                        "\"State\":\"ENABLED\",\"EventPattern\":"
                                        "\"{\\\"source\\\":[\\\"%s\\\"]}\"}",
                                        bus, SOURCE));
    events_call("PutTargets", apr_psprintf(pool,
                                           "{\"Rule\":\"to-queue\",\"EventBusName\":\"%s\","
                                           "\"Targets\":[{\"Id\":\"q\",\"Arn\":\"%s\"}]}",
                                           bus, queue_arn(queue)));
}

/* The event_type of event @p i: mostly order.accepted, some other, some absent (the sinks then
 * send order.accepted). */
static const char *event_type_of(int i)
{
    return i % 7 == 3 ? "order.shipped" : i % 7 == 5 ? NULL : "order.accepted";
}

/* @p n envelopes with ULID-shaped ids unique to @p tag; bodies hold characters that need
 * URL-encoding and JSON escaping. */
static od_event_t *events_make(int n, char tag)
{
    od_event_t *ev = apr_pcalloc(pool, sizeof(*ev) * (apr_size_t) n);

    for (int i = 0; i < n; i++) {
        const char *type = event_type_of(i);
        ev[i].event_id = apr_psprintf(pool, "01HSINK%c%018d", tag, i);
        ev[i].order_id = apr_psprintf(pool, "ORD-%c-%d", tag, i);
        ev[i].body = apr_psprintf(
            pool,
            "{\"event_id\":\"%s\",%s%s%s\"order_id\":\"%s\",\"order\":{\"total_cents\":%d,"
            "\"note\":\"a&b=c+d %%2F/\\\"q\\\" \\u00fc \xe2\x82\xac\"}}",
            ev[i].event_id, type ? "\"event_type\":\"" : "", type ? type : "", type ? "\"," : "",
            ev[i].order_id, i * 100);
        ev[i].body_len = strlen(ev[i].body);
    }
    return ev;
}

static int event_index(const od_event_t *ev, int n, const char *event_id)
{
    for (int i = 0; event_id != NULL && i < n; i++) {
        if (strcmp(ev[i].event_id, event_id) == 0) {
            return i;
        }
    }
    return -1;
}

/* Publishes and asserts every event was accepted. */
static void publish_ok(od_sink_t *sink, const od_event_t *ev, int n)
{
    apr_status_t *results = apr_pcalloc(pool, sizeof(*results) * (apr_size_t) n);
    apr_status_t rv = od_sink_publish(sink, ev, n, results, pool);

    for (int i = 0; i < n; i++) {
        ck_assert_msg(results[i] == APR_SUCCESS, "event %d: %d; log:\n%s", i, results[i],
                      log_text());
    }
    ck_assert_int_eq(rv, APR_SUCCESS);
    ck_assert_str_eq(log_text(), "");
}

/* Receives until @p want messages arrived (bounded), then checks nothing else is waiting.
 * Returns the messages (Body, MessageAttributes). */
static json_object **receive(const char *queue, int want)
{
    json_object **got = apr_pcalloc(pool, sizeof(*got) * (apr_size_t) (want + 10));
    int n = 0;

    for (int round = 0; round < RECEIVE_ROUNDS && n < want; round++) {
        json_object *doc =
            sqs("ReceiveMessage", apr_psprintf(pool,
                                               "{\"QueueUrl\":\"%s\",\"MaxNumberOfMessages\":10,"
                                               "\"WaitTimeSeconds\":1,\"MessageAttributeNames\":"
                                               "[\"All\"]}",
                                               queue));
        json_object *msgs = jget(doc, "Messages");
        for (size_t i = 0; msgs != NULL && i < json_object_array_length(msgs); i++) {
            ck_assert_msg(n < want, "more than %d messages", want);
            got[n++] = json_object_array_get_idx(msgs, i);
        }
    }
    ck_assert_msg(n == want, "received %d of %d messages", n, want);
    json_object *rest = sqs(
        "ReceiveMessage", apr_psprintf(pool, "{\"QueueUrl\":\"%s\",\"WaitTimeSeconds\":0}", queue));
    ck_assert_msg(jget(rest, "Messages") == NULL ||
                      json_object_array_length(jget(rest, "Messages")) == 0,
                  "unexpected extra messages");
    return got;
}

/* Asserts @p text is JSON equal to event @p i's envelope. */
static void assert_envelope(const od_event_t *ev, int i, json_object *doc)
{
    ck_assert_msg(json_object_equal(doc, parse(ev[i].body)), "event %d: got %s", i,
                  json_object_to_json_string(doc));
}

/* Marks event @p id seen, asserting it is one of ours and new; returns its index. */
static int seen_once(const od_event_t *ev, int n, char *seen, const char *id)
{
    int i = event_index(ev, n, id);

    ck_assert_msg(i >= 0, "unknown event_id %s", id ? id : "(none)");
    ck_assert_msg(!seen[i], "event %s delivered twice", id);
    seen[i] = 1;
    return i;
}

static const char *expected_type(int i)
{
    return event_type_of(i) != NULL ? event_type_of(i) : "order.accepted";
}

/* A raw message: the body is the envelope, the SQS attribute event_type its type. */
static void assert_raw(const od_event_t *ev, int n, json_object **msgs)
{
    char *seen = apr_pcalloc(pool, (apr_size_t) n);

    for (int m = 0; m < n; m++) {
        json_object *body = parse(jstr(msgs[m], "Body"));
        int i = seen_once(ev, n, seen, jstr(body, "event_id"));
        json_object *type = jget(jget(msgs[m], "MessageAttributes"), "event_type");
        ck_assert_str_eq(jstr(msgs[m], "Body"), ev[i].body);
        assert_envelope(ev, i, body);
        ck_assert_msg(type != NULL, "no event_type attribute: %s",
                      json_object_to_json_string(msgs[m]));
        ck_assert_str_eq(jstr(type, "DataType"), "String");
        ck_assert_str_eq(jstr(type, "StringValue"), expected_type(i));
    }
}

/* Each event's body arrived once (matched by body: some events here share an event_id). */
static void assert_bodies(const od_event_t *ev, int n, json_object **msgs)
{
    char *seen = apr_pcalloc(pool, (apr_size_t) n);

    for (int m = 0; m < n; m++) {
        int i = 0;
        while (i < n && strcmp(jstr(msgs[m], "Body"), ev[i].body) != 0) {
            i++;
        }
        ck_assert_msg(i < n && !seen[i], "unexpected body %s", jstr(msgs[m], "Body"));
        seen[i] = 1;
    }
}

/* An SNS notification: "Message" is the envelope, MessageAttributes has event_type. */
static void assert_notification(const od_event_t *ev, int n, json_object **msgs, const char *topic)
{
    char *seen = apr_pcalloc(pool, (apr_size_t) n);

    for (int m = 0; m < n; m++) {
        json_object *note = parse(jstr(msgs[m], "Body"));
        json_object *env = parse(jstr(note, "Message"));
        int i = seen_once(ev, n, seen, jstr(env, "event_id"));
        json_object *type = jget(jget(note, "MessageAttributes"), "event_type");
        ck_assert_str_eq(jstr(note, "Type"), "Notification");
        ck_assert_str_eq(jstr(note, "TopicArn"), topic);
        ck_assert_str_eq(jstr(note, "Message"), ev[i].body);
        ck_assert_msg(type != NULL, "no event_type: %s", jstr(msgs[m], "Body"));
        ck_assert_str_eq(jstr(type, "Type"), "String");
        ck_assert_str_eq(jstr(type, "Value"), expected_type(i));
    }
}

/* An EventBridge event: "detail" is the envelope, source and detail-type as configured. */
static void assert_bridged(const od_event_t *ev, int n, json_object **msgs)
{
    char *seen = apr_pcalloc(pool, (apr_size_t) n);

    for (int m = 0; m < n; m++) {
        json_object *event = parse(jstr(msgs[m], "Body"));
        json_object *detail = jget(event, "detail");
        int i = seen_once(ev, n, seen, jstr(detail, "event_id"));
        ck_assert_str_eq(jstr(event, "source"), SOURCE);
        ck_assert_str_eq(jstr(event, "detail-type"), DETAIL_TYPE);
        assert_envelope(ev, i, detail);
    }
}

/* Publishes @p n events expecting every one to fail alike; returns that status. */
static apr_status_t publish_all_fail(od_sink_t *sink, int n)
{
    od_event_t *ev = events_make(n, 'F');
    apr_status_t *results = apr_pcalloc(pool, sizeof(*results) * (apr_size_t) n);
    apr_status_t rv = od_sink_publish(sink, ev, n, results, pool);

    ck_assert_int_ne(rv, APR_SUCCESS);
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(results[i], rv);
    }
    /* Whole-call failures are logged by the client, not again per entry. */
    ck_assert_int_eq(count(log_text(), "entries failed"), 0);
    return rv;
}

/* ---- SNS ---- */

START_TEST(sns_delivers_raw_and_enveloped)
{
    const char *topic = topic_create("orders-a");
    const char *raw = queue_create("sns-raw"), *wrapped = queue_create("sns-wrapped");
    od_event_t *ev = events_make(N_EVENTS, 'A');
    od_sink_t *sink = NULL;

    subscribe(topic, raw, 1);
    subscribe(topic, wrapped, 0);
    ck_assert_int_eq(
        od_sns_sink_create(&sink, aws, od_test_engine_url(engine), topic, IN_FLIGHT, log_, pool),
        APR_SUCCESS);
    ck_assert_str_eq(od_sink_name(sink), "sns");
    publish_ok(sink, ev, N_EVENTS);
    assert_raw(ev, N_EVENTS, receive(raw, N_EVENTS));
    assert_notification(ev, N_EVENTS, receive(wrapped, N_EVENTS), topic);
}
END_TEST

/* moto fails an over-long message as an entry of a 200 answer (AWS would refuse the batch). */
START_TEST(sns_entry_failure)
{
    const char *topic = topic_create("orders-b");
    od_event_t *ev = events_make(3, 'B');
    apr_status_t results[3];
    od_sink_t *sink = NULL;
    char *big = apr_palloc(pool, 300 * 1024 + 1);

    memset(big, 'x', 300 * 1024);
    big[300 * 1024] = '\0';
    ev[1].body =
        apr_pstrcat(pool, "{\"event_id\":\"", ev[1].event_id, "\",\"pad\":\"", big, "\"}", NULL);
    ev[1].body_len = strlen(ev[1].body);
    ck_assert_int_eq(
        od_sns_sink_create(&sink, aws, od_test_engine_url(engine), topic, IN_FLIGHT, log_, pool),
        APR_SUCCESS);
    ck_assert_int_eq(od_sink_publish(sink, ev, 3, results, pool), OD_EINVAL);
    ck_assert_int_eq(results[0], APR_SUCCESS);
    ck_assert_int_eq(results[1], OD_EINVAL);
    ck_assert_int_eq(results[2], APR_SUCCESS);
    const char *log = log_text();
    ck_assert_int_eq(count(log, "\n"), 1);
    ck_assert_msg(strstr(log, "sns: PublishBatch") && strstr(log, "1 of 3 entries failed") &&
                      strstr(log, ev[1].event_id) && strstr(log, "InvalidParameter"),
                  "log: %s", log);
}
END_TEST

/* The same event twice in one batch (a re-publish): both go, under index Ids. */
START_TEST(sns_duplicate_event_ids)
{
    const char *topic = topic_create("orders-c"), *queue = queue_create("sns-dup");
    od_event_t *ev = events_make(4, 'C');
    od_sink_t *sink = NULL;

    ev[2].event_id = ev[0].event_id;
    subscribe(topic, queue, 1);
    ck_assert_int_eq(
        od_sns_sink_create(&sink, aws, od_test_engine_url(engine), topic, IN_FLIGHT, log_, pool),
        APR_SUCCESS);
    publish_ok(sink, ev, 4);
    assert_bodies(ev, 4, receive(queue, 4));
}
END_TEST

START_TEST(sns_missing_topic)
{
    od_sink_t *sink = NULL;

    ck_assert_int_eq(od_sns_sink_create(&sink, aws, od_test_engine_url(engine),
                                        "arn:aws:sns:us-east-1:" ACCOUNT ":od-missing", IN_FLIGHT,
                                        log_, pool),
                     APR_SUCCESS);
    ck_assert_int_eq(publish_all_fail(sink, 12), OD_EINVAL);
}
END_TEST

/* ---- SQS ---- */

START_TEST(sqs_delivers)
{
    const char *queue = queue_create("sqs-a");
    od_event_t *ev = events_make(N_EVENTS, 'D');
    od_sink_t *sink = NULL;

    ck_assert_int_eq(
        od_sqs_sink_create(&sink, aws, od_test_engine_url(engine), queue, IN_FLIGHT, log_, pool),
        APR_SUCCESS);
    ck_assert_str_eq(od_sink_name(sink), "sqs");
    publish_ok(sink, ev, N_EVENTS);
    assert_raw(ev, N_EVENTS, receive(queue, N_EVENTS));
}
END_TEST

START_TEST(sqs_duplicate_event_ids)
{
    const char *queue = queue_create("sqs-dup");
    od_event_t *ev = events_make(3, 'E');
    od_sink_t *sink = NULL;

    ev[1].event_id = ev[2].event_id;
    ck_assert_int_eq(
        od_sqs_sink_create(&sink, aws, od_test_engine_url(engine), queue, IN_FLIGHT, log_, pool),
        APR_SUCCESS);
    publish_ok(sink, ev, 3);
    assert_bodies(ev, 3, receive(queue, 3));
}
END_TEST

START_TEST(sqs_missing_queue)
{
    od_sink_t *sink = NULL;
    const char *url =
        apr_pstrcat(pool, od_test_engine_url(engine), "/" ACCOUNT "/od-missing", NULL);

    ck_assert_int_eq(
        od_sqs_sink_create(&sink, aws, od_test_engine_url(engine), url, IN_FLIGHT, log_, pool),
        APR_SUCCESS);
    ck_assert_int_eq(publish_all_fail(sink, 12), OD_EINVAL);
}
END_TEST

/* ---- EventBridge ---- */

START_TEST(eventbridge_delivers)
{
    const char *queue = queue_create("eb-a");
    od_event_t *ev = events_make(N_EVENTS, 'G');
    od_sink_t *sink = NULL;

    bus_create("orders", queue);
    ck_assert_int_eq(od_eventbridge_sink_create(&sink, aws, od_test_engine_url(engine), "orders",
                                                SOURCE, DETAIL_TYPE, IN_FLIGHT, log_, pool),
                     APR_SUCCESS);
    ck_assert_str_eq(od_sink_name(sink), "eventbridge");
    publish_ok(sink, ev, N_EVENTS);
    assert_bridged(ev, N_EVENTS, receive(queue, N_EVENTS));
}
END_TEST

START_TEST(eventbridge_entry_failure)
{
    const char *queue = queue_create("eb-b");
    od_event_t *ev = events_make(3, 'H');
    apr_status_t results[3];
    od_sink_t *sink = NULL;

    bus_create("orders-h", queue);
    ev[0].body = "not json";
    ev[0].body_len = strlen(ev[0].body);
    ck_assert_int_eq(od_eventbridge_sink_create(&sink, aws, od_test_engine_url(engine), "orders-h",
                                                SOURCE, DETAIL_TYPE, IN_FLIGHT, log_, pool),
                     APR_SUCCESS);
    ck_assert_int_eq(od_sink_publish(sink, ev, 3, results, pool), OD_EINVAL);
    ck_assert_int_eq(results[0], OD_EINVAL);
    ck_assert_int_eq(results[1], APR_SUCCESS);
    ck_assert_int_eq(results[2], APR_SUCCESS);
    const char *log = log_text();
    ck_assert_int_eq(count(log, "\n"), 1);
    ck_assert_msg(strstr(log, "eventbridge: PutEvents to orders-h: 1 of 3 entries failed") &&
                      strstr(log, ev[0].event_id) && strstr(log, "MalformedDetail"),
                  "log: %s", log);
    json_object **msgs = receive(queue, 2);
    char seen[3] = {0};
    seen_once(ev, 3, seen, jstr(jget(parse(jstr(msgs[0], "Body")), "detail"), "event_id"));
    seen_once(ev, 3, seen, jstr(jget(parse(jstr(msgs[1], "Body")), "detail"), "event_id"));
    ck_assert(seen[1] && seen[2]);
}
END_TEST

START_TEST(eventbridge_missing_bus)
{
    od_sink_t *sink = NULL;

    ck_assert_int_eq(od_eventbridge_sink_create(&sink, aws, od_test_engine_url(engine),
                                                "od-missing", SOURCE, DETAIL_TYPE, IN_FLIGHT, log_,
                                                pool),
                     APR_SUCCESS);
    ck_assert_int_eq(publish_all_fail(sink, 12), OD_EINVAL);
}
END_TEST

/* ---- a canned-answer HTTP server ---- */

typedef struct canned_t {
    int lfd;
    pthread_t thread;
    atomic_int stop;
    const char *answer; /* the body of every 200 answer */
    /* Written by the server thread, read after it is joined. */
    char request[CANNED_MAX]; /* the last request, head and body */
    int requests;
    char url[64];
} canned_t;

/* Waits for @p fd to be readable, checking for stop every 100 ms. */
static int canned_wait(canned_t *c, int fd)
{
    struct pollfd pfd = {fd, POLLIN, 0};

    while (!atomic_load(&c->stop)) {
        if (poll(&pfd, 1, 100) > 0) {
            return 1;
        }
    }
    return 0;
}

/* Reads one request (Content-Length body) into @p buf; returns its length, or 0 at EOF. */
static size_t canned_read(canned_t *c, int fd, char *buf)
{
    size_t len = 0, want = 0;

    while ((want == 0 || len < want) && len < CANNED_MAX - 1 && canned_wait(c, fd)) {
        ssize_t got = recv(fd, buf + len, CANNED_MAX - 1 - len, 0);
        if (got <= 0) {
            return 0;
        }
        len += (size_t) got;
        buf[len] = '\0';
        char *end = strstr(buf, "\r\n\r\n"), *cl = strcasestr(buf, "\r\nContent-Length:");
        if (end != NULL && want == 0) {
            want = (size_t) (end + 4 - buf) + (cl != NULL ? strtoul(cl + 17, NULL, 10) : 0);
        }
    }
    return len;
}

static void canned_serve(canned_t *c, int fd)
{
    char *buf = malloc(CANNED_MAX);
    size_t len;

    while ((len = canned_read(c, fd, buf)) > 0) {
        memcpy(c->request, buf, len + 1);
        c->requests++;
        /* No ck_assert here: this is not the test's thread. A failed send shows as a failed
         * publish in the test. */
        char head[128];
        size_t body_len = strlen(c->answer);
        int n = snprintf(head, sizeof(head),
                         "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                         "Content-Length: %zu\r\n\r\n",
                         body_len);
        if (send(fd, head, (size_t) n, MSG_NOSIGNAL) != n ||
            send(fd, c->answer, body_len, MSG_NOSIGNAL) != (ssize_t) body_len) {
            break;
        }
    }
    free(buf);
}

static void *canned_main(void *arg)
{
    canned_t *c = arg;

    while (canned_wait(c, c->lfd)) {
        int fd = accept(c->lfd, NULL, NULL);
        if (fd >= 0) {
            canned_serve(c, fd);
            close(fd);
        }
    }
    return NULL;
}

/* A listening socket on a free loopback port; @p port set. */
static int listen_any(int *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *) &a, sizeof(a)), 0);
    ck_assert_int_eq(listen(fd, 8), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *) &a, &alen), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static canned_t *canned_start(const char *answer)
{
    canned_t *c = calloc(1, sizeof(*c));
    int port = 0;

    c->lfd = listen_any(&port);
    c->answer = answer;
    snprintf(c->url, sizeof(c->url), "http://127.0.0.1:%d", port);
    ck_assert_int_eq(pthread_create(&c->thread, NULL, canned_main, c), 0);
    return c;
}

/* Stops the server; returns the last request's body (from the pool) and its count. */
static const char *canned_stop(canned_t *c, int *requests)
{
    atomic_store(&c->stop, 1);
    pthread_join(c->thread, NULL);
    close(c->lfd);
    const char *body = strstr(c->request, "\r\n\r\n");
    const char *copy = apr_pstrdup(pool, body != NULL ? body + 4 : "");
    *requests = c->requests;
    free(c);
    return copy;
}

/* ---- answers moto cannot give, and requests as sent ---- */

START_TEST(sqs_entry_outcomes)
{
    od_event_t *ev = events_make(5, 'J');
    const char *answer = apr_psprintf(
        pool,
        "{\"Successful\":[{\"Id\":\"%s\",\"MessageId\":\"m\"}],\"Failed\":["
        "{\"Id\":\"%s\",\"Code\":\"RequestThrottled\",\"Message\":\"slow\",\"SenderFault\":false},"
        "{\"Id\":\"%s\",\"Code\":\"InvalidMessageContents\",\"Message\":\"bad\","
        "\"SenderFault\":true},"
        "{\"Id\":\"%s\",\"Code\":\"InternalError\",\"SenderFault\":false}]}",
        ev[0].event_id, ev[1].event_id, ev[2].event_id, ev[3].event_id);
    canned_t *c = canned_start(answer);
    apr_status_t results[5];
    od_sink_t *sink = NULL;
    int requests = 0;

    ck_assert_int_eq(
        od_sqs_sink_create(&sink, aws, c->url, "https://q.example/1/q", IN_FLIGHT, log_, pool),
        APR_SUCCESS);
    ck_assert_int_eq(od_sink_publish(sink, ev, 5, results, pool), OD_ETHROTTLED);
    json_object *req = parse(canned_stop(c, &requests));
    ck_assert_int_eq(requests, 1);
    ck_assert_int_eq(results[0], APR_SUCCESS);
    ck_assert_int_eq(results[1], OD_ETHROTTLED);
    ck_assert_int_eq(results[2], OD_EINVAL);
    ck_assert_int_eq(results[3], OD_EUNAVAIL);
    ck_assert_int_eq(results[4], OD_EUNAVAIL); /* not in the answer */
    ck_assert_int_eq(count(log_text(), "\n"), 1);
    ck_assert_msg(strstr(log_text(), "4 of 5 entries failed") &&
                      strstr(log_text(), "InvalidMessageContents") &&
                      strstr(log_text(), ev[4].event_id),
                  "log: %s", log_text());
    /* The request as sent. */
    ck_assert_str_eq(jstr(req, "QueueUrl"), "https://q.example/1/q");
    json_object *entries = jget(req, "Entries");
    ck_assert_int_eq((int) json_object_array_length(entries), 5);
    json_object *e3 = json_object_array_get_idx(entries, 3);
    ck_assert_str_eq(jstr(e3, "Id"), ev[3].event_id);
    ck_assert_str_eq(jstr(e3, "MessageBody"), ev[3].body);
    ck_assert_str_eq(jstr(jget(jget(e3, "MessageAttributes"), "event_type"), "StringValue"),
                     "order.shipped");
}
END_TEST

START_TEST(sns_index_ids_mapped_back)
{
    canned_t *c = canned_start(
        "<PublishBatchResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\">"
        "<PublishBatchResult><Successful><member><Id>e1</Id><MessageId>m</MessageId></member>"
        "</Successful><Failed><member><Id>e0</Id><Code>Throttled</Code>"
        "<Message>a &amp; b</Message><SenderFault>false</SenderFault></member></Failed>"
        "</PublishBatchResult></PublishBatchResponse>");
    od_event_t *ev = events_make(2, 'K');
    apr_status_t results[2];
    od_sink_t *sink = NULL;
    int requests = 0;
    const char *prefix = "Action=PublishBatch&Version=2010-03-31&TopicArn=arn%3Aaws%3Asns%3Aus-"
                         "east-1%3A1%3At&PublishBatchRequestEntries.member.1.Id=e0&";

    ev[1].event_id = ev[0].event_id;
    ck_assert_int_eq(
        od_sns_sink_create(&sink, aws, c->url, "arn:aws:sns:us-east-1:1:t", IN_FLIGHT, log_, pool),
        APR_SUCCESS);
    ck_assert_int_eq(od_sink_publish(sink, ev, 2, results, pool), OD_ETHROTTLED);
    const char *req = canned_stop(c, &requests);
    ck_assert_int_eq(results[0], OD_ETHROTTLED);
    ck_assert_int_eq(results[1], APR_SUCCESS);
    ck_assert_msg(strstr(log_text(), "Throttled: a & b") != NULL, "log: %s", log_text());
    ck_assert_msg(strncmp(req, prefix, strlen(prefix)) == 0 &&
                      strstr(req, "&PublishBatchRequestEntries.member.2.Id=e1&") &&
                      strstr(req, "member.2.MessageAttributes.entry.1.Value.StringValue="
                                  "order.accepted") &&
                      strstr(req, "%22note%22%3A%22a%26b%3Dc%2Bd%20%252F%2F"),
                  "request: %s", req);
}
END_TEST

START_TEST(eventbridge_short_answer)
{
    canned_t *c = canned_start("{\"FailedEntryCount\":1,\"Entries\":[{\"EventId\":\"x\"},"
                               "{\"ErrorCode\":\"ThrottlingException\",\"ErrorMessage\":\"s\"}]}");
    od_event_t *ev = events_make(3, 'L');
    apr_status_t results[3];
    od_sink_t *sink = NULL;
    int requests = 0;

    ck_assert_int_eq(
        od_eventbridge_sink_create(&sink, aws, c->url, "", "src", "dt", IN_FLIGHT, log_, pool),
        APR_SUCCESS);
    ck_assert_int_eq(od_sink_publish(sink, ev, 3, results, pool), OD_ETHROTTLED);
    json_object *req = parse(canned_stop(c, &requests));
    ck_assert_int_eq(results[0], APR_SUCCESS);
    ck_assert_int_eq(results[1], OD_ETHROTTLED);
    ck_assert_int_eq(results[2], OD_EUNAVAIL);
    json_object *e0 = json_object_array_get_idx(jget(req, "Entries"), 0);
    ck_assert_str_eq(jstr(e0, "Source"), "src");
    ck_assert_str_eq(jstr(e0, "DetailType"), "dt");
    ck_assert_str_eq(jstr(e0, "Detail"), ev[0].body);
    ck_assert_ptr_null(jget(e0, "EventBusName")); /* the default bus */
}
END_TEST

START_TEST(garbled_answer)
{
    canned_t *c = canned_start("<html>not an answer</html>");
    od_event_t *ev = events_make(12, 'M');
    apr_status_t results[12];
    od_sink_t *sinks[3] = {NULL, NULL, NULL};
    int requests = 0;

    ck_assert_int_eq(od_sns_sink_create(&sinks[0], aws, c->url, "arn:t", IN_FLIGHT, log_, pool),
                     APR_SUCCESS);
    ck_assert_int_eq(od_sqs_sink_create(&sinks[1], aws, c->url, "https://q", IN_FLIGHT, log_, pool),
                     APR_SUCCESS);
    ck_assert_int_eq(
        od_eventbridge_sink_create(&sinks[2], aws, c->url, "b", "s", "d", IN_FLIGHT, log_, pool),
        APR_SUCCESS);
    for (int s = 0; s < 3; s++) {
        ck_assert_int_eq(od_sink_publish(sinks[s], ev, 12, results, pool), OD_EUNAVAIL);
        for (int i = 0; i < 12; i++) {
            ck_assert_int_eq(results[i], OD_EUNAVAIL);
        }
    }
    canned_stop(c, &requests);
    ck_assert_int_eq(requests, 6);
    ck_assert_int_eq(count(log_text(), "unexpected answer"), 6);
}
END_TEST

START_TEST(unreachable_endpoint)
{
    int port = 0;
    int fd = listen_any(&port);
    const char *url = apr_psprintf(pool, "http://127.0.0.1:%d", port);
    od_sink_t *sinks[3] = {NULL, NULL, NULL};

    close(fd); /* nothing listens there now: connections are refused */
    ck_assert_int_eq(od_sns_sink_create(&sinks[0], aws, url, "arn:t", IN_FLIGHT, log_, pool),
                     APR_SUCCESS);
    ck_assert_int_eq(od_sqs_sink_create(&sinks[1], aws, url, "https://q", IN_FLIGHT, log_, pool),
                     APR_SUCCESS);
    ck_assert_int_eq(
        od_eventbridge_sink_create(&sinks[2], aws, url, "b", "s", "d", IN_FLIGHT, log_, pool),
        APR_SUCCESS);
    for (int s = 0; s < 3; s++) {
        ck_assert_int_eq(publish_all_fail(sinks[s], 13), OD_EUNAVAIL);
    }
}
END_TEST

START_TEST(create_needs_settings)
{
    static int dummy;
    od_sink_t *sink = (od_sink_t *) &dummy;

    ck_assert_int_eq(od_sns_sink_create(&sink, aws, "http://x", NULL, IN_FLIGHT, log_, pool),
                     OD_ECONFIG);
    ck_assert_ptr_null(sink);
    ck_assert_int_eq(od_sqs_sink_create(&sink, aws, "http://x", "", IN_FLIGHT, log_, pool),
                     OD_ECONFIG);
    ck_assert_int_eq(
        od_eventbridge_sink_create(&sink, aws, "http://x", "b", "s", NULL, IN_FLIGHT, log_, pool),
        OD_ECONFIG);
    ck_assert_int_eq(count(log_text(), "\n"), 3);
}
END_TEST

/* ---- batches in flight at once, against a slow endpoint ---- */

#define SLOW_EVENTS 200 /* 20 batches */
#define SLOW_IN_FLIGHT 8
#define SLOW_DELAY_MS 50

/* What the slow SQS endpoint saw: how often each event arrived, and the one entry it fails. */
typedef struct slow_sqs_t {
    pthread_mutex_t lock;
    const od_event_t *events;
    int counts[SLOW_EVENTS];
    int unknown; /* entries whose Id is none of the events' */
    const char *fail_id;
} slow_sqs_t;

static void slow_sqs_note(slow_sqs_t *s, const char *id)
{
    int i = event_index(s->events, SLOW_EVENTS, id);

    pthread_mutex_lock(&s->lock);
    if (i >= 0) {
        s->counts[i]++;
    } else {
        s->unknown++;
    }
    pthread_mutex_unlock(&s->lock);
}

/* SendMessageBatch's answer: every entry Successful but fail_id, which fails (InternalError). */
static char *slow_sqs_answer(void *baton, const char *body, size_t len)
{
    slow_sqs_t *s = baton;
    json_object *req = json_tokener_parse(body), *entries = NULL;
    json_object *ok = json_object_new_array(), *failed = json_object_new_array();
    json_object *answer = json_object_new_object();

    json_object_object_get_ex(req, "Entries", &entries);
    for (size_t i = 0; entries != NULL && i < json_object_array_length(entries); i++) {
        const char *id = jstr(json_object_array_get_idx(entries, i), "Id");
        json_object *e = json_object_new_object();
        slow_sqs_note(s, id);
        json_object_object_add(e, "Id", json_object_new_string(id != NULL ? id : ""));
        if (id != NULL && strcmp(id, s->fail_id) == 0) {
            json_object_object_add(e, "Code", json_object_new_string("InternalError"));
            json_object_object_add(e, "SenderFault", json_object_new_boolean(0));
            json_object_array_add(failed, e);
        } else {
            json_object_object_add(e, "MessageId", json_object_new_string("m"));
            json_object_array_add(ok, e);
        }
    }
    json_object_object_add(answer, "Successful", ok);
    json_object_object_add(answer, "Failed", failed);
    char *text = strdup(json_object_to_json_string_ext(answer, JSON_C_TO_STRING_PLAIN));
    json_object_put(answer);
    json_object_put(req);
    (void) len;
    return text;
}

/* The sink sends its batches at once, up to its bound (and the client's 16 connections would
 * allow more), each event exactly once, and still reports each entry's own outcome. */
START_TEST(sqs_batches_in_flight_at_once)
{
    static slow_sqs_t seen = {.lock = PTHREAD_MUTEX_INITIALIZER};
    od_aws_options_t o = {"us-east-1", 16, 1000, 10000, 1, 1, 1};
    od_aws_creds_options_t co = {.access_key_id = "AKIDSLOW", .secret_access_key = "slow"};
    od_aws_creds_t *creds = NULL;
    od_aws_t *client = NULL;
    od_sink_t *sink = NULL;
    apr_status_t results[SLOW_EVENTS];

    seen.events = events_make(SLOW_EVENTS, 'S');
    seen.fail_id = seen.events[57].event_id;
    od_test_responder_t *r =
        od_test_responder_start(SLOW_DELAY_MS, SLOW_IN_FLIGHT, slow_sqs_answer, &seen);
    ck_assert_int_eq(od_aws_creds_create(&creds, &co, log_, pool), APR_SUCCESS);
    ck_assert_int_eq(od_aws_create(&client, &o, creds, log_, pool), APR_SUCCESS);
    ck_assert_int_eq(od_sqs_sink_create(&sink, client, od_test_responder_url(r),
                                        "https://q.example/1/q", SLOW_IN_FLIGHT, log_, pool),
                     APR_SUCCESS);
    ck_assert_int_eq(od_sink_publish(sink, seen.events, SLOW_EVENTS, results, pool), OD_EUNAVAIL);
    unsigned int requests = od_test_responder_requests(r),
                 peak = od_test_responder_max_in_flight(r);
    od_test_responder_stop(r);
    fprintf(stderr, "sqs_batches_in_flight_at_once: %u requests, at most %u in flight\n", requests,
            peak);
    ck_assert_uint_eq(requests, SLOW_EVENTS / 10);
    ck_assert_uint_eq(peak, SLOW_IN_FLIGHT);
    ck_assert_int_eq(seen.unknown, 0);
    for (int i = 0; i < SLOW_EVENTS; i++) {
        ck_assert_msg(seen.counts[i] == 1, "event %d sent %d times", i, seen.counts[i]);
        ck_assert_msg(results[i] == (i == 57 ? OD_EUNAVAIL : APR_SUCCESS), "event %d: %d", i,
                      results[i]);
    }
    ck_assert_int_eq(count(log_text(), "1 of 10 entries failed"), 1);
}
END_TEST

/* ---- the suite ---- */

static TCase *tcase(Suite *s, const char *name, int moto)
{
    TCase *tc = tcase_create(name);

    if (moto) {
        tcase_add_unchecked_fixture(tc, moto_setup, moto_teardown);
    }
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);
    return tc;
}

Suite *od_aws_sinks_suite(void)
{
    Suite *s = suite_create("aws_sinks");
    TCase *sns = tcase(s, "sns", 1), *sqs_ = tcase(s, "sqs", 1);
    TCase *eb = tcase(s, "eventbridge", 1), *canned = tcase(s, "canned", 0);

    tcase_add_test(sns, sns_delivers_raw_and_enveloped);
    tcase_add_test(sns, sns_entry_failure);
    tcase_add_test(sns, sns_duplicate_event_ids);
    tcase_add_test(sns, sns_missing_topic);
    tcase_add_test(sqs_, sqs_delivers);
    tcase_add_test(sqs_, sqs_duplicate_event_ids);
    tcase_add_test(sqs_, sqs_missing_queue);
    tcase_add_test(eb, eventbridge_delivers);
    tcase_add_test(eb, eventbridge_entry_failure);
    tcase_add_test(eb, eventbridge_missing_bus);
    tcase_add_test(canned, sqs_entry_outcomes);
    tcase_add_test(canned, sns_index_ids_mapped_back);
    tcase_add_test(canned, eventbridge_short_answer);
    tcase_add_test(canned, garbled_answer);
    tcase_add_test(canned, unreachable_endpoint);
    tcase_add_test(canned, create_needs_settings);
    tcase_add_test(canned, sqs_batches_in_flight_at_once);
    return s;
}

/*
 * Tests of order-consumer: the dedupe protocol (SQLite, and DynamoDB on moto), event parsing,
 * the handler runner, the configuration, and the real binary ($ORDERD_CONSUMER_BIN) against
 * moto's SQS: the same event twice runs the handler once; a failing handler's message reaches
 * the dead-letter queue after 3 receives; a consumer killed mid-batch loses nothing; SIGTERM
 * finishes the handler in flight and deletes nothing unprocessed; invalid messages end in the
 * dead-letter queue without crashing it.
 *
 * moto starts once per test case in an unchecked fixture (in the runner, so forked tests inherit
 * its URL); the AWS client, the test directory and the consumer process are per test. The
 * consumer dies with the test (PR_SET_PDEATHSIG). Queues are named per test process. Every wait
 * is bounded; everything is on 127.0.0.1.
 */
#ifndef _GNU_SOURCE /* APR's pkg-config flags may already define it */
#define _GNU_SOURCE /* mkdtemp, prctl, setenv */
#endif

#include "od_aws.h"
#include "od_consumer.h"
#include "od_dedupe.h"
#include "od_status.h"
#include "od_suites.h"
#include "od_test_engines.h"
#include "od_test_util.h"

#include <apr_strings.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

Suite *od_consumer_suite(void);

#define START_MS 10000L /* the consumer's start-up */
#define STOP_MS 10000L  /* a SIGTERM'd consumer: long poll (1 s) + the handler in flight */
#define READY_MARK "receiving from"

static od_test_engine_t *engine; /* the test case's moto, or NULL */
static apr_pool_t *pool;
static FILE *log_file;
static od_log_t *log_;
static od_aws_t *aws;
static char dir[PATH_MAX];
static pid_t consumer; /* 0: none running */

/* What the spawned consumer and its handler do. */
typedef struct consumer_opts_t {
    int max_messages;
    int timeout_s;  /* consumer_handler_timeout_s */
    int wait_s;     /* consumer_wait_time_s */
    double sleep_s; /* the handler sleeps this long between "started" and "handled" */
    int exit_code;  /* and then exits with this */
} consumer_opts_t;

/* ---- fixtures ---- */

static void env_setup(void)
{
    static const char *const proxies[] = {"http_proxy",  "HTTP_PROXY", "https_proxy",
                                          "HTTPS_PROXY", "all_proxy",  "ALL_PROXY"};

    for (size_t i = 0; i < sizeof(proxies) / sizeof(proxies[0]); i++) {
        unsetenv(proxies[i]);
    }
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
}

static void moto_setup(void)
{
    env_setup();
    engine = od_test_moto_start(NULL);
}

static void moto_teardown(void)
{
    od_test_engine_stop(engine);
    engine = NULL;
}

static void setup(void)
{
    sigset_t pipe;

    /* As in order-consumer: a handler that does not read its stdin must not kill us. */
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, NULL);
    env_setup();
    ck_assert_int_eq(apr_pool_create(&pool, NULL), APR_SUCCESS);
    log_file = tmpfile();
    ck_assert_ptr_nonnull(log_file);
    od_log_create(&log_, OD_LOG_INFO, log_file, pool);
    snprintf(dir, sizeof(dir), "/tmp/od-consumer-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    consumer = 0;
    aws = NULL;
    if (engine != NULL) {
        od_aws_creds_options_t co = {.access_key_id = "testing", .secret_access_key = "testing"};
        od_aws_options_t ao = {"us-east-1", 4, 2000, 10000, 3, 10, 100};
        od_aws_creds_t *creds = NULL;
        ck_assert_int_eq(od_aws_creds_create(&creds, &co, log_, pool), APR_SUCCESS);
        ck_assert_int_eq(od_aws_create(&aws, &ao, creds, log_, pool), APR_SUCCESS);
    }
}

static void teardown(void)
{
    if (consumer > 0) {
        kill(consumer, SIGKILL);
        waitpid(consumer, NULL, 0);
        consumer = 0;
    }
    apr_pool_destroy(pool);
    fclose(log_file);
    od_test_remove_tree(dir);
}

/* ---- small helpers ---- */

static long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long) ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static const char *path_in(const char *name)
{
    return apr_pstrcat(pool, dir, "/", name, NULL);
}

static void write_file(const char *name, const char *text)
{
    FILE *f = fopen(path_in(name), "w");

    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fputs(text, f) >= 0, 1);
    ck_assert_int_eq(fclose(f), 0);
}

/* The file's contents, or "" if it does not exist (yet). */
static const char *read_file(const char *name)
{
    FILE *f = fopen(path_in(name), "r");
    char buf[4096];
    const char *text = "";
    size_t n;

    if (f == NULL) {
        return text;
    }
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
        text = apr_pstrcat(pool, text, apr_pstrmemdup(pool, buf, n), NULL);
    }
    fclose(f);
    return text;
}

/* How many lines of @p text are exactly @p line (NULL: any line). */
static int count_lines(const char *text, const char *line)
{
    int n = 0;

    for (const char *p = text; *p != '\0';) {
        const char *end = strchr(p, '\n');
        size_t len = end != NULL ? (size_t) (end - p) : strlen(p);
        if (line == NULL || (strlen(line) == len && strncmp(p, line, len) == 0)) {
            n++;
        }
        p += len + (end != NULL);
    }
    return n;
}

static int count_substr(const char *text, const char *needle)
{
    int n = 0;

    for (const char *p = strstr(text, needle); p != NULL; p = strstr(p + 1, needle)) {
        n++;
    }
    return n;
}

static const char *event_id(const char *tag, int i)
{
    return apr_psprintf(pool, "EVT-%s-%ld-%02d", tag, (long) getpid(), i);
}

static const char *event_json(const char *id)
{
    return apr_psprintf(pool,
                        "{\"event_id\":\"%s\",\"event_type\":\"order.accepted\","
                        "\"occurred_at\":\"2026-01-01T00:00:00.000Z\",\"schema_version\":1,"
                        "\"order\":{\"order_id\":\"01J00000000000000000000000\"}}",
                        id);
}

static apr_status_t put_json(void *obj)
{
    json_object_put(obj);
    return APR_SUCCESS;
}

static json_object *owned(json_object *obj)
{
    ck_assert_ptr_nonnull(obj);
    apr_pool_cleanup_register(pool, obj, put_json, apr_pool_cleanup_null);
    return obj;
}

/* An SNS notification (non-raw delivery) carrying @p event. */
static const char *sns_envelope(const char *event)
{
    json_object *env = owned(json_object_new_object());

    json_object_object_add(env, "Type", json_object_new_string("Notification"));
    json_object_object_add(env, "MessageId", json_object_new_string("0a1b2c3d-sns"));
    json_object_object_add(env, "TopicArn",
                           json_object_new_string("arn:aws:sns:us-east-1:123456789012:orders"));
    json_object_object_add(env, "Message", json_object_new_string(event));
    json_object_object_add(env, "Timestamp", json_object_new_string("2026-01-01T00:00:00.000Z"));
    return apr_pstrdup(pool, json_object_to_json_string_ext(env, JSON_C_TO_STRING_PLAIN));
}

/* ---- AWS calls of the test itself ---- */

static json_object *call(const char *service, const char *target, json_object *req)
{
    size_t len = 0;
    const char *body = json_object_to_json_string_length(req, JSON_C_TO_STRING_PLAIN, &len);
    od_aws_request_t r = {
        service, od_test_engine_url(engine), target, "application/x-amz-json-1.0", body, len, NULL};
    od_aws_response_t resp;
    apr_status_t rv = od_aws_call(aws, &r, &resp, pool);

    ck_assert_msg(rv == APR_SUCCESS, "%s: %s", target, resp.body);
    return owned(json_tokener_parse(resp.body));
}

static json_object *sqs(const char *op, json_object *req)
{
    return call("sqs", apr_pstrcat(pool, "AmazonSQS.", op, NULL), req);
}

static json_object *queue_req(const char *url)
{
    json_object *req = owned(json_object_new_object());

    if (url != NULL) {
        json_object_object_add(req, "QueueUrl", json_object_new_string(url));
    }
    return req;
}

static const char *str_of(json_object *obj, const char *key)
{
    json_object *v = NULL;

    ck_assert_msg(json_object_object_get_ex(obj, key, &v), "no %s in the answer", key);
    return apr_pstrdup(pool, json_object_get_string(v));
}

static json_object *queue_attrs(const char *url, const char *const *names)
{
    json_object *req = queue_req(url), *list = json_object_new_array();

    for (int i = 0; names[i] != NULL; i++) {
        json_object_array_add(list, json_object_new_string(names[i]));
    }
    json_object_object_add(req, "AttributeNames", list);
    return json_object_object_get(sqs("GetQueueAttributes", req), "Attributes");
}

/* Creates a queue with VisibilityTimeout @p visibility_s and, if @p dlq_arn, a redrive policy
 * to it after 3 receives. Returns its URL. */
static const char *queue_create(const char *name, int visibility_s, const char *dlq_arn)
{
    json_object *req = queue_req(NULL), *attrs = json_object_new_object();

    json_object_object_add(
        req, "QueueName",
        json_object_new_string(apr_psprintf(pool, "%s-%ld", name, (long) getpid())));
    json_object_object_add(attrs, "VisibilityTimeout",
                           json_object_new_string(apr_itoa(pool, visibility_s)));
    if (dlq_arn != NULL) {
        const char *policy = apr_psprintf(
            pool, "{\"deadLetterTargetArn\":\"%s\",\"maxReceiveCount\":\"3\"}", dlq_arn);
        json_object_object_add(attrs, "RedrivePolicy", json_object_new_string(policy));
    }
    json_object_object_add(req, "Attributes", attrs);
    return str_of(sqs("CreateQueue", req), "QueueUrl");
}

/* The main queue (returned) and its dead-letter queue (@p dlq). */
static const char *queues_create(const char *name, int visibility_s, const char **dlq)
{
    static const char *const arn[] = {"QueueArn", NULL};

    *dlq = queue_create(apr_pstrcat(pool, name, "-dlq", NULL), 30, NULL);
    return queue_create(name, visibility_s, str_of(queue_attrs(*dlq, arn), "QueueArn"));
}

static void send_body(const char *url, const char *body)
{
    json_object *req = queue_req(url);

    json_object_object_add(req, "MessageBody", json_object_new_string(body));
    sqs("SendMessage", req);
}

/* Messages in the queue, visible or in flight. */
static int queue_depth(const char *url)
{
    static const char *const names[] = {"ApproximateNumberOfMessages",
                                        "ApproximateNumberOfMessagesNotVisible", NULL};
    json_object *attrs = queue_attrs(url, names);

    return atoi(str_of(attrs, names[0])) + atoi(str_of(attrs, names[1]));
}

/* Receives (and so hides) up to 10 messages within @p wait_s; their bodies joined by '\n'. */
static const char *receive_bodies(const char *url, int wait_s, int *n)
{
    json_object *req = queue_req(url), *list = NULL;
    const char *bodies = "";

    json_object_object_add(req, "MaxNumberOfMessages", json_object_new_int(10));
    json_object_object_add(req, "WaitTimeSeconds", json_object_new_int(wait_s));
    json_object *doc = sqs("ReceiveMessage", req);
    *n = 0;
    if (json_object_object_get_ex(doc, "Messages", &list)) {
        for (size_t i = 0; i < json_object_array_length(list); i++) {
            json_object *m = json_object_array_get_idx(list, i);
            bodies = apr_pstrcat(pool, bodies, str_of(m, "Body"), "\n", NULL);
            (*n)++;
        }
    }
    return bodies;
}

/* Collects the dead-letter queue's messages until there are @p want (or @p timeout_ms passes). */
static const char *dlq_collect(const char *dlq, int want, long timeout_ms, int *got)
{
    long deadline = now_ms() + timeout_ms;
    const char *all = "";
    int n = 0;

    *got = 0;
    while (*got < want && now_ms() < deadline) {
        all = apr_pstrcat(pool, all, receive_bodies(dlq, 1, &n), NULL);
        *got += n;
    }
    return all;
}

/* ---- the consumer process ---- */

static void consumer_config(const char *queue_url, const consumer_opts_t *o)
{
    const char *handler =
        apr_psprintf(pool,
                     "#!/bin/sh\n"
                     "id=$(sed -n 's/.*\"event_id\":\"\\([^\"]*\\)\".*/\\1/p')\n"
                     "echo \"$id\" >> %s\n"
                     "sleep %.2f\n"
                     "echo \"$id\" >> %s\n"
                     "exit %d\n",
                     path_in("started"), o->sleep_s, path_in("handled"), o->exit_code);
    write_file("handler.sh", handler);
    /* listen_port is orderd's: accepted and ignored, so both can share one file. */
    const char *conf = apr_psprintf(pool,
                                    "# written by check_consumer\n"
                                    "listen_port = 8080\n"
                                    "sqs_queue_url = %s\n"
                                    "sqs_endpoint = %s\n"
                                    "aws_region = us-east-1\n"
                                    "aws_access_key_id = testing\n"
                                    "aws_secret_access_key = testing\n"
                                    "handler_command = /bin/sh %s\n"
                                    "consumer_wait_time_s = %d\n"
                                    "consumer_max_messages = %d\n"
                                    "consumer_handler_timeout_s = %d\n"
                                    "consumer_processed_ttl_s = 3600\n"
                                    "store = sqlite\n"
                                    "sqlite_path = %s\n"
                                    "log_level = info\n",
                                    queue_url, od_test_engine_url(engine), path_in("handler.sh"),
                                    o->wait_s, o->max_messages, o->timeout_s, path_in("dedupe.db"));
    write_file("consumer.conf", conf);
}

/* In the child: everything it uses is prepared before the fork. */
static void consumer_exec(pid_t parent, const char *bin, const char *conf, const char *log)
{
    sigset_t none;

    prctl(PR_SET_PDEATHSIG, SIGKILL); /* dies with the test, whatever way it ends */
    if (getppid() != parent) {
        _exit(127);
    }
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    int in = open("/dev/null", O_RDONLY);
    int out = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (in < 0 || out < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0) {
        _exit(127);
    }
    execl(bin, bin, "-c", conf, (char *) NULL);
    _exit(127);
}

/* Spawns $ORDERD_CONSUMER_BIN and waits until it receives (its start line in the log). */
static void consumer_start(void)
{
    const char *bin = getenv("ORDERD_CONSUMER_BIN");
    const char *conf = path_in("consumer.conf"), *log = path_in("consumer.log");
    pid_t parent = getpid();
    size_t before = strlen(read_file("consumer.log"));

    ck_assert_msg(bin != NULL && access(bin, X_OK) == 0,
                  "ORDERD_CONSUMER_BIN is not set to an executable");
    fflush(NULL);
    consumer = fork();
    ck_assert_int_ge(consumer, 0);
    if (consumer == 0) {
        consumer_exec(parent, bin, conf, log);
    }
    for (long deadline = now_ms() + START_MS; now_ms() < deadline; od_test_sleep_ms(20)) {
        if (strstr(read_file("consumer.log") + before, READY_MARK) != NULL) {
            return;
        }
        ck_assert_msg(waitpid(consumer, NULL, WNOHANG) == 0, "order-consumer exited at start:\n%s",
                      read_file("consumer.log"));
    }
    ck_abort_msg("order-consumer did not start in time:\n%s", read_file("consumer.log"));
}

/* Exit status of the consumer after @p sig (0..255, 128+signal), or -1 if still running after
 * @p timeout_ms (it is then killed). */
static int consumer_signal(int sig, long timeout_ms)
{
    int status = 0;

    ck_assert_int_gt(consumer, 0);
    kill(consumer, sig);
    for (long deadline = now_ms() + timeout_ms; now_ms() < deadline; od_test_sleep_ms(10)) {
        if (waitpid(consumer, &status, WNOHANG) == consumer) {
            consumer = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
    }
    kill(consumer, SIGKILL);
    waitpid(consumer, NULL, 0);
    consumer = 0;
    return -1;
}

static int consumer_alive(void)
{
    return consumer > 0 && waitpid(consumer, NULL, WNOHANG) == 0;
}

/* Waits until @p name has at least @p lines lines; returns whether it did in time. */
static int await_lines(const char *name, int lines, long timeout_ms)
{
    for (long deadline = now_ms() + timeout_ms; now_ms() < deadline; od_test_sleep_ms(20)) {
        if (count_lines(read_file(name), NULL) >= lines) {
            return 1;
        }
    }
    return 0;
}

static int await_empty(const char *url, long timeout_ms)
{
    for (long deadline = now_ms() + timeout_ms; now_ms() < deadline; od_test_sleep_ms(100)) {
        if (queue_depth(url) == 0) {
            return 1;
        }
    }
    return 0;
}

/* One integer from the consumer's SQLite dedupe store. */
static int db_int(const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int v = -1;

    ck_assert_int_eq(sqlite3_open_v2(path_in("dedupe.db"), &db, SQLITE_OPEN_READONLY, NULL),
                     SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW) {
        v = sqlite3_column_int(st, 0);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* ---- the binary against SQS ---- */

START_TEST(test_consumer_same_event_twice_runs_the_handler_once)
{
    const char *dlq = NULL, *q = queues_create("twice", 2, &dlq);
    consumer_opts_t o = {10, 5, 1, 0, 0};
    const char *id = event_id("twice", 1), *event = event_json(id);

    consumer_config(q, &o);
    consumer_start();
    /* Together (likely one batch), then once more after it was processed. */
    send_body(q, event);
    send_body(q, sns_envelope(event));
    ck_assert_msg(await_empty(q, 10000), "messages left in the queue:\n%s",
                  read_file("consumer.log"));
    send_body(q, sns_envelope(event));
    ck_assert_msg(await_empty(q, 10000), "the late duplicate was not deleted");
    od_test_sleep_ms(300);
    ck_assert_int_eq(count_lines(read_file("handled"), id), 1);
    ck_assert_int_eq(count_lines(read_file("handled"), NULL), 1);
    const char *log = read_file("consumer.log");
    ck_assert_int_eq(count_substr(log, "outcome=processed"), 1);
    ck_assert_int_eq(count_substr(log, "outcome=duplicate"), 2);
    ck_assert_int_eq(db_int("SELECT count(*) FROM processed_events WHERE state = 'done'"), 1);
    ck_assert_int_eq(consumer_signal(SIGTERM, STOP_MS), 0);
}
END_TEST

START_TEST(test_consumer_failing_handler_goes_to_the_dlq_after_3_receives)
{
    const char *dlq = NULL, *q = queues_create("fail", 1, &dlq);
    consumer_opts_t o = {10, 5, 1, 0, 1};
    const char *id = event_id("fail", 1);
    int got = 0;

    consumer_config(q, &o);
    consumer_start();
    send_body(q, event_json(id));
    const char *bodies = dlq_collect(dlq, 1, 12000, &got);
    ck_assert_msg(got == 1, "not in the dead-letter queue:\n%s", read_file("consumer.log"));
    ck_assert_ptr_nonnull(strstr(bodies, id));
    ck_assert_int_eq(count_lines(read_file("handled"), id), 3);
    ck_assert_int_eq(queue_depth(q), 0);
    ck_assert_int_eq(count_substr(read_file("consumer.log"), "outcome=failed"), 3);
    /* Released after each failure: nothing is marked done. */
    ck_assert_int_eq(db_int("SELECT count(*) FROM processed_events"), 0);
    ck_assert_int_eq(consumer_signal(SIGTERM, STOP_MS), 0);
}
END_TEST

START_TEST(test_consumer_killed_mid_batch_loses_nothing)
{
    const char *dlq = NULL, *q = queues_create("kill", 2, &dlq);
    consumer_opts_t o = {4, 2, 1, 0.5, 0};
    int n = 0;

    consumer_config(q, &o);
    for (int i = 0; i < 10; i++) {
        send_body(q, event_json(event_id("kill", i)));
    }
    consumer_start();
    /* Kill it while a later batch's handlers run (the earlier ones are done by then). */
    ck_assert_msg(await_lines("started", 5, 10000), "no second batch:\n%s",
                  read_file("consumer.log"));
    ck_assert_int_eq(consumer_signal(SIGKILL, STOP_MS), 128 + SIGKILL);
    od_test_sleep_ms(200); /* a handler's write in progress at the kill has landed */
    const char *started = read_file("started");
    ck_assert_int_lt(count_lines(read_file("handled"), NULL), 10); /* it was mid-work */
    consumer_start();
    for (long deadline = now_ms() + 40000; now_ms() < deadline; od_test_sleep_ms(200)) {
        if (db_int("SELECT count(*) FROM processed_events WHERE state = 'done'") == 10) {
            break;
        }
    }
    ck_assert_msg(await_empty(q, 5000), "messages left:\n%s", read_file("consumer.log"));
    const char *handled = read_file("handled");
    for (int i = 0; i < 10; i++) {
        const char *id = event_id("kill", i);
        int runs = count_lines(handled, id);
        ck_assert_msg(runs >= 1, "%s was lost:\n%s", id, read_file("consumer.log"));
        /* A second run only for an event whose handler had started before the kill. */
        ck_assert_msg(runs == 1 || count_lines(started, id) >= 1,
                      "%s ran %d times\nSTARTED:\n%s\nHANDLED:\n%s\nLOG:%s", id, runs, started,
                      handled, read_file("consumer.log"));
    }
    ck_assert_int_eq(db_int("SELECT count(*) FROM processed_events WHERE state = 'done'"), 10);
    ck_assert_int_eq(db_int("SELECT count(*) FROM processed_events"), 10);
    receive_bodies(dlq, 0, &n);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(consumer_signal(SIGTERM, STOP_MS), 0);
}
END_TEST

START_TEST(test_consumer_sigkill_takes_its_handlers_along)
{
    const char *dlq = NULL, *q = queues_create("orphan", 30, &dlq);
    consumer_opts_t o = {1, 5, 1, 1.0, 0};

    consumer_config(q, &o);
    consumer_start();
    send_body(q, event_json(event_id("orphan", 1)));
    ck_assert_msg(await_lines("started", 1, 10000), "the handler did not start");
    ck_assert_int_eq(consumer_signal(SIGKILL, STOP_MS), 128 + SIGKILL);
    od_test_sleep_ms(1500); /* the handler would have finished by now */
    ck_assert_int_eq(count_lines(read_file("handled"), NULL), 0);
}
END_TEST

START_TEST(test_consumer_sigterm_finishes_the_handler_and_deletes_nothing_unprocessed)
{
    const char *dlq = NULL, *q = queues_create("term", 10, &dlq);
    consumer_opts_t o = {1, 5, 1, 1.5, 0};
    const char *first = event_id("term", 1), *second = event_id("term", 2);
    int n = 0;

    consumer_config(q, &o);
    consumer_start();
    send_body(q, event_json(first));
    ck_assert_msg(await_lines("started", 1, 10000), "the handler did not start");
    send_body(q, event_json(second));
    long t0 = now_ms();
    ck_assert_int_eq(consumer_signal(SIGTERM, STOP_MS), 0);
    ck_assert_int_ge(now_ms() - t0, 700); /* it waited for the handler (1.5 s) */
    ck_assert_int_eq(count_lines(read_file("handled"), first), 1);
    ck_assert_int_eq(count_lines(read_file("started"), second), 0);
    /* The first was deleted; the second is still there, visible (never received). */
    const char *bodies = receive_bodies(q, 1, &n);
    ck_assert_int_eq(n, 1);
    ck_assert_ptr_nonnull(strstr(bodies, second));
    ck_assert_ptr_nonnull(strstr(read_file("consumer.log"), "outcome=processed"));
}
END_TEST

START_TEST(test_consumer_sigterm_during_a_long_poll_returns_what_it_brings)
{
    const char *dlq = NULL, *q = queues_create("poll", 30, &dlq);
    consumer_opts_t o = {10, 5, 3, 0, 0};
    const char *id = event_id("poll", 1);
    int n = 0;

    consumer_config(q, &o);
    consumer_start();
    od_test_sleep_ms(300); /* in its long poll now */
    kill(consumer, SIGTERM);
    send_body(q, event_json(id)); /* may come back from that poll, after the stop */
    ck_assert_int_eq(consumer_signal(SIGTERM, STOP_MS), 0);
    ck_assert_int_eq(count_lines(read_file("started"), NULL), 0);
    /* Not deleted, and (visibility 30 s) visible again at once if that poll took it. */
    const char *bodies = receive_bodies(q, 1, &n);
    ck_assert_int_eq(n, 1);
    ck_assert_ptr_nonnull(strstr(bodies, id));
}
END_TEST

START_TEST(test_consumer_invalid_messages_go_to_the_dlq_without_a_crash)
{
    const char *dlq = NULL, *q = queues_create("invalid", 1, &dlq);
    consumer_opts_t o = {10, 5, 1, 0, 0};
    static const char *const bad[] = {
        "SECRET-not-json {",
        "{\"SECRET\":\"no event_id\",\"event_type\":\"order.accepted\"}",
        "{\"Type\":\"Notification\",\"Message\":\"SECRET-garbage\"}",
        "{\"event_id\":\"\"}",
        "[\"SECRET\"]",
    };
    int n = (int) (sizeof(bad) / sizeof(bad[0])), got = 0;

    consumer_config(q, &o);
    consumer_start();
    for (int i = 0; i < n; i++) {
        send_body(q, bad[i]);
    }
    dlq_collect(dlq, n, 15000, &got);
    ck_assert_msg(got == n, "%d of %d in the dead-letter queue:\n%s", got, n,
                  read_file("consumer.log"));
    ck_assert_msg(consumer_alive(), "order-consumer died:\n%s", read_file("consumer.log"));
    ck_assert_int_eq(count_lines(read_file("started"), NULL), 0);
    const char *log = read_file("consumer.log");
    ck_assert_int_ge(count_substr(log, "outcome=invalid"), n);
    ck_assert_ptr_null(strstr(log, "SECRET")); /* bodies are never logged */
    ck_assert_int_eq(consumer_signal(SIGTERM, STOP_MS), 0);
}
END_TEST

/* ---- the dedupe protocol, on either backend ---- */

static void assert_claim(od_dedupe_t *d, const char *id, apr_time_t now, od_dedupe_outcome_e want,
                         od_dedupe_claim_t *out)
{
    ck_assert_int_eq(od_dedupe_claim(d, id, now, apr_time_from_sec(10), out, pool), APR_SUCCESS);
    ck_assert_int_eq(out->outcome, want);
}

static void check_dedupe_protocol(od_dedupe_t *d)
{
    apr_time_t t0 = apr_time_now(), s = APR_USEC_PER_SEC;
    apr_interval_time_t ttl = apr_time_from_sec(100);
    const char *a = event_id("dd-a", 1), *b = event_id("dd-b", 1);
    od_dedupe_claim_t c1, c2, c3;

    assert_claim(d, a, t0, OD_DEDUPE_CLAIMED, &c1);
    ck_assert_int_eq(c1.lease_until, t0 + 10 * s);
    assert_claim(d, a, t0 + 1 * s, OD_DEDUPE_BUSY, &c3);
    ck_assert_int_eq(c3.lease_until, t0 + 10 * s);
    /* The lease ran out: taken over, with a new token; the old one cannot release it. */
    assert_claim(d, a, t0 + 10 * s, OD_DEDUPE_CLAIMED, &c2);
    ck_assert_str_ne(c1.token, c2.token);
    ck_assert_int_eq(od_dedupe_release(d, a, c1.token, pool), APR_SUCCESS);
    assert_claim(d, a, t0 + 11 * s, OD_DEDUPE_BUSY, &c3);
    ck_assert_int_eq(c3.lease_until, t0 + 20 * s);
    /* Done: a duplicate within the TTL, even after a release; claimable once it expired. */
    ck_assert_int_eq(od_dedupe_complete(d, a, c2.token, t0 + 12 * s, ttl, pool), APR_SUCCESS);
    assert_claim(d, a, t0 + 13 * s, OD_DEDUPE_DONE, &c3);
    ck_assert_int_eq(od_dedupe_release(d, a, c2.token, pool), APR_SUCCESS);
    assert_claim(d, a, t0 + 14 * s, OD_DEDUPE_DONE, &c3);
    assert_claim(d, a, t0 + 113 * s, OD_DEDUPE_CLAIMED, &c3);
    /* Released after a failure: the next delivery claims it at once. */
    assert_claim(d, b, t0, OD_DEDUPE_CLAIMED, &c1);
    ck_assert_int_eq(od_dedupe_release(d, b, c1.token, pool), APR_SUCCESS);
    assert_claim(d, b, t0 + 1 * s, OD_DEDUPE_CLAIMED, &c2);
}

START_TEST(test_consumer_dedupe_sqlite_protocol)
{
    od_dedupe_t *d = NULL;

    ck_assert_int_eq(od_dedupe_sqlite_create(&d, path_in("dd.db"), log_, pool), APR_SUCCESS);
    ck_assert_str_eq(od_dedupe_name(d), "sqlite");
    check_dedupe_protocol(d);
}
END_TEST

START_TEST(test_consumer_dedupe_sqlite_is_durable_and_shared)
{
    apr_pool_t *p1 = NULL;
    od_dedupe_t *d1 = NULL, *d2 = NULL;
    od_dedupe_claim_t c;
    apr_time_t t0 = apr_time_now();

    apr_pool_create(&p1, pool);
    ck_assert_int_eq(od_dedupe_sqlite_create(&d1, path_in("dd.db"), log_, p1), APR_SUCCESS);
    ck_assert_int_eq(od_dedupe_sqlite_create(&d2, path_in("dd.db"), log_, pool), APR_SUCCESS);
    assert_claim(d1, "E1", t0, OD_DEDUPE_CLAIMED, &c);
    assert_claim(d2, "E1", t0, OD_DEDUPE_BUSY, &c); /* a second consumer on the same file */
    assert_claim(d1, "E2", t0, OD_DEDUPE_CLAIMED, &c);
    ck_assert_int_eq(od_dedupe_complete(d1, "E2", c.token, t0, apr_time_from_sec(60), p1),
                     APR_SUCCESS);
    apr_pool_destroy(p1);
    ck_assert_int_eq(od_dedupe_sqlite_create(&d1, path_in("dd.db"), log_, pool), APR_SUCCESS);
    assert_claim(d1, "E2", t0 + 1, OD_DEDUPE_DONE, &c);
}
END_TEST

START_TEST(test_consumer_dedupe_sqlite_unusable_path_fails_cleanly)
{
    od_dedupe_t *d = NULL;

    ck_assert_int_eq(od_dedupe_sqlite_create(&d, "/nonexistent/dir/dd.db", log_, pool),
                     OD_EUNAVAIL);
    ck_assert_ptr_null(d);
}
END_TEST

static void ddb_create_table(const char *table)
{
    const char *body = apr_psprintf(
        pool,
        "{\"TableName\":\"%s\",\"AttributeDefinitions\":[{\"AttributeName\":\"pk\","
        "\"AttributeType\":\"S\"}],\"KeySchema\":[{\"AttributeName\":\"pk\",\"KeyType\":"
        "\"HASH\"}],\"BillingMode\":\"PAY_PER_REQUEST\"}",
        table);
    call("dynamodb", "DynamoDB_20120810.CreateTable", owned(json_tokener_parse(body)));
}

START_TEST(test_consumer_dedupe_dynamodb_protocol)
{
    const char *table = apr_psprintf(pool, "dedupe-%ld", (long) getpid());
    od_dedupe_t *d = NULL;

    ddb_create_table(table);
    ck_assert_int_eq(
        od_dedupe_dynamodb_create(&d, aws, od_test_engine_url(engine), table, log_, pool),
        APR_SUCCESS);
    ck_assert_str_eq(od_dedupe_name(d), "dynamodb");
    check_dedupe_protocol(d);
}
END_TEST

/* ---- events, the handler runner, the configuration ---- */

START_TEST(test_consumer_event_parse_raw_and_sns)
{
    od_consumer_event_t ev;
    const char *why = NULL, *raw = event_json("E-raw");
    const char *env = sns_envelope(raw);

    ck_assert_int_eq(od_consumer_event_parse(&ev, &why, raw, strlen(raw), pool), APR_SUCCESS);
    ck_assert_str_eq(ev.event_id, "E-raw");
    ck_assert_int_eq(ev.enveloped, 0);
    ck_assert_ptr_eq(ev.json, raw);
    ck_assert_int_eq(od_consumer_event_parse(&ev, &why, env, strlen(env), pool), APR_SUCCESS);
    ck_assert_str_eq(ev.event_id, "E-raw");
    ck_assert_int_eq(ev.enveloped, 1);
    ck_assert_uint_eq(ev.len, strlen(raw));
    ck_assert_str_eq(ev.json, raw); /* the handler gets the event, not the envelope */
}
END_TEST

START_TEST(test_consumer_event_parse_rejects_what_is_not_an_event)
{
    static const char *const bad[] = {
        "",
        "not json",
        "{\"event_id\":\"a\",\"event_id\":\"b\"}",
        "[1,2]",
        "{\"event_type\":\"order.accepted\"}",
        "{\"event_id\":42}",
        "{\"event_id\":\"\"}",
        "{\"event_id\":\"has space\"}",
        "{\"Type\":\"Notification\"}",
        "{\"Type\":\"Notification\",\"Message\":\"not json\"}",
        "{\"Type\":\"Notification\",\"Message\":\"{\\\"x\\\":1}\"}",
    };
    od_consumer_event_t ev;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *why = NULL;
        ck_assert_msg(od_consumer_event_parse(&ev, &why, bad[i], strlen(bad[i]), pool) == OD_EINVAL,
                      "accepted: %s", bad[i]);
        ck_assert_ptr_nonnull(why);
    }
}
END_TEST

START_TEST(test_consumer_exec_passes_stdin_and_exit_status)
{
    od_consumer_exit_t how;
    const char *cmd = apr_psprintf(pool, "cat > %s", path_in("in"));
    static const char input[] = "{\"event_id\":\"E1\"}";

    ck_assert_int_eq(od_consumer_exec(cmd, input, strlen(input), apr_time_from_sec(5), &how),
                     APR_SUCCESS);
    ck_assert_int_eq(how.code, 0);
    ck_assert_str_eq(read_file("in"), input);
    ck_assert_int_eq(od_consumer_exec("exit 3", "", 0, apr_time_from_sec(5), &how), APR_EGENERAL);
    ck_assert_int_eq(how.code, 3);
    ck_assert_int_eq(how.timedout, 0);
    ck_assert_int_eq(od_consumer_exec("kill -9 $$", "", 0, apr_time_from_sec(5), &how),
                     APR_EGENERAL);
    ck_assert_int_eq(how.signal, SIGKILL);
    ck_assert_int_eq(od_consumer_exec("/nonexistent/handler", "", 0, apr_time_from_sec(5), &how),
                     APR_EGENERAL);
    ck_assert_int_eq(how.code, 127);
}
END_TEST

START_TEST(test_consumer_exec_kills_a_handler_past_its_timeout)
{
    od_consumer_exit_t how;
    /* A child of the handler too: the whole process group goes. */
    const char *cmd = apr_psprintf(pool, "(sleep 3; touch %s) & sleep 5", path_in("late"));
    long t0 = now_ms();

    ck_assert_int_eq(od_consumer_exec(cmd, "", 0, apr_time_from_msec(300), &how), APR_EGENERAL);
    ck_assert_int_eq(how.timedout, 1);
    ck_assert_int_lt(now_ms() - t0, 2000);
    od_test_sleep_ms(3500);
    ck_assert_int_eq(access(path_in("late"), F_OK), -1);
}
END_TEST

START_TEST(test_consumer_exec_survives_a_handler_that_ignores_stdin)
{
    od_consumer_exit_t how;
    apr_size_t len = 1024 * 1024; /* far more than a pipe holds */
    char *big = apr_palloc(pool, len);

    memset(big, 'x', len);
    ck_assert_int_eq(od_consumer_exec("exit 0", big, len, apr_time_from_sec(5), &how), APR_SUCCESS);
    ck_assert_int_eq(od_consumer_exec("sleep 5", big, len, apr_time_from_msec(300), &how),
                     APR_EGENERAL);
    ck_assert_int_eq(how.timedout, 1);
}
END_TEST

START_TEST(test_consumer_config_accepts_orderd_keys_and_requires_its_own)
{
    od_settings_t s;
    const char *err = NULL;

    write_file("ok.conf", "listen_port = 9000\nworker_threads = 4\n"
                          "sqs_queue_url = http://127.0.0.1:1/123456789012/q\n"
                          "handler_command = /bin/true\nconsumer_wait_time_s = 2\n"
                          "consumer_max_messages = 5\nconsumer_processed_ttl_s = 60\n"
                          "consumer_handler_timeout_s = 7\n");
    ck_assert_int_eq(od_consumer_load_config(&s, path_in("ok.conf"), &err, pool), APR_SUCCESS);
    ck_assert_str_eq(s.handler_command, "/bin/true");
    ck_assert_int_eq(s.consumer_max_messages, 5);
    ck_assert_int_eq(s.consumer_handler_timeout_s, 7);
    write_file("nohandler.conf", "sqs_queue_url = http://127.0.0.1:1/123456789012/q\n");
    ck_assert_int_eq(od_consumer_load_config(&s, path_in("nohandler.conf"), &err, pool),
                     OD_ECONFIG);
    ck_assert_ptr_nonnull(strstr(err, "handler_command"));
    write_file("unknown.conf", "handler_command = x\nconsumer_colour = blue\n");
    ck_assert_int_eq(od_consumer_load_config(&s, path_in("unknown.conf"), &err, pool), OD_ECONFIG);
    ck_assert_ptr_nonnull(strstr(err, "unknown.conf:2"));
    write_file("range.conf", "consumer_max_messages = 11\n");
    ck_assert_int_eq(od_consumer_load_config(&s, path_in("range.conf"), &err, pool), OD_ECONFIG);
    ck_assert_int_ne(od_consumer_load_config(&s, path_in("missing.conf"), &err, pool), APR_SUCCESS);
}
END_TEST

Suite *od_consumer_suite(void)
{
    Suite *s = suite_create("consumer");
    TCase *unit = tcase_create("unit");
    TCase *ddb = tcase_create("dedupe_dynamodb");
    TCase *sqs_tc = tcase_create("sqs");

    tcase_add_checked_fixture(unit, setup, teardown);
    tcase_set_timeout(unit, 30);
    tcase_add_test(unit, test_consumer_dedupe_sqlite_protocol);
    tcase_add_test(unit, test_consumer_dedupe_sqlite_is_durable_and_shared);
    tcase_add_test(unit, test_consumer_dedupe_sqlite_unusable_path_fails_cleanly);
    tcase_add_test(unit, test_consumer_event_parse_raw_and_sns);
    tcase_add_test(unit, test_consumer_event_parse_rejects_what_is_not_an_event);
    tcase_add_test(unit, test_consumer_exec_passes_stdin_and_exit_status);
    tcase_add_test(unit, test_consumer_exec_kills_a_handler_past_its_timeout);
    tcase_add_test(unit, test_consumer_exec_survives_a_handler_that_ignores_stdin);
    tcase_add_test(unit, test_consumer_config_accepts_orderd_keys_and_requires_its_own);
    suite_add_tcase(s, unit);

    tcase_add_unchecked_fixture(ddb, moto_setup, moto_teardown);
    tcase_add_checked_fixture(ddb, setup, teardown);
    tcase_set_timeout(ddb, 30);
    tcase_add_test(ddb, test_consumer_dedupe_dynamodb_protocol);
    suite_add_tcase(s, ddb);

    tcase_add_unchecked_fixture(sqs_tc, moto_setup, moto_teardown);
    tcase_add_checked_fixture(sqs_tc, setup, teardown);
    tcase_set_timeout(sqs_tc, 60);
    tcase_add_test(sqs_tc, test_consumer_same_event_twice_runs_the_handler_once);
    tcase_add_test(sqs_tc, test_consumer_failing_handler_goes_to_the_dlq_after_3_receives);
    tcase_add_test(sqs_tc, test_consumer_killed_mid_batch_loses_nothing);
    tcase_add_test(sqs_tc, test_consumer_sigkill_takes_its_handlers_along);
    tcase_add_test(sqs_tc,
                   test_consumer_sigterm_finishes_the_handler_and_deletes_nothing_unprocessed);
    tcase_add_test(sqs_tc, test_consumer_sigterm_during_a_long_poll_returns_what_it_brings);
    tcase_add_test(sqs_tc, test_consumer_invalid_messages_go_to_the_dlq_without_a_crash);
    suite_add_tcase(s, sqs_tc);
    return s;
}

/*
 * The outbox end to end, on the real binary: the backlog gauges (orderd_outbox_pending,
 * orderd_outbox_oldest_pending_age_seconds) count every unpublished event while the sink is down
 * and fall to 0 after it recovers, on SQLite and on DynamoDB (DynamoDB Local); two instances on
 * one DynamoDB table publish each event once; the events of an instance killed before publishing
 * them are taken over by the other once their lease has run out.
 */
#ifndef _GNU_SOURCE /* APR's pkg-config flags may already define it */
#define _GNU_SOURCE /* prlimit */
#endif
#include "od_event.h"
#include "od_log.h"
#include "od_outbox.h"
#include "od_sink.h"
#include "od_sqlite.h"
#include "od_suites.h"
#include "od_test_engines.h"
#include "od_test_util.h"

#include <apr_hash.h>
#include <apr_strings.h>
#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>
#include <json-c/json.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

/* ---- in process: the prompt ring ---- */

#define RING_ORDERS 40

/* A sink that holds every publish until opened, and counts each event id it is given. */
typedef struct gate_t {
    apr_thread_mutex_t *lock;
    apr_thread_cond_t *opened;
    int open;
    apr_pool_t *pool;
    apr_hash_t *seen;
    int published, twice;
} gate_t;

static apr_status_t gate_publish(void *impl, const od_event_t *events, int n, apr_status_t *results,
                                 apr_pool_t *p)
{
    gate_t *g = impl;

    apr_thread_mutex_lock(g->lock);
    while (!g->open) {
        apr_thread_cond_wait(g->opened, g->lock);
    }
    for (int i = 0; i < n; i++) {
        if (apr_hash_get(g->seen, events[i].event_id, APR_HASH_KEY_STRING) != NULL) {
            g->twice++;
        } else {
            const char *id = apr_pstrdup(g->pool, events[i].event_id);
            apr_hash_set(g->seen, id, APR_HASH_KEY_STRING, id);
            g->published++;
        }
        results[i] = APR_SUCCESS;
    }
    apr_thread_mutex_unlock(g->lock);
    return APR_SUCCESS;
}

static const od_sink_ops_t gate_ops = {"gate", 0, gate_publish};

static int gate_published(gate_t *g)
{
    apr_thread_mutex_lock(g->lock);
    int n = g->published;
    apr_thread_mutex_unlock(g->lock);
    return n;
}

/* Stores an order with its event (due a minute later, as the API would with
 * events_retry_after_s = 60) and submits the event to the outbox, as the API does. */
static void ring_order(od_store_t *store, od_outbox_t *ob, int i, apr_pool_t *p)
{
    const char *id = apr_psprintf(p, "01ORDER%019d", i), *event_id = apr_psprintf(p, "EV%024d", i);
    const char *body = apr_psprintf(p, "{\"order_id\":\"%s\"}", id);
    apr_time_t now = apr_time_now();
    od_store_order_t o = {.caller = "c",
                          .idem_key = apr_psprintf(p, "%064d", i),
                          .order_id = id,
                          .body = body,
                          .body_len = strlen(body),
                          .created_at = now,
                          .expires_at = now + apr_time_from_sec(15),
                          .event_id = event_id,
                          .event_due = now + apr_time_from_sec(60)};
    od_store_result_t res;

    o.event = od_event_render(event_id, body, now, &o.event_len, p);
    ck_assert_int_eq(od_store_put(store, &o, &res, p), APR_SUCCESS);
    od_store_event_t ev = {event_id, id, o.event, o.event_len, now, 0, 0, res.event_seq};
    od_outbox_submit(ob, &ev);
}

/* The ring (8 events) fills while the sink holds the first round: the events it turns away wait
 * in the store. Once the sink answers, they are fetched from there as soon as the ring has
 * caught up, not a lease (a minute here) later, and none is published twice (the ring's own,
 * whose marks the writer may not have committed yet, are skipped). */
START_TEST(test_outbox_full_ring_caught_up_from_store)
{
    apr_pool_t *p = NULL;
    od_log_t *log = NULL;
    od_store_t *store = NULL;
    od_sink_t *sink = NULL;
    od_outbox_t *ob = NULL;
    gate_t g = {0};
    char dir[] = "/tmp/orderd-ring-XXXXXX";

    apr_pool_create(&p, NULL);
    ck_assert_ptr_nonnull(mkdtemp(dir));
    od_log_create(&log, OD_LOG_ERROR, stderr, p);
    ck_assert_int_eq(od_sqlite_create(&store, apr_pstrcat(p, dir, "/o.db", NULL), 2, 64,
                                      apr_time_from_sec(15), log, p),
                     APR_SUCCESS);
    g.pool = p;
    g.seen = apr_hash_make(p);
    apr_thread_mutex_create(&g.lock, APR_THREAD_MUTEX_DEFAULT, p);
    apr_thread_cond_create(&g.opened, p);
    ck_assert_int_eq(od_sink_create(&sink, &gate_ops, &g, 1, log, p), APR_SUCCESS);
    od_outbox_options_t opts = {apr_time_from_sec(60), 4, 8, 0};
    ck_assert_int_eq(od_outbox_create(&ob, store, sink, &opts, log, p), APR_SUCCESS);
    for (int i = 0; i < RING_ORDERS; i++) {
        ring_order(store, ob, i, p);
    }
    od_outbox_stats_t st;
    od_outbox_stats(ob, &st);
    ck_assert_uint_gt(st.dropped, 0); /* the ring did turn events away */
    apr_thread_mutex_lock(g.lock);
    g.open = 1;
    apr_thread_cond_broadcast(g.opened);
    apr_thread_mutex_unlock(g.lock);
    for (int waited = 0; waited < 5000 && gate_published(&g) < RING_ORDERS; waited += 20) {
        od_test_sleep_ms(20);
    }
    ck_assert_int_eq(gate_published(&g), RING_ORDERS);
    od_outbox_stop(ob, apr_time_from_sec(1));
    ck_assert_int_eq(g.twice, 0);
    apr_pool_destroy(p);
    od_test_remove_tree(dir);
}
END_TEST

Suite *od_outbox_suite(void);

#define OB_ORDER_FMT                                                                               \
    "{\"customer_id\":\"CUST-%06d\",\"currency\":\"EUR\",\"items\":[{\"sku\":\"SKU-3003\","        \
    "\"quantity\":1,\"unit_price_cents\":%d}]}"
#define OB_STOP_MS 20000L
#define OB_PAD_EVENTS 2048 /* 4 KiB each: the events file starts at 8 MiB */
#define OB_TWIN_POSTERS 4
#define OB_TWIN_ORDERS 75 /* per poster: 300 in all */

static od_test_engine_t *engine; /* DynamoDB Local, or NULL: the SQLite store */
static char base[PATH_MAX];

static void base_setup(void)
{
    snprintf(base, sizeof(base), "/tmp/orderd-outbox-suite-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(base));
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    setenv("AWS_ACCESS_KEY_ID", "AKIDOUTBOX", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "outbox-secret", 1);
    unsetenv("ORDERD_TEST_STORE_CONF");
}

static void ddblocal_setup(void)
{
    base_setup();
    engine = od_test_ddblocal_start();
}

static void teardown(void)
{
    od_test_engine_stop(engine);
    engine = NULL;
    od_test_remove_tree(base);
}

/* ---- orderd ---- */

/* The file sink into the environment's own events.jsonl, then @p more; with DynamoDB Local
 * running, the DynamoDB store on table @p table. */
static const char *conf(apr_pool_t *p, od_test_env_t *env, const char *table, const char *more)
{
    const char *c = apr_psprintf(p, "events_sink = file\nevents_file = %s/events.jsonl\n%s",
                                 od_test_env_dir(env), more);
    if (engine == NULL) {
        return c;
    }
    return apr_psprintf(p,
                        "%sstore = dynamodb\naws_region = us-east-1\ndynamodb_endpoint = %s\n"
                        "dynamodb_table = %s\naws_retry_base_ms = 5\naws_retry_cap_ms = 50\n",
                        c, od_test_engine_url(engine), table);
}

static od_test_env_t *start(apr_pool_t *p, const char *table, const char *more)
{
    od_test_env_t *env = od_test_env_create(base);

    ck_assert_ptr_nonnull(env);
    ck_assert_int_eq(od_test_env_write_config(env, conf(p, env, table, more)), 0);
    ck_assert_msg(od_test_server_start(env) == 0, "orderd did not start: %s",
                  od_test_server_log(env));
    return env;
}

static void stop(od_test_env_t *env)
{
    int rc = od_test_server_stop(env, OB_STOP_MS);
    ck_assert_msg(rc == 0, "orderd exit %d: %s", rc, od_test_server_log(env));
}

static const char *events_path(apr_pool_t *p, const od_test_env_t *env)
{
    return apr_pstrcat(p, od_test_env_dir(env), "/events.jsonl", NULL);
}

/* POSTs a new order (customer @p n); returns the status. */
static long post(od_test_env_t *env, int n)
{
    char body[256];
    od_test_request_t req = {.method = "POST", .path = "/orders", .body = body};
    od_test_response_t resp;

    snprintf(body, sizeof(body), OB_ORDER_FMT, n, 100 + n % 1000);
    req.body_len = strlen(body);
    od_test_http(env, &req, &resp);
    long status = resp.status;
    od_test_response_free(&resp);
    return status;
}

/* Waits (bounded) until orderd_outbox_pending is @p n; returns the last value read. */
static double await_pending(od_test_env_t *env, double n, long timeout_ms)
{
    double v = od_test_metric(env, "orderd_outbox_pending");

    for (long waited = 0; v != n && waited < timeout_ms; waited += 100) {
        od_test_sleep_ms(100);
        v = od_test_metric(env, "orderd_outbox_pending");
    }
    return v;
}

/* Adds the event_id of each line of @p path to @p seen (if not NULL); returns the line count. */
static int collect(const char *path, apr_hash_t *seen)
{
    FILE *f = fopen(path, "r");
    char line[8192];
    int n = 0;

    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        json_object *doc = json_tokener_parse(line), *v = NULL;
        if (seen != NULL && json_object_object_get_ex(doc, "event_id", &v)) {
            const char *id = json_object_get_string(v);
            apr_pool_t *p = apr_hash_pool_get(seen);
            apr_hash_set(seen, apr_pstrdup(p, id), APR_HASH_KEY_STRING, "");
        }
        json_object_put(doc);
        n++;
    }
    if (f != NULL) {
        fclose(f);
    }
    return n;
}

/* Waits (bounded) until the files @p a and @p b (NULL: none) hold @p n distinct events. */
static int await_distinct(apr_pool_t *p, const char *a, const char *b, int n, long timeout_ms)
{
    int got = 0;

    for (long waited = 0; waited <= timeout_ms; waited += 100) {
        apr_hash_t *seen = apr_hash_make(p);
        collect(a, seen);
        if (b != NULL) {
            collect(b, seen);
        }
        got = (int) apr_hash_count(seen);
        if (got >= n) {
            break;
        }
        od_test_sleep_ms(100);
    }
    return got;
}

/* ---- the backlog while the sink is down ---- */

/* Writes @p n padding lines (4 KiB each, events of no accepted order) to @p path. */
static void pad_events(const char *path, int n)
{
    FILE *f = fopen(path, "w");

    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < n; i++) {
        fprintf(f, "{\"event_id\":\"PAD%08d\",\"pad\":\"%04000d\"}\n", i, i);
    }
    ck_assert_int_eq(fclose(f), 0);
}

/* The file sink fails (a file size limit on orderd at the events file's size: every write of it
 * fails with EFBIG, as on a full disk; the file starts at 8 MiB, far beyond the store's files in
 * this run, so only its writes reach the limit). Every accepted order's event then shows in
 * orderd_outbox_pending and keeps showing while the relay retries with backoff (sampled for 3 s,
 * longer than a relay round and a first backoff), and the oldest's age keeps growing; once the
 * sink is back both fall to 0. */
START_TEST(test_outbox_backlog_gauges_follow_unpublished_events)
{
    apr_pool_t *p = NULL;
    const int n = 20;
    struct stat st;

    apr_pool_create(&p, NULL);
    od_test_env_t *env = od_test_env_create(base);
    ck_assert_ptr_nonnull(env);
    const char *events = events_path(p, env);
    pad_events(events, OB_PAD_EVENTS);
    signal(SIGXFSZ, SIG_IGN);
    ck_assert_int_eq(
        od_test_env_write_config(env, conf(p, env, "backlog", "events_retry_after_s = 1\n")), 0);
    ck_assert_msg(od_test_server_start(env) == 0, "orderd did not start: %s",
                  od_test_server_log(env));
    ck_assert_int_eq(stat(events, &st), 0);
    ck_assert_int_eq(od_test_server_limit_fsize(env, (long long) st.st_size),
                     0); /* no room for a single event */
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(post(env, i), 201);
    }
    ck_assert_int_eq((int) await_pending(env, n, 15000), n);
    double age = od_test_metric(env, "orderd_outbox_oldest_pending_age_seconds");
    ck_assert_msg(age > 0, "oldest pending age %f", age);
    for (int i = 0; i < 30; i++) {
        od_test_sleep_ms(100);
        ck_assert_int_eq((int) od_test_metric(env, "orderd_outbox_pending"), n);
    }
    ck_assert_double_gt(od_test_metric(env, "orderd_outbox_oldest_pending_age_seconds"), age);
    ck_assert_int_eq(collect(events, NULL), OB_PAD_EVENTS); /* nothing got through */
    ck_assert_int_eq(od_test_server_limit_fsize(env, -1), 0);
    ck_assert_int_eq(await_distinct(p, events, NULL, OB_PAD_EVENTS + n, 30000), OB_PAD_EVENTS + n);
    ck_assert_int_eq((int) await_pending(env, 0, 15000), 0);
    ck_assert_double_eq(od_test_metric(env, "orderd_outbox_oldest_pending_age_seconds"), 0);
    stop(env);
    od_test_env_destroy(env);
    apr_pool_destroy(p);
}
END_TEST

/* ---- two instances on one DynamoDB table ---- */

typedef struct poster_t {
    od_test_env_t *env;
    int first;
    int created;
} poster_t;

static void *poster(void *data)
{
    poster_t *ps = data;

    for (int i = 0; i < OB_TWIN_ORDERS; i++) {
        ps->created += post(ps->env, ps->first + i) == 201;
    }
    return NULL;
}

/* Orders go to two instances on one table at once; across their two events files every event
 * appears exactly once, also after waiting out more than a lease and a relay round, by when a
 * relay that took another instance's events would have published them again. @p relay_only:
 * every event is left to the relays (the fault switch turns the prompt path off, as when it
 * falls behind or its instance dies), and both instances are stopped (SIGSTOP) until all are
 * due, then resumed together: both relays find the same events due at the same moment. */
static void two_instances_publish_once(const char *table, int relay_only)
{
    apr_pool_t *p = NULL;
    poster_t ps[OB_TWIN_POSTERS];
    pthread_t t[OB_TWIN_POSTERS];
    const char *more = "events_retry_after_s = 3\n";
    int created = 0;

    apr_pool_create(&p, NULL);
    if (relay_only) {
        setenv("ORDERD_FAULT_SKIP_PROMPT_PUBLISH", "1", 1);
    }
    od_test_env_t *a = start(p, table, more), *b = start(p, table, more);
    unsetenv("ORDERD_FAULT_SKIP_PROMPT_PUBLISH");
    for (int i = 0; i < OB_TWIN_POSTERS; i++) {
        ps[i] = (poster_t){i % 2 ? b : a, 1000 * (i + 1), 0};
        pthread_create(&t[i], NULL, poster, &ps[i]);
    }
    for (int i = 0; i < OB_TWIN_POSTERS; i++) {
        pthread_join(t[i], NULL);
        created += ps[i].created;
    }
    ck_assert_int_eq(created, OB_TWIN_POSTERS * OB_TWIN_ORDERS);
    if (relay_only) {
        ck_assert_int_eq(od_test_server_signal(a, SIGSTOP), 0);
        ck_assert_int_eq(od_test_server_signal(b, SIGSTOP), 0);
        od_test_sleep_ms(3500); /* every event is due now */
        ck_assert_int_eq(od_test_server_signal(a, SIGCONT), 0);
        ck_assert_int_eq(od_test_server_signal(b, SIGCONT), 0);
    }
    const char *ea = events_path(p, a), *eb = events_path(p, b);
    ck_assert_int_eq(await_distinct(p, ea, eb, created, 30000), created);
    od_test_sleep_ms(5000);
    stop(a);
    stop(b);
    int lines = collect(ea, NULL) + collect(eb, NULL);
    ck_assert_msg(lines == created, "%d events published %d times", created, lines);
    od_test_env_destroy(a);
    od_test_env_destroy(b);
    apr_pool_destroy(p);
}

/* Normal running, no failure. */
START_TEST(test_outbox_two_instances_publish_each_event_once)
{
    two_instances_publish_once("twins", 0);
}
END_TEST

#ifdef ORDERD_FAULT_INJECTION
/* Every event left to the relays: each relay claims an event before publishing it, and only the
 * claim's winner publishes. */
START_TEST(test_outbox_two_relays_publish_each_event_once)
{
    two_instances_publish_once("relays", 1);
}
END_TEST

/* An instance dies (kill -9) before publishing its events: the other publishes every one of
 * them, once, after their lease (events_retry_after_s from their creation). */
START_TEST(test_outbox_dead_instance_events_taken_over)
{
    apr_pool_t *p = NULL;
    const int n = 20;
    const char *more = "events_retry_after_s = 4\n"; /* far longer than posting them takes */

    apr_pool_create(&p, NULL);
    od_test_env_t *b = start(p, "takeover", more);
    setenv("ORDERD_FAULT_SKIP_PROMPT_PUBLISH", "1", 1);
    od_test_env_t *a = start(p, "takeover", more);
    unsetenv("ORDERD_FAULT_SKIP_PROMPT_PUBLISH");
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(post(a, 5000 + i), 201);
    }
    ck_assert_int_eq(od_test_server_kill(a), 0);
    const char *ea = events_path(p, a), *eb = events_path(p, b);
    ck_assert_int_eq(await_distinct(p, eb, NULL, n, 30000), n);
    od_test_sleep_ms(5000); /* more than a lease: nothing is published twice meanwhile */
    stop(b);
    ck_assert_int_eq(collect(ea, NULL), 0);
    ck_assert_int_eq(collect(eb, NULL), n);
    od_test_env_destroy(a);
    od_test_env_destroy(b);
    apr_pool_destroy(p);
}
END_TEST
#endif

Suite *od_outbox_suite(void)
{
    Suite *s = suite_create("outbox");
    TCase *sqlite = tcase_create("sqlite");
    TCase *ddb = tcase_create("dynamodb");

    tcase_add_unchecked_fixture(sqlite, base_setup, teardown);
    tcase_set_timeout(sqlite, 120);
    tcase_add_test(sqlite, test_outbox_backlog_gauges_follow_unpublished_events);
    suite_add_tcase(s, sqlite);
    tcase_add_unchecked_fixture(ddb, ddblocal_setup, teardown);
    tcase_set_timeout(ddb, 120);
    tcase_add_test(ddb, test_outbox_backlog_gauges_follow_unpublished_events);
    tcase_add_test(ddb, test_outbox_two_instances_publish_each_event_once);
#ifdef ORDERD_FAULT_INJECTION
    tcase_add_test(ddb, test_outbox_two_relays_publish_each_event_once);
    tcase_add_test(ddb, test_outbox_dead_instance_events_taken_over);
#endif
    suite_add_tcase(s, ddb);
    TCase *ring = tcase_create("ring");
    tcase_set_timeout(ring, 60);
    tcase_add_test(ring, test_outbox_full_ring_caught_up_from_store);
    suite_add_tcase(s, ring);
    return s;
}

/* Tests of od_sqlite: the atomic put-unless-duplicate, TTL at check time, concurrency,
 * durability across reopen, and failure to open. */
#include "od_sqlite.h"
#include "od_status.h"
#include "od_suites.h"

#include <apr_strings.h>
#include <apr_thread_proc.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define TTL apr_time_from_sec(15)

static apr_pool_t *pool;
static od_log_t *log_;
static char dir[64];
/* Test times are anchored at the real clock: the store purges idempotency records that expired
 * by the real clock, so times in the past would vanish between two puts. */
static apr_time_t t0;

static void setup(void)
{
    apr_pool_create(&pool, NULL);
    od_log_create(&log_, OD_LOG_WARN, stderr, pool);
    t0 = apr_time_now();
    strcpy(dir, "/tmp/od-sqlite-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
    apr_pool_destroy(pool);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static od_store_t *open_store(apr_pool_t *p)
{
    od_store_t *s = NULL;
    ck_assert_int_eq(od_sqlite_create(&s, apr_pstrcat(p, dir, "/o.db", NULL), 4, 64, log_, p),
                     APR_SUCCESS);
    return s;
}

static od_store_order_t order(const char *caller, const char *key, const char *id, apr_time_t at)
{
    const char *body = apr_psprintf(pool, "{\"order_id\":\"%s\"}", id);
    od_store_order_t o = {.caller = caller,
                          .idem_key = key,
                          .order_id = id,
                          .body = body,
                          .body_len = strlen(body),
                          .created_at = at,
                          .expires_at = at + TTL};
    return o;
}

START_TEST(test_sqlite_put_then_replay)
{
    od_store_t *s = open_store(pool);
    od_store_result_t r;
    od_store_order_t a = order("c1", "k1", "01AAAAAAAAAAAAAAAAAAAAAAAA", t0);
    od_store_order_t b = order("c1", "k1", "01BBBBBBBBBBBBBBBBBBBBBBBB", t0 + TTL - 1);

    ck_assert_int_eq(od_store_put(s, &a, &r, pool), APR_SUCCESS);
    ck_assert_int_eq(r.outcome, OD_STORE_CREATED);
    ck_assert_str_eq(r.order_id, a.order_id);
    ck_assert_int_eq(od_store_put(s, &b, &r, pool), APR_SUCCESS);
    ck_assert_int_eq(r.outcome, OD_STORE_REPLAYED);
    ck_assert_str_eq(r.order_id, a.order_id);
    ck_assert_str_eq(r.body, a.body);
    ck_assert_uint_eq(r.body_len, a.body_len);
    ck_assert_int_eq(r.created_at, a.created_at);
    ck_assert_str_eq(od_store_name(s), "sqlite");
}
END_TEST

START_TEST(test_sqlite_ttl_enforced_at_check_time)
{
    od_store_t *s = open_store(pool);
    od_store_result_t r;
    od_store_order_t a = order("c1", "k1", "01AAAAAAAAAAAAAAAAAAAAAAAA", t0);
    od_store_order_t b = order("c1", "k1", "01BBBBBBBBBBBBBBBBBBBBBBBB", t0 + TTL);
    od_store_order_t c = order("c1", "k1", "01CCCCCCCCCCCCCCCCCCCCCCCC", t0 + TTL + 5);

    ck_assert_int_eq(od_store_put(s, &a, &r, pool), APR_SUCCESS);
    /* Exactly at expiry the window is closed: a new order. */
    ck_assert_int_eq(od_store_put(s, &b, &r, pool), APR_SUCCESS);
    ck_assert_int_eq(r.outcome, OD_STORE_CREATED);
    ck_assert_str_eq(r.order_id, b.order_id);
    /* ... whose own window now answers replays. */
    ck_assert_int_eq(od_store_put(s, &c, &r, pool), APR_SUCCESS);
    ck_assert_int_eq(r.outcome, OD_STORE_REPLAYED);
    ck_assert_str_eq(r.order_id, b.order_id);
    /* Both orders stay readable. */
    ck_assert_int_eq(od_store_get(s, "c1", a.order_id, &r, pool), APR_SUCCESS);
    ck_assert_int_eq(od_store_get(s, "c1", b.order_id, &r, pool), APR_SUCCESS);
}
END_TEST

START_TEST(test_sqlite_callers_are_scoped)
{
    od_store_t *s = open_store(pool);
    od_store_result_t r;
    od_store_order_t a = order("c1", "k1", "01AAAAAAAAAAAAAAAAAAAAAAAA", t0);
    od_store_order_t b = order("c2", "k1", "01BBBBBBBBBBBBBBBBBBBBBBBB", t0);

    ck_assert_int_eq(od_store_put(s, &a, &r, pool), APR_SUCCESS);
    ck_assert_int_eq(od_store_put(s, &b, &r, pool), APR_SUCCESS);
    ck_assert_int_eq(r.outcome, OD_STORE_CREATED);
    ck_assert_int_eq(od_store_get(s, "c2", a.order_id, &r, pool), OD_ENOTFOUND);
    ck_assert_int_eq(od_store_get(s, "c1", a.order_id, &r, pool), APR_SUCCESS);
    ck_assert_str_eq(r.body, a.body);
    ck_assert_int_eq(od_store_get(s, "c1", "01ZZZZZZZZZZZZZZZZZZZZZZZZ", &r, pool), OD_ENOTFOUND);
}
END_TEST

START_TEST(test_sqlite_durable_across_reopen)
{
    apr_pool_t *p1 = NULL;
    od_store_result_t r;
    od_store_order_t a = order("c1", "k1", "01AAAAAAAAAAAAAAAAAAAAAAAA", apr_time_now());

    apr_pool_create(&p1, pool);
    ck_assert_int_eq(od_store_put(open_store(p1), &a, &r, pool), APR_SUCCESS);
    apr_pool_destroy(p1);
    od_store_t *s = open_store(pool);
    ck_assert_int_eq(od_store_get(s, "c1", a.order_id, &r, pool), APR_SUCCESS);
    ck_assert_str_eq(r.body, a.body);
    /* The idempotency record survived too. */
    od_store_order_t b = order("c1", "k1", "01BBBBBBBBBBBBBBBBBBBBBBBB", a.created_at + 1);
    ck_assert_int_eq(od_store_put(s, &b, &r, pool), APR_SUCCESS);
    ck_assert_int_eq(r.outcome, OD_STORE_REPLAYED);
}
END_TEST

START_TEST(test_sqlite_open_failure_is_a_value)
{
    od_store_t *s = (od_store_t *) 1;

    ck_assert_int_eq(od_sqlite_create(&s, "/nonexistent-dir/x/o.db", 2, 8, log_, pool),
                     OD_EUNAVAIL);
    ck_assert_ptr_null(s);
}
END_TEST

START_TEST(test_sqlite_expired_records_purged)
{
    od_store_t *s = open_store(pool);
    od_store_result_t r;
    od_store_order_t a =
        order("c1", "k1", "01AAAAAAAAAAAAAAAAAAAAAAAA", t0 - TTL - apr_time_from_sec(1));
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int left = -1;

    ck_assert_int_eq(od_store_put(s, &a, &r, pool), APR_SUCCESS);
    ck_assert_int_eq(sqlite3_open(apr_pstrcat(pool, dir, "/o.db", NULL), &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 2000);
    ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT count(*) FROM idem", -1, &st, NULL), SQLITE_OK);
    /* The writer purges about once a second; give it a bounded while. */
    for (int i = 0; i < 40 && left != 0; i++) {
        apr_sleep(apr_time_from_msec(100));
        sqlite3_reset(st);
        ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
        left = sqlite3_column_int(st, 0);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    ck_assert_int_eq(left, 0);
    ck_assert_int_eq(od_store_get(s, "c1", a.order_id, &r, pool), APR_SUCCESS);
}
END_TEST

/* ---- concurrency ---- */

#define THREADS 8
#define PER_THREAD 50

typedef struct worker_t {
    od_store_t *store;
    int index;
    int same_key; /* all threads race on one key */
    int created;
    int replayed;
    int failed;
    char first_id[32];
} worker_t;

static void *APR_THREAD_FUNC put_many(apr_thread_t *t, void *data)
{
    worker_t *w = data;
    apr_pool_t *p = NULL;

    apr_pool_create(&p, NULL);
    for (int i = 0; i < PER_THREAD; i++) {
        const char *key = w->same_key ? "same" : apr_psprintf(p, "k-%d-%d", w->index, i);
        const char *id = apr_psprintf(p, "01%02d%022d", w->index, i);
        od_store_order_t o = {.caller = "c",
                              .idem_key = key,
                              .order_id = id,
                              .body = id,
                              .body_len = strlen(id),
                              .created_at = apr_time_now(),
                              .expires_at = apr_time_now() + TTL};
        od_store_result_t r;
        if (od_store_put(w->store, &o, &r, p) != APR_SUCCESS) {
            w->failed++;
            continue;
        }
        r.outcome == OD_STORE_CREATED ? w->created++ : w->replayed++;
        if (i == 0) {
            snprintf(w->first_id, sizeof(w->first_id), "%s", r.order_id);
        }
    }
    apr_pool_destroy(p);
    apr_thread_exit(t, APR_SUCCESS);
    return NULL;
}

static void run_workers(od_store_t *s, worker_t *w, int same_key)
{
    apr_thread_t *t[THREADS];
    apr_status_t rv;

    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker_t){s, i, same_key, 0, 0, 0, ""};
        ck_assert_int_eq(apr_thread_create(&t[i], NULL, put_many, &w[i], pool), APR_SUCCESS);
    }
    for (int i = 0; i < THREADS; i++) {
        apr_thread_join(&rv, t[i]);
    }
}

START_TEST(test_sqlite_concurrent_same_key_one_order)
{
    od_store_t *s = open_store(pool);
    worker_t w[THREADS];
    int created = 0;

    run_workers(s, w, 1);
    for (int i = 0; i < THREADS; i++) {
        ck_assert_int_eq(w[i].failed, 0);
        created += w[i].created;
        ck_assert_str_eq(w[i].first_id, w[0].first_id);
    }
    ck_assert_int_eq(created, 1);
}
END_TEST

START_TEST(test_sqlite_concurrent_unique_all_stored)
{
    od_store_t *s = open_store(pool);
    worker_t w[THREADS];
    od_store_result_t r;

    run_workers(s, w, 0);
    for (int i = 0; i < THREADS; i++) {
        ck_assert_int_eq(w[i].failed, 0);
        ck_assert_int_eq(w[i].created, PER_THREAD);
        for (int j = 0; j < PER_THREAD; j++) {
            const char *id = apr_psprintf(pool, "01%02d%022d", i, j);
            ck_assert_int_eq(od_store_get(s, "c", id, &r, pool), APR_SUCCESS);
            ck_assert_str_eq(r.body, id);
        }
    }
}
END_TEST

Suite *od_sqlite_suite(void)
{
    Suite *s = suite_create("sqlite");
    TCase *tc = tcase_create("store");
    TCase *tc_conc = tcase_create("concurrency");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_sqlite_put_then_replay);
    tcase_add_test(tc, test_sqlite_ttl_enforced_at_check_time);
    tcase_add_test(tc, test_sqlite_callers_are_scoped);
    tcase_add_test(tc, test_sqlite_durable_across_reopen);
    tcase_add_test(tc, test_sqlite_open_failure_is_a_value);
    tcase_add_test(tc, test_sqlite_expired_records_purged);
    suite_add_tcase(s, tc);
    tcase_add_checked_fixture(tc_conc, setup, teardown);
    tcase_set_timeout(tc_conc, 120);
    tcase_add_test(tc_conc, test_sqlite_concurrent_same_key_one_order);
    tcase_add_test(tc_conc, test_sqlite_concurrent_unique_all_stored);
    suite_add_tcase(s, tc_conc);
    return s;
}

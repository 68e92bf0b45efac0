/*
 * Tests for od_cache: TTL, replay, bounds, rotation, flat memory and concurrent use.
 * Time is always passed explicitly; nothing here sleeps.
 */
#include "od_suites.h"
#include "od_cache.h"

#include <apr_strings.h>
#include <apr_thread_proc.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define T0 APR_INT64_C(1700000000000000) /* an arbitrary "now", in microseconds */
#define TTL apr_time_from_sec(60)

static apr_pool_t *make_pool(void)
{
    apr_pool_t *p = NULL;

    ck_assert_int_eq(apr_pool_create(&p, NULL), APR_SUCCESS);
    return p;
}

static od_cache_t *make_cache(apr_size_t max_entries, apr_interval_time_t ttl, apr_pool_t *p)
{
    od_cache_t *cache = NULL;

    ck_assert_int_eq(od_cache_create(&cache, max_entries, ttl, p), APR_SUCCESS);
    ck_assert_ptr_nonnull(cache);
    return cache;
}

/* Puts @p key -> an entry whose order id and body are derived from @p tag. */
static void put_tagged(od_cache_t *cache, const char *key, const char *tag, apr_time_t created,
                       apr_time_t now)
{
    char order_id[64];
    char body[128];
    od_cache_entry_t e;

    snprintf(order_id, sizeof(order_id), "order-%s", tag);
    e.order_id = order_id;
    e.body_len = (apr_size_t) snprintf(body, sizeof(body), "{\"id\":\"%s\"}", tag);
    e.body = body;
    e.created_at = created;
    od_cache_put(cache, key, &e, now);
}

static int is_hit(od_cache_t *cache, const char *key, apr_time_t now, apr_pool_t *p)
{
    od_cache_entry_t e;

    return od_cache_get(cache, key, now, &e, p) == APR_SUCCESS;
}

static apr_size_t entries_of(od_cache_t *cache)
{
    od_cache_stats_t st;

    od_cache_stats(cache, &st);
    return st.entries;
}

START_TEST(test_cache_create_rejects_bad_limits)
{
    apr_pool_t *p = make_pool();
    od_cache_t *cache = (od_cache_t *) p; /* any non-NULL value, to see it reset */
    struct {
        apr_size_t max;
        apr_interval_time_t ttl;
    } bad[] = {{0, TTL}, {1, TTL}, {100, 0}, {100, -1}};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cache = (od_cache_t *) p;
        ck_assert_int_eq(od_cache_create(&cache, bad[i].max, bad[i].ttl, p), APR_EINVAL);
        ck_assert_ptr_null(cache);
    }
    ck_assert_int_eq(od_cache_create(&cache, 2, 1, p), APR_SUCCESS);
    ck_assert_ptr_nonnull(cache);
    apr_pool_destroy(p);
}
END_TEST

START_TEST(test_cache_hit_within_ttl)
{
    apr_pool_t *p = make_pool();
    od_cache_t *cache = make_cache(100, TTL, p);
    od_cache_entry_t e;
    od_cache_stats_t st;

    ck_assert_int_eq(od_cache_get(cache, "k1", T0, &e, p), APR_NOTFOUND);
    put_tagged(cache, "k1", "a", T0, T0);
    ck_assert_int_eq(od_cache_get(cache, "k1", T0, &e, p), APR_SUCCESS);
    ck_assert_str_eq(e.order_id, "order-a");
    ck_assert_int_eq(e.created_at, T0);
    ck_assert_int_eq(od_cache_get(cache, "k1", T0 + TTL - 1, &e, p), APR_SUCCESS);
    ck_assert_int_eq(od_cache_get(cache, "k2", T0, &e, p), APR_NOTFOUND);
    od_cache_stats(cache, &st);
    ck_assert_uint_eq(st.hits, 2);
    ck_assert_uint_eq(st.misses, 2);
    ck_assert_uint_eq(st.entries, 1);
    apr_pool_destroy(p);
}
END_TEST

START_TEST(test_cache_miss_after_ttl)
{
    apr_pool_t *p = make_pool();
    od_cache_t *cache = make_cache(100, TTL, p);
    od_cache_stats_t st;

    /* Liveness follows created_at, not the time of the put. */
    put_tagged(cache, "k1", "a", T0, T0 + apr_time_from_sec(30));
    ck_assert(is_hit(cache, "k1", T0 + TTL - 1, p));
    ck_assert(!is_hit(cache, "k1", T0 + TTL, p));
    ck_assert(!is_hit(cache, "k1", T0 + 10 * TTL, p));
    od_cache_stats(cache, &st);
    ck_assert_uint_eq(st.hits, 1);
    ck_assert_uint_eq(st.misses, 2);
    apr_pool_destroy(p);
}
END_TEST

START_TEST(test_cache_replay_byte_identical)
{
    apr_pool_t *p = make_pool();
    apr_pool_t *reader = make_pool();
    od_cache_t *cache = make_cache(4, TTL, p);
    char body[300];
    char order_id[] = "01ARYZ6S41TSV4RRFFQ69G5FAV";
    od_cache_entry_t in = {order_id, body, sizeof(body), T0};
    od_cache_entry_t out;

    for (size_t i = 0; i < sizeof(body); i++) {
        body[i] = (char) (i * 7); /* includes NULs and bytes >= 0x80 */
    }
    od_cache_put(cache, "k", &in, T0);
    memset(body, 0, sizeof(body)); /* the cache must have its own copy */
    strcpy(order_id, "changed");
    ck_assert_int_eq(od_cache_get(cache, "k", T0 + 1, &out, reader), APR_SUCCESS);
    /* Rotate twice so the generation that held "k" is cleared and reused. */
    for (int i = 0; i < 8; i++) {
        put_tagged(cache, apr_psprintf(p, "filler-%d", i), "filler-body-overwriting", T0, T0 + 2);
    }
    ck_assert(!is_hit(cache, "k", T0 + 3, p));
    ck_assert_uint_eq(out.body_len, sizeof(body));
    ck_assert_str_eq(out.order_id, "01ARYZ6S41TSV4RRFFQ69G5FAV");
    for (size_t i = 0; i < sizeof(body); i++) {
        ck_assert_int_eq((unsigned char) out.body[i], (unsigned char) (i * 7));
    }
    apr_pool_destroy(reader);
    apr_pool_destroy(p);
}
END_TEST

START_TEST(test_cache_put_replaces)
{
    apr_pool_t *p = make_pool();
    od_cache_t *cache = make_cache(100, TTL, p);
    od_cache_entry_t e;

    put_tagged(cache, "k", "first", T0, T0);
    put_tagged(cache, "k", "second", T0 + 5, T0 + 5);
    ck_assert_int_eq(od_cache_get(cache, "k", T0 + 6, &e, p), APR_SUCCESS);
    ck_assert_str_eq(e.order_id, "order-second");
    ck_assert_str_eq(e.body, "{\"id\":\"second\"}");
    ck_assert_uint_eq(entries_of(cache), 1);
    apr_pool_destroy(p);
}
END_TEST

START_TEST(test_cache_put_copies_key)
{
    apr_pool_t *p = make_pool();
    od_cache_t *cache = make_cache(100, TTL, p);
    char key[] = "idem-key-1";

    put_tagged(cache, key, "a", T0, T0);
    key[0] = 'X';
    ck_assert(is_hit(cache, "idem-key-1", T0, p));
    ck_assert(!is_hit(cache, key, T0, p));
    apr_pool_destroy(p);
}
END_TEST

START_TEST(test_cache_dead_entry_not_stored)
{
    apr_pool_t *p = make_pool();
    od_cache_t *cache = make_cache(100, TTL, p);

    put_tagged(cache, "dead", "a", T0, T0 + TTL);
    put_tagged(cache, "older", "b", T0 - 2 * TTL, T0);
    ck_assert_uint_eq(entries_of(cache), 0);
    ck_assert(!is_hit(cache, "dead", T0, p));
    ck_assert(!is_hit(cache, "older", T0 - 2 * TTL, p));
    apr_pool_destroy(p);
}
END_TEST

START_TEST(test_cache_bounded_by_max_entries)
{
    enum { MAX = 100 };
    apr_pool_t *p = make_pool();
    od_cache_t *cache = make_cache(MAX, TTL, p);
    char key[32];

    for (int i = 0; i < 10 * MAX; i++) {
        snprintf(key, sizeof(key), "key-%d", i);
        put_tagged(cache, key, key, T0, T0);
        ck_assert_uint_le(entries_of(cache), MAX);
    }
    for (int i = 10 * MAX - MAX / 2; i < 10 * MAX; i++) {
        snprintf(key, sizeof(key), "key-%d", i);
        ck_assert_msg(is_hit(cache, key, T0 + 1, p), "%s evicted too early", key);
    }
    ck_assert(!is_hit(cache, "key-0", T0 + 1, p));
    apr_pool_destroy(p);
}
END_TEST

START_TEST(test_cache_rotates_by_age)
{
    apr_pool_t *p = make_pool();
    od_cache_t *cache = make_cache(1000, TTL, p);
    od_cache_stats_t st;

    put_tagged(cache, "a", "a", T0, T0);
    put_tagged(cache, "a2", "a2", T0 + TTL - 1, T0 + TTL - 1);
    od_cache_stats(cache, &st);
    ck_assert_uint_eq(st.rotations, 0);

    /* The current generation is now TTL old: "b" starts a new one, "a" becomes previous. */
    put_tagged(cache, "b", "b", T0 + TTL, T0 + TTL);
    od_cache_stats(cache, &st);
    ck_assert_uint_eq(st.rotations, 1);
    ck_assert_uint_eq(st.entries, 3);
    ck_assert(is_hit(cache, "a2", T0 + TTL, p)); /* found in the previous generation */

    put_tagged(cache, "c", "c", T0 + 2 * TTL, T0 + 2 * TTL);
    od_cache_stats(cache, &st);
    ck_assert_uint_eq(st.rotations, 2);
    ck_assert_uint_eq(st.entries, 2); /* "a" and "a2" dropped with their generation */
    ck_assert(is_hit(cache, "b", T0 + 2 * TTL - 1, p));
    apr_pool_destroy(p);
}
END_TEST

START_TEST(test_cache_prefers_current_generation)
{
    apr_pool_t *p = make_pool();
    od_cache_t *cache = make_cache(4, TTL, p);
    od_cache_entry_t e;

    put_tagged(cache, "k", "old", T0, T0);
    put_tagged(cache, "x", "x", T0, T0);
    put_tagged(cache, "k", "new", T0 + 1, T0 + 1); /* rotates; "k" is now in previous too */
    ck_assert_int_eq(od_cache_get(cache, "k", T0 + 2, &e, p), APR_SUCCESS);
    ck_assert_str_eq(e.order_id, "order-new");
    ck_assert_uint_eq(entries_of(cache), 3); /* the old "k" stays in previous until it rotates */
    apr_pool_destroy(p);
}
END_TEST

START_TEST(test_cache_replacements_count_toward_rotation)
{
    apr_pool_t *p = make_pool();
    od_cache_t *cache = make_cache(10, TTL, p);
    od_cache_stats_t st;

    /* One key replaced many times must still rotate, or its pool would only grow. */
    for (int i = 0; i < 100; i++) {
        put_tagged(cache, "same", "v", T0, T0);
    }
    od_cache_stats(cache, &st);
    ck_assert_uint_eq(st.rotations, 19);
    ck_assert_uint_eq(st.entries, 2); /* one copy in each generation */
    ck_assert(is_hit(cache, "same", T0, p));
    apr_pool_destroy(p);
}
END_TEST

/* Resident set size in pages, from /proc/self/statm. */
static long rss_pages(void)
{
    long size = 0;
    long resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");

    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fscanf(f, "%ld %ld", &size, &resident), 2);
    fclose(f);
    return resident;
}

START_TEST(test_cache_memory_flat)
{
    enum { MAX = 20000, WARM = 200000, TOTAL = 2000000 };
    apr_pool_t *p = make_pool();
    od_cache_t *cache = make_cache(MAX, TTL, p);
    char key[32];
    char body[256];
    od_cache_entry_t e = {"01ARYZ6S41TSV4RRFFQ69G5FAV", body, sizeof(body), 0};
    long warm = 0;
    long end;
    od_cache_stats_t st;

    memset(body, 'b', sizeof(body));
    for (int i = 0; i < TOTAL; i++) {
        apr_time_t now = T0 + i; /* one microsecond per order */
        snprintf(key, sizeof(key), "key-%08d", i);
        e.created_at = now;
        od_cache_put(cache, key, &e, now);
        if (i + 1 == WARM) {
            warm = rss_pages();
        }
    }
    end = rss_pages();
    od_cache_stats(cache, &st);
    fprintf(stderr, "cache memory: rss after %d puts %ld KiB, after %d puts %ld KiB\n", WARM,
            warm * (sysconf(_SC_PAGESIZE) / 1024), TOTAL, end * (sysconf(_SC_PAGESIZE) / 1024));
    ck_assert_uint_le(st.entries, MAX);
    ck_assert_uint_ge(st.rotations, TOTAL / (MAX / 2) - 1);
    ck_assert_msg(end * 10 < warm * 11, "rss grew from %ld to %ld pages", warm, end);
    apr_pool_destroy(p);
}
END_TEST

enum { WORKERS = 8, ITERATIONS = 20000, KEYS = 97 };

typedef struct worker_t {
    od_cache_t *cache;
    apr_pool_t *pool;
    int id;
    apr_uint64_t gets;
    apr_uint64_t bad; /* hits whose content did not match the key */
} worker_t;

/* Gets a key and, on a miss, puts it; every hit must carry that key's own content. */
static void *APR_THREAD_FUNC worker_run(apr_thread_t *thread, void *data)
{
    worker_t *w = data;
    char key[32];
    char want[64];
    od_cache_entry_t e;

    for (int i = 0; i < ITERATIONS; i++) {
        /* Time advances so that entries expire and generations rotate by age as well. */
        apr_time_t now = T0 + (apr_time_t) i * 1000;
        int k = (i * 31 + w->id * 7) % KEYS;

        snprintf(key, sizeof(key), "key-%d", k);
        w->gets++;
        if (od_cache_get(w->cache, key, now, &e, w->pool) == APR_SUCCESS) {
            snprintf(want, sizeof(want), "{\"id\":\"%s\"}", key);
            w->bad += strcmp(e.body, want) != 0 || e.body_len != strlen(want);
        } else {
            put_tagged(w->cache, key, key, now, now);
        }
        if (i % 256 == 0) {
            apr_pool_clear(w->pool);
        }
    }
    apr_thread_exit(thread, APR_SUCCESS);
    return NULL;
}

START_TEST(test_cache_concurrent_use)
{
    apr_pool_t *p = make_pool();
    /* 40 entries and a 2 s TTL over 20 s of simulated time: many rotations of both kinds. */
    od_cache_t *cache = make_cache(40, apr_time_from_sec(2), p);
    apr_thread_t *threads[WORKERS];
    worker_t workers[WORKERS];
    apr_uint64_t gets = 0;
    od_cache_stats_t st;

    for (int i = 0; i < WORKERS; i++) {
        workers[i] = (worker_t){cache, NULL, i, 0, 0};
        ck_assert_int_eq(apr_pool_create(&workers[i].pool, p), APR_SUCCESS);
    }
    for (int i = 0; i < WORKERS; i++) {
        ck_assert_int_eq(apr_thread_create(&threads[i], NULL, worker_run, &workers[i], p),
                         APR_SUCCESS);
    }
    for (int i = 0; i < WORKERS; i++) {
        apr_status_t trv;
        ck_assert_int_eq(apr_thread_join(&trv, threads[i]), APR_SUCCESS);
        ck_assert_uint_eq(workers[i].bad, 0);
        gets += workers[i].gets;
    }
    od_cache_stats(cache, &st);
    ck_assert_uint_eq(gets, (apr_uint64_t) WORKERS * ITERATIONS);
    ck_assert_uint_eq(st.hits + st.misses, gets);
    ck_assert_uint_gt(st.hits, 0);
    ck_assert_uint_gt(st.rotations, 0);
    ck_assert_uint_le(st.entries, 40);
    apr_pool_destroy(p);
}
END_TEST

Suite *od_cache_suite(void)
{
    Suite *s = suite_create("cache");
    TCase *basic = tcase_create("basic");
    TCase *bounds = tcase_create("bounds");
    TCase *threads = tcase_create("threads");

    tcase_add_test(basic, test_cache_create_rejects_bad_limits);
    tcase_add_test(basic, test_cache_hit_within_ttl);
    tcase_add_test(basic, test_cache_miss_after_ttl);
    tcase_add_test(basic, test_cache_replay_byte_identical);
    tcase_add_test(basic, test_cache_put_replaces);
    tcase_add_test(basic, test_cache_put_copies_key);
    tcase_add_test(basic, test_cache_dead_entry_not_stored);
    tcase_add_test(bounds, test_cache_bounded_by_max_entries);
    tcase_add_test(bounds, test_cache_rotates_by_age);
    tcase_add_test(bounds, test_cache_prefers_current_generation);
    tcase_add_test(bounds, test_cache_replacements_count_toward_rotation);
    tcase_add_test(bounds, test_cache_memory_flat);
    tcase_add_test(threads, test_cache_concurrent_use);
    /* Two million puts, and eight threads: generous under sanitizers, still bounded. */
    tcase_set_timeout(bounds, 120);
    tcase_set_timeout(threads, 120);
    suite_add_tcase(s, basic);
    suite_add_tcase(s, bounds);
    suite_add_tcase(s, threads);
    return s;
}

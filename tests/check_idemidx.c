/*
 * Tests for od_idemidx: lookups, expiry in order, undoing adds, growth, and a randomized run
 * against a plain list as the model (with fingerprints from a tiny range, so probe runs collide,
 * wrap around the table and are cut by removals).
 */
#include "od_suites.h"
#include "od_idemidx.h"

#include <stdlib.h>

#define T0 APR_INT64_C(1700000000000000)

static od_idemidx_t *make(apr_size_t capacity)
{
    od_idemidx_t *ix = NULL;

    ck_assert_int_eq(od_idemidx_create(&ix, capacity, od_test_pool), APR_SUCCESS);
    ck_assert_ptr_nonnull(ix);
    return ix;
}

/* The number of live candidates for @p fp at @p now; *row is the last one seen. */
static int candidates(od_idemidx_t *ix, apr_uint64_t fp, apr_time_t now, apr_int64_t *row)
{
    od_idemidx_iter_t it;
    apr_int64_t r = 0;
    int n = 0;

    od_idemidx_find(ix, fp, now, &it);
    while (od_idemidx_next(ix, &it, &r)) {
        n++;
        if (row != NULL) {
            *row = r;
        }
    }
    return n;
}

static int has(od_idemidx_t *ix, apr_uint64_t fp, apr_int64_t row, apr_time_t now)
{
    od_idemidx_iter_t it;
    apr_int64_t r = 0;

    od_idemidx_find(ix, fp, now, &it);
    while (od_idemidx_next(ix, &it, &r)) {
        if (r == row) {
            return 1;
        }
    }
    return 0;
}

START_TEST(test_idemidx_add_then_find)
{
    od_idemidx_t *ix = make(64);
    apr_int64_t row = 0;

    ck_assert_int_eq(candidates(ix, 42, T0, NULL), 0);
    od_idemidx_add(ix, 42, 7, T0 + 10);
    ck_assert_int_eq(candidates(ix, 42, T0, &row), 1);
    ck_assert_int_eq(row, 7);
    ck_assert_int_eq(candidates(ix, 43, T0, NULL), 0);
    ck_assert_uint_eq(od_idemidx_count(ix), 1);
}
END_TEST

START_TEST(test_idemidx_live_only_before_expiry)
{
    od_idemidx_t *ix = make(64);

    od_idemidx_add(ix, 42, 7, T0 + 10);
    ck_assert_int_eq(candidates(ix, 42, T0 + 9, NULL), 1);
    ck_assert_int_eq(candidates(ix, 42, T0 + 10, NULL), 0);
    /* Still held until expired away, but never yielded. */
    ck_assert_uint_eq(od_idemidx_count(ix), 1);
    ck_assert_uint_eq(od_idemidx_expire(ix, T0 + 9), 0);
    ck_assert_uint_eq(od_idemidx_expire(ix, T0 + 10), 1);
    ck_assert_uint_eq(od_idemidx_count(ix), 0);
}
END_TEST

START_TEST(test_idemidx_shared_fingerprint_yields_every_row)
{
    od_idemidx_t *ix = make(64);

    od_idemidx_add(ix, 5, 1, T0 + 10);
    od_idemidx_add(ix, 5 + 128, 2, T0 + 10); /* same home slot, other fingerprint */
    od_idemidx_add(ix, 5, 3, T0 + 10);
    od_idemidx_add(ix, 5, 4, T0 + 10);
    ck_assert_int_eq(candidates(ix, 5, T0, NULL), 3);
    ck_assert(has(ix, 5, 1, T0) && has(ix, 5, 3, T0) && has(ix, 5, 4, T0));
    ck_assert(!has(ix, 5, 2, T0));
    ck_assert(has(ix, 5 + 128, 2, T0));
}
END_TEST

START_TEST(test_idemidx_fingerprint_scoped_and_keyed)
{
    od_idemidx_t *a = make(16), *b = make(16);
    apr_uint64_t f = od_idemidx_fingerprint(a, "c1", "k1");

    ck_assert_uint_eq(f, od_idemidx_fingerprint(a, "c1", "k1"));
    ck_assert_uint_ne(f, 0);
    ck_assert_uint_ne(f, od_idemidx_fingerprint(a, "c2", "k1"));
    ck_assert_uint_ne(f, od_idemidx_fingerprint(a, "c1", "k2"));
    ck_assert_uint_ne(od_idemidx_fingerprint(a, "ab", "c"), od_idemidx_fingerprint(a, "a", "bc"));
    /* Another index draws another secret. */
    ck_assert_uint_ne(f, od_idemidx_fingerprint(b, "c1", "k1"));
}
END_TEST

START_TEST(test_idemidx_drop_newest_undoes_adds)
{
    od_idemidx_t *ix = make(64);

    od_idemidx_add(ix, 1, 1, T0 + 10);
    od_idemidx_add(ix, 2, 2, T0 + 10);
    od_idemidx_add(ix, 3, 3, T0 + 10);
    od_idemidx_drop_newest(ix, 2);
    ck_assert_uint_eq(od_idemidx_count(ix), 1);
    ck_assert(has(ix, 1, 1, T0));
    ck_assert(!has(ix, 2, 2, T0));
    ck_assert(!has(ix, 3, 3, T0));
    od_idemidx_drop_newest(ix, 5); /* more than held: empties it */
    ck_assert_uint_eq(od_idemidx_count(ix), 0);
    ck_assert(!has(ix, 1, 1, T0));
}
END_TEST

START_TEST(test_idemidx_expires_in_order_added)
{
    od_idemidx_t *ix = make(64);

    /* The clock stepped back: the second entry expires before the first. */
    od_idemidx_add(ix, 1, 1, T0 + 20);
    od_idemidx_add(ix, 2, 2, T0 + 10);
    ck_assert_uint_eq(od_idemidx_expire(ix, T0 + 15), 0);
    ck_assert(!has(ix, 2, 2, T0 + 15)); /* held, but not live */
    ck_assert(has(ix, 1, 1, T0 + 15));
    ck_assert_uint_eq(od_idemidx_expire(ix, T0 + 20), 2);
}
END_TEST

START_TEST(test_idemidx_grows_keeping_entries)
{
    od_idemidx_t *ix = make(16);

    ck_assert_uint_eq(od_idemidx_capacity(ix), 16);
    od_idemidx_add(ix, 999, 999, T0 + 1); /* the oldest, so the ring's head is not at 0 */
    ck_assert_uint_eq(od_idemidx_expire(ix, T0 + 1), 1);
    for (apr_int64_t i = 1; i <= 100; i++) {
        od_idemidx_add(ix, (apr_uint64_t) (i % 7 + 1), i, T0 + 10);
    }
    ck_assert_uint_ge(od_idemidx_capacity(ix), 128);
    ck_assert_uint_eq(od_idemidx_count(ix), 100);
    for (apr_int64_t i = 1; i <= 100; i++) {
        ck_assert(has(ix, (apr_uint64_t) (i % 7 + 1), i, T0));
    }
    ck_assert_int_eq(candidates(ix, 1, T0, NULL), 14);
}
END_TEST

START_TEST(test_idemidx_steady_load_never_grows)
{
    od_idemidx_t *ix = make(1024);

    /* A window of 1000 live entries, moving on for 100 windows. */
    for (apr_int64_t i = 1; i <= 100000; i++) {
        od_idemidx_expire(ix, T0 + i);
        od_idemidx_add(ix, (apr_uint64_t) i * 2654435761u, i, T0 + i + 1000);
    }
    ck_assert_uint_eq(od_idemidx_capacity(ix), 1024);
    ck_assert_uint_eq(od_idemidx_count(ix), 1000);
    ck_assert(has(ix, (apr_uint64_t) 100000 * 2654435761u, 100000, T0 + 100000));
    ck_assert(!has(ix, (apr_uint64_t) 99000 * 2654435761u, 99000, T0 + 100000));
}
END_TEST

/* The model: every entry ever added and not removed, in the order added. */
typedef struct model_t {
    apr_uint64_t fp[4096];
    apr_int64_t row[4096];
    apr_time_t exp[4096];
    int head, tail;
} model_t;

static void check_against(od_idemidx_t *ix, const model_t *m, apr_time_t now)
{
    ck_assert_uint_eq(od_idemidx_count(ix), (apr_size_t) (m->tail - m->head));
    for (apr_uint64_t fp = 1; fp <= 40; fp++) {
        int live = 0;
        for (int i = m->head; i < m->tail; i++) {
            if (m->fp[i] == fp && m->exp[i] > now) {
                live++;
                ck_assert(has(ix, fp, m->row[i], now));
            }
        }
        ck_assert_int_eq(candidates(ix, fp, now, NULL), live);
    }
}

START_TEST(test_idemidx_random_operations_match_model)
{
    static model_t m;
    od_idemidx_t *ix = make(16);
    apr_time_t now = T0;
    unsigned seed = 12345;

    for (int step = 0; step < 3000; step++) {
        int op = rand_r(&seed) % 10;
        now += rand_r(&seed) % 3;
        if (op < 6) {
            m.fp[m.tail] = (apr_uint64_t) (rand_r(&seed) % 40 + 1);
            m.row[m.tail] = step + 1;
            m.exp[m.tail] = now + rand_r(&seed) % 60; /* sometimes out of order */
            od_idemidx_add(ix, m.fp[m.tail], m.row[m.tail], m.exp[m.tail]);
            m.tail++;
        } else if (op < 7) {
            int n = rand_r(&seed) % 3;
            od_idemidx_drop_newest(ix, (apr_size_t) n);
            m.tail = m.tail - n < m.head ? m.head : m.tail - n;
        } else {
            apr_size_t removed = 0;
            while (m.head < m.tail && m.exp[m.head] <= now) {
                m.head++;
                removed++;
            }
            ck_assert_uint_eq(od_idemidx_expire(ix, now), removed);
        }
        check_against(ix, &m, now);
    }
    ck_assert_int_gt(m.head, 100); /* the run did expire, wrap and grow */
}
END_TEST

Suite *od_idemidx_suite(void)
{
    Suite *s = suite_create("idemidx");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, od_test_pool_setup, od_test_pool_teardown);
    tcase_add_test(tc, test_idemidx_add_then_find);
    tcase_add_test(tc, test_idemidx_live_only_before_expiry);
    tcase_add_test(tc, test_idemidx_shared_fingerprint_yields_every_row);
    tcase_add_test(tc, test_idemidx_fingerprint_scoped_and_keyed);
    tcase_add_test(tc, test_idemidx_drop_newest_undoes_adds);
    tcase_add_test(tc, test_idemidx_expires_in_order_added);
    tcase_add_test(tc, test_idemidx_grows_keeping_entries);
    tcase_add_test(tc, test_idemidx_steady_load_never_grows);
    tcase_add_test(tc, test_idemidx_random_operations_match_model);
    suite_add_tcase(s, tc);
    return s;
}

/* Tests for od_ulid: encoding, uniqueness, ordering, parsing and time decoding. */
#include "od_suites.h"
#include "od_status.h"
#include "od_ulid.h"

#include <stdlib.h>
#include <string.h>

/* The spec's example time (2016-07-30T22:36:16.385Z), whose time part is 01ARYZ6S41. */
#define SPEC_MS APR_INT64_C(1469918176385)
#define ALPHABET "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

static int cmp_ulid(const void *a, const void *b)
{
    return strcmp((const char *) a, (const char *) b);
}

START_TEST(test_ulid_generate_encodes_spec_time)
{
    char id[OD_ULID_LEN + 1];

    ck_assert_int_eq(od_ulid_generate(id, apr_time_from_msec(SPEC_MS)), APR_SUCCESS);
    ck_assert_uint_eq(strlen(id), OD_ULID_LEN);
    ck_assert_msg(strncmp(id, "01ARYZ6S41", 10) == 0, "time prefix of %s", id);
}
END_TEST

START_TEST(test_ulid_generate_uses_only_alphabet)
{
    char id[OD_ULID_LEN + 1];
    char parsed[OD_ULID_LEN + 1];

    for (int i = 0; i < 1000; i++) {
        ck_assert_int_eq(od_ulid_generate(id, apr_time_now()), APR_SUCCESS);
        ck_assert_uint_eq(strspn(id, ALPHABET), OD_ULID_LEN);
        ck_assert_int_eq(od_ulid_parse(parsed, id), APR_SUCCESS);
        ck_assert_str_eq(parsed, id);
    }
}
END_TEST

START_TEST(test_ulid_generate_many_distinct_valid_ids)
{
    char ids[OD_ULID_MANY_MAX][OD_ULID_LEN + 1];
    char parsed[OD_ULID_LEN + 1];

    ck_assert_int_eq(od_ulid_generate_many(ids, OD_ULID_MANY_MAX, apr_time_from_msec(SPEC_MS)),
                     APR_SUCCESS);
    for (int i = 0; i < OD_ULID_MANY_MAX; i++) {
        ck_assert_int_eq(od_ulid_parse(parsed, ids[i]), APR_SUCCESS);
        ck_assert_msg(strncmp(ids[i], "01ARYZ6S41", 10) == 0, "time prefix of %s", ids[i]);
        for (int j = 0; j < i; j++) {
            /* Each id has its own 10 random bytes: no two share their random part. */
            ck_assert_str_ne(ids[i] + 10, ids[j] + 10);
        }
    }
}
END_TEST

START_TEST(test_ulid_generate_many_rejects_bad_count)
{
    char ids[OD_ULID_MANY_MAX + 1][OD_ULID_LEN + 1];

    ck_assert_int_eq(od_ulid_generate_many(ids, 0, apr_time_now()), APR_EINVAL);
    ck_assert_int_eq(od_ulid_generate_many(ids, OD_ULID_MANY_MAX + 1, apr_time_now()), APR_EINVAL);
}
END_TEST

/* Asserts that @p N ids made in the same millisecond (so only the random part can tell them
 * apart) are distinct, and that each random character carries 5 full bits: over N ids every
 * position takes all 32 values (missing one by chance has probability ~32 * (31/32)^N). */
static void assert_unique_random(char (*ids)[OD_ULID_LEN + 1], int n)
{
    qsort(ids, (size_t) n, sizeof(*ids), cmp_ulid);
    for (int i = 1; i < n; i++) {
        ck_assert_str_ne(ids[i - 1], ids[i]);
    }
    for (int pos = 10; pos < OD_ULID_LEN; pos++) {
        char seen[32] = {0};
        int distinct = 0;
        for (int i = 0; i < n; i++) {
            const char *c = strchr(ALPHABET, ids[i][pos]);
            ck_assert_ptr_nonnull(c);
            distinct += !seen[c - ALPHABET];
            seen[c - ALPHABET] = 1;
        }
        ck_assert_msg(distinct == 32, "position %d took only %d values", pos, distinct);
    }
}

START_TEST(test_ulid_generate_unique)
{
    enum { N = 20000 };
    char(*ids)[OD_ULID_LEN + 1] = malloc(sizeof(*ids) * N);
    apr_time_t same = apr_time_from_msec(SPEC_MS);

    ck_assert_ptr_nonnull(ids);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(od_ulid_generate(ids[i], same), APR_SUCCESS);
    }
    assert_unique_random(ids, N);
    free(ids);
}
END_TEST

/* Through many refills of the buffer, in draws of 1 and 3 ids: never an id twice. */
START_TEST(test_ulid_source_unique_across_refills)
{
    enum { N = 20000 };
    char(*ids)[OD_ULID_LEN + 1] = malloc(sizeof(*ids) * N);
    apr_time_t same = apr_time_from_msec(SPEC_MS);
    apr_pool_t *p = NULL;
    od_ulid_source_t *src = NULL;
    char parsed[OD_ULID_LEN + 1];

    ck_assert_ptr_nonnull(ids);
    ck_assert_int_eq(apr_pool_create(&p, NULL), APR_SUCCESS);
    ck_assert_int_eq(od_ulid_source_create(&src, p), APR_SUCCESS);
    for (int i = 0; i < N;) {
        int n = i % 2 == 0 && i + 3 <= N ? 3 : 1;
        ck_assert_int_eq(od_ulid_source_next(src, ids + i, n, same), APR_SUCCESS);
        i += n;
    }
    ck_assert_int_eq(od_ulid_parse(parsed, ids[N - 1]), APR_SUCCESS);
    ck_assert_msg(strncmp(ids[0], "01ARYZ6S41", 10) == 0, "time prefix of %s", ids[0]);
    ck_assert_int_gt(N, 10 * OD_ULID_SOURCE_IDS);
    assert_unique_random(ids, N);
    apr_pool_destroy(p);
    free(ids);
}
END_TEST

START_TEST(test_ulid_source_rejects_bad_count)
{
    char ids[OD_ULID_MANY_MAX + 1][OD_ULID_LEN + 1];
    apr_pool_t *p = NULL;
    od_ulid_source_t *src = NULL;

    ck_assert_int_eq(apr_pool_create(&p, NULL), APR_SUCCESS);
    ck_assert_int_eq(od_ulid_source_create(&src, p), APR_SUCCESS);
    ck_assert_int_eq(od_ulid_source_next(src, ids, 0, apr_time_now()), APR_EINVAL);
    ck_assert_int_eq(od_ulid_source_next(src, ids, OD_ULID_MANY_MAX + 1, apr_time_now()),
                     APR_EINVAL);
    apr_pool_destroy(p);
}
END_TEST

START_TEST(test_ulid_generate_sortable_by_time)
{
    char prev[OD_ULID_LEN + 1];
    char next[OD_ULID_LEN + 1];
    apr_time_t t = apr_time_from_msec(SPEC_MS);

    ck_assert_int_eq(od_ulid_generate(prev, t), APR_SUCCESS);
    /* Steps of 1 ms up to ~2^40 ms, so every character of the time part gets to carry. */
    for (apr_int64_t step = 1; step < APR_INT64_C(1) << 40; step *= 3) {
        t += apr_time_from_msec(step);
        ck_assert_int_eq(od_ulid_generate(next, t), APR_SUCCESS);
        ck_assert_msg(strcmp(prev, next) < 0, "%s !< %s", prev, next);
        memcpy(prev, next, sizeof(prev));
    }
}
END_TEST

START_TEST(test_ulid_time_round_trip)
{
    char id[OD_ULID_LEN + 1];
    apr_time_t cases[] = {0, apr_time_from_msec(SPEC_MS), apr_time_from_msec(SPEC_MS) + 999,
                          apr_time_now(), apr_time_from_msec((APR_INT64_C(1) << 48) - 1)};

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ck_assert_int_eq(od_ulid_generate(id, cases[i]), APR_SUCCESS);
        /* ULIDs keep milliseconds; apr_time_t has microseconds. */
        ck_assert_int_eq(od_ulid_time(id), cases[i] - cases[i] % 1000);
    }
    ck_assert_int_eq(od_ulid_time("01ARYZ6S41TSV4RRFFQ69G5FAV"), apr_time_from_msec(SPEC_MS));
}
END_TEST

START_TEST(test_ulid_generate_clamps_out_of_range_time)
{
    char id[OD_ULID_LEN + 1];

    ck_assert_int_eq(od_ulid_generate(id, apr_time_from_msec(APR_INT64_C(1) << 50)), APR_SUCCESS);
    ck_assert_msg(strncmp(id, "7ZZZZZZZZZ", 10) == 0, "clamped high: %s", id);
    ck_assert_int_eq(od_ulid_generate(id, -1000000), APR_SUCCESS);
    ck_assert_msg(strncmp(id, "0000000000", 10) == 0, "clamped low: %s", id);
}
END_TEST

START_TEST(test_ulid_parse_normalizes_lower_case)
{
    char out[OD_ULID_LEN + 1];

    ck_assert_int_eq(od_ulid_parse(out, "01arYZ6s41tsv4rrffq69g5fav"), APR_SUCCESS);
    ck_assert_str_eq(out, "01ARYZ6S41TSV4RRFFQ69G5FAV");
    ck_assert_int_eq(od_ulid_parse(out, "7ZZZZZZZZZZZZZZZZZZZZZZZZZ"), APR_SUCCESS);
    ck_assert_str_eq(out, "7ZZZZZZZZZZZZZZZZZZZZZZZZZ");
    ck_assert_int_eq(od_ulid_parse(out, "00000000000000000000000000"), APR_SUCCESS);
}
END_TEST

static void assert_rejected(const char *text)
{
    char out[OD_ULID_LEN + 1];

    memset(out, 'x', sizeof(out));
    ck_assert_msg(od_ulid_parse(out, text) == OD_EINVAL, "accepted \"%s\"", text);
    ck_assert_str_eq(out, "");
}

START_TEST(test_ulid_parse_rejects_bad_length)
{
    assert_rejected("01ARYZ6S41TSV4RRFFQ69G5FA");   /* 25 */
    assert_rejected("01ARYZ6S41TSV4RRFFQ69G5FAVV"); /* 27 */
    assert_rejected("");
    assert_rejected(NULL);
}
END_TEST

START_TEST(test_ulid_parse_rejects_excluded_letters)
{
    assert_rejected("01ARYZ6S41TSV4RRFFQ69G5FAI");
    assert_rejected("01ARYZ6S41TSV4RRFFQ69G5FAL");
    assert_rejected("01ARYZ6S41TSV4RRFFQ69G5FAO");
    assert_rejected("01ARYZ6S41TSV4RRFFQ69G5FAU");
    assert_rejected("01ARYZ6S41TSV4RRFFQ69G5FAi");
    assert_rejected("01ARYZ6S41TSV4RRFFQ69G5FAu");
    assert_rejected("01ARYZ6S41TSV4RRFFQ69G5FA-");
    assert_rejected("01ARYZ6S41 SV4RRFFQ69G5FAV");
}
END_TEST

START_TEST(test_ulid_parse_rejects_time_overflow)
{
    assert_rejected("80000000000000000000000000");
    assert_rejected("ZZZZZZZZZZZZZZZZZZZZZZZZZZ");
}
END_TEST

START_TEST(test_ulid_parse_rejects_non_ascii)
{
    /* 26 bytes with a Latin-1 byte, and 26 bytes ending in a two-byte UTF-8 sequence. */
    assert_rejected("01ARYZ6S41TSV4RRFFQ69G5FA\xC9");
    assert_rejected("01ARYZ6S41TSV4RRFFQ69G5F\xC3\x89");
    assert_rejected("\xEF\xBC\x90"
                    "1ARYZ6S41TSV4RRFFQ69G5F");
}
END_TEST

Suite *od_ulid_suite(void)
{
    Suite *s = suite_create("ulid");
    TCase *gen = tcase_create("generate");
    TCase *parse = tcase_create("parse");

    tcase_add_test(gen, test_ulid_generate_encodes_spec_time);
    tcase_add_test(gen, test_ulid_generate_uses_only_alphabet);
    tcase_add_test(gen, test_ulid_generate_unique);
    tcase_add_test(gen, test_ulid_generate_many_distinct_valid_ids);
    tcase_add_test(gen, test_ulid_generate_many_rejects_bad_count);
    tcase_add_test(gen, test_ulid_source_unique_across_refills);
    tcase_add_test(gen, test_ulid_source_rejects_bad_count);
    tcase_add_test(gen, test_ulid_generate_sortable_by_time);
    tcase_add_test(gen, test_ulid_time_round_trip);
    tcase_add_test(gen, test_ulid_generate_clamps_out_of_range_time);
    tcase_add_test(parse, test_ulid_parse_normalizes_lower_case);
    tcase_add_test(parse, test_ulid_parse_rejects_bad_length);
    tcase_add_test(parse, test_ulid_parse_rejects_excluded_letters);
    tcase_add_test(parse, test_ulid_parse_rejects_time_overflow);
    tcase_add_test(parse, test_ulid_parse_rejects_non_ascii);
    suite_add_tcase(s, gen);
    suite_add_tcase(s, parse);
    return s;
}

/* Tests of od_keys: the keys file and authentication by key hash. */
#include "od_keys.h"
#include "od_status.h"
#include "od_suites.h"

#include <apr_pools.h>
#include <stdio.h>
#include <string.h>

/* Digests from `printf %s secret | sha256sum` and `printf %s other | sha256sum`. */
#define HASH_SECRET "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
#define HASH_OTHER_UPPER "D9298A10D1B0735837DC4BD85DAC641B0F3CEF27A47E5D53A54F2F3F5B2FCFFA"

static apr_status_t parse(od_keys_t **k, const char *text, const char **err)
{
    return od_keys_parse(k, text, strlen(text), "keys", err, od_test_pool);
}

START_TEST(test_keys_lookup_by_hash)
{
    od_keys_t *k = NULL;
    const char *err = NULL;
    const char *text = "# callers\n"
                       "shop-a " HASH_SECRET "\n"
                       "\n"
                       "shop_b\t" HASH_OTHER_UPPER "\r\n";

    ck_assert_int_eq(parse(&k, text, &err), APR_SUCCESS);
    ck_assert_int_eq(od_keys_count(k), 2);
    ck_assert_str_eq(od_keys_lookup(k, "secret"), "shop-a");
    ck_assert_str_eq(od_keys_lookup(k, "other"), "shop_b");
    ck_assert_ptr_null(od_keys_lookup(k, "secret "));
    ck_assert_ptr_null(od_keys_lookup(k, "Secret"));
    ck_assert_ptr_null(od_keys_lookup(k, ""));
    ck_assert_ptr_null(od_keys_lookup(k, NULL));
}
END_TEST

START_TEST(test_keys_bad_lines_name_the_line)
{
    const char *bad[][2] = {
        {"a\n", "keys:1: expected 'NAME SHA256HEX [rate=R] [burst=B]'"},
        {"# x\nshop abc\n", "keys:2: the key hash must be 64 hex digits"},
        {"sh op 2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b\n",
         "keys:1: expected"},
        {"shop " HASH_SECRET " rate=0\n", "keys:1: rate= must be a number"},
        {"shop " HASH_SECRET " rate=x\n", "keys:1: rate= must be a number"},
        {"shop " HASH_SECRET " burst=0\n", "keys:1: burst= must be an integer"},
        {"shop " HASH_SECRET " colour=red\n", "keys:1: expected 'NAME SHA256HEX [rate=R]"},
        {"sh/op 2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b\n",
         "keys:1: caller name 'sh/op'"},
        {"s 2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25g\n",
         "keys:1: the key hash"},
        {"a 2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b\n"
         "a " HASH_OTHER_UPPER "\n",
         "keys:2: caller 'a' is listed twice"},
        {"a 2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b\n"
         "b 2BB80D537B1DA3E38BD30361AA855686BDE0EACD7162FEF6A25FE97BF527A25B\n",
         "keys:2: the key hash of 'b' is already used"},
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        od_keys_t *k = (od_keys_t *) 1;
        const char *err = NULL;
        ck_assert_int_eq(parse(&k, bad[i][0], &err), OD_ECONFIG);
        ck_assert_ptr_null(k);
        ck_assert_msg(strncmp(err, bad[i][1], strlen(bad[i][1])) == 0, "case %zu: got '%s'", i,
                      err);
    }
}
END_TEST

/* Found by fuzz/fuzz_keys (fuzz/corpus/keys/regression-nul.keys): the parser split lines with
 * strchr, so a NUL ended the file there and the callers after it were dropped without a word. */
START_TEST(test_keys_nul_byte_is_an_error)
{
    static const char text[] = "# callers\n\0\nshop-b " HASH_OTHER_UPPER "\n";
    od_keys_t *k = (od_keys_t *) 1;
    const char *err = NULL;

    ck_assert_int_eq(od_keys_parse(&k, text, sizeof(text) - 1, "keys", &err, od_test_pool),
                     OD_ECONFIG);
    ck_assert_ptr_null(k);
    ck_assert_str_eq(err, "keys:2: the line contains a NUL byte");
}
END_TEST

START_TEST(test_keys_rate_and_burst_per_caller)
{
    od_keys_t *k = NULL;
    const char *err = NULL;
    double rate = -1;
    int burst = -1;

    ck_assert_int_eq(
        parse(&k, "a " HASH_SECRET " rate=2.5 burst=7\nb " HASH_OTHER_UPPER "\n", &err),
        APR_SUCCESS);
    ck_assert_int_eq(od_keys_limits(k, "a", &rate, &burst), 1);
    ck_assert(rate == 2.5);
    ck_assert_int_eq(burst, 7);
    ck_assert_int_eq(od_keys_limits(k, "b", &rate, &burst), 1);
    ck_assert(rate == 0); /* the default */
    ck_assert_int_eq(burst, 0);
    ck_assert_int_eq(od_keys_limits(k, "nobody", &rate, &burst), 0);
}
END_TEST

START_TEST(test_keys_name_length_limit)
{
    od_keys_t *k = NULL;
    const char *err = NULL;
    char line[256];
    char name[66];

    memset(name, 'n', 64);
    name[64] = '\0';
    snprintf(line, sizeof(line), "%s %s\n", name,
             "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b");
    ck_assert_int_eq(parse(&k, line, &err), APR_SUCCESS);
    memset(name, 'n', 65);
    name[65] = '\0';
    snprintf(line, sizeof(line), "%s %s\n", name,
             "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b");
    ck_assert_int_eq(parse(&k, line, &err), OD_ECONFIG);
}
END_TEST

/* Every request would get 401: a file with no caller is refused instead. */
START_TEST(test_keys_file_without_callers_refused)
{
    const char *empty[] = {"", "\n", "# callers, one a line\n\n   \n#shop " HASH_SECRET "\n"};

    for (size_t i = 0; i < sizeof(empty) / sizeof(empty[0]); i++) {
        od_keys_t *k = (od_keys_t *) 1;
        const char *err = NULL;
        ck_assert_int_eq(parse(&k, empty[i], &err), OD_ECONFIG);
        ck_assert_ptr_null(k);
        ck_assert_msg(err != NULL && strncmp(err, "keys: no callers", 16) == 0, "case %zu: %s", i,
                      err);
    }
}
END_TEST

Suite *od_keys_suite(void)
{
    Suite *s = suite_create("keys");
    TCase *tc = tcase_create("file");

    tcase_add_checked_fixture(tc, od_test_pool_setup, od_test_pool_teardown);
    tcase_add_test(tc, test_keys_lookup_by_hash);
    tcase_add_test(tc, test_keys_bad_lines_name_the_line);
    tcase_add_test(tc, test_keys_name_length_limit);
    tcase_add_test(tc, test_keys_rate_and_burst_per_caller);
    tcase_add_test(tc, test_keys_file_without_callers_refused);
    tcase_add_test(tc, test_keys_nul_byte_is_an_error);
    suite_add_tcase(s, tc);
    return s;
}

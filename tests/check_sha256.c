/* Tests for od_sha256: a known answer (FIPS 180-2's "abc"), and the hex encoding. */
#include "od_sha256.h"
#include "od_suites.h"

#include <string.h>

START_TEST(test_sha256_known_answer)
{
    od_sha256_t *h = NULL;
    unsigned char md[OD_SHA256_LEN];
    char hex[2 * OD_SHA256_LEN + 1];

    ck_assert_int_eq(od_sha256_create(&h, od_test_pool), APR_SUCCESS);
    ck_assert_ptr_nonnull(h);
    ck_assert_int_eq(od_sha256_digest(h, "abc", 3, md), 1);
    od_sha256_hex(hex, md, sizeof(md));
    ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    ck_assert_int_eq(od_sha256_digest(h, "", 0, md), 1);
    od_sha256_hex(hex, md, sizeof(md));
    ck_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}
END_TEST

START_TEST(test_sha256_hex_lower_case_and_terminated)
{
    const unsigned char in[] = {0x00, 0x0f, 0xa0, 0xff};
    char out[2 * sizeof(in) + 2];

    memset(out, 'x', sizeof(out));
    od_sha256_hex(out, in, sizeof(in));
    ck_assert_str_eq(out, "000fa0ff");
    ck_assert_int_eq(out[2 * sizeof(in) + 1], 'x');
}
END_TEST

Suite *od_sha256_suite(void)
{
    Suite *s = suite_create("sha256");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, od_test_pool_setup, od_test_pool_teardown);
    tcase_add_test(tc, test_sha256_known_answer);
    tcase_add_test(tc, test_sha256_hex_lower_case_and_terminated);
    suite_add_tcase(s, tc);
    return s;
}

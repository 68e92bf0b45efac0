/* Tests of od_status. */
#include "od_status.h"
#include "od_suites.h"

#include <string.h>

START_TEST(test_status_names_own_values)
{
    char buf[64];

    ck_assert_str_eq(od_status_str(OD_EINVAL, buf, sizeof(buf)), "invalid input");
    ck_assert_str_eq(od_status_str(OD_ESHUTDOWN, buf, sizeof(buf)), "shutting down");
    ck_assert_str_eq(od_status_str(OD_EUNKNOWN, buf, sizeof(buf)), "outcome unknown");
}
END_TEST

START_TEST(test_status_falls_back_to_apr)
{
    char buf[64];
    const char *s = od_status_str(APR_ENOENT, buf, sizeof(buf));

    ck_assert_ptr_eq(s, buf);
    ck_assert_int_gt(strlen(s), 0);
}
END_TEST

Suite *od_status_suite(void)
{
    Suite *s = suite_create("status");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_status_names_own_values);
    tcase_add_test(tc, test_status_falls_back_to_apr);
    suite_add_tcase(s, tc);
    return s;
}

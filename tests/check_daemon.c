/* Tests for od_daemon: the command line shared by orderd and order-consumer. */
#include "od_daemon.h"
#include "od_suites.h"

static const od_daemon_cli_t with_flag = {"prog", "usage: prog\n", "init-store", "create"};
static const od_daemon_cli_t no_flag = {"prog", "usage: prog\n", NULL, NULL};

#define PARSE(cli, args, ...)                                                                      \
    od_daemon_parse_args((cli), (args),                                                            \
                         (int) (sizeof((const char *[]){"prog", __VA_ARGS__}) / sizeof(char *)),   \
                         (const char *const[]){"prog", __VA_ARGS__}, od_test_pool)

START_TEST(test_daemon_parses_config_test_and_flag)
{
    od_daemon_args_t a;

    ck_assert_int_eq(PARSE(&with_flag, &a, "-c", "x.conf"), 0);
    ck_assert_str_eq(a.config, "x.conf");
    ck_assert_int_eq(a.test_only, 0);
    ck_assert_int_eq(a.flag, 0);
    ck_assert_int_eq(PARSE(&with_flag, &a, "-t", "--config", "y.conf", "--init-store"), 0);
    ck_assert_str_eq(a.config, "y.conf");
    ck_assert_int_eq(a.test_only, 1);
    ck_assert_int_eq(a.flag, 1);
}
END_TEST

START_TEST(test_daemon_version_and_help_exit_zero)
{
    od_daemon_args_t a;

    ck_assert_int_eq(PARSE(&no_flag, &a, "--version"), -1);
    ck_assert_int_eq(PARSE(&no_flag, &a, "-h"), -1);
}
END_TEST

START_TEST(test_daemon_bad_command_lines_are_2)
{
    od_daemon_args_t a;

    ck_assert_int_eq(PARSE(&no_flag, &a, "-t"), 2);                      /* no -c */
    ck_assert_int_eq(PARSE(&no_flag, &a, "-c", "x", "stray"), 2);        /* stray argument */
    ck_assert_int_eq(PARSE(&no_flag, &a, "-c", "x", "--init-store"), 2); /* not this program's */
    ck_assert_int_eq(PARSE(&with_flag, &a, "-c", "x", "-I"), 2);         /* no short letter */
    ck_assert_int_eq(PARSE(&with_flag, &a, "-c"), 2);                    /* -c without FILE */
}
END_TEST

Suite *od_daemon_suite(void)
{
    Suite *s = suite_create("daemon");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, od_test_pool_setup, od_test_pool_teardown);
    tcase_add_test(tc, test_daemon_parses_config_test_and_flag);
    tcase_add_test(tc, test_daemon_version_and_help_exit_zero);
    tcase_add_test(tc, test_daemon_bad_command_lines_are_2);
    suite_add_tcase(s, tc);
    return s;
}

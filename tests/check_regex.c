/* Tests of od_regex: the cost bound in front of regcomp. */
#include "od_regex.h"
#include "od_status.h"
#include "od_suites.h"

#include <stdio.h>
#include <string.h>

/* Asserts that @p pattern passes the check and compiles. */
static void assert_accepted(const char *pattern)
{
    regex_t re;
    const char *err = NULL;

    ck_assert_msg(od_regex_check(pattern, od_test_pool) == NULL, "refused: %s: %s", pattern,
                  od_regex_check(pattern, od_test_pool));
    ck_assert_msg(od_regex_compile(&re, pattern, &err, od_test_pool) == APR_SUCCESS, "%s", err);
    regfree(&re);
}

/* Asserts that @p pattern is refused before regcomp, for a reason that contains @p why. */
static void assert_refused(const char *pattern, const char *why)
{
    regex_t re;
    const char *err = NULL, *check = od_regex_check(pattern, od_test_pool);

    ck_assert_msg(check != NULL && strstr(check, why) != NULL, "%s: got '%s', want '%s'", pattern,
                  check != NULL ? check : "(accepted)", why);
    ck_assert_int_eq(od_regex_compile(&re, pattern, &err, od_test_pool), OD_ECONFIG);
    ck_assert_ptr_nonnull(strstr(err, why));
}

START_TEST(test_regex_ordinary_patterns_accepted)
{
    assert_accepted("^CUST-[0-9]{6}$");
    assert_accepted("^[A-Z]{2}-[0-9]{4,12}$");
    assert_accepted("^[a-z0-9._-]{1,64}$");
    assert_accepted("^C#[0-9]+$");
    assert_accepted("^(EU|US|APAC)-[A-Z0-9]{8}(-[0-9]{1,3})?$");
    assert_accepted("^[[:alnum:]_]+\\.[[:digit:]]*$");
}
END_TEST

/* The measure of a{1,N} is N and of (a{1,N}){1,N} (N + 1) * N: both sides of the bound. */
START_TEST(test_regex_bound_is_exact)
{
    const char *why = "too costly to compile";

    assert_accepted("a{1,500}");
    assert_refused("a{1,501}", why);
    assert_accepted("a{499,}"); /* n copies and a star */
    assert_refused("a{500,}", why);
    assert_accepted("(a{1,21}){1,21}"); /* 462 */
    assert_refused("(a{1,22}){1,22}", why);
    assert_accepted("a++++++++"); /* 2^8 */
    assert_refused("a+++++++++", why);
    assert_accepted("(a|b){1,125}"); /* 4 * 125 */
    assert_refused("(a|b){1,126}", why);
    assert_accepted("(){1,500}"); /* an empty group still counts 1 */
    assert_refused("(){1,501}", why);
}
END_TEST

START_TEST(test_regex_costly_patterns_refused)
{
    const char *why = "too costly to compile";

    assert_refused("a++++++++++++++++++++++", why);
    assert_refused("(a{1,100}){1,100}", why);
    assert_refused("((a|b){1,50}){1,50}", why);
    assert_refused("a{1,1000}", why);
    assert_refused("(a?){1,5000}", why);
    assert_refused("((((a{9}){9}){9}){9})", why);
    assert_refused("(a**********************", why); /* unbalanced, measured all the same */
}
END_TEST

/* A bracket expression is one atom, however many ']' or '[' it holds; a miscounted one would
 * put the bound on a single character and change the measure. */
START_TEST(test_regex_brackets_and_escapes_are_one_atom)
{
    const char *why = "too costly to compile";

    assert_accepted("[]a]{500}");
    assert_refused("[]a]{501}", why);
    assert_accepted("[^]]{500}");
    assert_accepted("[[:alpha:]]{500}");
    assert_refused("[[:alpha:]]{501}", why);
    assert_accepted("[[.-.][=e=]a-z]{500}");
    assert_accepted("[(]{500}"); /* no group opens inside brackets */
    assert_accepted("\\({500}");
    assert_refused("\\({501}", why);
    assert_accepted("\\{{500}");
}
END_TEST

START_TEST(test_regex_repetition_above_re_dup_max_refused)
{
    char pattern[64];

    snprintf(pattern, sizeof(pattern), "a{%d}", RE_DUP_MAX + 1);
    assert_refused(pattern, "above RE_DUP_MAX");
    assert_refused("a{1,99999999999999999999999}", "above RE_DUP_MAX"); /* no overflow */
    assert_refused("a{99999999999999999999999,}", "above RE_DUP_MAX");
}
END_TEST

START_TEST(test_regex_back_references_refused)
{
    assert_refused("^(a*)\\1$", "back-reference");
    assert_refused("(a*)(a*)(a*)\\3\\2\\1c", "back-reference");
    assert_accepted("^a\\.b\\[0\\]$"); /* other escapes are fine */
}
END_TEST

START_TEST(test_regex_length_bounded)
{
    char pattern[OD_REGEX_MAX_LEN + 2];

    memset(pattern, 'a', OD_REGEX_MAX_LEN);
    pattern[OD_REGEX_MAX_LEN] = '\0';
    assert_accepted(pattern);
    pattern[OD_REGEX_MAX_LEN] = 'a';
    pattern[OD_REGEX_MAX_LEN + 1] = '\0';
    assert_refused(pattern, "is 257 bytes long; at most 256");
}
END_TEST

START_TEST(test_regex_syntax_errors_from_regcomp)
{
    regex_t re;
    const char *err = NULL;

    ck_assert_ptr_null(od_regex_check("^(CUST", od_test_pool));
    ck_assert_int_eq(od_regex_compile(&re, "^(CUST", &err, od_test_pool), OD_ECONFIG);
    ck_assert_ptr_nonnull(strstr(err, "'^(CUST' is not a valid POSIX extended regular expression"));
    ck_assert_int_eq(od_regex_compile(&re, "[a-", &err, od_test_pool), OD_ECONFIG);
    ck_assert_int_eq(od_regex_compile(&re, "a{2,1}", &err, od_test_pool), OD_ECONFIG);
}
END_TEST

START_TEST(test_regex_compiled_pattern_matches)
{
    regex_t re;
    const char *err = NULL;

    ck_assert_int_eq(od_regex_compile(&re, "^CUST-[0-9]{6}$", &err, od_test_pool), APR_SUCCESS);
    ck_assert_int_eq(regexec(&re, "CUST-000123", 0, NULL, 0), 0);
    ck_assert_int_ne(regexec(&re, "CUST-00012", 0, NULL, 0), 0);
    regfree(&re);
}
END_TEST

Suite *od_regex_suite(void)
{
    Suite *s = suite_create("regex");
    TCase *tc = tcase_create("cost");

    tcase_add_checked_fixture(tc, od_test_pool_setup, od_test_pool_teardown);
    tcase_add_test(tc, test_regex_ordinary_patterns_accepted);
    tcase_add_test(tc, test_regex_bound_is_exact);
    tcase_add_test(tc, test_regex_costly_patterns_refused);
    tcase_add_test(tc, test_regex_brackets_and_escapes_are_one_atom);
    tcase_add_test(tc, test_regex_repetition_above_re_dup_max_refused);
    tcase_add_test(tc, test_regex_back_references_refused);
    tcase_add_test(tc, test_regex_length_bounded);
    tcase_add_test(tc, test_regex_syntax_errors_from_regcomp);
    tcase_add_test(tc, test_regex_compiled_pattern_matches);
    suite_add_tcase(s, tc);
    return s;
}

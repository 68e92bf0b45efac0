/* Tests of od_utf8: what is well-formed, and repair that keeps valid text byte for byte. */
#include "od_suites.h"
#include "od_utf8.h"

#include <stdio.h>
#include <string.h>

/* od_utf8_repair of @p in (length @p len) must give @p want. */
static void assert_repair(const char *in, apr_size_t len, const char *want)
{
    char out[256];

    ck_assert_uint_le(3 * len, sizeof(out));
    apr_size_t n = od_utf8_repair(out, in, len);
    ck_assert_uint_eq(n, strlen(want));
    ck_assert_msg(memcmp(out, want, n) == 0, "repair of %zu bytes gave %.*s", (size_t) len, (int) n,
                  out);
}

START_TEST(test_utf8_valid_text_kept_intact)
{
    /* 2-, 3- and 4-byte sequences at the edges of their ranges, ASCII long enough for the
     * eight-byte scan, and a NUL. */
    static const char text[] = "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xC2\x80\xDF\xBF"
                               "\xE0\xA0\x80\xED\x9F\xBF\xEE\x80\x80\xEF\xBF\xBF"
                               "\xF0\x90\x80\x80\xF4\x8F\xBF\xBF plain ASCII, a few words\0end";
    apr_size_t len = sizeof(text) - 1;

    ck_assert_uint_eq(od_utf8_valid_prefix(text, len), len);
    char out[3 * sizeof(text)];
    ck_assert_uint_eq(od_utf8_repair(out, text, len), len);
    ck_assert(memcmp(out, text, len) == 0);
    ck_assert_uint_eq(od_utf8_valid_prefix("", 0), 0);
}
END_TEST

START_TEST(test_utf8_invalid_bytes_each_replaced)
{
    const char *r = OD_UTF8_REPLACEMENT;
    char want[128];

    /* Bytes never valid, and a lone continuation. */
    snprintf(want, sizeof(want), "/%s%s/%s", r, r, r);
    assert_repair("/\xFF\xFE/\x80", 5, want);
    /* Overlong '/' (C0 AF, E0 80 AF), a surrogate, above U+10FFFF, F5 lead. */
    snprintf(want, sizeof(want), "%s%s.%s%s%s.%s%s%s.%s%s%s%s.%s", r, r, r, r, r, r, r, r, r, r, r,
             r, r);
    assert_repair("\xC0\xAF.\xE0\x80\xAF.\xED\xA0\x80.\xF4\x90\x80\x80.\xF5", 17, want);
    /* A truncated sequence, before ASCII and at the very end: each byte is replaced, the
     * following ASCII kept. */
    snprintf(want, sizeof(want), "a%s%sb%s", r, r, r);
    assert_repair("a\xE2\x82"
                  "b\xF0",
                  5, want);
    /* Valid text around an invalid byte stays as it was. */
    snprintf(want, sizeof(want), "\xC3\xA9%s\xE2\x82\xAC", r);
    assert_repair("\xC3\xA9\xFF\xE2\x82\xAC", 6, want);
}
END_TEST

START_TEST(test_utf8_prefix_and_seq_len)
{
    ck_assert_uint_eq(od_utf8_valid_prefix("0123456789abcdef\xFF", 17), 16);
    ck_assert_uint_eq(od_utf8_valid_prefix("\xC3\xA9\xC3", 3), 2);
    ck_assert_uint_eq(od_utf8_seq_len((const unsigned char *) "\xE2\x82\xAC", 3), 3);
    ck_assert_uint_eq(od_utf8_seq_len((const unsigned char *) "\xE2\x82\xAC", 2), 0);
    ck_assert_uint_eq(od_utf8_seq_len((const unsigned char *) "\xC1\xBF", 2), 0);
    ck_assert_uint_eq(od_utf8_seq_len((const unsigned char *) "\xF0\x8F\xBF\xBF", 4), 0);
}
END_TEST

Suite *od_utf8_suite(void)
{
    Suite *s = suite_create("utf8");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_utf8_valid_text_kept_intact);
    tcase_add_test(tc, test_utf8_invalid_bytes_each_replaced);
    tcase_add_test(tc, test_utf8_prefix_and_seq_len);
    suite_add_tcase(s, tc);
    return s;
}

/* Tests of od_reqhead: the request head rules, on heads built field by field. */
#include "od_reqhead.h"
#include "od_suites.h"

#include <string.h>

#define RH_MAX 16384

/* Checks a head of "Name: value" strings (NULL-terminated list) under @p version. */
static int check_head(const char *version, const char *const *lines, od_reqhead_verdict_t *v)
{
    od_reqhead_field_t fields[16];
    int n = 0;

    for (; lines[n] != NULL; n++) {
        const char *colon = strchr(lines[n], ':');
        ck_assert_ptr_nonnull(colon);
        const char *value = colon + 1;
        while (*value == ' ') {
            value++;
        }
        fields[n] = (od_reqhead_field_t){lines[n], (apr_size_t) (colon - lines[n]), value,
                                         strlen(value), 0};
    }
    od_reqhead_t head = {version, fields, n, 200};
    return od_reqhead_check(&head, RH_MAX, v);
}

#define HEAD(version, ...) check_head(version, (const char *const[]){__VA_ARGS__, NULL}, &v)

START_TEST(test_reqhead_ordinary_heads_pass)
{
    od_reqhead_verdict_t v;

    ck_assert_int_eq(HEAD("HTTP/1.1", "Host: x"), 0);
    ck_assert_int_eq(v.status, 0);
    ck_assert_int_eq(HEAD("HTTP/1.1", "Host: 127.0.0.1:8080", "Content-Type: application/json",
                          "Content-Length: 120", "X-API-Key: odk_1234", "Accept: */*"),
                     0);
    ck_assert_int_eq(HEAD("HTTP/1.1", "Host: x", "Transfer-Encoding: chunked"), 0);
    ck_assert_int_eq(HEAD("HTTP/1.1", "Host: x", "transfer-encoding: CHUNKED"), 0);
    /* HTTP/1.0 needs no Host; obs-text and tabs are fine in values. */
    ck_assert_int_eq(HEAD("HTTP/1.0", "X-Note: caf\xc3\xa9\tbar"), 0);
}
END_TEST

START_TEST(test_reqhead_length_and_chunked_together_refused)
{
    od_reqhead_verdict_t v;

    /* The smuggling vector: a front proxy and orderd disagree on where the body ends. */
    ck_assert_int_eq(
        HEAD("HTTP/1.1", "Host: x", "Content-Length: 270", "Transfer-Encoding: chunked"), 400);
    ck_assert_ptr_nonnull(strstr(v.detail, "both Content-Length and Transfer-Encoding"));
    ck_assert_int_eq(HEAD("HTTP/1.1", "Transfer-Encoding: chunked", "Host: x", "Content-Length: 0"),
                     400);
}
END_TEST

START_TEST(test_reqhead_unknown_transfer_coding_501)
{
    od_reqhead_verdict_t v;

    ck_assert_int_eq(HEAD("HTTP/1.1", "Host: x", "Transfer-Encoding: xchunked"), 501);
    ck_assert_str_eq(v.title, "Not Implemented");
    ck_assert_int_eq(HEAD("HTTP/1.1", "Host: x", "Transfer-Encoding: identity"), 501);
    ck_assert_int_eq(HEAD("HTTP/1.1", "Host: x", "Transfer-Encoding: gzip, chunked"), 501);
    /* libmicrohttpd compares the whole value, so "chunked " would be read as no framing. */
    ck_assert_int_eq(HEAD("HTTP/1.1", "Host: x", "Transfer-Encoding: chunked "), 501);
    ck_assert_int_eq(
        HEAD("HTTP/1.1", "Host: x", "Transfer-Encoding: chunked", "Transfer-Encoding: chunked"),
        501);
    /* Before HTTP/1.1 a transfer coding is a framing fault (RFC 9112 6.1). */
    ck_assert_int_eq(HEAD("HTTP/1.0", "Transfer-Encoding: chunked"), 400);
}
END_TEST

START_TEST(test_reqhead_bad_content_length_400)
{
    od_reqhead_verdict_t v;

    ck_assert_int_eq(HEAD("HTTP/1.1", "Host: x", "Content-Length: 5", "Content-Length: 5"), 400);
    ck_assert_int_eq(HEAD("HTTP/1.1", "Host: x", "Content-Length: 5, 5"), 400);
    ck_assert_int_eq(HEAD("HTTP/1.1", "Host: x", "Content-Length: +5"), 400);
    ck_assert_int_eq(HEAD("HTTP/1.1", "Host: x", "Content-Length: "), 400);
    ck_assert_int_eq(HEAD("HTTP/1.1", "Host: x", "Content-Length: 1234567890123456789"), 400);
    ck_assert_int_eq(HEAD("HTTP/1.1", "Host: x", "Content-Length: 123456789012345678"), 0);
}
END_TEST

START_TEST(test_reqhead_field_name_must_be_token)
{
    od_reqhead_verdict_t v;

    /* "Content-Length : 5" reaches us as a field named "Content-Length ". */
    ck_assert_int_eq(HEAD("HTTP/1.1", "Host: x", "Content-Length : 5"), 400);
    ck_assert_ptr_nonnull(strstr(v.detail, "not a token"));
    ck_assert_int_eq(HEAD("HTTP/1.1", "Host: x", "X(A): 1"), 400);
    ck_assert_int_eq(HEAD("HTTP/1.1", "Host: x", ": 1"), 400);
    ck_assert_int_eq(HEAD("HTTP/1.1", "Host: x", "X-\xc3\xa9: 1"), 400);
}
END_TEST

START_TEST(test_reqhead_control_characters_and_cut_values_400)
{
    od_reqhead_verdict_t v;

    ck_assert_int_eq(HEAD("HTTP/1.1", "Host: x", "X-A: a\rb"), 400);
    ck_assert_int_eq(HEAD("HTTP/1.1", "Host: x", "X-A: a\x01"), 400);
    ck_assert_int_eq(HEAD("HTTP/1.1", "Host: x", "X-A: a\x7f"), 400);
    /* A NUL the parser cut the value at ("X-API-Key: KEY\0junk"). */
    od_reqhead_field_t f[2] = {{"Host", 4, "x", 1, 0}, {"X-API-Key", 9, "KEY", 3, 1}};
    od_reqhead_t head = {"HTTP/1.1", f, 2, 100};
    ck_assert_int_eq(od_reqhead_check(&head, RH_MAX, &v), 400);
    ck_assert_ptr_nonnull(strstr(v.detail, "control character"));
    /* A NUL inside the value as given is refused too. */
    f[1] = (od_reqhead_field_t){"X-API-Key", 9, "KEY\0junk", 8, 0};
    ck_assert_int_eq(od_reqhead_check(&head, RH_MAX, &v), 400);
}
END_TEST

START_TEST(test_reqhead_host_exactly_once_in_http11)
{
    od_reqhead_verdict_t v;

    ck_assert_int_eq(HEAD("HTTP/1.1", "Content-Length: 2"), 400);
    ck_assert_ptr_nonnull(strstr(v.detail, "Host"));
    ck_assert_int_eq(HEAD("HTTP/1.1", "Host: a", "Host: b"), 400);
    ck_assert_int_eq(HEAD("HTTP/1.0", "Host: a", "Host: b"), 400);
    ck_assert_int_eq(HEAD("HTTP/1.1", "host: a"), 0);
}
END_TEST

START_TEST(test_reqhead_head_over_limit_431)
{
    od_reqhead_field_t f = {"Host", 4, "x", 1, 0};
    od_reqhead_t head = {"HTTP/1.1", &f, 1, RH_MAX};
    od_reqhead_verdict_t v;

    ck_assert_int_eq(od_reqhead_check(&head, RH_MAX, &v), 0);
    head.head_bytes = RH_MAX + 1;
    ck_assert_int_eq(od_reqhead_check(&head, RH_MAX, &v), 431);
    ck_assert_str_eq(v.title, "Request Header Fields Too Large");
    /* An unknown size (0) is not judged. */
    head.head_bytes = 0;
    ck_assert_int_eq(od_reqhead_check(&head, RH_MAX, &v), 0);
}
END_TEST

Suite *od_reqhead_suite(void)
{
    Suite *s = suite_create("reqhead");
    TCase *tc = tcase_create("rules");

    tcase_add_test(tc, test_reqhead_ordinary_heads_pass);
    tcase_add_test(tc, test_reqhead_length_and_chunked_together_refused);
    tcase_add_test(tc, test_reqhead_unknown_transfer_coding_501);
    tcase_add_test(tc, test_reqhead_bad_content_length_400);
    tcase_add_test(tc, test_reqhead_field_name_must_be_token);
    tcase_add_test(tc, test_reqhead_control_characters_and_cut_values_400);
    tcase_add_test(tc, test_reqhead_host_exactly_once_in_http11);
    tcase_add_test(tc, test_reqhead_head_over_limit_431);
    suite_add_tcase(s, tc);
    return s;
}

/* od_test_aws: AWS calls to the local engines, for the test suites. */
#include "od_test_aws.h"
#include "od_aws_creds.h"
#include "od_log.h"

#include <apr_strings.h>
#include <check.h>
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

od_aws_t *od_test_aws_client(apr_pool_t *p, const char *id, const char *secret, long timeout_ms)
{
    od_log_t *log = NULL;
    od_aws_creds_t *creds = NULL;
    od_aws_t *aws = NULL;
    od_aws_creds_options_t co = {.access_key_id = id, .secret_access_key = secret};
    od_aws_options_t ao = {"us-east-1", 2, 2000, timeout_ms, 1, 10, 10};

    od_log_create(&log, OD_LOG_ERROR, stderr, p);
    ck_assert_int_eq(od_aws_creds_create(&creds, &co, log, p), APR_SUCCESS);
    ck_assert_int_eq(od_aws_create(&aws, &ao, creds, log, p), APR_SUCCESS);
    return aws;
}

const char *od_test_aws_query(apr_pool_t *p, od_aws_t *aws, const od_test_engine_t *engine,
                              const char *service, const char *params)
{
    od_aws_request_t req = {service, od_test_engine_url(engine),
                            NULL,    "application/x-www-form-urlencoded; charset=utf-8",
                            params,  strlen(params),
                            NULL};
    od_aws_response_t resp;

    ck_assert_msg(od_aws_call(aws, &req, &resp, p) == APR_SUCCESS, "%s %s: %ld %s", service, params,
                  resp.http_status, resp.body);
    return resp.body;
}

const char *od_test_url_escape(apr_pool_t *p, const char *s)
{
    char *e = curl_easy_escape(NULL, s, 0);
    const char *copy = apr_pstrdup(p, e);

    curl_free(e);
    return copy;
}

const char *od_test_xml_text(apr_pool_t *p, const char *xml, const char *tag)
{
    const char *open = apr_pstrcat(p, "<", tag, ">", NULL);
    const char *start = strstr(xml, open);
    const char *end = start != NULL ? strstr(start, apr_pstrcat(p, "</", tag, ">", NULL)) : NULL;

    ck_assert_msg(end != NULL, "no <%s> in %s", tag, xml);
    start += strlen(open);
    return apr_pstrmemdup(p, start, (apr_size_t) (end - start));
}

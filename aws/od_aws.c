/* od_aws: pooled, SigV4-signing, retrying AWS client on libcurl. */
#include "od_aws.h"
#include "od_status.h"

#include <apr_reslist.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <curl/curl.h>
#include <json-c/json.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#define OD_AWS_BUDGET_MAX 500
#define OD_AWS_RETRY_COST 5
#define OD_AWS_TIMEOUT_RETRY_COST 10
#define OD_AWS_NO_RETRY_REFUND 1

const double od_aws_latency_bounds_ms[OD_AWS_LATENCY_BUCKETS] = {1,   2,   5,   10,   25,   50,
                                                                 100, 250, 500, 1000, 2500, 1e12};

/* How an attempt ended, which decides whether to retry and what it costs. */
typedef enum od_aws_outcome_e {
    OD_AWS_OK,
    OD_AWS_RETRY_THROTTLED,
    OD_AWS_RETRY_TRANSIENT,
    OD_AWS_RETRY_TIMEOUT,
    OD_AWS_FINAL
} od_aws_outcome_e;

struct od_aws_s {
    od_aws_options_t opts;
    od_aws_creds_t *creds;
    od_log_t *log;
    apr_reslist_t *handles;   /* CURL easy handles, at most max_connections */
    apr_pool_t *handles_pool; /* handles' own pool (od_aws_pool_create); NULL once destroyed */
    CURLSH *share;
    /* One mutex per curl lock data kind the share handle uses (curl's lock callback contract). */
    apr_thread_mutex_t *share_locks[CURL_LOCK_DATA_LAST];
    /* Guarded by lock: budget and stats. */
    apr_thread_mutex_t *lock;
    int budget;
    od_aws_stats_t stats;
};

/* ---- curl share handle locking ---- */

static void od_aws_share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *u)
{
    od_aws_t *aws = u;
    apr_thread_mutex_lock(aws->share_locks[data]);
}

static void od_aws_share_unlock(CURL *h, curl_lock_data data, void *u)
{
    od_aws_t *aws = u;
    apr_thread_mutex_unlock(aws->share_locks[data]);
}

static apr_status_t od_aws_share_create(od_aws_t *aws, apr_pool_t *p)
{
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++) {
        if (apr_thread_mutex_create(&aws->share_locks[i], APR_THREAD_MUTEX_DEFAULT, p) !=
            APR_SUCCESS) {
            return APR_ENOMEM;
        }
    }
    aws->share = curl_share_init();
    if (aws->share == NULL) {
        od_log_error(aws->log, "aws: curl_share_init failed");
        return APR_ENOMEM;
    }
    curl_share_setopt(aws->share, CURLSHOPT_LOCKFUNC, od_aws_share_lock);
    curl_share_setopt(aws->share, CURLSHOPT_UNLOCKFUNC, od_aws_share_unlock);
    curl_share_setopt(aws->share, CURLSHOPT_USERDATA, aws);
    curl_share_setopt(aws->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(aws->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    return APR_SUCCESS;
}

/* ---- the handle pool ---- */

static apr_status_t od_aws_handle_make(void **res, void *params, apr_pool_t *p)
{
    od_aws_t *aws = params;
    CURL *h = curl_easy_init();

    if (h == NULL) {
        od_log_error(aws->log, "aws: curl_easy_init failed");
        return APR_ENOMEM;
    }
    *res = h;
    return APR_SUCCESS;
}

static apr_status_t od_aws_handle_free(void *res, void *params, apr_pool_t *p)
{
    curl_easy_cleanup(res);
    return APR_SUCCESS;
}

/* ---- one attempt ---- */

typedef struct od_aws_buf_t {
    char *data;
    apr_size_t len;
    apr_size_t cap;
    apr_pool_t *pool;
} od_aws_buf_t;

static size_t od_aws_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    od_aws_buf_t *b = userdata;
    apr_size_t n = size * nmemb;

    if (b->len + n + 1 > b->cap) {
        apr_size_t cap = (b->len + n + 1) * 2;
        char *grown = apr_palloc(b->pool, cap);
        memcpy(grown, b->data, b->len);
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

static struct curl_slist *od_aws_headers(const od_aws_request_t *req,
                                         const od_aws_credentials_t *cr, apr_pool_t *p)
{
    struct curl_slist *h = NULL;

    h = curl_slist_append(h, apr_pstrcat(p, "Content-Type: ", req->content_type, NULL));
    if (req->target != NULL) {
        h = curl_slist_append(h, apr_pstrcat(p, "X-Amz-Target: ", req->target, NULL));
    }
    if (cr->session_token != NULL) {
        h = curl_slist_append(h, apr_pstrcat(p, "X-Amz-Security-Token: ", cr->session_token, NULL));
    }
    /* No "Expect:" override here: curl 7.88 lists a suppressed header in SignedHeaders without
     * sending it, so every signature would be refused (moto's verifier caught it). Our bodies
     * stay far below the size at which curl sends Expect: 100-continue. */
    return h;
}

static void od_aws_setup(od_aws_t *aws, CURL *h, const od_aws_request_t *req,
                         const od_aws_credentials_t *cr, struct curl_slist *headers,
                         od_aws_buf_t *buf, apr_pool_t *p)
{
    curl_easy_reset(h); /* keeps the live connection, DNS cache and share */
    curl_easy_setopt(h, CURLOPT_URL, req->endpoint);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) req->body_len);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_AWS_SIGV4,
                     apr_pstrcat(p, "aws:amz:", aws->opts.region, ":", req->service, NULL));
    curl_easy_setopt(h, CURLOPT_USERNAME, cr->access_key_id);
    curl_easy_setopt(h, CURLOPT_PASSWORD, cr->secret_access_key);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, od_aws_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, buf);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, aws->opts.connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, aws->opts.request_timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_SHARE, aws->share);
}

/* ---- classifying answers ---- */

static int od_aws_code_in(const char *code, const char *const *list)
{
    for (; code != NULL && *list != NULL; list++) {
        if (strcmp(code, *list) == 0) {
            return 1;
        }
    }
    return 0;
}

static const char *const od_aws_throttling_codes[] = {"Throttling",
                                                      "ThrottlingException",
                                                      "ThrottledException",
                                                      "RequestThrottledException",
                                                      "TooManyRequestsException",
                                                      "ProvisionedThroughputExceededException",
                                                      "TransactionInProgressException",
                                                      "RequestLimitExceeded",
                                                      "BandwidthLimitExceeded",
                                                      "LimitExceededException",
                                                      "RequestThrottled",
                                                      "SlowDown",
                                                      "PriorRequestNotComplete",
                                                      "EC2ThrottledException",
                                                      NULL};
static const char *const od_aws_transient_codes[] = {"RequestTimeout",
                                                     "RequestTimeoutException",
                                                     "InternalError",
                                                     "InternalServerError",
                                                     "InternalFailure",
                                                     "ServiceUnavailable",
                                                     NULL};
static const char *const od_aws_auth_codes[] = {"UnrecognizedClientException",
                                                "InvalidSignatureException",
                                                "SignatureDoesNotMatch",
                                                "IncompleteSignature",
                                                "MissingAuthenticationToken",
                                                "MissingAuthenticationTokenException",
                                                "AccessDenied",
                                                "AccessDeniedException",
                                                "ExpiredToken",
                                                "ExpiredTokenException",
                                                "InvalidClientTokenId",
                                                "InvalidAccessKeyId",
                                                "AuthFailure",
                                                NULL};
static const char *const od_aws_conflict_codes[] = {"ConditionalCheckFailedException",
                                                    "TransactionCanceledException", NULL};

/* Between the tags of an XML element (the query protocol's <Code> and <Message>). */
static const char *od_aws_xml_text(const char *body, const char *tag, apr_pool_t *p)
{
    const char *open = apr_pstrcat(p, "<", tag, ">", NULL);
    const char *start = strstr(body, open);
    const char *end = start != NULL ? strstr(start, apr_pstrcat(p, "</", tag, ">", NULL)) : NULL;

    if (end == NULL) {
        return NULL;
    }
    start += strlen(open);
    return apr_pstrmemdup(p, start, (apr_size_t) (end - start));
}

/* The error code and message of a failed answer: JSON ("__type", "message") or XML. */
static void od_aws_parse_error(od_aws_response_t *r, apr_pool_t *p)
{
    json_object *doc = json_tokener_parse(r->body), *v = NULL;

    if (doc != NULL && json_object_is_type(doc, json_type_object)) {
        if (json_object_object_get_ex(doc, "__type", &v) ||
            json_object_object_get_ex(doc, "code", &v)) {
            const char *t = json_object_get_string(v);
            const char *hash = strrchr(t, '#');
            r->error_code = apr_pstrdup(p, hash != NULL ? hash + 1 : t);
        }
        if (json_object_object_get_ex(doc, "message", &v) ||
            json_object_object_get_ex(doc, "Message", &v)) {
            r->error_message = apr_pstrdup(p, json_object_get_string(v));
        }
    } else {
        r->error_code = od_aws_xml_text(r->body, "Code", p);
        r->error_message = od_aws_xml_text(r->body, "Message", p);
    }
    json_object_put(doc);
}

static od_aws_outcome_e od_aws_classify_http(od_aws_response_t *r, apr_status_t *status,
                                             apr_pool_t *p)
{
    if (r->http_status >= 200 && r->http_status < 300) {
        *status = APR_SUCCESS;
        return OD_AWS_OK;
    }
    od_aws_parse_error(r, p);
    if (od_aws_code_in(r->error_code, od_aws_conflict_codes)) {
        *status = OD_ECONFLICT;
        return OD_AWS_FINAL;
    }
    if (od_aws_code_in(r->error_code, od_aws_throttling_codes) || r->http_status == 429) {
        *status = OD_ETHROTTLED;
        return OD_AWS_RETRY_THROTTLED;
    }
    if (od_aws_code_in(r->error_code, od_aws_transient_codes) || r->http_status >= 500) {
        *status = OD_EUNAVAIL;
        return OD_AWS_RETRY_TRANSIENT;
    }
    *status = od_aws_code_in(r->error_code, od_aws_auth_codes) || r->http_status == 403 ? OD_EAUTH
                                                                                        : OD_EINVAL;
    return OD_AWS_FINAL;
}

static od_aws_outcome_e od_aws_classify_curl(CURLcode rc, od_aws_response_t *r,
                                             apr_status_t *status, apr_pool_t *p)
{
    r->error_code = apr_psprintf(p, "curl:%d", (int) rc);
    r->error_message = curl_easy_strerror(rc);
    *status = OD_EUNAVAIL;
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        return OD_AWS_RETRY_TIMEOUT;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
        return OD_AWS_RETRY_TRANSIENT;
    default:
        return OD_AWS_FINAL;
    }
}

/*
 * Whether an attempt without a definitive answer may still have been applied: some of its request
 * was sent (CURLINFO_REQUEST_SIZE counts what curl wrote to the connection: the head and the part
 * of the body sent with it) before the transfer failed or timed out, or the service answered 5xx
 * (a DynamoDB InternalServerError on a transaction may come after it committed). A connection
 * never made, and 2xx and 4xx answers, are definitive.
 */
static int od_aws_maybe_applied(CURL *h, CURLcode rc, long http_status)
{
    long sent = 0;

    if (rc == CURLE_OK) {
        return http_status >= 500;
    }
    return curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &sent) != CURLE_OK || sent > 0;
}

static od_aws_outcome_e od_aws_attempt(od_aws_t *aws, CURL *h, const od_aws_request_t *req,
                                       const od_aws_credentials_t *cr, od_aws_response_t *resp,
                                       apr_status_t *status, apr_pool_t *p)
{
    od_aws_buf_t buf = {apr_pcalloc(p, 1), 0, 1, p};
    struct curl_slist *headers = od_aws_headers(req, cr, p);
    long connects = 0;

    od_aws_setup(aws, h, req, cr, headers, &buf, p);
    CURLcode rc = curl_easy_perform(h);
    curl_slist_free_all(headers);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->http_status);
    curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &connects);
    resp->maybe_applied |= od_aws_maybe_applied(h, rc, resp->http_status);
    resp->body = buf.data;
    resp->body_len = buf.len;
    resp->error_code = NULL;
    resp->error_message = NULL;
    od_aws_outcome_e o = rc != CURLE_OK ? od_aws_classify_curl(rc, resp, status, p)
                                        : od_aws_classify_http(resp, status, p);
    if (rc != CURLE_OK) {
        resp->http_status = 0;
    }
    apr_thread_mutex_lock(aws->lock);
    aws->stats.attempts++;
    aws->stats.connects += (apr_uint64_t) connects;
    aws->stats.throttled += o == OD_AWS_RETRY_THROTTLED;
    apr_thread_mutex_unlock(aws->lock);
    return o;
}

/* ---- retries ---- */

/* Takes the cost of a retry from the budget; 0 when it cannot be paid. */
static int od_aws_budget_take(od_aws_t *aws, od_aws_outcome_e why, int *paid)
{
    int cost = why == OD_AWS_RETRY_TIMEOUT ? OD_AWS_TIMEOUT_RETRY_COST : OD_AWS_RETRY_COST;
    int ok;

    apr_thread_mutex_lock(aws->lock);
    ok = aws->budget >= cost;
    if (ok) {
        aws->budget -= cost;
        aws->stats.retries++;
        *paid += cost;
    } else {
        aws->stats.budget_refusals++;
    }
    apr_thread_mutex_unlock(aws->lock);
    return ok;
}

/* A success gives back what its retries cost, or a token for a first-try success. */
static void od_aws_budget_refund(od_aws_t *aws, int paid)
{
    apr_thread_mutex_lock(aws->lock);
    aws->budget += paid > 0 ? paid : OD_AWS_NO_RETRY_REFUND;
    if (aws->budget > OD_AWS_BUDGET_MAX) {
        aws->budget = OD_AWS_BUDGET_MAX;
    }
    apr_thread_mutex_unlock(aws->lock);
}

/* Full jitter: a uniform random delay in [0, min(cap, base * 2^retry)). */
static void od_aws_backoff(od_aws_t *aws, int retry)
{
    unsigned int r = 0;
    long ceiling = aws->opts.retry_base_ms << (retry < 20 ? retry : 20);

    if (ceiling > aws->opts.retry_cap_ms || ceiling <= 0) {
        ceiling = aws->opts.retry_cap_ms;
    }
    if (ceiling < 1) {
        ceiling = 1; /* base and cap of 0 (not allowed by the config) must not divide by 0 */
    }
    if (RAND_bytes((unsigned char *) &r, sizeof(r)) != 1) {
        r = (unsigned int) apr_time_now();
    }
    apr_sleep(apr_time_from_msec((apr_int64_t) (r % (unsigned int) (ceiling * 1000)) / 1000));
}

static void od_aws_record(od_aws_t *aws, apr_status_t status, apr_time_t started)
{
    apr_uint64_t us = (apr_uint64_t) (apr_time_now() - started);

    apr_thread_mutex_lock(aws->lock);
    aws->stats.calls++;
    aws->stats.latency_us_sum += us;
    if (status != APR_SUCCESS) {
        aws->stats.failed++;
    }
    for (int i = 0; i < OD_AWS_LATENCY_BUCKETS; i++) {
        if ((double) us <= od_aws_latency_bounds_ms[i] * 1000.0) {
            aws->stats.latency_le[i]++;
        }
    }
    apr_thread_mutex_unlock(aws->lock);
}

static apr_status_t od_aws_run(od_aws_t *aws, CURL *h, const od_aws_request_t *req,
                               const od_aws_credentials_t *cr, od_aws_response_t *resp,
                               apr_pool_t *p)
{
    apr_status_t status = APR_SUCCESS;
    int paid = 0;

    for (resp->attempts = 1;; resp->attempts++) {
        od_aws_outcome_e o = od_aws_attempt(aws, h, req, cr, resp, &status, p);
        if (o == OD_AWS_OK) {
            od_aws_budget_refund(aws, paid);
            return APR_SUCCESS;
        }
        if (o == OD_AWS_FINAL || resp->attempts >= aws->opts.max_attempts ||
            !od_aws_budget_take(aws, o, &paid)) {
            return status;
        }
        od_aws_backoff(aws, resp->attempts - 1);
    }
}

apr_status_t od_aws_call(od_aws_t *aws, const od_aws_request_t *req, od_aws_response_t *resp,
                         apr_pool_t *p)
{
    apr_time_t started = apr_time_now();
    od_aws_credentials_t cr;
    void *h = NULL;
    char buf[96];

    memset(resp, 0, sizeof(*resp));
    resp->body = "";
    apr_status_t rv = od_aws_creds_get(aws->creds, &cr, p);
    if (rv != APR_SUCCESS) {
        resp->error_code = "NoCredentials";
        resp->error_message = "no valid AWS credentials";
    } else if ((rv = apr_reslist_acquire(aws->handles, &h)) != APR_SUCCESS) {
        resp->error_code = "PoolTimeout";
        resp->error_message =
            apr_psprintf(p, "no free AWS connection within %ld ms: %s",
                         aws->opts.request_timeout_ms, apr_strerror(rv, buf, sizeof(buf)));
        rv = OD_EUNAVAIL;
    } else {
        rv = od_aws_run(aws, h, req, &cr, resp, p);
        apr_reslist_release(aws->handles, h);
    }
    od_aws_record(aws, rv, started);
    if (rv != APR_SUCCESS && rv != OD_ECONFLICT &&
        (req->expected_error == NULL || resp->error_code == NULL ||
         strcmp(req->expected_error, resp->error_code) != 0)) {
        od_log_error(aws->log, "aws: %s %s failed after %d attempt(s): HTTP %ld %s: %s%s",
                     req->service, req->target != NULL ? req->target : req->endpoint,
                     resp->attempts, resp->http_status,
                     resp->error_code != NULL ? resp->error_code : "-",
                     resp->error_message != NULL ? resp->error_message : "-",
                     resp->maybe_applied ? " (sent without a definitive answer: a write may have"
                                           " taken effect)"
                                         : "");
    }
    return rv;
}

/* ---- life cycle ---- */

/* On the handles' pool, after the reslist's own (pre-)cleanup has freed the handles: however the
 * pool goes (by od_aws_cleanup, or with its parent's subpools), nothing is left to free twice. */
static apr_status_t od_aws_handles_gone(void *data)
{
    od_aws_t *aws = data;

    aws->handles = NULL;
    aws->handles_pool = NULL;
    return APR_SUCCESS;
}

/* The handles go before the share they use. When the parent pool is destroyed, its subpools
 * (the handles') already went, after the pre-cleanups that stop every thread using them. */
static apr_status_t od_aws_cleanup(void *data)
{
    od_aws_t *aws = data;

    if (aws->handles_pool != NULL) {
        apr_pool_destroy(aws->handles_pool);
    }
    if (aws->share != NULL) {
        curl_share_cleanup(aws->share);
        aws->share = NULL;
    }
    return APR_SUCCESS;
}

/*
 * apr_reslist allocates from the pool it is given whenever a handle is released (and when one
 * is made), on whichever thread does it, under its own lock only. So it gets a pool that nothing
 * else allocates from: @p p is the server's, which the main thread was still allocating from
 * while the outbox relay made its first DynamoDB call (ThreadSanitizer's report, in the
 * end-to-end suite against DynamoDB Local).
 */
static apr_status_t od_aws_pool_create(od_aws_t *aws, apr_pool_t *p)
{
    int n = aws->opts.max_connections;
    apr_pool_t *rp = NULL;
    apr_status_t rv = apr_pool_create(&rp, p);

    if (rv == APR_SUCCESS) {
        rv = apr_reslist_create(&aws->handles, 0, n, n, 0, od_aws_handle_make, od_aws_handle_free,
                                aws, rp);
    }
    if (rv != APR_SUCCESS) {
        aws->handles = NULL;
        if (rp != NULL) {
            apr_pool_destroy(rp);
        }
        od_log_error(aws->log, "aws: apr_reslist_create(%d handles) failed: %d", n, rv);
        return rv;
    }
    aws->handles_pool = rp;
    apr_pool_cleanup_register(rp, aws, od_aws_handles_gone, apr_pool_cleanup_null);
    /* A caller waits at most one request timeout for a free handle, then gets OD_EUNAVAIL. */
    apr_reslist_timeout_set(aws->handles, apr_time_from_msec(aws->opts.request_timeout_ms));
    return APR_SUCCESS;
}

apr_status_t od_aws_create(od_aws_t **out, const od_aws_options_t *opts, od_aws_creds_t *creds,
                           od_log_t *log, apr_pool_t *p)
{
    od_aws_t *aws = apr_pcalloc(p, sizeof(*aws));

    *out = NULL;
    aws->opts = *opts;
    aws->opts.region = apr_pstrdup(p, opts->region);
    aws->opts.max_attempts = opts->max_attempts < 1 ? 1 : opts->max_attempts;
    aws->creds = creds;
    aws->log = log;
    aws->budget = OD_AWS_BUDGET_MAX;
    apr_status_t rv = apr_thread_mutex_create(&aws->lock, APR_THREAD_MUTEX_DEFAULT, p);
    if (rv == APR_SUCCESS) {
        rv = od_aws_share_create(aws, p);
    }
    if (rv == APR_SUCCESS) {
        rv = od_aws_pool_create(aws, p);
    }
    /* Registered after the mutexes, so it runs before their own cleanups destroy them. */
    apr_pool_cleanup_register(p, aws, od_aws_cleanup, apr_pool_cleanup_null);
    if (rv != APR_SUCCESS) {
        apr_pool_cleanup_run(p, aws, od_aws_cleanup);
        return rv;
    }
    *out = aws;
    return APR_SUCCESS;
}

void od_aws_stats(od_aws_t *aws, od_aws_stats_t *out)
{
    apr_thread_mutex_lock(aws->lock);
    *out = aws->stats;
    apr_thread_mutex_unlock(aws->lock);
}

const char *od_aws_region(const od_aws_t *aws)
{
    return aws->opts.region;
}

const char *od_aws_resolve_region(const char *configured)
{
    const char *env = NULL;

    if (configured != NULL) {
        return configured;
    }
    env = getenv("AWS_REGION");
    if (env == NULL || *env == '\0') {
        env = getenv("AWS_DEFAULT_REGION");
    }
    return env != NULL && *env != '\0' ? env : NULL;
}

const char *od_aws_resolve_endpoint(const char *configured, const char *env_name, const char *host,
                                    const char *region, apr_pool_t *p)
{
    const char *v = configured;

    if (v == NULL || *v == '\0') {
        v = getenv(apr_pstrcat(p, "AWS_ENDPOINT_URL_", env_name, NULL));
    }
    if (v == NULL || *v == '\0') {
        v = getenv("AWS_ENDPOINT_URL");
    }
    if (v == NULL || *v == '\0') {
        return apr_psprintf(p, "https://%s.%s.amazonaws.com", host, region);
    }
    return apr_pstrdup(p, v);
}

/*
 * od_aws: the shared, pooled AWS client.
 *
 * One per process. A bounded pool (apr_reslist) of curl easy handles, each keeping its
 * keep-alive connection between calls, with a curl share handle for the DNS cache and TLS
 * sessions. Requests are signed by libcurl's own SigV4 (CURLOPT_AWS_SIGV4 with an explicit
 * "aws:amz:REGION:SERVICE", since curl cannot infer those from a loopback endpoint), with
 * X-Amz-Security-Token added for temporary credentials.
 *
 * Retries follow the AWS SDKs' standard mode: up to max_attempts attempts, exponential backoff
 * with full jitter and a cap, only for throttling, 5xx and transient network failures (never a
 * conditional-check failure or a validation error), paid from a client-wide retry budget (token
 * bucket: 500 tokens, a retry costs 5, a retry after a timeout 10, a success refunds) so an
 * outage does not multiply the load.
 */
#ifndef OD_AWS_H
#define OD_AWS_H

#include "od_aws_creds.h"
#include "od_log.h"

#include <apr_pools.h>

typedef struct od_aws_s od_aws_t;

typedef struct od_aws_options_t {
    const char *region;
    int max_connections;     /* curl handles in the pool */
    long connect_timeout_ms; /* per attempt */
    long request_timeout_ms; /* per attempt, whole transfer */
    int max_attempts;        /* >= 1 */
    long retry_base_ms;      /* backoff: random(0, min(cap, base * 2^n)) */
    long retry_cap_ms;
} od_aws_options_t;

/** One call. All strings are borrowed for the duration of od_aws_call. */
typedef struct od_aws_request_t {
    const char *service;      /* SigV4 service name: "dynamodb", "sns", "sqs", "events" */
    const char *endpoint;     /* "https://dynamodb.eu-west-1.amazonaws.com" or an override */
    const char *target;       /* X-Amz-Target header, or NULL */
    const char *content_type; /* "application/x-amz-json-1.0", ... */
    const char *body;
    apr_size_t body_len;
    const char *expected_error; /* an error code the caller handles (not logged), or NULL */
} od_aws_request_t;

/** The outcome of a call; strings are allocated from the call's pool. */
typedef struct od_aws_response_t {
    long http_status; /* 0 when no HTTP answer was received */
    const char *body; /* NUL-terminated; "" when none */
    apr_size_t body_len;
    const char *error_code;    /* "ConditionalCheckFailedException", "curl:28", ... or NULL */
    const char *error_message; /* or NULL */
    int attempts;
    /* 1 if some attempt may have been applied by the service without an answer saying whether
     * it was: its request was sent (at least in part) and then the transfer failed or timed out,
     * or the service answered 5xx. 0 if every attempt was answered definitively (2xx, 4xx) or
     * never sent (no connection). Kept whatever the later attempts got. */
    int maybe_applied;
} od_aws_response_t;

/** Counters since creation; a snapshot. Latency buckets are upper bounds in milliseconds. */
#define OD_AWS_LATENCY_BUCKETS 12
extern const double od_aws_latency_bounds_ms[OD_AWS_LATENCY_BUCKETS];

typedef struct od_aws_stats_t {
    apr_uint64_t calls;
    apr_uint64_t attempts;
    apr_uint64_t retries;
    apr_uint64_t throttled;       /* attempts answered with a throttling error */
    apr_uint64_t failed;          /* calls that ended in an error (any class) */
    apr_uint64_t budget_refusals; /* retries not made because the budget was empty */
    apr_uint64_t connects;        /* TCP connections opened */
    apr_uint64_t latency_us_sum;  /* whole calls, retries included */
    apr_uint64_t latency_le[OD_AWS_LATENCY_BUCKETS]; /* calls with latency <= bound */
} od_aws_stats_t;

/**
 * Creates the client. @p creds must outlive @p p. Returns APR_SUCCESS and @p *out; or the
 * failed step's status (logged) with everything undone. The pool and share handle are released
 * by a cleanup on @p p. curl_global_init must have been called. Thread-safe to use.
 */
apr_status_t od_aws_create(od_aws_t **out, const od_aws_options_t *opts, od_aws_creds_t *creds,
                           od_log_t *log, apr_pool_t *p);

/**
 * Makes one signed POST, retrying as described above. Returns APR_SUCCESS for a 2xx answer, or:
 *   OD_ECONFLICT   ConditionalCheckFailedException / TransactionCanceledException
 *   OD_ETHROTTLED  throttled on every attempt (or the budget ran out while throttled)
 *   OD_EUNAVAIL    network failure, timeout, 5xx, or no free connection in time
 *   OD_EAUTH       the credentials were refused (signature, unknown key, expired token, denied)
 *   OD_EINVAL      any other 4xx (a bad request: the caller's fault)
 * @p resp is filled in every case (error code and message from the service, or "curl:N" and
 * curl's message). A failed write whose resp->maybe_applied is 1 has an unknown outcome: it may
 * have been applied (even by an attempt before a definitive refusal), and the caller must not
 * report that nothing was done. Errors other than OD_ECONFLICT and req->expected_error are logged
 * once here with the code and message. Thread-safe.
 */
apr_status_t od_aws_call(od_aws_t *aws, const od_aws_request_t *req, od_aws_response_t *resp,
                         apr_pool_t *p);

/** Copies the counters into @p out. Thread-safe. */
void od_aws_stats(od_aws_t *aws, od_aws_stats_t *out);

/** The region in use. */
const char *od_aws_region(const od_aws_t *aws);

/**
 * The region to use: @p configured, else AWS_REGION, else AWS_DEFAULT_REGION, else NULL.
 */
const char *od_aws_resolve_region(const char *configured);

/**
 * The endpoint of a service: @p configured, else $AWS_ENDPOINT_URL_<env_name> (e.g.
 * AWS_ENDPOINT_URL_DYNAMODB), else $AWS_ENDPOINT_URL, else https://<host>.<region>.amazonaws.com.
 * Allocated from @p p.
 */
const char *od_aws_resolve_endpoint(const char *configured, const char *env_name, const char *host,
                                    const char *region, apr_pool_t *p);

#endif

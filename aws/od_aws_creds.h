/*
 * od_aws_creds: AWS credentials, resolved in the order the AWS SDKs use.
 *
 *   1. explicit keys (the config file's aws_access_key_id / aws_secret_access_key /
 *      aws_session_token), else the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
 *      AWS_SESSION_TOKEN);
 *   2. the shared credentials file: AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials, profile
 *      AWS_PROFILE or "default" (aws_access_key_id, aws_secret_access_key, aws_session_token);
 *   3. the EC2 instance metadata service, IMDSv2: PUT /latest/api/token (header
 *      X-aws-ec2-metadata-token-ttl-seconds), then GET /latest/meta-data/iam/security-credentials/
 *      for the role name and GET .../ROLE for the JSON credentials (header
 *      X-aws-ec2-metadata-token). Endpoint AWS_EC2_METADATA_SERVICE_ENDPOINT or
 *      http://169.254.169.254; skipped when AWS_EC2_METADATA_DISABLED=true.
 *
 * Temporary credentials (with an Expiration) are refreshed by a background thread ahead of
 * expiry; requests never wait for a refresh and always see one consistent set.
 */
#ifndef OD_AWS_CREDS_H
#define OD_AWS_CREDS_H

#include "od_log.h"

#include <apr_pools.h>
#include <apr_time.h>

typedef struct od_aws_creds_s od_aws_creds_t;

/** One set of credentials. */
typedef struct od_aws_credentials_t {
    const char *access_key_id;
    const char *secret_access_key;
    const char *session_token; /* NULL for long-term keys */
    apr_time_t expiration;     /* 0: does not expire */
    const char *source;        /* "config", "environment", "shared-file", "imds" */
} od_aws_credentials_t;

typedef struct od_aws_creds_options_t {
    /* From the configuration file; NULL when not set. */
    const char *access_key_id;
    const char *secret_access_key;
    const char *session_token;
    /* Overrides for the environment, mainly for tests; NULL: read the environment. */
    const char *profile;
    const char *shared_credentials_file;
    const char *imds_endpoint;
    /* Refresh temporary credentials this long before they expire (0: 5 minutes). */
    apr_interval_time_t refresh_ahead;
    /* Timeout of each IMDS HTTP call in milliseconds (0: 1000). */
    long imds_timeout_ms;
} od_aws_creds_options_t;

/**
 * Resolves credentials through the chain above (blocking, at start-up) and, for temporary ones,
 * starts the refresher thread. Returns APR_SUCCESS and @p *out; or OD_EAUTH (logged: which
 * sources were tried and why each failed) with @p *out NULL and nothing left running.
 * Strings in @p opts are copied. The refresher stops in a pre-cleanup of @p p.
 */
apr_status_t od_aws_creds_create(od_aws_creds_t **out, const od_aws_creds_options_t *opts,
                                 od_log_t *log, apr_pool_t *p);

/**
 * Copies the current credentials into @p out (strings allocated from @p p). Never blocks on the
 * network. Returns APR_SUCCESS, or OD_EAUTH when temporary credentials have expired and no
 * refresh has succeeded. Thread-safe.
 */
apr_status_t od_aws_creds_get(od_aws_creds_t *creds, od_aws_credentials_t *out, apr_pool_t *p);

/** How many times the credentials were fetched (1 after create, +1 per successful refresh). */
unsigned int od_aws_creds_fetches(od_aws_creds_t *creds);

#endif

/*
 * od_config: orderd's configuration file.
 *
 * Format: one `key = value` per line; blank lines and lines whose first non-blank character is
 * '#' are ignored (a '#' elsewhere is part of the value, so patterns may contain it). The value is
 * the rest of the line with surrounding white space removed. Every key may appear once. An
 * unknown key, a repeated key or a bad value is an error naming the file, the line and the
 * problem. Keys not given keep their defaults (conf/orderd.conf documents every key).
 *
 * The settings are a plain value struct: parsed once at start, then read-only and shareable
 * across threads.
 */
#ifndef OD_CONFIG_H
#define OD_CONFIG_H

#include <apr_pools.h>

typedef enum od_store_kind_e { OD_STORE_KIND_SQLITE, OD_STORE_KIND_DYNAMODB } od_store_kind_e;

typedef enum od_sink_kind_e {
    OD_SINK_KIND_NONE,
    OD_SINK_KIND_FILE,
    OD_SINK_KIND_SNS,
    OD_SINK_KIND_SQS,
    OD_SINK_KIND_EVENTBRIDGE
} od_sink_kind_e;

typedef enum od_log_level_e { OD_LOG_DEBUG, OD_LOG_INFO, OD_LOG_WARN, OD_LOG_ERROR } od_log_level_e;

typedef struct od_settings_t {
    const char *listen_address; /* numeric IPv4 or IPv6 address */
    int listen_port;            /* 0: any free port (logged at start) */
    int http_threads;           /* libmicrohttpd polling threads */
    int worker_threads;         /* APR thread pool size */
    int queue_limit;            /* requests waiting for a worker before 503 */
    int max_connections;
    int connection_timeout_s;
    int header_timeout_s; /* for a request head to be complete, however it trickles in */
    int max_body_bytes;
    int idempotency_ttl_s;
    int hot_cache_max_entries;
    const char *customer_id_pattern; /* POSIX ERE */
    int max_quantity;
    int max_items;
    od_store_kind_e store;
    const char *sqlite_path;
    int sqlite_batch_max;      /* orders per group-commit transaction */
    const char *api_keys_file; /* NULL: everyone is "anonymous" */
    const char *tls_cert_file; /* PEM; with tls_key_file: HTTPS, else plain HTTP */
    const char *tls_key_file;
    const char *cors_allowed_origins; /* space/comma separated origins, or "*"; NULL: no CORS */
    int max_connections_per_ip;       /* 0: unlimited */
    int max_header_bytes;             /* request line + headers, per connection */
    int rate_limit_per_s;             /* default sustained requests/s per caller; 0: unlimited */
    int rate_limit_burst;             /* default burst per caller */
    od_log_level_e log_level;
    int shutdown_timeout_s;
    /* AWS (store = dynamodb); NULL strings fall back to the environment / AWS defaults. */
    const char *aws_region;
    const char *aws_access_key_id;
    const char *aws_secret_access_key;
    const char *aws_session_token;
    int aws_max_connections;
    int aws_connect_timeout_ms;
    int aws_request_timeout_ms;
    int aws_max_attempts;
    int aws_retry_base_ms;
    int aws_retry_cap_ms;
    const char *dynamodb_endpoint;
    const char *dynamodb_table;
    /* Events (order.accepted) through the outbox. */
    od_sink_kind_e events_sink;
    const char *events_file;  /* file sink: JSON Lines, appended and fsynced */
    int events_retry_after_s; /* the relay re-publishes events pending this long */
    int events_batch_max;     /* events per relay round */
    int events_max_in_flight; /* sink calls (batches of 10) and DynamoDB marks in flight at once */
    const char *sns_topic_arn;
    const char *sns_endpoint;
    const char *sqs_queue_url; /* the sqs sink's queue, and the consumer's */
    const char *sqs_endpoint;
    const char *eventbridge_bus;
    const char *eventbridge_source;
    const char *eventbridge_detail_type;
    const char *eventbridge_endpoint;
    /* order-consumer */
    const char *handler_command;  /* executable given each event's JSON on stdin */
    int consumer_wait_time_s;     /* SQS long-poll WaitTimeSeconds */
    int consumer_max_messages;    /* per ReceiveMessage, 1..10 */
    int consumer_processed_ttl_s; /* how long a processed event_id is remembered */
    int consumer_handler_timeout_s;
} od_settings_t;

/** Fills @p out with the defaults. Thread-safe. */
void od_config_defaults(od_settings_t *out);

/**
 * Parses configuration @p text (@p len bytes) named @p filename (used in messages) over the
 * defaults into @p out, then checks the keys that depend on one another (events_max_in_flight
 * may not exceed aws_max_connections when events go through AWS). Returns APR_SUCCESS; or
 * OD_ECONFIG with @p *errmsg set to "FILE:LINE: problem" or, for a cross-check, "FILE: problem"
 * (allocated from @p p) and @p out unspecified. Strings in @p out are
 * allocated from @p p and live as long as it. Thread-safe given distinct outputs.
 */
apr_status_t od_config_parse(od_settings_t *out, const char *text, apr_size_t len,
                             const char *filename, const char **errmsg, apr_pool_t *p);

struct json_object;

/**
 * Every key and its effective value as a new json-c object (the caller puts it), for the
 * start-up log. Secrets (aws_secret_access_key, aws_session_token) show as "***" when set;
 * unset strings are null. Thread-safe.
 */
struct json_object *od_config_to_json(const od_settings_t *settings);

/** The name of an events sink ("none", "file", "sns", "sqs", "eventbridge"). */
const char *od_config_sink_name(od_sink_kind_e kind);

/** The name of a log level ("debug", "info", "warn", "error"). */
const char *od_config_log_level_name(od_log_level_e level);

#endif

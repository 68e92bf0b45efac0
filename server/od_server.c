/* od_server: building and running one orderd. */
#include "od_server.h"
#include "od_api.h"
#include "od_aws.h"
#include "od_aws_creds.h"
#include "od_cache.h"
#include "od_aws_sinks.h"
#include "od_dynamodb.h"
#include "od_file.h"
#include "od_outbox.h"
#include "od_sink_file.h"
#include "od_http.h"
#include "od_keys.h"
#include "od_order.h"
#include "od_sqlite.h"
#include "od_status.h"

#include <apr_file_io.h>
#include <apr_strings.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

struct od_server_s {
    const od_settings_t *settings;
    apr_pool_t *pool;
    od_log_t *log;
    od_order_rules_t *rules;
    od_keys_t *keys;    /* the key set at start; a reload hands its own to the front end */
    int authenticating; /* a key set is in force: no reload may drop it */
    od_cache_t *cache;
    od_aws_t *aws; /* NULL unless the store or the sink is on AWS */
    od_store_t *store;
    od_sink_t *sink;
    od_outbox_t *outbox;
    od_metrics_t *metrics;
    od_api_t *api;
    od_http_t *http;
};

/* Key hashes are not keys, but a file others can read or change lets them see who the callers
 * are or add one: refuse it, as ssh does with private keys. */
static apr_status_t od_server_check_private(const char *path, const char **errmsg, apr_pool_t *p)
{
    apr_finfo_t fi;
    char buf[96];
    apr_status_t rv = apr_stat(&fi, path, APR_FINFO_PROT, p);

    if (rv != APR_SUCCESS) {
        *errmsg = apr_psprintf(p, "%s: cannot read: %s", path, apr_strerror(rv, buf, sizeof(buf)));
        return rv;
    }
    if (fi.protection & (APR_FPROT_WREAD | APR_FPROT_WWRITE | APR_FPROT_WEXECUTE)) {
        *errmsg = apr_psprintf(p, "%s: is accessible by other users; run chmod o-rwx on it", path);
        return OD_ECONFIG;
    }
    return APR_SUCCESS;
}

static apr_status_t od_server_load_keys(od_keys_t **keys, const od_settings_t *s,
                                        const char **errmsg, apr_pool_t *p)
{
    char *text = NULL;
    apr_size_t len = 0;

    *keys = NULL;
    if (s->api_keys_file == NULL) {
        return APR_SUCCESS;
    }
    apr_status_t rv = od_server_check_private(s->api_keys_file, errmsg, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = od_file_read(&text, &len, s->api_keys_file, errmsg, p);
    return rv == APR_SUCCESS ? od_keys_parse(keys, text, len, s->api_keys_file, errmsg, p) : rv;
}

apr_status_t od_server_load_config(od_settings_t *out, const char *path, const char **errmsg,
                                   apr_pool_t *p)
{
    char *text = NULL;
    apr_size_t len = 0;
    od_keys_t *keys = NULL;
    od_order_rules_t *rules = NULL;
    apr_status_t rv = od_file_read(&text, &len, path, errmsg, p);

    if (rv == APR_SUCCESS) {
        rv = od_config_parse(out, text, len, path, errmsg, p);
    }
    if (rv == APR_SUCCESS) {
        rv = od_server_load_keys(&keys, out, errmsg, p);
    }
    if (rv == APR_SUCCESS) {
        rv = od_order_rules_create(&rules, out->customer_id_pattern, out->max_quantity,
                                   out->max_items, errmsg, p);
    }
    if (rv == APR_SUCCESS &&
        (out->aws_access_key_id == NULL) != (out->aws_secret_access_key == NULL)) {
        *errmsg = apr_psprintf(p,
                               "%s: aws_access_key_id and aws_secret_access_key must be set "
                               "together",
                               path);
        rv = OD_ECONFIG;
    }
    return rv;
}

/* The shared AWS client (and, for the store, the DynamoDB endpoint). */
static apr_status_t od_server_open_aws(od_aws_t **aws, const char **endpoint,
                                       const od_settings_t *s, od_log_t *log, apr_pool_t *p)
{
    const char *region = od_aws_resolve_region(s->aws_region);
    od_aws_creds_options_t co = {.access_key_id = s->aws_access_key_id,
                                 .secret_access_key = s->aws_secret_access_key,
                                 .session_token = s->aws_session_token};
    od_aws_creds_t *creds = NULL;

    *aws = NULL;
    if (region == NULL) {
        od_log_error(log, "server: store = dynamodb needs a region: set aws_region (or "
                          "AWS_REGION)");
        return OD_ECONFIG;
    }
    apr_status_t rv = od_aws_creds_create(&creds, &co, log, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    od_aws_options_t ao = {region,
                           s->aws_max_connections,
                           s->aws_connect_timeout_ms,
                           s->aws_request_timeout_ms,
                           s->aws_max_attempts,
                           s->aws_retry_base_ms,
                           s->aws_retry_cap_ms};
    *endpoint = od_aws_resolve_endpoint(s->dynamodb_endpoint, "DYNAMODB", "dynamodb", region, p);
    if (s->store == OD_STORE_KIND_DYNAMODB) {
        od_log_info(log, "server: DynamoDB table %s at %s (region %s)", s->dynamodb_table,
                    *endpoint, region);
    }
    return od_aws_create(aws, &ao, creds, log, p);
}

static int od_server_sink_on_aws(const od_settings_t *s)
{
    return s->events_sink == OD_SINK_KIND_SNS || s->events_sink == OD_SINK_KIND_SQS ||
           s->events_sink == OD_SINK_KIND_EVENTBRIDGE;
}

/* The AWS client's connections wanted at the busiest: a DynamoDB call per worker, and the events'
 * calls in flight. With fewer, calls wait for a free one (up to aws_request_timeout_ms, then
 * fail as unavailable): not an error, but worth saying once. od_config refuses the case where the
 * events alone want more. */
static void od_server_check_connections(const od_settings_t *s, od_log_t *log)
{
    int events = s->events_sink != OD_SINK_KIND_NONE ? s->events_max_in_flight : 0;
    int wanted = (s->store == OD_STORE_KIND_DYNAMODB ? s->worker_threads : 0) + events;

    if (s->aws_max_connections < wanted) {
        od_log_warn(log,
                    "server: aws_max_connections (%d) is below what may be in flight at once "
                    "(%d: worker_threads for the store, events_max_in_flight for the events): "
                    "calls beyond it wait for a free connection",
                    s->aws_max_connections, wanted);
    }
}

static apr_status_t od_server_open_store(od_server_t *srv, apr_pool_t *p)
{
    const od_settings_t *s = srv->settings;
    const char *endpoint = NULL;

    if (s->store == OD_STORE_KIND_DYNAMODB || od_server_sink_on_aws(s)) {
        apr_status_t rv = od_server_open_aws(&srv->aws, &endpoint, s, srv->log, p);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        od_server_check_connections(s, srv->log);
    }
    if (s->store == OD_STORE_KIND_DYNAMODB) {
        /* Without events nothing is ever marked published: no threads for the marks. */
        return od_dynamodb_create(&srv->store, srv->aws, endpoint, s->dynamodb_table,
                                  s->events_sink != OD_SINK_KIND_NONE ? s->events_max_in_flight : 1,
                                  srv->log, p);
    }
    return od_sqlite_create(&srv->store, s->sqlite_path, s->worker_threads, s->sqlite_batch_max,
                            apr_time_from_sec(s->idempotency_ttl_s), srv->log, p);
}

apr_status_t od_server_init_store(const od_settings_t *s, od_log_t *log, apr_pool_t *p)
{
    od_aws_t *aws = NULL;
    od_store_t *store = NULL;
    const char *endpoint = NULL;

    if (s->store == OD_STORE_KIND_SQLITE) {
        /* Opening creates the schema; the pool's cleanup closes it again. */
        apr_status_t rv = od_sqlite_create(&store, s->sqlite_path, 1, 1,
                                           apr_time_from_sec(s->idempotency_ttl_s), log, p);
        if (rv == APR_SUCCESS) {
            od_log_info(log, "server: SQLite store %s is ready", s->sqlite_path);
        }
        return rv;
    }
    apr_status_t rv = od_server_open_aws(&aws, &endpoint, s, log, p);
    return rv != APR_SUCCESS ? rv : od_dynamodb_init(aws, endpoint, s->dynamodb_table, log, p);
}

/* A required key of the chosen sink; logs which one is missing. */
static int od_server_need(od_server_t *srv, const char *value, const char *key)
{
    if (value == NULL) {
        od_log_error(srv->log, "server: events_sink = %s needs %s",
                     od_config_sink_name(srv->settings->events_sink), key);
    }
    return value != NULL;
}

static apr_status_t od_server_open_aws_sink(od_server_t *srv, apr_pool_t *p)
{
    const od_settings_t *s = srv->settings;
    const char *region = od_aws_region(srv->aws);

    switch (s->events_sink) {
    case OD_SINK_KIND_SNS:
        return !od_server_need(srv, s->sns_topic_arn, "sns_topic_arn")
                   ? OD_ECONFIG
                   : od_sns_sink_create(
                         &srv->sink, srv->aws,
                         od_aws_resolve_endpoint(s->sns_endpoint, "SNS", "sns", region, p),
                         s->sns_topic_arn, s->events_max_in_flight, srv->log, p);
    case OD_SINK_KIND_SQS:
        return !od_server_need(srv, s->sqs_queue_url, "sqs_queue_url")
                   ? OD_ECONFIG
                   : od_sqs_sink_create(
                         &srv->sink, srv->aws,
                         od_aws_resolve_endpoint(s->sqs_endpoint, "SQS", "sqs", region, p),
                         s->sqs_queue_url, s->events_max_in_flight, srv->log, p);
    default:
        return od_eventbridge_sink_create(
            &srv->sink, srv->aws,
            od_aws_resolve_endpoint(s->eventbridge_endpoint, "EVENTS", "events", region, p),
            s->eventbridge_bus, s->eventbridge_source, s->eventbridge_detail_type,
            s->events_max_in_flight, srv->log, p);
    }
}

/* Fault injection, compiled into test builds only: ORDERD_FAULT_SKIP_PROMPT_PUBLISH=1 makes
 * orderd behave as if it always died between storing an order and publishing its event. */
static int od_server_skip_prompt(od_log_t *log)
{
#ifdef ORDERD_FAULT_INJECTION
    const char *v = getenv("ORDERD_FAULT_SKIP_PROMPT_PUBLISH");
    if (v != NULL && strcmp(v, "1") == 0) {
        od_log_warn(log, "server: fault injection: events are never published promptly");
        return 1;
    }
#endif
    (void) log;
    return 0;
}

static apr_status_t od_server_open_events(od_server_t *srv, apr_pool_t *p)
{
    const od_settings_t *s = srv->settings;
    apr_status_t rv;

    if (s->events_sink == OD_SINK_KIND_NONE) {
        /* No events at all: nothing is written to the outbox and no relay runs. */
        return od_sink_none_create(&srv->sink, p);
    }
    if (s->events_sink == OD_SINK_KIND_FILE) {
        rv = od_sink_file_create(&srv->sink, s->events_file, srv->log, p);
    } else {
        rv = od_server_open_aws_sink(srv, p);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    od_outbox_options_t oo = {apr_time_from_sec(s->events_retry_after_s), s->events_batch_max, 4096,
                              od_server_skip_prompt(srv->log)};
    return od_outbox_create(&srv->outbox, srv->store, srv->sink, &oo, srv->log, p);
}

static apr_status_t od_server_parts(od_server_t *srv, apr_pool_t *p)
{
    const od_settings_t *s = srv->settings;
    const char *errmsg = NULL;
    apr_status_t rv = od_order_rules_create(&srv->rules, s->customer_id_pattern, s->max_quantity,
                                            s->max_items, &errmsg, p);

    if (rv == APR_SUCCESS) {
        rv = od_server_load_keys(&srv->keys, s, &errmsg, p);
    }
    if (rv != APR_SUCCESS) {
        od_log_error(srv->log, "server: %s", errmsg);
        return rv;
    }
    srv->authenticating = srv->keys != NULL;
    rv = od_cache_create(&srv->cache, (apr_size_t) s->hot_cache_max_entries,
                         apr_time_from_sec(s->idempotency_ttl_s), p);
    if (rv != APR_SUCCESS) {
        od_log_error(srv->log, "server: od_cache_create failed: %d", rv);
    }
    return rv;
}

/* ---- probes for /readyz and /metrics ---- */

/* Ready: not stopping, and the store answers (a lookup of an id that cannot exist must come
 * back "not found", not "unavailable"). */
static int od_server_ready(void *baton, const char **why, apr_pool_t *p)
{
    od_server_t *srv = baton;
    od_http_stats_t hs;
    od_store_result_t res;

    od_http_stats(srv->http, &hs);
    if (hs.stopping) {
        *why = "shutting down";
        return 0;
    }
    if (od_store_get(srv->store, "-", "00000000000000000000000000", &res, p) != OD_ENOTFOUND) {
        *why = apr_psprintf(p, "the %s store is not reachable", od_store_name(srv->store));
        return 0;
    }
    return 1;
}

static void od_server_gauge(od_metrics_text_t *t, const char *name, const char *type,
                            const char *help, apr_uint64_t value)
{
    od_metrics_family(t, name, type, help);
    od_metrics_printf(t, "%s %" APR_UINT64_T_FMT "\n", name, value);
}

static void od_server_metrics_http(od_server_t *srv, od_metrics_text_t *t)
{
    od_http_stats_t hs;
    od_cache_stats_t cs;

    od_http_stats(srv->http, &hs);
    od_server_gauge(t, "orderd_workers", "gauge", "Worker threads.", hs.workers);
    od_server_gauge(t, "orderd_workers_busy", "gauge", "Workers handling a request.", hs.busy);
    od_server_gauge(t, "orderd_workers_queued", "gauge", "Requests waiting for a worker.",
                    hs.queued);
    od_server_gauge(t, "orderd_workers_queue_limit", "gauge", "Waiting requests allowed.",
                    hs.queue_limit);
    od_server_gauge(t, "orderd_requests_deferred", "gauge",
                    "Requests handed to the store's writer, waiting for their commit.",
                    hs.deferred);
    od_server_gauge(t, "orderd_http_connections", "gauge", "Client connections held.",
                    hs.connections);
    od_server_gauge(t, "orderd_http_connections_idle", "gauge",
                    "Client connections idle between keep-alive requests.", hs.connections_idle);
    od_metrics_family(t, "orderd_http_connections_closed_total", "counter",
                      "Connections orderd closed: a request head not complete within "
                      "header_timeout_s, or idle at max_connections to make room.");
    od_metrics_printf(t,
                      "orderd_http_connections_closed_total{reason=\"header_timeout\"} "
                      "%" APR_UINT64_T_FMT "\n"
                      "orderd_http_connections_closed_total{reason=\"evicted\"} "
                      "%" APR_UINT64_T_FMT "\n",
                      hs.head_timeouts, hs.evicted);
    od_cache_stats(srv->cache, &cs);
    od_server_gauge(t, "orderd_hot_cache_hits_total", "counter", "Replays answered from memory.",
                    cs.hits);
    od_server_gauge(t, "orderd_hot_cache_misses_total", "counter", "Hot cache misses.", cs.misses);
    od_server_gauge(t, "orderd_hot_cache_entries", "gauge", "Entries held.", cs.entries);
}

/* The SQLite store's in-memory idempotency index (nothing for DynamoDB). */
static void od_server_metrics_store(od_server_t *srv, od_metrics_text_t *t)
{
    od_store_stats_t ss;

    od_store_stats(srv->store, &ss);
    if (ss.has_index) {
        od_server_gauge(t, "orderd_idempotency_index_entries", "gauge",
                        "Idempotency records the store holds in memory.", ss.index_entries);
        od_server_gauge(t, "orderd_idempotency_index_capacity", "gauge",
                        "Records the index holds before it grows.", ss.index_capacity);
    }
}

static void od_server_metrics_aws(od_server_t *srv, od_metrics_text_t *t)
{
    od_aws_stats_t as;
    double bounds[OD_AWS_LATENCY_BUCKETS];

    od_aws_stats(srv->aws, &as);
    od_server_gauge(t, "orderd_aws_calls_total", "counter", "AWS API calls.", as.calls);
    od_server_gauge(t, "orderd_aws_attempts_total", "counter", "AWS HTTP attempts.", as.attempts);
    od_server_gauge(t, "orderd_aws_retries_total", "counter", "AWS retries.", as.retries);
    od_server_gauge(t, "orderd_aws_throttled_total", "counter", "Throttled attempts.",
                    as.throttled);
    od_server_gauge(t, "orderd_aws_errors_total", "counter", "AWS calls that failed.", as.failed);
    od_server_gauge(t, "orderd_aws_retry_budget_refusals_total", "counter",
                    "Retries not made: the retry budget was empty.", as.budget_refusals);
    od_server_gauge(t, "orderd_aws_connections_opened_total", "counter",
                    "TCP connections opened to AWS.", as.connects);
    for (int i = 0; i < OD_AWS_LATENCY_BUCKETS; i++) {
        bounds[i] = i + 1 < OD_AWS_LATENCY_BUCKETS ? od_aws_latency_bounds_ms[i] / 1000.0 : 1e300;
    }
    od_metrics_family(t, "orderd_aws_call_duration_seconds", "histogram",
                      "AWS call latency, retries included.");
    od_metrics_histogram(t, "orderd_aws_call_duration_seconds", NULL, bounds, as.latency_le,
                         OD_AWS_LATENCY_BUCKETS, (double) as.latency_us_sum / 1e6, as.calls);
}

static void od_server_metrics_outbox(od_server_t *srv, od_metrics_text_t *t)
{
    od_outbox_stats_t os = {0};

    if (srv->outbox != NULL) {
        od_outbox_stats(srv->outbox, &os);
    }
    od_server_gauge(t, "orderd_events_published_total", "counter", "Events published.",
                    os.published);
    od_server_gauge(t, "orderd_events_failed_total", "counter", "Event publish failures.",
                    os.failed);
    od_server_gauge(t, "orderd_outbox_pending", "gauge",
                    "Events not yet published (in the store, for every instance), as of the last "
                    "count (every 5 s or more).",
                    os.pending);
    od_metrics_family(t, "orderd_outbox_oldest_pending_age_seconds", "gauge",
                      "Age of the oldest event not yet published (0 if none).");
    od_metrics_printf(t, "orderd_outbox_oldest_pending_age_seconds %.3f\n",
                      (double) os.oldest_age / 1e6);
}

static void od_server_metrics(void *baton, od_metrics_text_t *t)
{
    od_server_t *srv = baton;

    od_server_metrics_http(srv, t);
    od_server_metrics_store(srv, t);
    if (srv->aws != NULL) {
        od_server_metrics_aws(srv, t);
    }
    od_server_metrics_outbox(srv, t);
}

apr_status_t od_server_create(od_server_t **out, const od_settings_t *settings, od_log_t *log,
                              apr_pool_t *p)
{
    od_server_t *srv = apr_pcalloc(p, sizeof(*srv));

    *out = NULL;
    srv->settings = settings;
    srv->pool = p;
    srv->log = log;
    apr_status_t rv = od_server_parts(srv, p);
    if (rv == APR_SUCCESS) {
        rv = od_server_open_store(srv, p);
    }
    if (rv == APR_SUCCESS) {
        rv = od_server_open_events(srv, p);
    }
    if (rv == APR_SUCCESS) {
        od_api_probes_t probes = {od_server_ready, od_server_metrics, srv};
        od_metrics_create(&srv->metrics, p);
        rv = od_api_create(&srv->api, settings, srv->rules, srv->cache, srv->store, srv->outbox,
                           srv->metrics, &probes, log, p);
    }
    if (rv == APR_SUCCESS) {
        od_http_handler_t handler = od_api_handler(srv->api);
        rv = od_http_create(&srv->http, settings, srv->keys, &handler, srv->metrics, log, p);
    }
    if (rv == APR_SUCCESS) {
        *out = srv;
    }
    return rv;
}

/* HTTPS when both PEM files are configured (od_server_load_config checked they come together). */
static apr_status_t od_server_tls(od_server_t *srv, apr_pool_t *p)
{
    const od_settings_t *s = srv->settings;
    char *cert = NULL, *key = NULL;
    apr_size_t len = 0;
    const char *errmsg = NULL;

    if (s->tls_cert_file == NULL) {
        od_log_warn(srv->log, "server: no tls_cert_file/tls_key_file: serving plain HTTP, for use "
                              "behind a TLS-terminating load balancer only");
        return APR_SUCCESS;
    }
    apr_status_t rv = od_file_read(&cert, &len, s->tls_cert_file, &errmsg, p);
    if (rv == APR_SUCCESS) {
        rv = od_file_read(&key, &len, s->tls_key_file, &errmsg, p);
    }
    if (rv != APR_SUCCESS) {
        od_log_error(srv->log, "server: %s", errmsg);
        return rv;
    }
    od_http_set_tls(srv->http, cert, key);
    return APR_SUCCESS;
}

apr_status_t od_server_start(od_server_t *srv)
{
    const od_settings_t *s = srv->settings;
    apr_status_t rv = od_server_tls(srv, srv->pool);

    if (rv == APR_SUCCESS) {
        rv = od_http_start(srv->http);
    }

    if (rv != APR_SUCCESS) {
        return rv;
    }
    json_object *fields = json_object_new_object();
    json_object_object_add(fields, "msg", json_object_new_string("effective configuration"));
    json_object_object_add(fields, "config", od_config_to_json(s));
    od_log_fields(srv->log, OD_LOG_INFO, fields);
    if (srv->keys == NULL) {
        od_log_warn(srv->log, "server: no api_keys_file configured: every caller is "
                              "'anonymous' and shares one idempotency scope");
    }
    od_log_info(srv->log,
                "server: orderd %s listening on %s:%d (%s, store=%s, http_threads=%d, "
                "worker_threads=%d, queue_limit=%d, events=%s)",
                ORDERD_VERSION, s->listen_address, od_http_port(srv->http),
                s->tls_cert_file != NULL ? "https" : "http", od_store_name(srv->store),
                s->http_threads, s->worker_threads, s->queue_limit, od_sink_name(srv->sink));
    return APR_SUCCESS;
}

/* A reload may turn authentication on (that only refuses more) but never off: a config that
 * lost api_keys_file, by mistake or by someone who may edit the config but not the keys, would
 * otherwise let every request in as 'anonymous'. Running without keys takes a restart, which
 * logs its warning. */
static apr_status_t od_server_reload_keys(od_server_t *srv, od_keys_t **keys,
                                          const od_settings_t *fresh, const char *config_path,
                                          const char **errmsg, apr_pool_t *p)
{
    if (srv->authenticating && fresh->api_keys_file == NULL) {
        *errmsg = apr_psprintf(p,
                               "%s: api_keys_file is not set: a reload cannot turn "
                               "authentication off (restart orderd to run without keys)",
                               config_path);
        return OD_ECONFIG;
    }
    return od_server_load_keys(keys, fresh, errmsg, p);
}

apr_status_t od_server_reload(od_server_t *srv, const char *config_path)
{
    apr_pool_t *tmp = NULL, *keys_pool = NULL;
    od_settings_t fresh;
    od_keys_t *keys = NULL;
    const char *errmsg = NULL;

    /* Pools of their own: the new key set outlives this call (it is handed to the front end),
     * the rest of the new configuration does not. */
    apr_pool_create(&tmp, NULL);
    apr_pool_create(&keys_pool, NULL);
    apr_status_t rv = od_server_load_config(&fresh, config_path, &errmsg, tmp);
    if (rv == APR_SUCCESS) {
        rv = od_server_reload_keys(srv, &keys, &fresh, config_path, &errmsg, keys_pool);
    }
    if (rv != APR_SUCCESS) {
        od_log_error(srv->log, "server: reload failed, keeping the running configuration: %s",
                     errmsg);
        apr_pool_destroy(keys_pool);
    } else {
        srv->authenticating = keys != NULL;
        od_log_set_level(srv->log, fresh.log_level);
        od_http_reload(srv->http, keys, keys_pool, fresh.rate_limit_per_s, fresh.rate_limit_burst);
        od_log_info(srv->log,
                    "server: reloaded %s: %d caller(s), log_level %s, default rate "
                    "limit %d/s burst %d (other keys take effect at restart)",
                    config_path, keys != NULL ? od_keys_count(keys) : 0,
                    od_config_log_level_name(fresh.log_level), fresh.rate_limit_per_s,
                    fresh.rate_limit_burst);
    }
    apr_pool_destroy(tmp);
    return rv;
}

void od_server_stop(od_server_t *srv)
{
    od_log_info(srv->log, "server: stopping (finishing in-flight requests, up to %d s)",
                srv->settings->shutdown_timeout_s);
    od_http_stop(srv->http, apr_time_from_sec(srv->settings->shutdown_timeout_s));
    /* After the last request: flush what is queued for publishing; the rest stays pending. */
    if (srv->outbox != NULL) {
        od_outbox_stop(srv->outbox, apr_time_from_sec(5));
    }
    od_log_info(srv->log, "server: stopped");
}

/* od_config: a table-driven parser for `key = value` configuration files. */
#include "od_config.h"
#include "od_regex.h"
#include "od_status.h"

#include <apr_strings.h>
#include <apr_lib.h>
#include <regex.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <json-c/json.h>

typedef enum od_conf_type_e {
    OD_CONF_INT,
    OD_CONF_STRING,
    OD_CONF_ENUM,
    OD_CONF_REGEX
} od_conf_type_e;

/* One recognised key: where its value goes and what it may be. */
typedef struct od_conf_key_t {
    const char *name;
    od_conf_type_e type;
    size_t offset;
    long min;
    long max;
    const char *const *choices; /* OD_CONF_ENUM: NULL-terminated, index is the value */
} od_conf_key_t;

static const char *const od_store_choices[] = {"sqlite", "dynamodb", NULL};
static const char *const od_level_choices[] = {"debug", "info", "warn", "error", NULL};
static const char *const od_sink_choices[] = {"none", "file", "sns", "sqs", "eventbridge", NULL};

#define OD_INT(name, lo, hi)                                                                       \
    {                                                                                              \
#name, OD_CONF_INT, offsetof(od_settings_t, name), lo, hi, NULL                            \
    }
#define OD_STR(name)                                                                               \
    {                                                                                              \
#name, OD_CONF_STRING, offsetof(od_settings_t, name), 0, 0, NULL                           \
    }

static const od_conf_key_t od_conf_keys[] = {
    OD_STR(listen_address),
    OD_INT(listen_port, 0, 65535),
    OD_INT(http_threads, 1, 64),
    OD_INT(worker_threads, 1, 1024),
    OD_INT(queue_limit, 1, 1000000),
    OD_INT(max_connections, 1, 1000000),
    OD_INT(connection_timeout_s, 1, 3600),
    OD_INT(header_timeout_s, 1, 3600),
    OD_INT(max_body_bytes, 64, 1048576),
    OD_INT(idempotency_ttl_s, 1, 86400),
    OD_INT(hot_cache_max_entries, 2, 100000000),
    {"customer_id_pattern", OD_CONF_REGEX, offsetof(od_settings_t, customer_id_pattern), 0, 0,
     NULL},
    OD_INT(max_quantity, 1, 1000000),
    OD_INT(max_items, 1, 1000),
    {"store", OD_CONF_ENUM, offsetof(od_settings_t, store), 0, 0, od_store_choices},
    OD_STR(sqlite_path),
    OD_INT(sqlite_batch_max, 1, 100000),
    OD_STR(api_keys_file),
    OD_STR(tls_cert_file),
    OD_STR(tls_key_file),
    OD_STR(cors_allowed_origins),
    OD_INT(max_connections_per_ip, 0, 1000000),
    OD_INT(max_header_bytes, 1024, 1048576),
    OD_INT(rate_limit_per_s, 0, 1000000),
    OD_INT(rate_limit_burst, 1, 1000000),
    {"log_level", OD_CONF_ENUM, offsetof(od_settings_t, log_level), 0, 0, od_level_choices},
    OD_INT(shutdown_timeout_s, 0, 3600),
    OD_STR(aws_region),
    OD_STR(aws_access_key_id),
    OD_STR(aws_secret_access_key),
    OD_STR(aws_session_token),
    OD_INT(aws_max_connections, 1, 4096),
    OD_INT(aws_connect_timeout_ms, 1, 60000),
    OD_INT(aws_request_timeout_ms, 1, 600000),
    OD_INT(aws_max_attempts, 1, 10),
    OD_INT(aws_retry_base_ms, 1, 10000),
    OD_INT(aws_retry_cap_ms, 1, 60000),
    OD_STR(dynamodb_endpoint),
    OD_STR(dynamodb_table),
    {"events_sink", OD_CONF_ENUM, offsetof(od_settings_t, events_sink), 0, 0, od_sink_choices},
    OD_STR(events_file),
    OD_INT(events_retry_after_s, 1, 86400),
    OD_INT(events_batch_max, 1, 10000),
    OD_INT(events_max_in_flight, 1, 256),
    OD_STR(sns_topic_arn),
    OD_STR(sns_endpoint),
    OD_STR(sqs_queue_url),
    OD_STR(sqs_endpoint),
    OD_STR(eventbridge_bus),
    OD_STR(eventbridge_source),
    OD_STR(eventbridge_detail_type),
    OD_STR(eventbridge_endpoint),
    OD_STR(handler_command),
    OD_INT(consumer_wait_time_s, 0, 20),
    OD_INT(consumer_max_messages, 1, 10),
    OD_INT(consumer_processed_ttl_s, 1, 30 * 86400),
    OD_INT(consumer_handler_timeout_s, 1, 3600),
};

#define OD_CONF_NKEYS (sizeof(od_conf_keys) / sizeof(od_conf_keys[0]))

void od_config_defaults(od_settings_t *out)
{
    memset(out, 0, sizeof(*out));
    out->listen_address = "127.0.0.1";
    out->listen_port = 8080;
    out->http_threads = 2;
    out->worker_threads = 64;
    out->queue_limit = 4096;
    out->max_connections = 4096;
    out->connection_timeout_s = 30;
    out->header_timeout_s = 10;
    out->max_body_bytes = 1024;
    out->idempotency_ttl_s = 15;
    out->hot_cache_max_entries = 100000;
    out->customer_id_pattern = "^CUST-[0-9]{6}$";
    out->max_quantity = 100;
    out->max_items = 10;
    out->store = OD_STORE_KIND_SQLITE;
    out->sqlite_path = "orderd.db";
    out->sqlite_batch_max = 512;
    out->api_keys_file = NULL;
    out->max_connections_per_ip = 256;
    out->max_header_bytes = 16384;
    out->rate_limit_per_s = 0;
    out->rate_limit_burst = 100;
    out->log_level = OD_LOG_INFO;
    out->shutdown_timeout_s = 20;
    out->aws_max_connections = 96; /* worker_threads (DynamoDB puts) + events_max_in_flight + 16 */
    out->aws_connect_timeout_ms = 1000;
    out->aws_request_timeout_ms = 3000;
    out->aws_max_attempts = 3;
    out->aws_retry_base_ms = 25;
    out->aws_retry_cap_ms = 1000;
    out->dynamodb_table = "orderd";
    out->events_sink = OD_SINK_KIND_FILE;
    out->events_file = "events.jsonl";
    out->events_retry_after_s = 10;
    out->events_batch_max = 1000;
    out->events_max_in_flight = 32;
    out->eventbridge_bus = "default";
    out->eventbridge_source = "orderd";
    out->eventbridge_detail_type = "order.accepted";
    out->consumer_wait_time_s = 20;
    out->consumer_max_messages = 10;
    out->consumer_processed_ttl_s = 7 * 86400;
    out->consumer_handler_timeout_s = 60;
}

/* Never logged as they are: anything that would let a reader act as orderd. */
static int od_conf_is_secret(const char *name)
{
    return strstr(name, "secret") != NULL || strstr(name, "token") != NULL;
}

static json_object *od_conf_value(const od_conf_key_t *k, const od_settings_t *s)
{
    const void *field = (const char *) s + k->offset;

    switch (k->type) {
    case OD_CONF_INT:
        return json_object_new_int(*(const int *) field);
    case OD_CONF_ENUM:
        return json_object_new_string(k->choices[*(const int *) field]);
    default: {
        const char *v = *(const char *const *) field;
        return v == NULL ? NULL : json_object_new_string(od_conf_is_secret(k->name) ? "***" : v);
    }
    }
}

json_object *od_config_to_json(const od_settings_t *settings)
{
    json_object *obj = json_object_new_object();

    for (apr_size_t i = 0; i < OD_CONF_NKEYS; i++) {
        json_object_object_add(obj, od_conf_keys[i].name,
                               od_conf_value(&od_conf_keys[i], settings));
    }
    return obj;
}

const char *od_config_sink_name(od_sink_kind_e kind)
{
    return (kind >= OD_SINK_KIND_NONE && kind <= OD_SINK_KIND_EVENTBRIDGE) ? od_sink_choices[kind]
                                                                           : "?";
}

const char *od_config_log_level_name(od_log_level_e level)
{
    return (level >= OD_LOG_DEBUG && level <= OD_LOG_ERROR) ? od_level_choices[level] : "?";
}

static const char *od_conf_set_int(const od_conf_key_t *k, void *field, const char *v,
                                   apr_pool_t *p)
{
    char *end = NULL;

    errno = 0;
    long n = strtol(v, &end, 10);
    if (*v == '\0' || *end != '\0' || errno != 0 || n < k->min || n > k->max) {
        return apr_psprintf(p, "'%s' is not an integer between %ld and %ld", v, k->min, k->max);
    }
    *(int *) field = (int) n;
    return NULL;
}

static const char *od_conf_set_enum(const od_conf_key_t *k, void *field, const char *v,
                                    apr_pool_t *p)
{
    for (int i = 0; k->choices[i] != NULL; i++) {
        if (strcmp(k->choices[i], v) == 0) {
            *(int *) field = i;
            return NULL;
        }
    }
    const char *all = k->choices[0];
    for (int i = 1; k->choices[i] != NULL; i++) {
        all = apr_pstrcat(p, all, " | ", k->choices[i], NULL);
    }
    return apr_psprintf(p, "'%s' is not one of: %s", v, all);
}

/* The pattern is compiled here only to report a bad or costly one against its line; od_order
 * compiles the copy it uses. */
static const char *od_conf_check_regex(const char *v, apr_pool_t *p)
{
    regex_t re;
    const char *why = NULL;

    if (od_regex_compile(&re, v, &why, p) != APR_SUCCESS) {
        return why;
    }
    regfree(&re);
    return NULL;
}

static const char *od_conf_set(const od_conf_key_t *k, od_settings_t *out, const char *v,
                               apr_pool_t *p)
{
    void *field = (char *) out + k->offset;

    switch (k->type) {
    case OD_CONF_INT:
        return od_conf_set_int(k, field, v, p);
    case OD_CONF_ENUM:
        return od_conf_set_enum(k, field, v, p);
    case OD_CONF_REGEX: {
        const char *why = od_conf_check_regex(v, p);
        if (why != NULL) {
            return why;
        }
    } /* fall through: a valid pattern is stored as a string */
    /* FALLTHROUGH */
    case OD_CONF_STRING:
        if (*v == '\0') {
            return "value is empty";
        }
        *(const char **) field = apr_pstrdup(p, v);
        return NULL;
    }
    return "unsupported key type";
}

static const od_conf_key_t *od_conf_find(const char *name, apr_size_t *index)
{
    for (apr_size_t i = 0; i < OD_CONF_NKEYS; i++) {
        if (strcmp(od_conf_keys[i].name, name) == 0) {
            *index = i;
            return &od_conf_keys[i];
        }
    }
    return NULL;
}

static char *od_conf_trim(char *s)
{
    while (apr_isspace(*s)) {
        s++;
    }
    char *end = s + strlen(s);
    while (end > s && apr_isspace(end[-1])) {
        *--end = '\0';
    }
    return s;
}

/* Parses one non-comment line; returns NULL or a message. seen[] holds the line each key was set
 * on, so a repeated key names its first line. */
static const char *od_conf_line(od_settings_t *out, char *line, int lineno, int *seen,
                                apr_pool_t *p)
{
    char *eq = strchr(line, '=');
    if (eq == NULL) {
        return apr_psprintf(p, "expected 'key = value', got '%s'", line);
    }
    *eq = '\0';
    char *key = od_conf_trim(line);
    char *value = od_conf_trim(eq + 1);
    apr_size_t index = 0;
    const od_conf_key_t *k = od_conf_find(key, &index);
    if (k == NULL) {
        return apr_psprintf(p, "unknown key '%s'", key);
    }
    if (seen[index] != 0) {
        return apr_psprintf(p, "key '%s' is already set on line %d", key, seen[index]);
    }
    seen[index] = lineno;
    const char *why = od_conf_set(k, out, value, p);
    return why == NULL ? NULL : apr_psprintf(p, "%s: %s", key, why);
}

/* Whether events go through the AWS client: an AWS sink, or their marks in a DynamoDB store. */
static int od_conf_events_on_aws(const od_settings_t *s)
{
    return s->events_sink == OD_SINK_KIND_SNS || s->events_sink == OD_SINK_KIND_SQS ||
           s->events_sink == OD_SINK_KIND_EVENTBRIDGE ||
           (s->store == OD_STORE_KIND_DYNAMODB && s->events_sink != OD_SINK_KIND_NONE);
}

/* Checks between keys, once all are read; returns NULL or a message. Every event call in flight
 * holds one of the AWS client's connections (a curl handle of its pool): with fewer, the calls
 * beyond it would only wait for one, and an operator raising events_max_in_flight would get
 * nothing for it. */
static const char *od_conf_cross_check(const od_settings_t *s, apr_pool_t *p)
{
    if (od_conf_events_on_aws(s) && s->events_max_in_flight > s->aws_max_connections) {
        return apr_psprintf(p,
                            "events_max_in_flight (%d) exceeds aws_max_connections (%d): each "
                            "event call in flight needs a connection of its own; raise "
                            "aws_max_connections or lower events_max_in_flight",
                            s->events_max_in_flight, s->aws_max_connections);
    }
    return NULL;
}

apr_status_t od_config_parse(od_settings_t *out, const char *text, apr_size_t len,
                             const char *filename, const char **errmsg, apr_pool_t *p)
{
    int seen[OD_CONF_NKEYS] = {0};
    char *copy = apr_pstrmemdup(p, text, len);
    char *state = NULL;
    int lineno = 0;

    od_config_defaults(out);
    *errmsg = NULL;
    if (memchr(text, '\0', len) != NULL) {
        *errmsg = apr_psprintf(p, "%s: file contains a NUL byte", filename);
        return OD_ECONFIG;
    }
    /* Split by hand rather than with apr_strtok so empty lines keep their line numbers. */
    for (char *line = copy; line != NULL; line = state) {
        state = strchr(line, '\n');
        if (state != NULL) {
            *state++ = '\0';
        }
        lineno++;
        char *t = od_conf_trim(line);
        if (*t == '\0' || *t == '#') {
            continue;
        }
        const char *why = od_conf_line(out, t, lineno, seen, p);
        if (why != NULL) {
            *errmsg = apr_psprintf(p, "%s:%d: %s", filename, lineno, why);
            return OD_ECONFIG;
        }
    }
    const char *why = od_conf_cross_check(out, p);
    if (why != NULL) {
        *errmsg = apr_psprintf(p, "%s: %s", filename, why);
        return OD_ECONFIG;
    }
    return APR_SUCCESS;
}

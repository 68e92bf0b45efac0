/*
 * odb-sinkd: a stand-in for SNS, SQS and EventBridge that answers the exact calls orderd's event
 * sinks make (aws/od_aws_sinks.c) with success, after a fixed latency, and measures what it got:
 * events, duplicate event ids, events/s, and the lag of each event from its commit (the
 * envelope's occurred_at) to the moment its call is answered, i.e. when orderd's publish of it
 * completes. A harness component like the floor: it checks no signatures and is never used for
 * correctness tests (those have their own fakes in tests/).
 *
 *   odb-sinkd -p PORT [-l LATENCY_MS] [-m MAX_CONNECTIONS]
 *
 * Calls understood (POST, any path): SQS SendMessageBatch (JSON 1.0, X-Amz-Target
 * AmazonSQS.SendMessageBatch), EventBridge PutEvents (JSON 1.1, AWSEvents.PutEvents), SNS
 * PublishBatch (query protocol: a form with Action=PublishBatch, XML answer). GET /stats answers
 * the figures as JSON; on SIGTERM or SIGINT they are printed on stdout before it exits.
 *
 * One thread per connection (libmicrohttpd's MHD_USE_THREAD_PER_CONNECTION): the latency is a
 * plain sleep in that thread, so it delays that call only, and hundreds of calls can wait at
 * once. orderd keeps one call per pooled connection (aws_max_connections, 64 by default).
 */
#ifndef _GNU_SOURCE /* APR's pkg-config flags define it already */
#define _GNU_SOURCE
#endif

#include "hist.h"

#include <apr_hash.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <json-c/json.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SINKD_MAX_BODY (1024 * 1024) /* SNS's and SQS's own limit is 256 KiB per batch */
#define SINKD_MAX_ENTRIES 10         /* the most entries any of the three batch calls takes */
#define SINKD_SECONDS 3600           /* the per-second timeline covers an hour */
#define SINKD_ID_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"

typedef enum sinkd_op_e { OP_SQS, OP_EB, OP_SNS, OP_STATS, OP_UNKNOWN } sinkd_op_e;

/* One call's entries: the batch entry Id (not for PutEvents) and the message, i.e. the envelope
 * (SQS MessageBody, SNS Message, EventBridge Detail). */
typedef struct sinkd_entry_t {
    char *id;
    char *message;
} sinkd_entry_t;

typedef struct sinkd_req_t {
    char *body;
    size_t len;
    int too_big;
    sinkd_entry_t entries[SINKD_MAX_ENTRIES];
    int n;
    json_object *doc; /* the parsed JSON request, which owns the entries' strings */
} sinkd_req_t;

/* Everything measured, behind one mutex (a few hundred calls a second: no contention worth
 * avoiding). */
typedef struct sinkd_stats_t {
    pthread_mutex_t lock;
    hist_t lag;
    uint64_t events, duplicates, bad_events, calls[OP_UNKNOWN + 1], bad_calls;
    long long start_us, first_us, last_us; /* wall clock, as occurred_at is */
    uint32_t per_second[SINKD_SECONDS];    /* events answered, by second since start */
    uint32_t per_second_max_lag_ms[SINKD_SECONDS];
    apr_pool_t *pool;
    apr_hash_t *seen; /* event ids answered so far */
    char first_error[256];
} sinkd_stats_t;

typedef struct sinkd_t {
    unsigned int port;
    double latency_ms;
    unsigned int max_connections;
    unsigned long long next_message_id;
    sinkd_stats_t st;
} sinkd_t;

static long long sinkd_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long) ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

/* Keeps the first problem for the report, and says each one on stderr. */
static void sinkd_complain(sinkd_t *s, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "odb-sinkd: %s\n", msg);
    pthread_mutex_lock(&s->st.lock);
    if (s->st.first_error[0] == '\0') {
        snprintf(s->st.first_error, sizeof(s->st.first_error), "%s", msg);
    }
    pthread_mutex_unlock(&s->st.lock);
}

/* ---- reading the calls ---- */

static sinkd_op_e sinkd_op(struct MHD_Connection *conn, const char *method, const char *url,
                           const sinkd_req_t *r)
{
    const char *target = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Amz-Target");

    if (strcmp(method, "GET") == 0) {
        return strcmp(url, "/stats") == 0 ? OP_STATS : OP_UNKNOWN;
    }
    if (target != NULL) {
        return strcmp(target, "AmazonSQS.SendMessageBatch") == 0 ? OP_SQS
               : strcmp(target, "AWSEvents.PutEvents") == 0      ? OP_EB
                                                                 : OP_UNKNOWN;
    }
    return r->body != NULL && strstr(r->body, "Action=PublishBatch") != NULL ? OP_SNS : OP_UNKNOWN;
}

static const char *sinkd_str(json_object *obj, const char *key)
{
    json_object *v = NULL;

    return json_object_object_get_ex(obj, key, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : NULL;
}

/* SQS {"QueueUrl":..,"Entries":[{"Id","MessageBody",..}]}, EventBridge {"Entries":[{"Detail"..}]}.
 */
static int sinkd_read_json(sinkd_req_t *r, sinkd_op_e op)
{
    json_object *entries = NULL;

    r->doc = json_tokener_parse(r->body);
    if (!json_object_object_get_ex(r->doc, "Entries", &entries) ||
        !json_object_is_type(entries, json_type_array) ||
        json_object_array_length(entries) > SINKD_MAX_ENTRIES) {
        return -1;
    }
    r->n = (int) json_object_array_length(entries);
    for (int i = 0; i < r->n; i++) {
        json_object *e = json_object_array_get_idx(entries, (size_t) i);
        r->entries[i].id = op == OP_SQS ? (char *) sinkd_str(e, "Id") : "";
        r->entries[i].message = (char *) sinkd_str(e, op == OP_SQS ? "MessageBody" : "Detail");
        if (r->entries[i].id == NULL || r->entries[i].message == NULL) {
            return -1;
        }
    }
    return r->n > 0 ? 0 : -1;
}

/* One field of SNS's form, decoded in place: PublishBatchRequestEntries.member.N.Id / .Message
 * (the message attributes and the topic are not needed). */
static int sinkd_read_field(sinkd_req_t *r, char *field)
{
    static const char prefix[] = "PublishBatchRequestEntries.member.";
    char *eq = strchr(field, '='), *rest = NULL;

    if (eq == NULL || strncmp(field, prefix, sizeof(prefix) - 1) != 0) {
        return 0;
    }
    *eq = '\0';
    long n = strtol(field + sizeof(prefix) - 1, &rest, 10);
    if (n < 1 || n > SINKD_MAX_ENTRIES) {
        return -1;
    }
    MHD_http_unescape(eq + 1);
    if (strcmp(rest, ".Id") == 0) {
        r->entries[n - 1].id = eq + 1;
    } else if (strcmp(rest, ".Message") == 0) {
        r->entries[n - 1].message = eq + 1;
    }
    r->n = (int) n > r->n ? (int) n : r->n;
    return 0;
}

static int sinkd_read_sns(sinkd_req_t *r)
{
    char *save = NULL;

    for (char *f = strtok_r(r->body, "&", &save); f != NULL; f = strtok_r(NULL, "&", &save)) {
        if (sinkd_read_field(r, f) != 0) {
            return -1;
        }
    }
    for (int i = 0; i < r->n; i++) {
        if (r->entries[i].id == NULL || r->entries[i].message == NULL) {
            return -1;
        }
    }
    return r->n > 0 ? 0 : -1;
}

/* Batch entry Ids go back into the answer verbatim (XML for SNS): only what AWS allows. */
static int sinkd_ids_ok(const sinkd_req_t *r)
{
    for (int i = 0; i < r->n; i++) {
        if (strlen(r->entries[i].id) > 80 ||
            strspn(r->entries[i].id, SINKD_ID_CHARS) != strlen(r->entries[i].id)) {
            return 0;
        }
    }
    return 1;
}

/* ---- measuring ---- */

/* "2026-11-21T10:00:00.123Z" (orderd's occurred_at: UTC, milliseconds) in microseconds. */
static int sinkd_parse_time(const char *s, long long *us)
{
    struct tm tm;
    int ms = 0, used = 0;

    memset(&tm, 0, sizeof(tm));
    if (s == NULL ||
        sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms, &used) != 7 ||
        s[used] != '\0') {
        return -1;
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    *us = (long long) timegm(&tm) * 1000000LL + ms * 1000LL;
    return 0;
}

/* Records one answered event. Called with the stats lock held. */
static void sinkd_count(sinkd_stats_t *st, const char *event_id, long long occurred_us,
                        long long now)
{
    uint64_t lag = now > occurred_us ? (uint64_t) (now - occurred_us) : 0;
    long long sec = (now - st->start_us) / 1000000LL;

    hist_record(&st->lag, lag);
    st->events++;
    st->first_us = st->first_us == 0 ? now : st->first_us;
    st->last_us = now;
    if (sec >= 0 && sec < SINKD_SECONDS) {
        st->per_second[sec]++;
        uint32_t ms = (uint32_t) (lag / 1000);
        st->per_second_max_lag_ms[sec] =
            ms > st->per_second_max_lag_ms[sec] ? ms : st->per_second_max_lag_ms[sec];
    }
    if (apr_hash_get(st->seen, event_id, APR_HASH_KEY_STRING) != NULL) {
        st->duplicates++;
    } else {
        apr_hash_set(st->seen, apr_pstrdup(st->pool, event_id), APR_HASH_KEY_STRING, "");
    }
}

/* Every envelope of an answered call, at the moment of the answer. */
static void sinkd_record(sinkd_t *s, const sinkd_req_t *r, sinkd_op_e op)
{
    const char *ids[SINKD_MAX_ENTRIES], *when[SINKD_MAX_ENTRIES];
    json_object *docs[SINKD_MAX_ENTRIES];
    long long occurred[SINKD_MAX_ENTRIES];
    int bad = 0, first_bad = 0;

    /* Parsed outside the lock: the lock covers only the counting. */
    for (int i = 0; i < r->n; i++) {
        docs[i] = json_tokener_parse(r->entries[i].message);
        ids[i] = sinkd_str(docs[i], "event_id");
        when[i] = sinkd_str(docs[i], "occurred_at");
    }
    long long now = sinkd_now_us();
    pthread_mutex_lock(&s->st.lock);
    s->st.calls[op]++;
    for (int i = 0; i < r->n; i++) {
        if (ids[i] == NULL || sinkd_parse_time(when[i], &occurred[i]) != 0) {
            s->st.bad_events++;
            first_bad = bad++ == 0 ? i : first_bad;
        } else {
            sinkd_count(&s->st, ids[i], occurred[i], now);
        }
    }
    pthread_mutex_unlock(&s->st.lock);
    for (int i = 0; i < r->n; i++) {
        json_object_put(docs[i]);
    }
    if (bad > 0) {
        sinkd_complain(s, "%d message(s) without event_id or occurred_at, e.g. %.120s", bad,
                       r->entries[first_bad].message);
    }
}

/* ---- answering ---- */

static char *sinkd_answer_json(sinkd_t *s, const sinkd_req_t *r, sinkd_op_e op)
{
    json_object *doc = json_object_new_object(), *list = json_object_new_array();

    for (int i = 0; i < r->n; i++) {
        char mid[40];
        json_object *e = json_object_new_object();
        snprintf(mid, sizeof(mid), "odb-sinkd-%llu",
                 __atomic_fetch_add(&s->next_message_id, 1, __ATOMIC_RELAXED));
        if (op == OP_SQS) {
            json_object_object_add(e, "Id", json_object_new_string(r->entries[i].id));
            json_object_object_add(e, "MessageId", json_object_new_string(mid));
        } else {
            json_object_object_add(e, "EventId", json_object_new_string(mid));
        }
        json_object_array_add(list, e);
    }
    if (op == OP_SQS) {
        json_object_object_add(doc, "Successful", list);
        json_object_object_add(doc, "Failed", json_object_new_array());
    } else {
        json_object_object_add(doc, "FailedEntryCount", json_object_new_int(0));
        json_object_object_add(doc, "Entries", list);
    }
    char *out = strdup(json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN));
    json_object_put(doc);
    return out;
}

/* SNS's query-protocol answer; the Ids are checked to be [A-Za-z0-9_-], so need no escaping. */
static char *sinkd_answer_sns(sinkd_t *s, const sinkd_req_t *r)
{
    size_t cap = 512 + (size_t) r->n * 256, len = 0;
    char *out = malloc(cap);

    len += (size_t) snprintf(out + len, cap - len,
                             "<PublishBatchResponse xmlns=\"http://sns.amazonaws.com/doc/"
                             "2010-03-31/\"><PublishBatchResult><Successful>");
    for (int i = 0; i < r->n; i++) {
        len += (size_t) snprintf(
            out + len, cap - len,
            "<member><Id>%s</Id><MessageId>odb-sinkd-%llu</MessageId></member>", r->entries[i].id,
            __atomic_fetch_add(&s->next_message_id, 1, __ATOMIC_RELAXED));
    }
    snprintf(out + len, cap - len,
             "</Successful><Failed/></PublishBatchResult><ResponseMetadata><RequestId>"
             "odb-sinkd</RequestId></ResponseMetadata></PublishBatchResponse>");
    return out;
}

static enum MHD_Result sinkd_send(struct MHD_Connection *conn, unsigned int status, char *body,
                                  const char *content_type)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    enum MHD_Result rv;

    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(resp, "x-amzn-RequestId", "odb-sinkd");
    rv = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return rv;
}

/* A request orderd's sinks would never make: 400, said on stderr and in the report. */
static enum MHD_Result sinkd_reject(sinkd_t *s, struct MHD_Connection *conn, const char *method,
                                    const char *url, const sinkd_req_t *r)
{
    pthread_mutex_lock(&s->st.lock);
    s->st.bad_calls++;
    pthread_mutex_unlock(&s->st.lock);
    sinkd_complain(s, "unexpected request %s %s (%zu bytes%s): %.100s", method, url, r->len,
                   r->too_big ? ", too big" : "", r->body != NULL ? r->body : "");
    return sinkd_send(conn, MHD_HTTP_BAD_REQUEST,
                      strdup("{\"__type\":\"InvalidParameterValue\",\"message\":\"odb-sinkd "
                             "does not understand this request\"}"),
                      "application/json");
}

static char *sinkd_stats_json(sinkd_t *s);

static enum MHD_Result sinkd_handle(sinkd_t *s, struct MHD_Connection *conn, const char *method,
                                    const char *url, sinkd_req_t *r)
{
    sinkd_op_e op = sinkd_op(conn, method, url, r);

    if (op == OP_STATS) {
        return sinkd_send(conn, MHD_HTTP_OK, sinkd_stats_json(s), "application/json");
    }
    int ok = op != OP_UNKNOWN && r->body != NULL && !r->too_big &&
             (op == OP_SNS ? sinkd_read_sns(r) : sinkd_read_json(r, op)) == 0 && sinkd_ids_ok(r);
    if (!ok) {
        return sinkd_reject(s, conn, method, url, r);
    }
    /* The endpoint's latency: this connection's own thread sleeps, no other call waits. */
    long long ns = (long long) (s->latency_ms * 1e6);
    struct timespec ts = {ns / 1000000000LL, ns % 1000000000LL};
    while (nanosleep(&ts, &ts) != 0) {
    }
    sinkd_record(s, r, op);
    return op == OP_SNS ? sinkd_send(conn, MHD_HTTP_OK, sinkd_answer_sns(s, r), "text/xml")
                        : sinkd_send(conn, MHD_HTTP_OK, sinkd_answer_json(s, r, op),
                                     op == OP_SQS ? "application/x-amz-json-1.0"
                                                  : "application/x-amz-json-1.1");
}

static enum MHD_Result sinkd_access(void *cls, struct MHD_Connection *conn, const char *url,
                                    const char *method, const char *version,
                                    const char *upload_data, size_t *upload_data_size,
                                    void **con_cls)
{
    sinkd_req_t *r = *con_cls;

    (void) version;
    if (r == NULL) {
        *con_cls = calloc(1, sizeof(sinkd_req_t));
        return *con_cls != NULL ? MHD_YES : MHD_NO;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        char *grown = r->len + n <= SINKD_MAX_BODY ? realloc(r->body, r->len + n + 1) : NULL;
        if (grown == NULL) {
            r->too_big = 1;
            return MHD_YES;
        }
        r->body = grown;
        memcpy(r->body + r->len, upload_data, n);
        r->len += n;
        r->body[r->len] = '\0';
        return MHD_YES;
    }
    return sinkd_handle(cls, conn, method, url, r);
}

static void sinkd_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                            enum MHD_RequestTerminationCode toe)
{
    sinkd_req_t *r = *con_cls;

    (void) cls;
    (void) conn;
    (void) toe;
    if (r != NULL) {
        json_object_put(r->doc);
        free(r->body);
        free(r);
    }
    *con_cls = NULL;
}

/* ---- the report ---- */

static char *sinkd_stats_json(sinkd_t *s)
{
    sinkd_stats_t *st = &s->st;
    char *out = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&out, &size);

    pthread_mutex_lock(&st->lock);
    double active = (double) (st->last_us - st->first_us) / 1e6;
    fprintf(f,
            "{\"latency_ms\":%.3f,\"events\":%llu,\"distinct\":%llu,\"duplicates\":%llu,"
            "\"bad_events\":%llu,\"bad_calls\":%llu,\"calls\":{\"sqs\":%llu,\"eventbridge\":%llu,"
            "\"sns\":%llu},\"first_unix_ms\":%lld,\"last_unix_ms\":%lld,\"active_s\":%.3f,"
            "\"events_per_s\":%.1f,\"lag_ms\":{\"p50\":%.3f,\"p95\":%.3f,\"p99\":%.3f,"
            "\"max\":%.3f},\"start_unix_ms\":%lld,\"per_second\":[",
            s->latency_ms, (unsigned long long) st->events,
            (unsigned long long) (st->events - st->duplicates), (unsigned long long) st->duplicates,
            (unsigned long long) st->bad_events, (unsigned long long) st->bad_calls,
            (unsigned long long) st->calls[OP_SQS], (unsigned long long) st->calls[OP_EB],
            (unsigned long long) st->calls[OP_SNS], st->first_us / 1000, st->last_us / 1000, active,
            active > 0 ? (double) st->events / active : 0.0, hist_quantile_ms(&st->lag, 0.50),
            hist_quantile_ms(&st->lag, 0.95), hist_quantile_ms(&st->lag, 0.99),
            (double) st->lag.max_us / 1000.0, st->start_us / 1000);
    /* [events, worst lag ms] for every second since start up to the last event's. */
    long long last = st->last_us > 0 ? (st->last_us - st->start_us) / 1000000LL : -1;
    for (long long i = 0; i <= last && i < SINKD_SECONDS; i++) {
        fprintf(f, "%s[%u,%u]", i > 0 ? "," : "", st->per_second[i], st->per_second_max_lag_ms[i]);
    }
    fprintf(f, "],\"first_error\":\"");
    for (const char *c = st->first_error; *c != '\0'; c++) {
        fprintf(f, (*c == '"' || *c == '\\') ? "\\%c" : (*c < 0x20 ? "?" : "%c"), *c);
    }
    fprintf(f, "\"}\n");
    pthread_mutex_unlock(&st->lock);
    fclose(f);
    return out;
}

/* ---- start-up ---- */

static int sinkd_parse(sinkd_t *s, int argc, char **argv)
{
    int c;

    s->latency_ms = 20;
    s->max_connections = 1024;
    while ((c = getopt(argc, argv, "p:l:m:")) != -1) {
        switch (c) {
        case 'p':
            s->port = (unsigned int) strtoul(optarg, NULL, 10);
            break;
        case 'l':
            s->latency_ms = strtod(optarg, NULL);
            break;
        case 'm':
            s->max_connections = (unsigned int) strtoul(optarg, NULL, 10);
            break;
        default:
            return -1;
        }
    }
    return s->port > 0 && s->port < 65536 && s->latency_ms >= 0 && s->max_connections > 0 ? 0 : -1;
}

/* Loopback only: the benchmark never listens anywhere else. */
static struct MHD_Daemon *sinkd_start(sinkd_t *s)
{
    struct sockaddr_in sa;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t) s->port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                                MHD_USE_POLL | MHD_USE_ERROR_LOG,
                            (uint16_t) s->port, NULL, NULL, sinkd_access, s, MHD_OPTION_SOCK_ADDR,
                            &sa, MHD_OPTION_CONNECTION_LIMIT, s->max_connections,
                            MHD_OPTION_CONNECTION_TIMEOUT, 60u, MHD_OPTION_THREAD_STACK_SIZE,
                            (size_t) 256 * 1024, MHD_OPTION_NOTIFY_COMPLETED, sinkd_completed, NULL,
                            MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_END);
}

int main(int argc, char **argv)
{
    static sinkd_t s;
    sigset_t set;
    int sig = 0;

    if (sinkd_parse(&s, argc, argv) != 0) {
        fprintf(stderr, "usage: odb-sinkd -p PORT [-l LATENCY_MS] [-m MAX_CONNECTIONS]\n");
        return 2;
    }
    if (apr_initialize() != APR_SUCCESS || apr_pool_create(&s.st.pool, NULL) != APR_SUCCESS) {
        fprintf(stderr, "odb-sinkd: APR initialisation failed\n");
        return 1;
    }
    pthread_mutex_init(&s.st.lock, NULL);
    s.st.seen = apr_hash_make(s.st.pool);
    s.st.start_us = sinkd_now_us();
    /* Blocked before MHD's threads exist, so they inherit the mask and sigwait gets them. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    struct MHD_Daemon *d = sinkd_start(&s);
    if (d == NULL) {
        fprintf(stderr, "odb-sinkd: cannot listen on 127.0.0.1:%u\n", s.port);
        return 1;
    }
    fprintf(stderr, "odb-sinkd: listening on 127.0.0.1:%u, answering after %.1f ms\n", s.port,
            s.latency_ms);
    sigwait(&set, &sig);
    MHD_stop_daemon(d);
    char *report = sinkd_stats_json(&s);
    fputs(report, stdout);
    free(report);
    apr_terminate();
    return 0;
}

/*
 * odb-ddbload: the DynamoDB engine's own TransactWriteItems rate, for scenario 7's ratio.
 *
 * Keeps -c transactions in flight (libcurl multi, keep-alive, SigV4 signed by libcurl as orderd
 * does) for -d seconds. Each is the same two-Put transaction orderd's od_ddb_transact sends for a
 * new order (the conditional idempotency item and the order item, with the outbox attributes when
 * -e is given, as orderd adds them when events are on), with fresh keys every time.
 *
 *   odb-ddbload -u http://127.0.0.1:PORT [-t TABLE] [-c CONCURRENCY] [-d SECONDS] [-e]
 *               [-r REGION] [-l LABEL]
 *
 * Credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (any value for DynamoDB Local).
 * Prints one JSON object on stdout.
 */
#define _GNU_SOURCE

#include "hist.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DDB_MAX_CONC 256
#define DDB_BODY_BYTES 4096

typedef struct ddb_opts_t {
    const char *url;
    const char *table;
    const char *region;
    const char *label;
    int conc;
    double duration;
    int outbox;
} ddb_opts_t;

typedef struct ddb_slot_t {
    CURL *h;
    char body[DDB_BODY_BYTES];
    long long started_ns;
} ddb_slot_t;

typedef struct ddb_t {
    ddb_opts_t o;
    CURLM *multi;
    struct curl_slist *headers;
    char sigv4[128];
    char user[256];
    char pass[256];
    ddb_slot_t slots[DDB_MAX_CONC];
    long seq;
    long salt;
    long ok;
    long failed;
    hist_t lat;
} ddb_t;

static long long ddb_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long) ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long long ddb_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long) ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

/* A 26-character id in ULID's alphabet, unique per (salt, n, tag): the salt in characters 1..12,
 * n and tag in the last 13. */
static void ddb_id(char out[27], long salt, long n, int tag)
{
    static const char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    unsigned long long hi = (unsigned long long) salt, lo = (unsigned long long) n * 4 + tag;

    for (int i = 25; i >= 13; i--, lo >>= 5) {
        out[i] = alphabet[lo & 31];
    }
    for (int i = 12; i >= 1; i--, hi >>= 5) {
        out[i] = alphabet[hi & 31];
    }
    out[0] = '0';
    out[26] = '\0';
}

/* The order document orderd stores (same members and size), JSON-escaped for a DynamoDB S. */
static int ddb_order_doc(char *buf, size_t cap, const char *order_id, long n)
{
    return snprintf(buf, cap,
                    "{\\\"order_id\\\":\\\"%s\\\",\\\"status\\\":\\\"ACCEPTED\\\","
                    "\\\"customer_id\\\":\\\"CUST-%06ld\\\",\\\"currency\\\":\\\"EUR\\\","
                    "\\\"items\\\":[{\\\"sku\\\":\\\"D%ld\\\",\\\"quantity\\\":2,"
                    "\\\"unit_price_cents\\\":1999}],\\\"total_cents\\\":3998,"
                    "\\\"created_at\\\":\\\"2026-11-21T20:31:43.437Z\\\"}",
                    order_id, n % 1000000, n);
}

/* The outbox attributes orderd puts on the order item when events are on. */
static int ddb_outbox(char *buf, size_t cap, const char *event_id, const char *doc,
                      long long now_us)
{
    return snprintf(
        buf, cap,
        ",\"event_id\":{\"S\":\"%s\"},\"event\":{\"S\":\"{\\\"event_id\\\":\\\"%s"
        "\\\",\\\"event_type\\\":\\\"order.accepted\\\",\\\"occurred_at\\\":"
        "\\\"2026-11-21T20:31:43.437Z\\\",\\\"schema_version\\\":1,\\\"order\\\":%s}\"},"
        "\"outbox_shard\":{\"S\":\"P%02d\"},\"outbox_due\":{\"N\":\"%lld\"},"
        "\"outbox_attempts\":{\"N\":\"0\"}",
        event_id, event_id, doc, (int) (event_id[25] % 16), now_us + 10000000LL);
}

static void ddb_body(ddb_t *d, ddb_slot_t *s)
{
    char order_id[27], event_id[27], doc[1024], outbox[2048] = "";
    long n = d->seq++;
    long long now = ddb_wall_us();

    ddb_id(order_id, d->salt, n, 1);
    ddb_id(event_id, d->salt, n, 2);
    ddb_order_doc(doc, sizeof(doc), order_id, n);
    if (d->o.outbox) {
        ddb_outbox(outbox, sizeof(outbox), event_id, doc, now);
    }
    snprintf(s->body, sizeof(s->body),
             "{\"TransactItems\":[{\"Put\":{\"TableName\":\"%s\",\"Item\":{\"pk\":{\"S\":"
             "\"IDEM#anonymous#%016lx%016lx%016lx%016lx\"},\"order_id\":{\"S\":\"%s\"},"
             "\"body\":{\"S\":\"%s\"},\"created_at\":{\"N\":\"%lld\"},\"expires_at_us\":{\"N\":"
             "\"%lld\"},\"expires_at\":{\"N\":\"%lld\"}},\"ConditionExpression\":"
             "\"attribute_not_exists(pk) OR expires_at_us <= :now\",\"ExpressionAttributeValues\":"
             "{\":now\":{\"N\":\"%lld\"}},\"ReturnValuesOnConditionCheckFailure\":\"ALL_OLD\"}},"
             "{\"Put\":{\"TableName\":\"%s\",\"Item\":{\"pk\":{\"S\":\"ORDER#%s\"},\"caller\":"
             "{\"S\":\"anonymous\"},\"idem_key\":{\"S\":\"%016lx%016lx%016lx%016lx\"},\"body\":"
             "{\"S\":\"%s\"},\"created_at\":{\"N\":\"%lld\"}%s},\"ConditionExpression\":"
             "\"attribute_not_exists(pk)\"}}],\"ClientRequestToken\":\"%s\"}",
             d->o.table, d->salt, n, d->salt, n, order_id, doc, now, now + 15000000LL,
             (now + 15000000LL + 999999) / 1000000, now, d->o.table, order_id, d->salt, n, d->salt,
             n, doc, now, outbox, order_id);
}

static size_t ddb_discard(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    (void) ptr;
    (void) userdata;
    return size * nmemb;
}

static void ddb_start(ddb_t *d, ddb_slot_t *s)
{
    ddb_body(d, s);
    curl_easy_setopt(s->h, CURLOPT_URL, d->o.url);
    curl_easy_setopt(s->h, CURLOPT_POSTFIELDS, s->body);
    curl_easy_setopt(s->h, CURLOPT_POSTFIELDSIZE, (long) strlen(s->body));
    curl_easy_setopt(s->h, CURLOPT_HTTPHEADER, d->headers);
    curl_easy_setopt(s->h, CURLOPT_AWS_SIGV4, d->sigv4);
    curl_easy_setopt(s->h, CURLOPT_USERNAME, d->user);
    curl_easy_setopt(s->h, CURLOPT_PASSWORD, d->pass);
    curl_easy_setopt(s->h, CURLOPT_WRITEFUNCTION, ddb_discard);
    curl_easy_setopt(s->h, CURLOPT_TIMEOUT_MS, 3000L);
    curl_easy_setopt(s->h, CURLOPT_PRIVATE, s);
    s->started_ns = ddb_now();
    curl_multi_add_handle(d->multi, s->h);
}

static void ddb_finish(ddb_t *d, CURLMsg *m, int again)
{
    ddb_slot_t *s = NULL;
    long code = 0;

    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **) &s);
    curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &code);
    hist_record(&d->lat, (uint64_t) (ddb_now() - s->started_ns) / 1000);
    if (m->data.result == CURLE_OK && code == 200) {
        d->ok++;
    } else {
        d->failed++;
    }
    curl_multi_remove_handle(d->multi, s->h);
    if (again) {
        ddb_start(d, s);
    }
}

static void ddb_run(ddb_t *d)
{
    long long t0 = ddb_now(), end = t0 + (long long) (d->o.duration * 1e9);
    int running = 0, left = 0;

    for (int i = 0; i < d->o.conc; i++) {
        ddb_start(d, &d->slots[i]);
    }
    do {
        curl_multi_perform(d->multi, &running);
        CURLMsg *m;
        while ((m = curl_multi_info_read(d->multi, &left)) != NULL) {
            if (m->msg == CURLMSG_DONE) {
                ddb_finish(d, m, ddb_now() < end);
            }
        }
        curl_multi_poll(d->multi, NULL, 0, 50, NULL);
    } while (running > 0 || ddb_now() < end);
    double secs = (double) (ddb_now() - t0) / 1e9;
    printf("{\"label\":\"%s\",\"concurrency\":%d,\"outbox\":%s,\"duration_s\":%.2f,"
           "\"ok\":%ld,\"failed\":%ld,\"achieved_rps\":%.1f,\"p50_ms\":%.3f,\"p95_ms\":%.3f,"
           "\"p99_ms\":%.3f,\"max_ms\":%.3f}\n",
           d->o.label, d->o.conc, d->o.outbox ? "true" : "false", secs, d->ok, d->failed,
           (double) d->ok / secs, hist_quantile_ms(&d->lat, 0.5), hist_quantile_ms(&d->lat, 0.95),
           hist_quantile_ms(&d->lat, 0.99), (double) d->lat.max_us / 1000.0);
}

static void ddb_parse(ddb_opts_t *o, int argc, char **argv)
{
    int ch;

    *o = (ddb_opts_t){
        .table = "orderd", .region = "us-east-1", .label = "raw", .conc = 16, .duration = 10};
    while ((ch = getopt(argc, argv, "u:t:c:d:er:l:")) != -1) {
        switch (ch) {
        case 'u':
            o->url = optarg;
            break;
        case 't':
            o->table = optarg;
            break;
        case 'c':
            o->conc = atoi(optarg);
            break;
        case 'd':
            o->duration = atof(optarg);
            break;
        case 'e':
            o->outbox = 1;
            break;
        case 'r':
            o->region = optarg;
            break;
        case 'l':
            o->label = optarg;
            break;
        default:
            exit(2);
        }
    }
    /* Loopback only: this driver exists to measure a local engine. */
    if (o->url == NULL || strncmp(o->url, "http://127.0.0.1:", 17) != 0 || o->conc < 1 ||
        o->conc > DDB_MAX_CONC) {
        fprintf(stderr, "odb-ddbload: bad arguments (-u http://127.0.0.1:PORT, -c 1..%d)\n",
                DDB_MAX_CONC);
        exit(2);
    }
}

int main(int argc, char **argv)
{
    static ddb_t d;
    const char *key = getenv("AWS_ACCESS_KEY_ID"), *secret = getenv("AWS_SECRET_ACCESS_KEY");

    ddb_parse(&d.o, argc, argv);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    d.multi = curl_multi_init();
    d.salt = (long) (time(NULL) % 1000000);
    d.headers = curl_slist_append(NULL, "Content-Type: application/x-amz-json-1.0");
    d.headers = curl_slist_append(d.headers, "X-Amz-Target: DynamoDB_20120810.TransactWriteItems");
    snprintf(d.sigv4, sizeof(d.sigv4), "aws:amz:%s:dynamodb", d.o.region);
    snprintf(d.user, sizeof(d.user), "%s", key != NULL ? key : "bench");
    snprintf(d.pass, sizeof(d.pass), "%s", secret != NULL ? secret : "bench");
    for (int i = 0; i < d.o.conc; i++) {
        d.slots[i].h = curl_easy_init();
    }
    ddb_run(&d);
    for (int i = 0; i < d.o.conc; i++) {
        curl_easy_cleanup(d.slots[i].h);
    }
    curl_multi_cleanup(d.multi);
    curl_slist_free_all(d.headers);
    curl_global_cleanup();
    return d.ok > 0 ? 0 : 1;
}

/* od_aws_sinks: the SNS, SQS and EventBridge event sinks, through the shared AWS client. */
#include "od_aws_sinks.h"
#include "od_status.h"

#include <apr_strings.h>
#include <apr_tables.h>
#include <apr_xml.h>
#include <curl/curl.h>
#include <json-c/json.h>
#include <limits.h>
#include <string.h>

#define OD_AWS_SINKS_BATCH 10 /* the most entries PublishBatch/SendMessageBatch/PutEvents take */
#define OD_AWS_SINKS_ID_MAX 80
#define OD_AWS_SINKS_ID_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
#define OD_AWS_SINKS_DEFAULT_TYPE "order.accepted"
#define OD_SNS_CONTENT_TYPE "application/x-www-form-urlencoded; charset=utf-8"

typedef struct od_aws_batch_t od_aws_batch_t;

/* What differs between the three services: how a batch is written and its answer read. */
typedef struct od_aws_proto_t {
    const char *service; /* SigV4 service name */
    const char *op;      /* "sns: PublishBatch", for the log */
    const char *target;  /* X-Amz-Target, or NULL */
    const char *content_type;
    /* The request body, or NULL when it cannot be built (out of memory). */
    const char *(*body)(od_aws_batch_t *b);
    /* Records each entry's outcome from a 2xx answer; 0 when the answer is not the expected one. */
    int (*answer)(od_aws_batch_t *b, const char *body, apr_size_t len);
} od_aws_proto_t;

typedef struct od_aws_sink_s {
    const od_aws_proto_t *proto;
    od_aws_t *aws;
    const char *endpoint;
    const char *dest;        /* topic ARN, queue URL or bus (NULL: the default bus) */
    const char *source;      /* EventBridge only */
    const char *detail_type; /* EventBridge only */
    od_log_t *log;
} od_aws_sink_t;

/* One batch's outcome, gathered entry by entry and logged once. */
struct od_aws_batch_t {
    const od_aws_sink_t *sink;
    const od_event_t *events;
    int n;
    const char **ids; /* the batch entry Ids sent */
    apr_status_t *results;
    char *seen;                   /* whether the answer reported entry i */
    apr_array_header_t *failures; /* " event_id (Code: message)" */
    apr_pool_t *p;
};

/* Where the sink publishes to, for the log. */
static const char *od_aws_sinks_dest(const od_aws_sink_t *s)
{
    return s->dest != NULL ? s->dest : "the default bus";
}

/* ---- JSON helpers: documents are released by a cleanup on the batch's pool ---- */

static apr_status_t od_aws_sinks_put_json(void *obj)
{
    json_object_put(obj);
    return APR_SUCCESS;
}

static json_object *od_aws_sinks_owned(json_object *obj, apr_pool_t *p)
{
    if (obj != NULL) {
        apr_pool_cleanup_register(p, obj, od_aws_sinks_put_json, apr_pool_cleanup_null);
    }
    return obj;
}

/* Parses @p len bytes of @p text (not necessarily NUL-terminated), or NULL. */
static json_object *od_aws_sinks_parse(const char *text, apr_size_t len, apr_pool_t *p)
{
    json_tokener *tok = len <= INT_MAX ? json_tokener_new() : NULL;
    json_object *doc = tok != NULL ? json_tokener_parse_ex(tok, text, (int) len) : NULL;

    json_tokener_free(tok);
    return od_aws_sinks_owned(doc, p);
}

/* Member @p key of @p obj if it is a string, else NULL. */
static const char *od_aws_sinks_str(json_object *obj, const char *key)
{
    json_object *v = NULL;

    if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_string)) {
        return NULL;
    }
    return json_object_get_string(v);
}

static json_object *od_aws_sinks_array(json_object *obj, const char *key)
{
    json_object *v = NULL;

    if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_array)) {
        return NULL;
    }
    return v;
}

static const char *od_aws_sinks_json_body(json_object *req)
{
    return json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
}

/* The envelope's "event_type", so subscribers can filter on it; order.accepted when absent. */
static const char *od_aws_sinks_event_type(const od_event_t *e, apr_pool_t *p)
{
    const char *type = od_aws_sinks_str(od_aws_sinks_parse(e->body, e->body_len, p), "event_type");

    return type != NULL && *type != '\0' ? type : OD_AWS_SINKS_DEFAULT_TYPE;
}

/* ---- batch entry Ids and per-entry outcomes ---- */

static int od_aws_sinks_id_ok(const char *id)
{
    size_t len = id != NULL ? strlen(id) : 0;

    return len > 0 && len <= OD_AWS_SINKS_ID_MAX && strspn(id, OD_AWS_SINKS_ID_CHARS) == len;
}

/* The event ids, unless one repeats or breaks the Id rules ([A-Za-z0-9_-]{1,80}, unique per
 * batch): then the entries' positions ("e0", "e1", ...) for the whole batch. */
static const char **od_aws_sinks_ids(const od_event_t *events, int n, apr_pool_t *p)
{
    const char **ids = apr_palloc(p, sizeof(*ids) * (apr_size_t) n);
    int usable = 1;

    for (int i = 0; i < n && usable; i++) {
        usable = od_aws_sinks_id_ok(events[i].event_id);
        for (int j = 0; j < i && usable; j++) {
            usable = strcmp(events[i].event_id, events[j].event_id) != 0;
        }
    }
    for (int i = 0; i < n; i++) {
        ids[i] = usable ? events[i].event_id : apr_psprintf(p, "e%d", i);
    }
    return ids;
}

static void od_aws_batch_init(od_aws_batch_t *b, const od_aws_sink_t *s, const od_event_t *events,
                              int n, apr_status_t *results, apr_pool_t *p)
{
    b->sink = s;
    b->events = events;
    b->n = n;
    b->ids = od_aws_sinks_ids(events, n, p);
    b->results = results;
    b->seen = apr_pcalloc(p, (apr_size_t) n);
    b->failures = apr_array_make(p, n, sizeof(const char *));
    b->p = p;
    for (int i = 0; i < n; i++) {
        results[i] = OD_EUNAVAIL;
    }
}

static void od_aws_batch_note(od_aws_batch_t *b, const char *note)
{
    APR_ARRAY_PUSH(b->failures, const char *) = note;
}

/* Records entry @p i's outcome (the first one reported wins). */
static void od_aws_batch_set(od_aws_batch_t *b, int i, apr_status_t status, const char *code,
                             const char *message)
{
    if (i < 0 || i >= b->n || b->seen[i]) {
        return;
    }
    b->seen[i] = 1;
    b->results[i] = status;
    if (status != APR_SUCCESS) {
        od_aws_batch_note(b,
                          apr_psprintf(b->p, " %s (%s: %s)", b->events[i].event_id,
                                       code != NULL ? code : "?", message != NULL ? message : ""));
    }
}

/* Records the outcome of the entry with batch Id @p id. */
static void od_aws_batch_set_id(od_aws_batch_t *b, const char *id, apr_status_t status,
                                const char *code, const char *message)
{
    for (int i = 0; id != NULL && i < b->n; i++) {
        if (strcmp(b->ids[i], id) == 0) {
            od_aws_batch_set(b, i, status, code, message);
            return;
        }
    }
    od_aws_batch_note(b, apr_psprintf(b->p, " unknown entry Id %s", id != NULL ? id : "(none)"));
}

/* Entries the answer did not mention count as unavailable (the relay publishes them again);
 * logs the batch's failures once. Returns the first error, or APR_SUCCESS. */
static apr_status_t od_aws_batch_finish(od_aws_batch_t *b)
{
    apr_status_t first = APR_SUCCESS;
    int failed = 0;

    for (int i = 0; i < b->n; i++) {
        od_aws_batch_set(b, i, OD_EUNAVAIL, "NoOutcome", "not in the answer");
        if (b->results[i] != APR_SUCCESS) {
            failed++;
            first = first == APR_SUCCESS ? b->results[i] : first;
        }
    }
    if (b->failures->nelts > 0) {
        od_log_error(b->sink->log, "%s to %s: %d of %d entries failed:%s", b->sink->proto->op,
                     od_aws_sinks_dest(b->sink), failed, b->n,
                     apr_array_pstrcat(b->p, b->failures, ';'));
    }
    return first;
}

static apr_status_t od_aws_batch_fail_all(od_aws_batch_t *b, apr_status_t status)
{
    for (int i = 0; i < b->n; i++) {
        b->results[i] = status;
    }
    return status;
}

static int od_aws_sinks_code_in(const char *code, const char *const *list)
{
    for (; code != NULL && *list != NULL; list++) {
        if (strcmp(code, *list) == 0) {
            return 1;
        }
    }
    return 0;
}

static const char *const od_aws_sinks_auth_codes[] = {
    "AccessDenied",    "AccessDeniedException",           "AuthorizationError", "KMS.AccessDenied",
    "KmsAccessDenied", "NotAuthorizedForSourceException", "InvalidSecurity",    NULL};
static const char *const od_aws_sinks_transient_codes[] = {
    "InternalFailure", "InternalError", "InternalException", "ServiceUnavailable", NULL};

/* The status of a failed entry. @p sender_fault: 1 or 0 as the service said, -1 unknown. */
static apr_status_t od_aws_sinks_entry_status(const char *code, int sender_fault)
{
    /* Throttled, Throttling, ThrottlingException, RequestThrottled, KMSThrottling, ... */
    if (code != NULL && strstr(code, "Throttl") != NULL) {
        return OD_ETHROTTLED;
    }
    if (od_aws_sinks_code_in(code, od_aws_sinks_auth_codes)) {
        return OD_EAUTH;
    }
    if (od_aws_sinks_code_in(code, od_aws_sinks_transient_codes) || sender_fault == 0) {
        return OD_EUNAVAIL;
    }
    return OD_EINVAL;
}

/* ---- SNS PublishBatch (query protocol, XML answer) ---- */

/* URL-encodes @p len bytes of @p s (every byte but A-Z a-z 0-9 - . _ ~), or NULL. */
static const char *od_sns_escape(const char *s, apr_size_t len, apr_pool_t *p)
{
    if (len == 0) {
        return ""; /* curl_easy_escape would take a length of 0 as "use strlen" */
    }
    char *e = len <= INT_MAX ? curl_easy_escape(NULL, s, (int) len) : NULL;
    const char *out = e != NULL ? apr_pstrdup(p, e) : NULL;

    curl_free(e);
    return out;
}

/* The form fields of entry @p i (member i + 1), or NULL. */
static const char *od_sns_entry(od_aws_batch_t *b, int i)
{
    const od_event_t *e = &b->events[i];
    const char *message = od_sns_escape(e->body, e->body_len, b->p);
    const char *type = od_aws_sinks_event_type(e, b->p);
    const char *m = apr_psprintf(b->p, "PublishBatchRequestEntries.member.%d.", i + 1);
    const char *a = apr_pstrcat(b->p, m, "MessageAttributes.entry.1.", NULL);

    type = od_sns_escape(type, strlen(type), b->p);
    if (message == NULL || type == NULL) {
        return NULL;
    }
    return apr_pstrcat(b->p, m, "Id=", b->ids[i], "&", m, "Message=", message, "&", a,
                       "Name=event_type&", a, "Value.DataType=String&", a,
                       "Value.StringValue=", type, NULL);
}

static const char *od_sns_body(od_aws_batch_t *b)
{
    const char *topic = od_sns_escape(b->sink->dest, strlen(b->sink->dest), b->p);
    apr_array_header_t *fields = apr_array_make(b->p, b->n + 1, sizeof(const char *));

    if (topic == NULL) {
        return NULL;
    }
    APR_ARRAY_PUSH(fields, const char *) =
        apr_pstrcat(b->p, "Action=PublishBatch&Version=2010-03-31&TopicArn=", topic, NULL);
    for (int i = 0; i < b->n; i++) {
        const char *entry = od_sns_entry(b, i);
        if (entry == NULL) {
            return NULL;
        }
        APR_ARRAY_PUSH(fields, const char *) = entry;
    }
    return apr_array_pstrcat(b->p, fields, '&');
}

static apr_xml_elem *od_sns_child(apr_xml_elem *parent, const char *name)
{
    for (apr_xml_elem *e = parent != NULL ? parent->first_child : NULL; e != NULL; e = e->next) {
        if (strcmp(e->name, name) == 0) {
            return e;
        }
    }
    return NULL;
}

/* The text of child @p name of @p parent (entities decoded by the parser), or NULL. */
static const char *od_sns_text(apr_xml_elem *parent, const char *name, apr_pool_t *p)
{
    apr_xml_elem *e = od_sns_child(parent, name);
    const char *text = "";

    if (e == NULL) {
        return NULL;
    }
    for (apr_text *t = e->first_cdata.first; t != NULL; t = t->next) {
        text = apr_pstrcat(p, text, t->text, NULL);
    }
    return text;
}

static void od_sns_failed(od_aws_batch_t *b, apr_xml_elem *member)
{
    const char *code = od_sns_text(member, "Code", b->p);
    const char *fault = od_sns_text(member, "SenderFault", b->p);
    int sender_fault = fault == NULL ? -1 : strcmp(fault, "true") == 0;

    od_aws_batch_set_id(b, od_sns_text(member, "Id", b->p),
                        od_aws_sinks_entry_status(code, sender_fault), code,
                        od_sns_text(member, "Message", b->p));
}

/* <PublishBatchResponse><PublishBatchResult><Successful><member><Id>..</Id>..</member>..
 * </Successful><Failed><member><Id/><Code/><Message/><SenderFault/></member>..</Failed>.. */
static int od_sns_answer(od_aws_batch_t *b, const char *body, apr_size_t len)
{
    apr_xml_parser *parser = apr_xml_parser_create(b->p);
    apr_xml_doc *doc = NULL;

    if (apr_xml_parser_feed(parser, body, len) != APR_SUCCESS ||
        apr_xml_parser_done(parser, &doc) != APR_SUCCESS || doc == NULL) {
        return 0;
    }
    apr_xml_elem *result = od_sns_child(doc->root, "PublishBatchResult");
    if (result == NULL) {
        return 0;
    }
    apr_xml_elem *ok = od_sns_child(result, "Successful");
    for (apr_xml_elem *m = ok != NULL ? ok->first_child : NULL; m != NULL; m = m->next) {
        od_aws_batch_set_id(b, od_sns_text(m, "Id", b->p), APR_SUCCESS, NULL, NULL);
    }
    apr_xml_elem *failed = od_sns_child(result, "Failed");
    for (apr_xml_elem *m = failed != NULL ? failed->first_child : NULL; m != NULL; m = m->next) {
        od_sns_failed(b, m);
    }
    return 1;
}

/* ---- SQS SendMessageBatch (JSON 1.0) ---- */

static json_object *od_sqs_entry(od_aws_batch_t *b, int i)
{
    const od_event_t *e = &b->events[i];
    json_object *entry = json_object_new_object(), *attrs = json_object_new_object();
    json_object *type = json_object_new_object();

    json_object_object_add(type, "DataType", json_object_new_string("String"));
    json_object_object_add(type, "StringValue",
                           json_object_new_string(od_aws_sinks_event_type(e, b->p)));
    json_object_object_add(attrs, "event_type", type);
    json_object_object_add(entry, "Id", json_object_new_string(b->ids[i]));
    json_object_object_add(entry, "MessageBody",
                           json_object_new_string_len(e->body, (int) e->body_len));
    json_object_object_add(entry, "MessageAttributes", attrs);
    return entry;
}

static const char *od_sqs_body(od_aws_batch_t *b)
{
    json_object *req = od_aws_sinks_owned(json_object_new_object(), b->p);
    json_object *entries = json_object_new_array();

    for (int i = 0; i < b->n; i++) {
        json_object_array_add(entries, od_sqs_entry(b, i));
    }
    json_object_object_add(req, "QueueUrl", json_object_new_string(b->sink->dest));
    json_object_object_add(req, "Entries", entries);
    return od_aws_sinks_json_body(req);
}

static void od_sqs_failed(od_aws_batch_t *b, json_object *entry)
{
    const char *code = od_aws_sinks_str(entry, "Code");
    json_object *fault = NULL;
    int sender_fault = json_object_object_get_ex(entry, "SenderFault", &fault)
                           ? json_object_get_boolean(fault)
                           : -1;

    od_aws_batch_set_id(b, od_aws_sinks_str(entry, "Id"),
                        od_aws_sinks_entry_status(code, sender_fault), code,
                        od_aws_sinks_str(entry, "Message"));
}

/* {"Successful":[{"Id":..,"MessageId":..}],"Failed":[{"Id","Code","Message","SenderFault"}]} */
static int od_sqs_answer(od_aws_batch_t *b, const char *body, apr_size_t len)
{
    json_object *doc = od_aws_sinks_parse(body, len, b->p);
    json_object *ok = od_aws_sinks_array(doc, "Successful");
    json_object *failed = od_aws_sinks_array(doc, "Failed");

    if (ok == NULL && failed == NULL) {
        return 0;
    }
    for (size_t i = 0; ok != NULL && i < json_object_array_length(ok); i++) {
        od_aws_batch_set_id(b, od_aws_sinks_str(json_object_array_get_idx(ok, i), "Id"),
                            APR_SUCCESS, NULL, NULL);
    }
    for (size_t i = 0; failed != NULL && i < json_object_array_length(failed); i++) {
        od_sqs_failed(b, json_object_array_get_idx(failed, i));
    }
    return 1;
}

/* ---- EventBridge PutEvents (JSON 1.1) ---- */

static const char *od_eb_body(od_aws_batch_t *b)
{
    const od_aws_sink_t *s = b->sink;
    json_object *req = od_aws_sinks_owned(json_object_new_object(), b->p);
    json_object *entries = json_object_new_array();

    for (int i = 0; i < b->n; i++) {
        json_object *entry = json_object_new_object();
        json_object_object_add(entry, "Source", json_object_new_string(s->source));
        json_object_object_add(entry, "DetailType", json_object_new_string(s->detail_type));
        json_object_object_add(
            entry, "Detail",
            json_object_new_string_len(b->events[i].body, (int) b->events[i].body_len));
        if (s->dest != NULL) {
            json_object_object_add(entry, "EventBusName", json_object_new_string(s->dest));
        }
        json_object_array_add(entries, entry);
    }
    json_object_object_add(req, "Entries", entries);
    return od_aws_sinks_json_body(req);
}

/* {"FailedEntryCount":n,"Entries":[{"EventId":..} | {"ErrorCode":..,"ErrorMessage":..}]},
 * in the order sent. */
static int od_eb_answer(od_aws_batch_t *b, const char *body, apr_size_t len)
{
    json_object *entries = od_aws_sinks_array(od_aws_sinks_parse(body, len, b->p), "Entries");

    if (entries == NULL) {
        return 0;
    }
    for (size_t i = 0; i < json_object_array_length(entries) && i < (size_t) b->n; i++) {
        json_object *entry = json_object_array_get_idx(entries, i);
        const char *code = od_aws_sinks_str(entry, "ErrorCode");
        if (code == NULL && od_aws_sinks_str(entry, "EventId") != NULL) {
            od_aws_batch_set(b, (int) i, APR_SUCCESS, NULL, NULL);
        } else {
            od_aws_batch_set(b, (int) i, od_aws_sinks_entry_status(code, -1), code,
                             od_aws_sinks_str(entry, "ErrorMessage"));
        }
    }
    return 1;
}

/* ---- publishing ---- */

/* Sends the batch and records each entry's outcome. A failed call (logged by od_aws_call) fails
 * every entry with its status. */
static apr_status_t od_aws_sinks_send(od_aws_batch_t *b)
{
    const od_aws_sink_t *s = b->sink;
    const od_aws_proto_t *proto = s->proto;
    const char *body = proto->body(b);
    od_aws_request_t req = {.service = proto->service,
                            .endpoint = s->endpoint,
                            .target = proto->target,
                            .content_type = proto->content_type,
                            .body = body,
                            .body_len = body != NULL ? strlen(body) : 0};
    od_aws_response_t resp;
    apr_status_t rv;

    if (body == NULL) {
        od_log_error(s->log, "%s to %s: could not build the request", proto->op,
                     od_aws_sinks_dest(s));
        return od_aws_batch_fail_all(b, APR_ENOMEM);
    }
    if ((rv = od_aws_call(s->aws, &req, &resp, b->p)) != APR_SUCCESS) {
        return od_aws_batch_fail_all(b, rv);
    }
    if (!proto->answer(b, resp.body, resp.body_len)) {
        od_log_error(s->log, "%s to %s: unexpected answer (HTTP %ld): %.200s", proto->op,
                     od_aws_sinks_dest(s), resp.http_status, resp.body);
        return od_aws_batch_fail_all(b, OD_EUNAVAIL);
    }
    return od_aws_batch_finish(b);
}

/* One batch of at most OD_AWS_SINKS_BATCH events, in a pool of its own so a long-lived caller's
 * pool does not grow with every batch. od_sink may run several at once (each given a pool of its
 * own): everything shared here (the sink's settings, the client, the log) is read-only or
 * thread-safe. */
static apr_status_t od_aws_sinks_publish(void *impl, const od_event_t *events, int n,
                                         apr_status_t *results, apr_pool_t *pool)
{
    apr_pool_t *p = NULL;
    od_aws_batch_t b;

    if (n <= 0) {
        return APR_SUCCESS;
    }
    apr_status_t rv = apr_pool_create(&p, pool);
    if (rv != APR_SUCCESS) {
        for (int i = 0; i < n; i++) {
            results[i] = rv;
        }
        return rv;
    }
    od_aws_batch_init(&b, impl, events, n, results, p);
    rv = od_aws_sinks_send(&b);
    apr_pool_destroy(p);
    return rv;
}

static const od_aws_proto_t od_sns_proto = {.service = "sns",
                                            .op = "sns: PublishBatch",
                                            .target = NULL,
                                            .content_type = OD_SNS_CONTENT_TYPE,
                                            .body = od_sns_body,
                                            .answer = od_sns_answer};
static const od_aws_proto_t od_sqs_proto = {.service = "sqs",
                                            .op = "sqs: SendMessageBatch",
                                            .target = "AmazonSQS.SendMessageBatch",
                                            .content_type = "application/x-amz-json-1.0",
                                            .body = od_sqs_body,
                                            .answer = od_sqs_answer};
static const od_aws_proto_t od_eb_proto = {.service = "events",
                                           .op = "eventbridge: PutEvents",
                                           .target = "AWSEvents.PutEvents",
                                           .content_type = "application/x-amz-json-1.1",
                                           .body = od_eb_body,
                                           .answer = od_eb_answer};

static const od_sink_ops_t od_sns_ops = {"sns", OD_AWS_SINKS_BATCH, od_aws_sinks_publish};
static const od_sink_ops_t od_sqs_ops = {"sqs", OD_AWS_SINKS_BATCH, od_aws_sinks_publish};
static const od_sink_ops_t od_eb_ops = {"eventbridge", OD_AWS_SINKS_BATCH, od_aws_sinks_publish};

/* ---- constructors ---- */

/* A required setting: logs and returns 0 when @p value is missing. */
static int od_aws_sinks_required(od_log_t *log, const char *sink, const char *what,
                                 const char *value)
{
    if (value != NULL && *value != '\0') {
        return 1;
    }
    od_log_error(log, "%s sink: no %s given", sink, what);
    return 0;
}

static apr_status_t od_aws_sinks_make(od_sink_t **out, const od_sink_ops_t *ops,
                                      const od_aws_sink_t *tmpl, int max_in_flight, apr_pool_t *p)
{
    od_aws_sink_t *s = apr_palloc(p, sizeof(*s));

    *s = *tmpl;
    s->endpoint = apr_pstrdup(p, tmpl->endpoint);
    s->dest = apr_pstrdup(p, tmpl->dest);
    s->source = apr_pstrdup(p, tmpl->source);
    s->detail_type = apr_pstrdup(p, tmpl->detail_type);
    return od_sink_create(out, ops, s, max_in_flight, tmpl->log, p);
}

apr_status_t od_sns_sink_create(od_sink_t **out, od_aws_t *aws, const char *endpoint,
                                const char *topic_arn, int max_in_flight, od_log_t *log,
                                apr_pool_t *p)
{
    od_aws_sink_t tmpl = {
        .proto = &od_sns_proto, .aws = aws, .endpoint = endpoint, .dest = topic_arn, .log = log};

    *out = NULL;
    if (!od_aws_sinks_required(log, "sns", "endpoint", endpoint) ||
        !od_aws_sinks_required(log, "sns", "topic ARN", topic_arn)) {
        return OD_ECONFIG;
    }
    return od_aws_sinks_make(out, &od_sns_ops, &tmpl, max_in_flight, p);
}

apr_status_t od_sqs_sink_create(od_sink_t **out, od_aws_t *aws, const char *endpoint,
                                const char *queue_url, int max_in_flight, od_log_t *log,
                                apr_pool_t *p)
{
    od_aws_sink_t tmpl = {
        .proto = &od_sqs_proto, .aws = aws, .endpoint = endpoint, .dest = queue_url, .log = log};

    *out = NULL;
    if (!od_aws_sinks_required(log, "sqs", "endpoint", endpoint) ||
        !od_aws_sinks_required(log, "sqs", "queue URL", queue_url)) {
        return OD_ECONFIG;
    }
    return od_aws_sinks_make(out, &od_sqs_ops, &tmpl, max_in_flight, p);
}

apr_status_t od_eventbridge_sink_create(od_sink_t **out, od_aws_t *aws, const char *endpoint,
                                        const char *bus, const char *source,
                                        const char *detail_type, int max_in_flight, od_log_t *log,
                                        apr_pool_t *p)
{
    /* An empty bus means the account's default bus: EventBusName is then left out. */
    od_aws_sink_t tmpl = {.proto = &od_eb_proto,
                          .aws = aws,
                          .endpoint = endpoint,
                          .dest = bus != NULL && *bus != '\0' ? bus : NULL,
                          .source = source,
                          .detail_type = detail_type,
                          .log = log};

    *out = NULL;
    if (!od_aws_sinks_required(log, "eventbridge", "endpoint", endpoint) ||
        !od_aws_sinks_required(log, "eventbridge", "source", source) ||
        !od_aws_sinks_required(log, "eventbridge", "detail type", detail_type)) {
        return OD_ECONFIG;
    }
    return od_aws_sinks_make(out, &od_eb_ops, &tmpl, max_in_flight, p);
}

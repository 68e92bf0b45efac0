/* od_dynamodb: the store on DynamoDB, through the shared AWS client; the put is in
 * od_dynamodb_put.c. */
#include "od_dynamodb_int.h"
#include "od_status.h"

#include <apr_strings.h>
#include <stdlib.h>
#include <string.h>

#define OD_DDB_CONTENT_TYPE "application/x-amz-json-1.0"
#define OD_DDB_TARGET "DynamoDB_20120810."
#define OD_DDB_INIT_WAIT apr_time_from_sec(60)

/* ---- JSON helpers: documents are released by a cleanup on the call's pool ---- */

static apr_status_t od_ddb_put_json(void *obj)
{
    json_object_put(obj);
    return APR_SUCCESS;
}

json_object *od_ddb_owned(json_object *obj, apr_pool_t *p)
{
    if (obj != NULL) {
        apr_pool_cleanup_register(p, obj, od_ddb_put_json, apr_pool_cleanup_null);
    }
    return obj;
}

static json_object *od_ddb_attr(const char *type, const char *value)
{
    json_object *a = json_object_new_object();
    json_object_object_add(a, type, json_object_new_string(value));
    return a;
}

json_object *od_ddb_s(const char *value)
{
    return od_ddb_attr("S", value);
}

json_object *od_ddb_n(apr_int64_t value)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%" APR_INT64_T_FMT, value);
    return od_ddb_attr("N", buf);
}

const char *od_ddb_get(json_object *item, const char *name, const char *type)
{
    json_object *a = NULL, *v = NULL;

    if (item == NULL || !json_object_object_get_ex(item, name, &a) ||
        !json_object_object_get_ex(a, type, &v) || !json_object_is_type(v, json_type_string)) {
        return NULL;
    }
    return json_object_get_string(v);
}

apr_status_t od_ddb_call_ex(od_ddb_t *d, const char *op, json_object *req, const char *expected,
                            json_object **doc, int *maybe_applied, apr_pool_t *p)
{
    size_t len = 0;
    const char *body = json_object_to_json_string_length(req, JSON_C_TO_STRING_PLAIN, &len);
    od_aws_request_t r = {
        "dynamodb", d->endpoint, apr_pstrcat(p, OD_DDB_TARGET, op, NULL), OD_DDB_CONTENT_TYPE, body,
        len,        expected};
    od_aws_response_t resp;
    apr_status_t rv = od_aws_call(d->aws, &r, &resp, p);

    *doc = NULL;
    if (maybe_applied != NULL) {
        *maybe_applied |= resp.maybe_applied;
    }
    if (expected != NULL && resp.error_code != NULL && strcmp(resp.error_code, expected) == 0) {
        return OD_ENOTFOUND;
    }
    if (rv == APR_SUCCESS || rv == OD_ECONFLICT) {
        *doc = od_ddb_owned(json_tokener_parse(resp.body), p);
        if (*doc == NULL) {
            od_log_error(d->log, "dynamodb: %s: answer is not JSON", op);
            if (maybe_applied != NULL && rv == APR_SUCCESS) {
                *maybe_applied = 1; /* a 2xx: the write was applied */
            }
            return OD_EUNAVAIL;
        }
    }
    return rv;
}

apr_status_t od_ddb_call(od_ddb_t *d, const char *op, json_object *req, json_object **doc,
                         apr_pool_t *p)
{
    return od_ddb_call_ex(d, op, req, NULL, doc, NULL, p);
}

/* ---- get ---- */

void od_ddb_fill(od_store_result_t *res, od_store_outcome_e outcome, const char *order_id,
                 const char *body, const char *created_at, apr_pool_t *p)
{
    res->outcome = outcome;
    res->order_id = apr_pstrdup(p, order_id);
    res->body_len = strlen(body);
    res->body = apr_pstrmemdup(p, body, res->body_len);
    res->created_at = created_at != NULL ? apr_atoi64(created_at) : 0;
    res->event_seq = 0; /* events are found and marked by event_id here */
}

static apr_status_t od_ddb_get_order(void *impl, const char *caller, const char *order_id,
                                     od_store_result_t *res, apr_pool_t *p)
{
    od_ddb_t *d = impl;
    json_object *req = od_ddb_owned(json_object_new_object(), p), *key = json_object_new_object();
    json_object *doc = NULL, *item = NULL;

    json_object_object_add(key, "pk", od_ddb_s(apr_pstrcat(p, "ORDER#", order_id, NULL)));
    json_object_object_add(req, "TableName", json_object_new_string(d->table));
    json_object_object_add(req, "Key", key);
    json_object_object_add(req, "ConsistentRead", json_object_new_boolean(1));
    apr_status_t rv = od_ddb_call(d, "GetItem", req, &doc, p);
    if (rv != APR_SUCCESS) {
        return rv == OD_EINVAL || rv == OD_ECONFLICT ? OD_EUNAVAIL : rv;
    }
    const char *owner = NULL, *body = NULL;
    if (!json_object_object_get_ex(doc, "Item", &item) ||
        (owner = od_ddb_get(item, "caller", "S")) == NULL || strcmp(owner, caller) != 0 ||
        (body = od_ddb_get(item, "body", "S")) == NULL) {
        return OD_ENOTFOUND;
    }
    od_ddb_fill(res, OD_STORE_CREATED, order_id, body, od_ddb_get(item, "created_at", "N"), p);
    return APR_SUCCESS;
}

/* ---- the outbox ---- */

json_object *od_ddb_order_key(const char *order_id, apr_pool_t *p)
{
    json_object *key = json_object_new_object();
    json_object_object_add(key, "pk", od_ddb_s(apr_pstrcat(p, "ORDER#", order_id, NULL)));
    return key;
}

static void od_ddb_event_item(json_object *item, apr_array_header_t *events, apr_pool_t *p)
{
    const char *id = od_ddb_get(item, "event_id", "S"), *ev = od_ddb_get(item, "event", "S");
    const char *pk = od_ddb_get(item, "pk", "S"), *att = od_ddb_get(item, "outbox_attempts", "N");
    const char *created = od_ddb_get(item, "created_at", "N");
    const char *due = od_ddb_get(item, "outbox_due", "N");

    if (id == NULL || ev == NULL || pk == NULL || strncmp(pk, "ORDER#", 6) != 0) {
        return;
    }
    od_store_event_t *e = apr_array_push(events);
    e->event_id = apr_pstrdup(p, id);
    e->order_id = apr_pstrdup(p, pk + 6);
    e->event_len = strlen(ev);
    e->event = apr_pstrmemdup(p, ev, e->event_len);
    e->created_at = created != NULL ? apr_atoi64(created) : 0;
    e->attempts = att != NULL ? atoi(att) : 0;
    e->due = due != NULL ? apr_atoi64(due) : 0;
    e->seq = 0;
}

static apr_status_t od_ddb_pending_shard(od_ddb_t *d, int shard, apr_time_t due_before, int max,
                                         apr_array_header_t *events, apr_pool_t *p)
{
    json_object *req = od_ddb_owned(json_object_new_object(), p), *doc = NULL, *items = NULL;
    json_object *values = json_object_new_object();

    json_object_object_add(values, ":s", od_ddb_s(apr_psprintf(p, "P%02d", shard)));
    json_object_object_add(values, ":d", od_ddb_n(due_before));
    json_object_object_add(req, "TableName", json_object_new_string(d->table));
    json_object_object_add(req, "IndexName", json_object_new_string(OD_DDB_OUTBOX_INDEX));
    json_object_object_add(req, "KeyConditionExpression",
                           json_object_new_string("outbox_shard = :s AND outbox_due <= :d"));
    json_object_object_add(req, "ExpressionAttributeValues", values);
    json_object_object_add(req, "Limit", json_object_new_int(max));
    apr_status_t rv = od_ddb_call(d, "Query", req, &doc, p);
    if (rv != APR_SUCCESS) {
        return rv == OD_EINVAL ? OD_EUNAVAIL : rv;
    }
    if (json_object_object_get_ex(doc, "Items", &items)) {
        for (size_t i = 0; i < json_object_array_length(items); i++) {
            od_ddb_event_item(json_object_array_get_idx(items, i), events, p);
        }
    }
    return APR_SUCCESS;
}

static apr_status_t od_ddb_pending(void *impl, apr_time_t due_before, int max,
                                   apr_array_header_t **events, apr_pool_t *p)
{
    apr_status_t rv = APR_SUCCESS;

    *events = apr_array_make(p, max > 0 ? max : 1, sizeof(od_store_event_t));
    for (int shard = 0; shard < OD_DDB_OUTBOX_SHARDS && rv == APR_SUCCESS; shard++) {
        int room = max - (*events)->nelts;
        if (room <= 0) {
            break;
        }
        rv = od_ddb_pending_shard(impl, shard, due_before, room, *events, p);
    }
    return rv;
}

/* One UpdateItem on a pending event; a missing item or an event already published (by another
 * instance) is success: the outcome wanted is "not pending". */
static apr_status_t od_ddb_outbox_update(od_ddb_t *d, const od_store_event_t *e, const char *update,
                                         json_object *values, apr_pool_t *p)
{
    json_object *req = od_ddb_owned(json_object_new_object(), p), *doc = NULL;

    json_object_object_add(values, ":e", od_ddb_s(e->event_id));
    json_object_object_add(req, "TableName", json_object_new_string(d->table));
    json_object_object_add(req, "Key", od_ddb_order_key(e->order_id, p));
    json_object_object_add(req, "UpdateExpression", json_object_new_string(update));
    json_object_object_add(req, "ConditionExpression",
                           json_object_new_string("attribute_exists(outbox_shard) AND "
                                                  "event_id = :e"));
    json_object_object_add(req, "ExpressionAttributeValues", values);
    apr_status_t rv = od_ddb_call(d, "UpdateItem", req, &doc, p);
    return rv == OD_ECONFLICT ? APR_SUCCESS : rv;
}

/* The marks of one od_ddb_published: event i's outcome goes to results[i]. */
typedef struct od_ddb_marks_t {
    od_ddb_t *d;
    const od_store_event_t *events;
    apr_status_t *results;
} od_ddb_marks_t;

/* Marks event i published, in a pool of its own: the marks may run at once on a fanout's threads,
 * and a pool is not thread-safe (a root pool's creation is). */
static void od_ddb_mark(void *baton, int i)
{
    od_ddb_marks_t *m = baton;
    apr_pool_t *p = NULL;
    apr_status_t rv = apr_pool_create(&p, NULL);

    if (rv == APR_SUCCESS) {
        json_object *values = json_object_new_object();
        json_object_object_add(values, ":t", od_ddb_n(apr_time_now()));
        rv = od_ddb_outbox_update(m->d, &m->events[i],
                                  "REMOVE outbox_shard, outbox_due SET published_at = :t", values,
                                  p);
        apr_pool_destroy(p);
    }
    m->results[i] = rv;
}

static apr_status_t od_ddb_published(void *impl, const od_store_event_t *events, int n,
                                     apr_pool_t *p)
{
    od_ddb_t *d = impl;
    od_ddb_marks_t m = {d, events,
                        apr_pcalloc(p, sizeof(apr_status_t) * (apr_size_t) (n > 0 ? n : 1))};
    apr_status_t first = APR_SUCCESS;

    if (d->marks != NULL) {
        od_fanout_run(d->marks, n, od_ddb_mark, &m);
    } else {
        for (int i = 0; i < n; i++) {
            od_ddb_mark(&m, i);
        }
    }
    for (int i = 0; i < n && first == APR_SUCCESS; i++) {
        first = m.results[i];
    }
    return first;
}

static apr_status_t od_ddb_reschedule(void *impl, const od_store_event_t *e, apr_time_t due,
                                      apr_pool_t *p)
{
    json_object *values = json_object_new_object();

    json_object_object_add(values, ":d", od_ddb_n(due));
    json_object_object_add(values, ":one", od_ddb_n(1));
    return od_ddb_outbox_update(impl, e, "SET outbox_due = :d ADD outbox_attempts :one", values, p);
}

static const od_store_ops_t od_ddb_ops = {.name = "dynamodb",
                                          .put = od_ddb_put,
                                          .get = od_ddb_get_order,
                                          .pending = od_ddb_pending,
                                          .published = od_ddb_published,
                                          .reschedule = od_ddb_reschedule,
                                          .put_async = NULL,
                                          .claim = od_ddb_claim,
                                          .backlog = od_ddb_backlog};

apr_status_t od_dynamodb_create(od_store_t **out, od_aws_t *aws, const char *endpoint,
                                const char *table, int max_in_flight, od_log_t *log, apr_pool_t *p)
{
    od_ddb_t *d = apr_pcalloc(p, sizeof(*d));

    *out = NULL;
    d->aws = aws;
    d->endpoint = apr_pstrdup(p, endpoint);
    d->table = apr_pstrdup(p, table);
    d->log = log;
    if (max_in_flight > 1) {
        apr_status_t rv = od_fanout_create(&d->marks, max_in_flight, log, p);
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }
    d->owner = od_ddb_owner_name(p);
    return od_store_create(out, &od_ddb_ops, d, p);
}

/* ---- table set-up ---- */

static json_object *od_ddb_table_req(const char *table, apr_pool_t *p)
{
    json_object *req = od_ddb_owned(json_object_new_object(), p);
    json_object_object_add(req, "TableName", json_object_new_string(table));
    return req;
}

static json_object *od_ddb_attr_def(const char *name, const char *type)
{
    json_object *def = json_object_new_object();
    json_object_object_add(def, "AttributeName", json_object_new_string(name));
    json_object_object_add(def, "AttributeType", json_object_new_string(type));
    return def;
}

static json_object *od_ddb_key_elem(const char *name, const char *type)
{
    json_object *key = json_object_new_object();
    json_object_object_add(key, "AttributeName", json_object_new_string(name));
    json_object_object_add(key, "KeyType", json_object_new_string(type));
    return key;
}

static json_object *od_ddb_attr_defs(int with_pk)
{
    json_object *defs = json_object_new_array();

    if (with_pk) {
        json_object_array_add(defs, od_ddb_attr_def("pk", "S"));
    }
    json_object_array_add(defs, od_ddb_attr_def("outbox_shard", "S"));
    json_object_array_add(defs, od_ddb_attr_def("outbox_due", "N"));
    return defs;
}

/* The sparse outbox index: only items with outbox_shard (pending events) are in it. */
static json_object *od_ddb_outbox_index(void)
{
    json_object *gsi = json_object_new_object(), *keys = json_object_new_array();
    json_object *proj = json_object_new_object();

    json_object_array_add(keys, od_ddb_key_elem("outbox_shard", "HASH"));
    json_object_array_add(keys, od_ddb_key_elem("outbox_due", "RANGE"));
    json_object_object_add(proj, "ProjectionType", json_object_new_string("ALL"));
    json_object_object_add(gsi, "IndexName", json_object_new_string(OD_DDB_OUTBOX_INDEX));
    json_object_object_add(gsi, "KeySchema", keys);
    json_object_object_add(gsi, "Projection", proj);
    return gsi;
}

static apr_status_t od_ddb_create_table(od_ddb_t *d, apr_pool_t *p)
{
    json_object *req = od_ddb_table_req(d->table, p), *doc = NULL;
    json_object *keys = json_object_new_array(), *gsis = json_object_new_array();

    json_object_array_add(keys, od_ddb_key_elem("pk", "HASH"));
    json_object_array_add(gsis, od_ddb_outbox_index());
    json_object_object_add(req, "AttributeDefinitions", od_ddb_attr_defs(1));
    json_object_object_add(req, "KeySchema", keys);
    json_object_object_add(req, "GlobalSecondaryIndexes", gsis);
    json_object_object_add(req, "BillingMode", json_object_new_string("PAY_PER_REQUEST"));
    /* Another instance may create it at the same moment: that is success too. */
    apr_status_t rv =
        od_ddb_call_ex(d, "CreateTable", req, "ResourceInUseException", &doc, NULL, p);
    return rv == OD_ENOTFOUND ? APR_SUCCESS : rv;
}

/* A table created before the outbox existed gets its index added. */
static apr_status_t od_ddb_add_outbox_index(od_ddb_t *d, apr_pool_t *p)
{
    json_object *req = od_ddb_table_req(d->table, p), *doc = NULL;
    json_object *updates = json_object_new_array(), *create = json_object_new_object();

    json_object_object_add(create, "Create", od_ddb_outbox_index());
    json_object_array_add(updates, create);
    json_object_object_add(req, "AttributeDefinitions", od_ddb_attr_defs(0));
    json_object_object_add(req, "GlobalSecondaryIndexUpdates", updates);
    od_log_info(d->log, "dynamodb: adding index %s to table %s", OD_DDB_OUTBOX_INDEX, d->table);
    return od_ddb_call(d, "UpdateTable", req, &doc, p);
}

/* Whether a DescribeTable answer's table has the outbox index, and that index is ACTIVE. */
static void od_ddb_index_state(json_object *table, int *has_index, int *index_active)
{
    json_object *gsis = NULL, *name = NULL, *st = NULL;

    *has_index = *index_active = 0;
    if (!json_object_object_get_ex(table, "GlobalSecondaryIndexes", &gsis)) {
        return;
    }
    for (size_t i = 0; i < json_object_array_length(gsis); i++) {
        json_object *g = json_object_array_get_idx(gsis, i);
        if (json_object_object_get_ex(g, "IndexName", &name) &&
            strcmp(json_object_get_string(name), OD_DDB_OUTBOX_INDEX) == 0) {
            *has_index = 1;
            *index_active = !json_object_object_get_ex(g, "IndexStatus", &st) ||
                            strcmp(json_object_get_string(st), "ACTIVE") == 0;
        }
    }
}

/* The table's status ("ACTIVE", "CREATING", ...; NULL if it does not exist) and its index's. */
static apr_status_t od_ddb_table_status_ex(od_ddb_t *d, const char **status, int *has_index,
                                           int *index_active, apr_pool_t *p)
{
    json_object *doc = NULL, *t = NULL, *s = NULL;
    apr_status_t rv = od_ddb_call_ex(d, "DescribeTable", od_ddb_table_req(d->table, p),
                                     "ResourceNotFoundException", &doc, NULL, p);

    *status = NULL;
    *has_index = *index_active = 0;
    if (rv == APR_SUCCESS && json_object_object_get_ex(doc, "Table", &t) &&
        json_object_object_get_ex(t, "TableStatus", &s)) {
        *status = apr_pstrdup(p, json_object_get_string(s));
        od_ddb_index_state(t, has_index, index_active);
    }
    return rv;
}

static apr_status_t od_ddb_table_status(od_ddb_t *d, const char **status, apr_pool_t *p)
{
    int has_index = 0, index_active = 0;
    apr_status_t rv = od_ddb_table_status_ex(d, status, &has_index, &index_active, p);

    /* Ready means: the table and its outbox index are both active. */
    if (rv == APR_SUCCESS && *status != NULL && strcmp(*status, "ACTIVE") == 0 && !index_active) {
        *status = has_index ? "INDEX_CREATING" : "NO_INDEX";
    }
    return rv;
}

static apr_status_t od_ddb_wait_active(od_ddb_t *d, apr_pool_t *p)
{
    apr_time_t deadline = apr_time_now() + OD_DDB_INIT_WAIT;
    const char *status = NULL;

    while (apr_time_now() < deadline) {
        apr_status_t rv = od_ddb_table_status(d, &status, p);
        if (rv != APR_SUCCESS && rv != OD_ENOTFOUND) { /* not yet visible after CreateTable */
            return rv;
        }
        if (status != NULL && strcmp(status, "ACTIVE") == 0) {
            return APR_SUCCESS;
        }
        apr_sleep(apr_time_from_msec(250));
    }
    od_log_error(d->log, "dynamodb: table %s is not ACTIVE after 60 s (status %s)", d->table,
                 status != NULL ? status : "unknown");
    return OD_EUNAVAIL;
}

static apr_status_t od_ddb_enable_ttl(od_ddb_t *d, apr_pool_t *p)
{
    json_object *doc = NULL, *desc = NULL, *st = NULL;
    apr_status_t rv = od_ddb_call(d, "DescribeTimeToLive", od_ddb_table_req(d->table, p), &doc, p);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (json_object_object_get_ex(doc, "TimeToLiveDescription", &desc) &&
        json_object_object_get_ex(desc, "TimeToLiveStatus", &st) &&
        (strcmp(json_object_get_string(st), "ENABLED") == 0 ||
         strcmp(json_object_get_string(st), "ENABLING") == 0)) {
        return APR_SUCCESS;
    }
    json_object *req = od_ddb_table_req(d->table, p), *spec = json_object_new_object();
    json_object_object_add(spec, "AttributeName", json_object_new_string("expires_at"));
    json_object_object_add(spec, "Enabled", json_object_new_boolean(1));
    json_object_object_add(req, "TimeToLiveSpecification", spec);
    return od_ddb_call(d, "UpdateTimeToLive", req, &doc, p);
}

apr_status_t od_dynamodb_init(od_aws_t *aws, const char *endpoint, const char *table, od_log_t *log,
                              apr_pool_t *p)
{
    od_ddb_t d = {.aws = aws, .endpoint = endpoint, .table = table, .log = log};
    const char *status = NULL;
    apr_status_t rv = od_ddb_table_status(&d, &status, p);

    if (rv == OD_ENOTFOUND) {
        od_log_info(log, "dynamodb: creating table %s", table);
        rv = od_ddb_create_table(&d, p);
    } else if (rv == APR_SUCCESS && status != NULL && strcmp(status, "NO_INDEX") == 0) {
        rv = od_ddb_add_outbox_index(&d, p);
    }
    if (rv == APR_SUCCESS) {
        rv = od_ddb_wait_active(&d, p);
    }
    if (rv == APR_SUCCESS) {
        rv = od_ddb_enable_ttl(&d, p);
    }
    if (rv == APR_SUCCESS) {
        od_log_info(log, "dynamodb: table %s is ready (TTL on expires_at, index %s)", table,
                    OD_DDB_OUTBOX_INDEX);
    }
    return rv;
}

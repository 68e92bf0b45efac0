/* od_dynamodb_put: the DynamoDB store's put, one TransactWriteItems (see od_dynamodb.h). */
#include "od_dynamodb_int.h"
#include "od_status.h"

#include <apr_strings.h>
#include <string.h>

#define OD_DDB_CONFLICT_RETRIES 5
#define OD_DDB_CONFLICT_DELAY apr_time_from_msec(5)

static json_object *od_ddb_idem_put(od_ddb_t *d, const od_store_order_t *o, apr_pool_t *p)
{
    json_object *item = json_object_new_object(), *put = json_object_new_object();
    json_object *values = json_object_new_object();
    /* DynamoDB's TTL attribute is in whole seconds: round up so it never deletes early. */
    apr_int64_t expires_s = (o->expires_at + APR_USEC_PER_SEC - 1) / APR_USEC_PER_SEC;

    json_object_object_add(item, "pk",
                           od_ddb_s(apr_pstrcat(p, "IDEM#", o->caller, "#", o->idem_key, NULL)));
    json_object_object_add(item, "order_id", od_ddb_s(o->order_id));
    json_object_object_add(item, "body", od_ddb_s(o->body));
    json_object_object_add(item, "created_at", od_ddb_n(o->created_at));
    json_object_object_add(item, "expires_at_us", od_ddb_n(o->expires_at));
    json_object_object_add(item, "expires_at", od_ddb_n(expires_s));
    json_object_object_add(values, ":now", od_ddb_n(o->created_at));
    json_object_object_add(put, "TableName", json_object_new_string(d->table));
    json_object_object_add(put, "Item", item);
    json_object_object_add(put, "ConditionExpression",
                           json_object_new_string("attribute_not_exists(pk) OR "
                                                  "expires_at_us <= :now"));
    json_object_object_add(put, "ExpressionAttributeValues", values);
    json_object_object_add(put, "ReturnValuesOnConditionCheckFailure",
                           json_object_new_string("ALL_OLD"));
    return put;
}

/* The shard of an event: from the last character of its (random) ULID tail. */
static const char *od_ddb_shard(const char *event_id, apr_pool_t *p)
{
    unsigned char c = (unsigned char) event_id[strlen(event_id) - 1];
    return apr_psprintf(p, "P%02u", (unsigned int) c % OD_DDB_OUTBOX_SHARDS);
}

/* The outbox on the order item itself: the event and, while pending, the sparse index keys
 * (outbox_shard, outbox_due), which disappear when it is published. */
static void od_ddb_outbox_attrs(json_object *item, const od_store_order_t *o, apr_pool_t *p)
{
    if (o->event_id == NULL) {
        return;
    }
    json_object_object_add(item, "event_id", od_ddb_s(o->event_id));
    json_object_object_add(item, "event", od_ddb_s(o->event));
    json_object_object_add(item, "outbox_shard", od_ddb_s(od_ddb_shard(o->event_id, p)));
    json_object_object_add(item, "outbox_due", od_ddb_n(o->event_due));
    json_object_object_add(item, "outbox_attempts", od_ddb_n(0));
}

static json_object *od_ddb_order_put(od_ddb_t *d, const od_store_order_t *o, apr_pool_t *p)
{
    json_object *item = json_object_new_object(), *put = json_object_new_object();

    json_object_object_add(item, "pk", od_ddb_s(apr_pstrcat(p, "ORDER#", o->order_id, NULL)));
    json_object_object_add(item, "caller", od_ddb_s(o->caller));
    json_object_object_add(item, "idem_key", od_ddb_s(o->idem_key));
    json_object_object_add(item, "body", od_ddb_s(o->body));
    json_object_object_add(item, "created_at", od_ddb_n(o->created_at));
    od_ddb_outbox_attrs(item, o, p);
    json_object_object_add(put, "TableName", json_object_new_string(d->table));
    json_object_object_add(put, "Item", item);
    json_object_object_add(put, "ConditionExpression",
                           json_object_new_string("attribute_not_exists(pk)"));
    return put;
}

static json_object *od_ddb_transact(od_ddb_t *d, const od_store_order_t *o, apr_pool_t *p)
{
    json_object *req = od_ddb_owned(json_object_new_object(), p);
    json_object *items = json_object_new_array(), *a = json_object_new_object();
    json_object *b = json_object_new_object();

    json_object_object_add(a, "Put", od_ddb_idem_put(d, o, p));
    json_object_object_add(b, "Put", od_ddb_order_put(d, o, p));
    json_object_array_add(items, a);
    json_object_array_add(items, b);
    json_object_object_add(req, "TransactItems", items);
    /* The order id is unique per attempt, so a retry after a lost answer is idempotent. */
    json_object_object_add(req, "ClientRequestToken", json_object_new_string(o->order_id));
    return req;
}

/* The Code of cancellation reason @p i, or "". */
static const char *od_ddb_reason(json_object *doc, int i, json_object **item)
{
    json_object *reasons = NULL, *r = NULL, *code = NULL;

    *item = NULL;
    if (!json_object_object_get_ex(doc, "CancellationReasons", &reasons) ||
        !json_object_is_type(reasons, json_type_array) ||
        (r = json_object_array_get_idx(reasons, (size_t) i)) == NULL) {
        return "";
    }
    json_object_object_get_ex(r, "Item", item);
    return json_object_object_get_ex(r, "Code", &code) ? json_object_get_string(code) : "";
}

/* Reads the live idempotency item when the cancellation did not carry it (ALL_OLD is not
 * supported by every engine). */
static apr_status_t od_ddb_read_idem(od_ddb_t *d, const od_store_order_t *o, json_object **item,
                                     apr_pool_t *p)
{
    json_object *req = od_ddb_owned(json_object_new_object(), p), *key = json_object_new_object();
    json_object *doc = NULL;

    json_object_object_add(key, "pk",
                           od_ddb_s(apr_pstrcat(p, "IDEM#", o->caller, "#", o->idem_key, NULL)));
    json_object_object_add(req, "TableName", json_object_new_string(d->table));
    json_object_object_add(req, "Key", key);
    json_object_object_add(req, "ConsistentRead", json_object_new_boolean(1));
    apr_status_t rv = od_ddb_call(d, "GetItem", req, &doc, p);
    if (rv == APR_SUCCESS && !json_object_object_get_ex(doc, "Item", item)) {
        rv = OD_ENOTFOUND;
    }
    return rv;
}

/* The transaction was cancelled: a replay, a conflict to retry, or an error.
 * Returns APR_SUCCESS (res filled), APR_EAGAIN (retry), or an error. */
static apr_status_t od_ddb_cancelled(od_ddb_t *d, const od_store_order_t *o, json_object *doc,
                                     od_store_result_t *res, apr_pool_t *p)
{
    json_object *item = NULL, *unused = NULL;
    const char *idem = od_ddb_reason(doc, 0, &item);
    const char *order = od_ddb_reason(doc, 1, &unused);

    if (strcmp(idem, "TransactionConflict") == 0 || strcmp(order, "TransactionConflict") == 0) {
        return APR_EAGAIN;
    }
    if (strcmp(idem, "ConditionalCheckFailed") != 0) {
        od_log_error(d->log, "dynamodb: TransactWriteItems for order %s cancelled: [%s, %s]",
                     o->order_id, idem, order);
        return OD_EUNAVAIL;
    }
    if (item == NULL && od_ddb_read_idem(d, o, &item, p) != APR_SUCCESS) {
        return APR_EAGAIN; /* the record expired or vanished since: try to store again */
    }
    const char *id = od_ddb_get(item, "order_id", "S"), *body = od_ddb_get(item, "body", "S");
    if (id == NULL || body == NULL) {
        od_log_error(d->log, "dynamodb: idempotency item for order %s lacks order_id/body",
                     o->order_id);
        return OD_EUNAVAIL;
    }
    /* Our own earlier attempt (answer lost, token ignored by the engine) is still ours. */
    od_ddb_fill(res, strcmp(id, o->order_id) == 0 ? OD_STORE_CREATED : OD_STORE_REPLAYED, id, body,
                od_ddb_get(item, "created_at", "N"), p);
    return APR_SUCCESS;
}

/*
 * The transaction failed without a definitive answer: it may have committed (its answer was
 * lost) or may still commit. A consistent read of the idempotency record settles it where it
 * can: our order id means our transaction committed; another order's record that is live at our
 * created_at means ours can never commit (its condition fails), so that order is the replay. No
 * record (or an expired one, or a failed read) proves nothing while ours may be in flight.
 */
static apr_status_t od_ddb_resolve(od_ddb_t *d, const od_store_order_t *o, apr_status_t failed,
                                   od_store_result_t *res, apr_pool_t *p)
{
    json_object *item = NULL;
    apr_status_t rv = od_ddb_read_idem(d, o, &item, p);
    const char *id = od_ddb_get(item, "order_id", "S"), *body = od_ddb_get(item, "body", "S");
    const char *expires = od_ddb_get(item, "expires_at_us", "N");
    int ours = id != NULL && strcmp(id, o->order_id) == 0;
    int blocks_ours = expires != NULL && apr_atoi64(expires) > o->created_at;
    char buf[96];

    if (rv == APR_SUCCESS && id != NULL && body != NULL && (ours || blocks_ours)) {
        od_log_warn(d->log, "dynamodb: order %s: no answer to TransactWriteItems; read back: %s%s",
                    o->order_id, ours ? "stored" : "the key is order ", ours ? "" : id);
        od_ddb_fill(res, ours ? OD_STORE_CREATED : OD_STORE_REPLAYED, id, body,
                    od_ddb_get(item, "created_at", "N"), p);
        return APR_SUCCESS;
    }
    od_log_error(d->log,
                 "dynamodb: order %s: outcome unknown: TransactWriteItems failed (%s) after it was"
                 " sent, and the read-back found %s; the order may be stored, or become stored",
                 o->order_id, od_status_str(failed, buf, sizeof(buf)),
                 rv == APR_SUCCESS    ? "an expired or incomplete record"
                 : rv == OD_ENOTFOUND ? "no record yet"
                                      : "nothing (it failed too)");
    return OD_EUNKNOWN;
}

static apr_status_t od_ddb_put_try(od_ddb_t *d, const od_store_order_t *o, od_store_result_t *res,
                                   int *maybe_applied, apr_pool_t *p)
{
    json_object *req = od_ddb_transact(d, o, p), *doc = NULL;

    for (int attempt = 0;; attempt++) {
        apr_status_t rv =
            od_ddb_call_ex(d, "TransactWriteItems", req, NULL, &doc, maybe_applied, p);
        if (rv == APR_SUCCESS) {
            res->outcome = OD_STORE_CREATED;
            res->order_id = o->order_id;
            res->body = o->body;
            res->body_len = o->body_len;
            res->created_at = o->created_at;
            res->event_seq = 0;
            return APR_SUCCESS;
        }
        if (rv == OD_ECONFLICT) {
            rv = od_ddb_cancelled(d, o, doc, res, p);
        }
        if (rv != APR_EAGAIN) {
            return rv;
        }
        if (attempt >= OD_DDB_CONFLICT_RETRIES) {
            od_log_error(d->log, "dynamodb: order %s still conflicting after %d retries",
                         o->order_id, attempt);
            return OD_EUNAVAIL;
        }
        apr_sleep(OD_DDB_CONFLICT_DELAY * (attempt + 1));
    }
}

apr_status_t od_ddb_put(void *impl, const od_store_order_t *o, od_store_result_t *res,
                        apr_pool_t *p)
{
    int maybe_applied = 0;
    apr_status_t rv = od_ddb_put_try(impl, o, res, &maybe_applied, p);

    /* A failure is "nothing was stored" only if no attempt may have been applied. */
    return rv != APR_SUCCESS && maybe_applied ? od_ddb_resolve(impl, o, rv, res, p) : rv;
}

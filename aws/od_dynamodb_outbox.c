/* od_dynamodb_outbox: the DynamoDB store's relay claims and backlog count (docs/dynamodb.md,
 * "The outbox"). */
#include "od_dynamodb_int.h"
#include "od_status.h"

#include <apr_atomic.h>
#include <apr_network_io.h>
#include <apr_strings.h>
#include <unistd.h>

const char *od_ddb_owner_name(apr_pool_t *p)
{
    char host[APRMAXHOSTLEN + 1];

    if (apr_gethostname(host, sizeof(host), p) != APR_SUCCESS) {
        apr_cpystrn(host, "unknown", sizeof(host));
    }
    return apr_psprintf(p, "%s:%ld", host, (long) getpid());
}

/* ---- claims ---- */

/* Moves the event's due time to the end of the lease, on condition that it is still pending
 * with the due time it was read with: no other instance claimed it (each claim changes it),
 * published it (that removes it) or rescheduled it since. The condition compares what was read,
 * not clocks, so instances' clocks need not agree for two claims to exclude each other.
 * Returns APR_SUCCESS (claimed), OD_ECONFLICT (not ours) or the call's error (logged). */
static apr_status_t od_ddb_claim_one(od_ddb_t *d, const od_store_event_t *e,
                                     apr_interval_time_t lease, apr_pool_t *p)
{
    json_object *req = od_ddb_owned(json_object_new_object(), p), *doc = NULL;
    json_object *values = json_object_new_object();

    json_object_object_add(values, ":e", od_ddb_s(e->event_id));
    json_object_object_add(values, ":was", od_ddb_n(e->due));
    json_object_object_add(values, ":until", od_ddb_n(apr_time_now() + lease));
    json_object_object_add(values, ":me", od_ddb_s(d->owner));
    json_object_object_add(req, "TableName", json_object_new_string(d->table));
    json_object_object_add(req, "Key", od_ddb_order_key(e->order_id, p));
    json_object_object_add(req, "UpdateExpression",
                           json_object_new_string("SET outbox_due = :until, outbox_owner = :me"));
    json_object_object_add(req, "ConditionExpression",
                           json_object_new_string("attribute_exists(outbox_shard) AND "
                                                  "event_id = :e AND outbox_due = :was"));
    json_object_object_add(req, "ExpressionAttributeValues", values);
    return od_ddb_call(d, "UpdateItem", req, &doc, p);
}

apr_status_t od_ddb_claim(void *impl, apr_array_header_t *events, apr_interval_time_t lease,
                          apr_pool_t *p)
{
    od_store_event_t *ev = (od_store_event_t *) events->elts;
    apr_status_t first = APR_SUCCESS;
    int kept = 0;

    for (int i = 0; i < events->nelts; i++) {
        apr_status_t rv = od_ddb_claim_one(impl, &ev[i], lease, p);
        if (rv == APR_SUCCESS) {
            ev[kept++] = ev[i];
        } else if (rv != OD_ECONFLICT && first == APR_SUCCESS) {
            first = rv; /* no answer or a failure: not ours this time; due again later */
        }
    }
    events->nelts = kept;
    return first;
}

/* ---- the backlog ---- */

/* One page of a shard's index entries: counts them and keeps the oldest created_at. Takes the
 * reference @p *start (NULL: the first page) and leaves in it a reference to where the next page
 * starts, or NULL after the last. */
static apr_status_t od_ddb_backlog_page(od_ddb_t *d, const char *shard, json_object **start,
                                        apr_size_t *count, apr_time_t *oldest, apr_pool_t *p)
{
    json_object *req = od_ddb_owned(json_object_new_object(), p), *doc = NULL, *items = NULL;
    json_object *values = json_object_new_object(), *next = NULL;

    json_object_object_add(values, ":s", od_ddb_s(shard));
    json_object_object_add(req, "TableName", json_object_new_string(d->table));
    json_object_object_add(req, "IndexName", json_object_new_string(OD_DDB_OUTBOX_INDEX));
    json_object_object_add(req, "KeyConditionExpression",
                           json_object_new_string("outbox_shard = :s"));
    json_object_object_add(req, "ExpressionAttributeValues", values);
    /* The read units are those of the entries read, whatever is returned: the one attribute
     * wanted costs what Select=COUNT would, and gives the oldest in the same pass. */
    json_object_object_add(req, "ProjectionExpression", json_object_new_string("created_at"));
    if (*start != NULL) {
        json_object_object_add(req, "ExclusiveStartKey", *start);
        *start = NULL;
    }
    apr_status_t rv = od_ddb_call(d, "Query", req, &doc, p);
    if (rv != APR_SUCCESS) {
        return rv == OD_EINVAL || rv == OD_ECONFLICT ? OD_EUNAVAIL : rv;
    }
    if (json_object_object_get_ex(doc, "Items", &items)) {
        for (size_t i = 0; i < json_object_array_length(items); i++) {
            const char *c = od_ddb_get(json_object_array_get_idx(items, i), "created_at", "N");
            apr_time_t t = c != NULL ? apr_atoi64(c) : 0;
            *oldest = t > 0 && (*oldest == 0 || t < *oldest) ? t : *oldest;
            (*count)++;
        }
    }
    if (json_object_object_get_ex(doc, "LastEvaluatedKey", &next)) {
        *start = json_object_get(next); /* outlives doc, which goes with p */
    }
    return APR_SUCCESS;
}

/* Every page of one shard; each page's answer is released before the next is read, so a long
 * backlog costs time, not memory. */
static apr_status_t od_ddb_backlog_shard(od_ddb_t *d, int shard, volatile apr_uint32_t *stop,
                                         apr_size_t *count, apr_time_t *oldest, apr_pool_t *p)
{
    const char *name = apr_psprintf(p, "P%02d", shard);
    json_object *start = NULL;
    apr_pool_t *page = NULL;
    apr_status_t rv;

    apr_pool_create(&page, p);
    do {
        rv = stop != NULL && apr_atomic_read32(stop)
                 ? APR_EINTR
                 : od_ddb_backlog_page(d, name, &start, count, oldest, page);
        apr_pool_clear(page);
    } while (rv == APR_SUCCESS && start != NULL);
    json_object_put(start); /* NULL unless stopped */
    apr_pool_destroy(page);
    return rv;
}

apr_status_t od_ddb_backlog(void *impl, volatile apr_uint32_t *stop, apr_size_t *count,
                            apr_time_t *oldest, apr_pool_t *p)
{
    apr_status_t rv = APR_SUCCESS;

    for (int shard = 0; shard < OD_DDB_OUTBOX_SHARDS && rv == APR_SUCCESS; shard++) {
        rv = od_ddb_backlog_shard(impl, shard, stop, count, oldest, p);
    }
    return rv;
}

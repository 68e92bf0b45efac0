/*
 * od_dedupe: order-consumer's record of processed events, shared by every consumer of a queue.
 *
 * One record per event_id, in one of two states:
 *   processing  claimed by one consumer (its owner token) until lease_until; a claim whose lease
 *               has run out may be taken over (its consumer crashed or hung);
 *   done        the handler succeeded; remembered until expires_at (the processed TTL).
 *
 * The protocol per event, safe with any number of consumers:
 *   claim     one conditional write: insert if absent, or take over an expired lease or an
 *             expired done record. The answer is CLAIMED (run the handler), DONE (already
 *             processed: delete the message) or BUSY (another consumer holds a live lease).
 *   complete  after the handler succeeded, and only then: state = done, expires_at = now + TTL.
 *   release   after the handler failed: deletes the claim (if still ours), so a redelivery of
 *             the message can retry.
 * A crash between claim and complete leaves a processing record that is taken over once its
 * lease runs out, so an event is never marked done without a successful handler run, and never
 * lost; it may run twice (at least once).
 *
 * Backends:
 *   sqlite    table processed_events(event_id PK, state, owner, lease_until, expires_at), WAL,
 *             synchronous=FULL; times in microseconds. Several consumers on one host may share
 *             the file.
 *   dynamodb  item pk = "EVENT#<event_id>" in the orderd table, attributes state, owner,
 *             lease_until (microseconds) and expires_at (seconds: the table's TTL attribute);
 *             conditions are checked on the times themselves, since TTL deletion lags.
 */
#ifndef OD_DEDUPE_H
#define OD_DEDUPE_H

#include "od_aws.h"
#include "od_log.h"

#include <apr_pools.h>
#include <apr_time.h>

typedef struct od_dedupe_s od_dedupe_t;

typedef enum od_dedupe_outcome_e {
    OD_DEDUPE_CLAIMED, /* ours: run the handler, then complete or release */
    OD_DEDUPE_DONE,    /* processed within the TTL: do not run it again */
    OD_DEDUPE_BUSY     /* another consumer holds a live lease */
} od_dedupe_outcome_e;

/** The answer to a claim. */
typedef struct od_dedupe_claim_t {
    od_dedupe_outcome_e outcome;
    const char *token;      /* CLAIMED: this claim's owner token, for complete and release */
    apr_time_t lease_until; /* CLAIMED: our lease; BUSY: theirs (0 if unknown); DONE: 0 */
} od_dedupe_claim_t;

/**
 * Opens (creating if missing) the SQLite database at @p path with the processed_events table.
 * Returns APR_SUCCESS and @p *out; or OD_EUNAVAIL (logged) with nothing left open. The
 * connection is closed by a cleanup on @p p. Thread-safe to use (calls are serialised).
 */
apr_status_t od_dedupe_sqlite_create(od_dedupe_t **out, const char *path, od_log_t *log,
                                     apr_pool_t *p);

/**
 * Uses table @p table (key pk, as `orderd --init-store` creates it) at @p endpoint through the
 * shared client @p aws. Does no I/O. Returns APR_SUCCESS and @p *out (lives as long as @p p).
 * Thread-safe to use.
 */
apr_status_t od_dedupe_dynamodb_create(od_dedupe_t **out, od_aws_t *aws, const char *endpoint,
                                       const char *table, od_log_t *log, apr_pool_t *p);

/** The backend's name ("sqlite", "dynamodb"). */
const char *od_dedupe_name(const od_dedupe_t *d);

/**
 * Claims @p event_id at time @p now for @p lease (the longest the handler may take plus a
 * margin). Returns APR_SUCCESS with @p out filled (strings from @p p), or OD_EUNAVAIL /
 * another status from the backend (logged once) with @p out unspecified. Thread-safe.
 */
apr_status_t od_dedupe_claim(od_dedupe_t *d, const char *event_id, apr_time_t now,
                             apr_interval_time_t lease, od_dedupe_claim_t *out, apr_pool_t *p);

/**
 * Marks @p event_id done by the claim @p token at @p now, remembered for @p ttl. Call only after
 * the handler succeeded. Unconditional: a claim taken over meanwhile is overwritten, since the
 * event has been processed. Returns APR_SUCCESS or the backend's error (logged). Thread-safe.
 */
apr_status_t od_dedupe_complete(od_dedupe_t *d, const char *event_id, const char *token,
                                apr_time_t now, apr_interval_time_t ttl, apr_pool_t *p);

/**
 * Deletes the claim @p token on @p event_id if it is still a processing claim of that token
 * (a claim taken over, or a done record, is left alone). Returns APR_SUCCESS (also when there
 * was nothing of ours to delete) or the backend's error (logged). Thread-safe.
 */
apr_status_t od_dedupe_release(od_dedupe_t *d, const char *event_id, const char *token,
                               apr_pool_t *p);

#endif

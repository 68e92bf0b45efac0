/*
 * od_idemidx: the embedded store's idempotency index, in memory.
 *
 * Holds, for every order of the last idempotency window, a 64-bit fingerprint of its
 * (caller, idempotency key) and the row where the order is stored. The store looks a new order
 * up here instead of in an on-disk table: a random-key B-tree cost one disk page written per
 * order, twice (insert and purge), and most of the writer's time. The index is not durable; the
 * store rebuilds it from the orders of the last window when it opens.
 *
 * A fingerprint only narrows the search: two keys may share one, so the store compares the
 * stored order's key before replaying it. Fingerprints are keyed with a secret drawn at creation,
 * so a client cannot aim many keys at one probe run.
 *
 * Entries are kept in the order they were added, in a ring; the oldest are dropped once expired
 * (od_idemidx_expire). The hash table holds ring positions (4 bytes a slot, at most half full).
 * Memory is allocated up front for @p capacity entries, and doubles (logged by the caller through
 * od_idemidx_capacity) only if more are ever live at once, so it stays flat under steady load.
 *
 * Not thread-safe: one thread (the store's writer) owns the index.
 */
#ifndef OD_IDEMIDX_H
#define OD_IDEMIDX_H

#include <apr_pools.h>
#include <apr_time.h>

typedef struct od_idemidx_s od_idemidx_t;

/** A lookup in progress: filled by od_idemidx_find, advanced by od_idemidx_next. */
typedef struct od_idemidx_iter_t {
    apr_uint64_t fp;
    apr_size_t slot;
    apr_time_t now;
} od_idemidx_iter_t;

/**
 * Creates an empty index with room for @p capacity live entries (rounded up to a power of two,
 * at least 16) before it grows. Its memory is allocated and zeroed at once, from a subpool of
 * @p p, and lives until @p p is destroyed. Returns APR_SUCCESS and @p *out, or the status of
 * drawing the fingerprint secret (apr_generate_random_bytes).
 */
apr_status_t od_idemidx_create(od_idemidx_t **out, apr_size_t capacity, apr_pool_t *p);

/** The fingerprint of (@p caller, @p idem_key) under this index's secret. Never 0. */
apr_uint64_t od_idemidx_fingerprint(const od_idemidx_t *ix, const char *caller,
                                    const char *idem_key);

/**
 * Starts a lookup of @p fp for an order made at @p now: od_idemidx_next then yields the rows of
 * the entries with this fingerprint that are live at @p now (expires_at > now).
 */
void od_idemidx_find(const od_idemidx_t *ix, apr_uint64_t fp, apr_time_t now,
                     od_idemidx_iter_t *it);

/**
 * Sets @p *row to the next live candidate of @p it and returns 1, or returns 0 when there is
 * none. Adding or removing entries invalidates an iterator.
 */
int od_idemidx_next(const od_idemidx_t *ix, od_idemidx_iter_t *it, apr_int64_t *row);

/**
 * Adds an entry: fingerprint @p fp, stored at @p row (non-zero), live until @p expires_at.
 * Doubles the index first if it is full (allocation failure aborts through the pool's abort
 * function, as every allocation here does).
 */
void od_idemidx_add(od_idemidx_t *ix, apr_uint64_t fp, apr_int64_t row, apr_time_t expires_at);

/**
 * Removes the @p n most recently added entries (all, if fewer): undoes adds whose write was
 * rolled back.
 */
void od_idemidx_drop_newest(od_idemidx_t *ix, apr_size_t n);

/**
 * Removes the oldest entries while they have expired at @p now, and returns how many it removed.
 * Entries are removed in the order they were added, so one that lives longer than those after
 * it (the clock stepped back) holds them until it expires; lookups ignore them meanwhile.
 */
apr_size_t od_idemidx_expire(od_idemidx_t *ix, apr_time_t now);

/** The number of entries held (live or not yet expired away). */
apr_size_t od_idemidx_count(const od_idemidx_t *ix);

/** The number of entries the index holds before it next doubles. */
apr_size_t od_idemidx_capacity(const od_idemidx_t *ix);

/** The memory its ring and table take, in bytes (for that capacity). */
apr_size_t od_idemidx_bytes(const od_idemidx_t *ix);

#endif

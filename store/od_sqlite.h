/*
 * od_sqlite: the embedded single-host store (SQLite, WAL, synchronous=FULL).
 *
 * Writes are group-committed: callers queue their order and block; one writer thread takes
 * everything queued (up to batch_max), applies each order inside its own savepoint of one
 * transaction, commits with one fsync, then wakes the callers. Durability therefore costs one
 * fsync per batch, not per order. Reads (GET) use a pool of read-only connections, which WAL
 * lets run alongside the writer.
 *
 * Published marks (od_store_published) do not wait: they are queued and applied inside the
 * writer's next transaction (one of their own if no order comes). The WAL is copied into the
 * database by a checkpointer thread on its own connection rather than inside the writer's
 * COMMIT; when the WAL grows long the writer copies the small remainder itself between two
 * batches, so that the WAL can start over.
 *
 * Schema (PRAGMA user_version 2), times in microseconds since the Unix epoch:
 *   orders(order_id PK, caller, idem_key, body, created_at)
 *   idem(caller, idem_key, order_id, expires_at, PK(caller, idem_key)), index on expires_at
 *   outbox(event_id PK, order_id, body, created_at, due_at, attempts), index on due_at
 * A version 1 file gains the outbox; a file of a newer version is refused, left untouched.
 * The idempotency window is enforced when checking (expires_at > the new order's created_at);
 * the writer also deletes expired idem rows in small batches about once a second.
 */
#ifndef OD_SQLITE_H
#define OD_SQLITE_H

#include "od_log.h"
#include "od_store.h"

/**
 * Opens (creating if needed) the database at @p path and starts the writer thread.
 * @p readers read connections (>= 1); @p batch_max orders per transaction (>= 1).
 * Returns APR_SUCCESS and @p *out, or OD_EUNAVAIL (logged, naming the failed call) with
 * everything opened so far closed again. A cleanup on @p p drains the queue, stops the writer
 * and closes the database. Thread-safe to use.
 */
apr_status_t od_sqlite_create(od_store_t **out, const char *path, int readers, int batch_max,
                              od_log_t *log, apr_pool_t *p);

#endif

/*
 * od_sqlite: the embedded single-host store (SQLite, WAL, synchronous=FULL).
 *
 * Writes are group-committed: callers queue their order and block; one writer thread takes
 * everything queued (up to batch_max), applies each order inside its own savepoint of one
 * transaction, commits with one fsync, then wakes the callers. Durability therefore costs one
 * fsync per batch, not per order. Reads (GET) use a pool of read-only connections, which WAL
 * lets run alongside the writer. A batch that fails is rolled back whole, and its new orders get
 * OD_EUNAVAIL (nothing was stored), except after an I/O error in COMMIT (a failed fsync of the
 * WAL): its frames may be in the file, to be recovered if the process stops before its next
 * commit, so its new orders get OD_EUNKNOWN.
 *
 * Published marks (od_store_published) do not wait: they are queued and applied inside the
 * writer's next transaction (one of their own if no order comes). The WAL is copied into the
 * database by a checkpointer thread on its own connection rather than inside the writer's
 * COMMIT; when the WAL grows long the writer copies the small remainder itself between two
 * batches, so that the WAL can start over.
 *
 * Schema (PRAGMA user_version 4), times in microseconds since the Unix epoch:
 *   orders(order_id PK, caller, idem_key, body, created_at)
 *   outbox(order_row PK: the order's rowid, event_id, due_at, attempts), index on due_at
 * An outbox row holds no envelope: od_store_pending renders it again from the order. Events read
 * back carry their order_row as od_store_event_t.seq, which published marks and reschedules use.
 * Older files are brought up to version 4 (version 1 gains the outbox; the idem table of versions
 * 1 and 2 is dropped; the envelope-holding outbox rows of versions 2 and 3 move to the new
 * outbox); a file of a newer version is refused, left untouched.
 *
 * Idempotency records live in memory (od_idemidx), not in a table: the writer alone decides
 * whether an order is new, so its index is the authority for as long as the file is open, and it
 * is rebuilt from the orders of the last window (created_at + ttl still ahead) when the store
 * opens. An on-disk table keyed by a random hash cost a page write per order on insert and again
 * on purge. The window is enforced when checking (expires_at > the new order's created_at).
 * So that no other process writes orders behind the index's back, the store holds a POSIX lock
 * on "<path>.lock" while open, and refuses a file another process holds.
 */
#ifndef OD_SQLITE_H
#define OD_SQLITE_H

#include "od_log.h"
#include "od_store.h"

/**
 * Opens (creating if needed) the database at @p path, locks it, rebuilds the idempotency index
 * for a window of @p ttl and starts the writer thread. @p readers read connections (>= 1);
 * @p batch_max orders per transaction (>= 1). Returns APR_SUCCESS and @p *out, or OD_EUNAVAIL
 * (logged, naming the failed call; also when another process has the file open) with
 * everything opened so far closed again. A cleanup on @p p drains the queue, stops the writer
 * and closes the database. Thread-safe to use.
 */
apr_status_t od_sqlite_create(od_store_t **out, const char *path, int readers, int batch_max,
                              apr_interval_time_t ttl, od_log_t *log, apr_pool_t *p);

#endif

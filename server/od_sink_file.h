/*
 * od_sink_file: the embedded default sink. Appends each event as one JSON line to a file opened
 * with O_APPEND, one write per batch, then fsync: an event reported published is on disk.
 *
 * A batch whose write or fsync fails (a full disk) is cut back off the file, so it always ends
 * on a whole line and the batch, reported failed, is published again whole later. If the cut
 * fails as well, it is retried before the next write, and failing that the next batch starts
 * with a newline, so no event is ever glued onto a fragment (docs/events.md, "The events file").
 */
#ifndef OD_SINK_FILE_H
#define OD_SINK_FILE_H

#include "od_log.h"
#include "od_sink.h"

/**
 * Opens (creating, mode 0640) @p path for appending (and reading its last byte: a file that
 * does not end in a newline gets one before the next event). Returns APR_SUCCESS and @p *out,
 * or the open's or the mutex's status (logged). The file is closed by a cleanup on @p p.
 * Thread-safe to use.
 */
apr_status_t od_sink_file_create(od_sink_t **out, const char *path, od_log_t *log, apr_pool_t *p);

#endif

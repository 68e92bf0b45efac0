/*
 * od_sink_file: the embedded default sink. Appends each event as one JSON line to a file opened
 * with O_APPEND, one write per batch, then fsync: an event reported published is on disk.
 */
#ifndef OD_SINK_FILE_H
#define OD_SINK_FILE_H

#include "od_log.h"
#include "od_sink.h"

/**
 * Opens (creating, mode 0640) @p path for appending. Returns APR_SUCCESS and @p *out, or the
 * open's status (logged). The file is closed by a cleanup on @p p. Thread-safe to use.
 */
apr_status_t od_sink_file_create(od_sink_t **out, const char *path, od_log_t *log, apr_pool_t *p);

#endif

/*
 * od_file: reading a whole (small) file, for configuration, keys and certificates.
 */
#ifndef OD_FILE_H
#define OD_FILE_H

#include <apr_pools.h>

/**
 * Reads the file at @p path into @p *text (NUL-terminated, allocated from @p p) and its length
 * into @p *len. Returns APR_SUCCESS, or the APR status with @p *errmsg "PATH: cannot read: why"
 * (from @p p). Thread-safe given distinct pools.
 */
apr_status_t od_file_read(char **text, apr_size_t *len, const char *path, const char **errmsg,
                          apr_pool_t *p);

#endif

/* od_file: whole-file reads through APR. */
#include "od_file.h"

#include <apr_file_info.h>
#include <apr_file_io.h>
#include <apr_strings.h>

apr_status_t od_file_read(char **text, apr_size_t *len, const char *path, const char **errmsg,
                          apr_pool_t *p)
{
    apr_finfo_t fi;
    apr_file_t *f = NULL;
    char buf[128];
    apr_status_t rv = apr_file_open(&f, path, APR_FOPEN_READ, APR_FPROT_OS_DEFAULT, p);

    if (rv == APR_SUCCESS) {
        rv = apr_file_info_get(&fi, APR_FINFO_SIZE, f);
    }
    if (rv == APR_SUCCESS) {
        *len = (apr_size_t) fi.size;
        *text = apr_palloc(p, *len + 1);
        rv = *len > 0 ? apr_file_read_full(f, *text, *len, len) : APR_SUCCESS;
        (*text)[*len] = '\0';
    }
    if (f != NULL) {
        apr_file_close(f);
    }
    if (rv != APR_SUCCESS) {
        *errmsg = apr_psprintf(p, "%s: cannot read: %s", path, apr_strerror(rv, buf, sizeof(buf)));
    }
    return rv;
}

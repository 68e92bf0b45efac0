/* od_status: names for orderd's status values. */
#include "od_status.h"

#include <apr_strings.h>

static const char *const od_status_names[] = {
    NULL,
    "invalid input",
    "configuration error",
    "not found",
    "service unavailable",
    "throttled",
    "overloaded",
    "not authenticated",
    "conditional check failed",
    "request body too large",
    "shutting down",
    "outcome unknown",
};

const char *od_status_str(apr_status_t status, char *buf, apr_size_t bufsize)
{
    apr_size_t n = sizeof(od_status_names) / sizeof(od_status_names[0]);

    if (status > OD_STATUS_BASE && status < OD_STATUS_BASE + (apr_status_t) n) {
        return od_status_names[status - OD_STATUS_BASE];
    }
    return apr_strerror(status, buf, bufsize);
}

/* od_event: the event envelope. */
#include "od_event.h"
#include "od_order.h"

#include <apr_strings.h>
#include <string.h>

const char *od_event_render(const char *event_id, const char *order_document,
                            apr_time_t occurred_at, apr_size_t *len, apr_pool_t *p)
{
    char when[32];
    /* The order document is already canonical JSON of our own making, so it is embedded
     * verbatim rather than re-parsed: consumers see exactly what the API answered. */
    const char *s = apr_psprintf(p,
                                 "{\"event_id\":\"%s\",\"event_type\":\"" OD_EVENT_TYPE_ACCEPTED
                                 "\",\"occurred_at\":\"%s\",\"schema_version\":%d,\"order\":%s}",
                                 event_id, od_order_format_time(when, occurred_at),
                                 OD_EVENT_SCHEMA_VERSION, order_document);
    if (len != NULL) {
        *len = strlen(s);
    }
    return s;
}

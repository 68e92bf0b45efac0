/* od_event: the event envelope. */
#include "od_event.h"
#include "od_order.h"

#include <apr_strings.h>
#include <string.h>

#define OD_EVENT_STR_(x) #x
#define OD_EVENT_STR(x) OD_EVENT_STR_(x)

/* The envelope's fixed parts, around the id, the time and the order. */
static const char od_event_head[] = "{\"event_id\":\"";
static const char od_event_mid[] =
    "\",\"event_type\":\"" OD_EVENT_TYPE_ACCEPTED "\",\"occurred_at\":\"";
static const char od_event_tail[] =
    "\",\"schema_version\":" OD_EVENT_STR(OD_EVENT_SCHEMA_VERSION) ",\"order\":";

/* Assembled by concatenation (apr_pstrcatv): it runs for every accepted order (and every
 * re-publish), where a printf-style format cost about 10,000 instructions. */
const char *od_event_render(const char *event_id, const char *order_document,
                            apr_time_t occurred_at, apr_size_t *len, apr_pool_t *p)
{
    char when[32];

    od_order_format_time(when, occurred_at);
    /* The order document is already canonical JSON of our own making, so it is embedded
     * verbatim rather than re-parsed: consumers see exactly what the API answered. */
    struct iovec parts[] = {
        {(void *) od_event_head, sizeof(od_event_head) - 1},
        {(void *) event_id, strlen(event_id)},
        {(void *) od_event_mid, sizeof(od_event_mid) - 1},
        {when, strlen(when)},
        {(void *) od_event_tail, sizeof(od_event_tail) - 1},
        {(void *) order_document, strlen(order_document)},
        {"}", 1},
    };
    apr_size_t total = 0;
    char *s = apr_pstrcatv(p, parts, sizeof(parts) / sizeof(parts[0]), &total);

    if (len != NULL) {
        *len = total;
    }
    return s;
}

/* od_event: the event envelope. */
#include "od_event.h"
#include "od_order.h"

#include <apr_strings.h>
#include <string.h>

#define OD_EVENT_STR_(x) #x
#define OD_EVENT_STR(x) OD_EVENT_STR_(x)

/* The envelope's fixed parts, around the id, the time and the order. */
static const char od_event_head[] = "{\"event_id\":\"";
static const char od_event_mid[] = "\",\"event_type\":\"" OD_EVENT_TYPE_ACCEPTED "\",\"occurred_at\":\"";
static const char od_event_tail[] =
    "\",\"schema_version\":" OD_EVENT_STR(OD_EVENT_SCHEMA_VERSION) ",\"order\":";

static char *od_event_put(char *at, const char *s, apr_size_t n)
{
    memcpy(at, s, n);
    return at + n;
}

/* Assembled by copying: it runs for every accepted order (and every re-publish), where a
 * printf-style format cost about 10,000 instructions. */
const char *od_event_render(const char *event_id, const char *order_document,
                            apr_time_t occurred_at, apr_size_t *len, apr_pool_t *p)
{
    char when[32];
    apr_size_t id_len = strlen(event_id), when_len, doc_len = strlen(order_document);

    od_order_format_time(when, occurred_at);
    when_len = strlen(when);
    apr_size_t total = sizeof(od_event_head) - 1 + id_len + sizeof(od_event_mid) - 1 + when_len +
                       sizeof(od_event_tail) - 1 + doc_len + 1;
    char *s = apr_palloc(p, total + 1), *at = s;
    /* The order document is already canonical JSON of our own making, so it is embedded
     * verbatim rather than re-parsed: consumers see exactly what the API answered. */
    at = od_event_put(at, od_event_head, sizeof(od_event_head) - 1);
    at = od_event_put(at, event_id, id_len);
    at = od_event_put(at, od_event_mid, sizeof(od_event_mid) - 1);
    at = od_event_put(at, when, when_len);
    at = od_event_put(at, od_event_tail, sizeof(od_event_tail) - 1);
    at = od_event_put(at, order_document, doc_len);
    *at++ = '}';
    *at = '\0';
    if (len != NULL) {
        *len = total;
    }
    return s;
}

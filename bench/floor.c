/*
 * odb-floor: the floor of the benchmark. A minimal libmicrohttpd responder started with the
 * same daemon flags and options as orderd (server/od_http.c), which reads each request's body
 * and answers a fixed 201 shaped like orderd's. Whatever rate it reaches is the most this HTTP
 * stack can do on this machine with these threads, so orderd's rates are reported against it.
 *
 *   odb-floor -p PORT [-t HTTP_THREADS] [-m MAX_CONNECTIONS] [-T TIMEOUT_S]
 *
 * Runs until SIGTERM or SIGINT.
 */
#define _POSIX_C_SOURCE 200809L

#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The same size and shape as a real 201, so both servers write the same bytes per answer. */
static const char floor_body[] =
    "{\"order_id\":\"01M7ZWXHADTN2RWPN7KR1H6A1V\",\"status\":\"ACCEPTED\","
    "\"customer_id\":\"CUST-000123\",\"currency\":\"EUR\",\"items\":[{\"sku\":\"SKU-1001\","
    "\"quantity\":2,\"unit_price_cents\":1999}],\"total_cents\":3998,"
    "\"created_at\":\"2026-11-21T20:31:43.437Z\"}";

typedef struct floor_opts_t {
    unsigned int port;
    unsigned int threads;
    unsigned int max_connections;
    unsigned int timeout_s;
} floor_opts_t;

/* A non-NULL marker telling the first call of a request from the later ones. */
static int floor_seen;

static enum MHD_Result floor_access(void *cls, struct MHD_Connection *conn, const char *url,
                                    const char *method, const char *version,
                                    const char *upload_data, size_t *upload_data_size,
                                    void **con_cls)
{
    struct MHD_Response *resp = cls;

    (void) url;
    (void) method;
    (void) version;
    (void) upload_data;
    if (*con_cls == NULL) {
        *con_cls = &floor_seen;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        *upload_data_size = 0; /* read and dropped: the floor only has to consume it */
        return MHD_YES;
    }
    return MHD_queue_response(conn, MHD_HTTP_CREATED, resp);
}

static void floor_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                            enum MHD_RequestTerminationCode toe)
{
    (void) cls;
    (void) conn;
    (void) toe;
    *con_cls = NULL;
}

/* One shared response for every request: MHD reference-counts it across its threads. */
static struct MHD_Response *floor_response(void)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        sizeof(floor_body) - 1, (void *) floor_body, MHD_RESPMEM_PERSISTENT);

    if (resp != NULL) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION,
                                "/orders/01M7ZWXHADTN2RWPN7KR1H6A1V");
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    }
    return resp;
}

static int floor_parse(floor_opts_t *o, int argc, char **argv)
{
    int c;

    *o = (floor_opts_t){0, 2, 4096, 30};
    while ((c = getopt(argc, argv, "p:t:m:T:")) != -1) {
        unsigned int v = (unsigned int) strtoul(optarg != NULL ? optarg : "0", NULL, 10);
        switch (c) {
        case 'p':
            o->port = v;
            break;
        case 't':
            o->threads = v;
            break;
        case 'm':
            o->max_connections = v;
            break;
        case 'T':
            o->timeout_s = v;
            break;
        default:
            return -1;
        }
    }
    return o->port > 0 && o->port < 65536 && o->threads > 0 ? 0 : -1;
}

/* Loopback only: the benchmark never listens anywhere else. */
static struct MHD_Daemon *floor_start(const floor_opts_t *o, struct MHD_Response *resp)
{
    struct sockaddr_in sa;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t) o->port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* The same flags and options as orderd's od_http_start. */
    unsigned int flags =
        MHD_USE_POLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    return MHD_start_daemon(
        flags, (uint16_t) o->port, NULL, NULL, floor_access, resp, MHD_OPTION_SOCK_ADDR, &sa,
        MHD_OPTION_THREAD_POOL_SIZE, o->threads, MHD_OPTION_CONNECTION_LIMIT, o->max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, o->timeout_s, MHD_OPTION_NOTIFY_COMPLETED, floor_completed,
        NULL, MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_END);
}

int main(int argc, char **argv)
{
    floor_opts_t o;
    sigset_t set;
    int sig = 0;

    if (floor_parse(&o, argc, argv) != 0) {
        fprintf(stderr, "usage: odb-floor -p PORT [-t THREADS] [-m MAX_CONN] [-T TIMEOUT_S]\n");
        return 2;
    }
    /* Blocked before MHD's threads exist, so they inherit the mask and sigwait gets them. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    struct MHD_Response *resp = floor_response();
    struct MHD_Daemon *d = resp != NULL ? floor_start(&o, resp) : NULL;
    if (d == NULL) {
        fprintf(stderr, "odb-floor: cannot listen on 127.0.0.1:%u\n", o.port);
        return 1;
    }
    fprintf(stderr, "odb-floor: listening on 127.0.0.1:%u (%u threads)\n", o.port, o.threads);
    sigwait(&set, &sig);
    MHD_stop_daemon(d);
    MHD_destroy_response(resp);
    return 0;
}

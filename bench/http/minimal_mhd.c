/* minimal_mhd: the ceiling for bench/http — libmicrohttpd with sinergi's daemon flags, answering
 * every request with one fixed JSON body and doing nothing else. Not part of sinergi. */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char body[] = "{\"status\":\"ok\"}\n";

static struct MHD_Response *fixed; /* built once, shared by every request */
static atomic_ulong conns_opened, requests;

/* Same shape as sinergi's on_request: the first call only sees headers and returns MHD_YES; the
 * response is queued on the second call, once any body has been read. Queuing on the first call
 * makes libmicrohttpd close the connection (no keep-alive). */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    static int seen;
    (void)cls, (void)url, (void)method, (void)version, (void)upload_data;
    if (!*con_cls) {
        *con_cls = &seen;
        return MHD_YES;
    }
    if (*upload_data_size) {
        *upload_data_size = 0; /* ignore any body */
        return MHD_YES;
    }
    atomic_fetch_add(&requests, 1);
    return MHD_queue_response(conn, MHD_HTTP_OK, fixed);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)conn, (void)toe;
    *con_cls = NULL;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_ctx,
                          enum MHD_ConnectionNotificationCode code)
{
    (void)cls, (void)conn, (void)socket_ctx;
    if (code == MHD_CONNECTION_NOTIFY_STARTED)
        atomic_fetch_add(&conns_opened, 1);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: minimal_mhd PORT [THREADS]\n");
        return 2;
    }
    long port = strtol(argv[1], NULL, 10);
    long threads = argc > 2 ? strtol(argv[2], NULL, 10) : sysconf(_SC_NPROCESSORS_ONLN);
    if (port <= 0 || port > 65535 || threads < 1) {
        fprintf(stderr, "minimal_mhd: bad PORT or THREADS\n");
        return 2;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);

    fixed = MHD_create_response_from_buffer(sizeof body - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
    if (!fixed)
        return 1;
    MHD_add_response_header(fixed, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");

    /* Block the stop signals before MHD starts its threads so only sigwait() below sees them. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    /* The flags and options of src/http/server.c:http_server_start, minus the logger. */
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
            MHD_USE_ERROR_LOG,
        0, NULL, NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)threads, MHD_OPTION_CONNECTION_TIMEOUT, 30u,
        MHD_OPTION_CONNECTION_LIMIT, 1024u, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL, MHD_OPTION_LISTENING_ADDRESS_REUSE,
        1u, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "minimal_mhd: cannot listen on 127.0.0.1:%ld\n", port);
        return 1;
    }
    printf("minimal_mhd: serving on 127.0.0.1:%ld threads=%ld\n", port, threads);
    fflush(stdout);

    int sig;
    sigwait(&stop, &sig);
    MHD_stop_daemon(d);
    MHD_destroy_response(fixed);
    printf("minimal_mhd: connections_opened=%lu requests=%lu\n", atomic_load(&conns_opened),
           atomic_load(&requests));
    return 0;
}

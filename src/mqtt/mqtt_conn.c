/* mqtt_conn: a broker connection with its own network thread, for sinergi's admin and ingest
 * clients. It connects, runs the loop and reconnects with backoff for as long as sinergi runs
 * (libmosquitto's own loop_start thread gives up when the very first connect fails). Threaded
 * mode: packets leave only from this loop, after callbacks return; other threads may publish. */
#include <errno.h>
#include <mosquitto.h>
#include <poll.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <time.h>

#include "core/clock.h"
#include "core/log.h"
#include "mqtt/mqtt_int.h"
#include "core/banned.h"

enum {
    LOOP_MS = 100,
    KEEPALIVE_S = 60,
    BACKOFF_MIN_MS = 100,
    BACKOFF_MAX_MS = 5000,
    BURST_MAX = 512, /* packets read before the burst ends and the replies leave */
};

bool mqtt__conn_stopping(struct mqtt__conn *c)
{
    pthread_mutex_lock(&c->lock);
    bool s = c->stopping;
    pthread_mutex_unlock(&c->lock);
    return s;
}

static void pause_ms(struct mqtt__conn *c, int ms)
{
    struct timespec until = clock_deadline(CLOCK_REALTIME, (uint64_t)ms * 1000000u);
    pthread_mutex_lock(&c->lock);
    if (!c->stopping)
        pthread_cond_timedwait(&c->cond, &c->lock, &until);
    pthread_mutex_unlock(&c->lock);
}

/* One turn of the burst loop (libmosquitto's external-loop API): wait for the socket, read
 * every complete packet waiting (up to BURST_MAX), let the owner finish the burst, then write
 * what the callbacks queued (in threaded mode a PUBACK is only queued by the read) and keep the
 * connection alive. mosquitto_loop reads one packet per call, each after a pselect and with its
 * PUBACK written on the next turn: ~8 system calls a message, where this makes ~5. The
 * library's read of a packet ends with errno EAGAIN when the socket ran dry, but also when its
 * wake-up pipe is full (nobody reads it here); FIONREAD tells the two apart. */
static int loop_burst(struct mqtt__conn *c)
{
    struct mosquitto *m = c->mosq;
    int fd = mosquitto_socket(m);
    if (fd < 0)
        return MOSQ_ERR_NO_CONN;
    struct pollfd p = {.fd = fd, .events = POLLIN | (mosquitto_want_write(m) ? POLLOUT : 0)};
    int n = poll(&p, 1, LOOP_MS);
    if (n < 0)
        return errno == EINTR ? MOSQ_ERR_SUCCESS : MOSQ_ERR_ERRNO;
    int rc = MOSQ_ERR_SUCCESS;
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
        for (int i = 0; i < BURST_MAX && !(c->burst_full && c->burst_full()); i++) {
            errno = 0;
            rc = mosquitto_loop_read(m, 1);
            if (rc != MOSQ_ERR_SUCCESS || mosquitto_socket(m) < 0)
                break;
            int avail = 0;
            if ((errno == EAGAIN || errno == EWOULDBLOCK) &&
                (ioctl(fd, FIONREAD, &avail) != 0 || avail <= 0))
                break;
        }
    }
    c->burst_end(); /* before any PUBACK of the burst leaves */
    if (rc != MOSQ_ERR_SUCCESS)
        return rc;
    if (mosquitto_socket(m) < 0)
        return MOSQ_ERR_NO_CONN;
    rc = mosquitto_loop_misc(m); /* may queue a PINGREQ */
    if (rc == MOSQ_ERR_SUCCESS && mosquitto_want_write(m))
        rc = mosquitto_loop_write(m, 1);
    return rc;
}

static int next_backoff(int ms)
{
    return ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : ms * 2;
}

static void *conn_main(void *arg)
{
    struct mqtt__conn *c = arg;
    if (c->prepare && !c->prepare(c))
        return NULL;
    bool connected = false, first = true, logged = false;
    int backoff = BACKOFF_MIN_MS;
    while (!mqtt__conn_stopping(c)) {
        if (!connected) {
            int rc = first
                         ? mosquitto_connect(c->mosq, mqtt__conf.host, mqtt__conf.port, KEEPALIVE_S)
                         : mosquitto_reconnect(c->mosq);
            if (rc != MOSQ_ERR_SUCCESS) {
                if (!logged)
                    log_warn("event=mqtt_broker_unreachable client=%s broker=%s:%d "
                             "detail=\"%s\" retry=background",
                             c->what, mqtt__conf.host, mqtt__conf.port, mosquitto_strerror(rc));
                logged = true;
                if (c->tick)
                    c->tick();
                pause_ms(c, backoff);
                backoff = next_backoff(backoff);
                continue;
            }
            first = false;
            connected = true;
        }
        int rc = c->burst_end ? loop_burst(c) : mosquitto_loop(c->mosq, LOOP_MS, 1);
        if (rc != MOSQ_ERR_SUCCESS) {
            connected = false;
            atomic_store(&c->up, false);
            if (!mqtt__conn_stopping(c) && !logged)
                log_warn("event=mqtt_disconnected client=%s detail=\"%s\" retry=background",
                         c->what, mosquitto_strerror(rc));
            logged = true;
            pause_ms(c, backoff);
            backoff = next_backoff(backoff);
        } else if (atomic_load(&c->up)) { /* accepted by the broker: a later loss is news */
            logged = false;
            backoff = BACKOFF_MIN_MS;
        }
        if (c->tick)
            c->tick();
    }
    if (connected) {
        mosquitto_disconnect(c->mosq);
        if (c->burst_end) /* only writes: a packet read now would be acknowledged unkept */
            mosquitto_loop_write(c->mosq, 1);
        else
            mosquitto_loop(c->mosq, 10, 1); /* the DISCONNECT and any PUBACK still queued */
    }
    return NULL;
}

enum err_code mqtt__conn_start(struct mqtt__conn *c, struct err *err)
{
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    c->stopping = false;
    atomic_store(&c->up, false);
    mosquitto_threaded_set(c->mosq, true);
    if (pthread_create(&c->thread, NULL, conn_main, c) != 0)
        return err_set(err, ERR_INTERNAL, "cannot start the broker %s thread", c->what);
    c->running = true;
    return ERR_OK;
}

void mqtt__conn_stop(struct mqtt__conn *c)
{
    if (!c->running)
        return;
    pthread_mutex_lock(&c->lock);
    c->stopping = true;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
    pthread_join(c->thread, NULL);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->cond);
    c->running = false;
}

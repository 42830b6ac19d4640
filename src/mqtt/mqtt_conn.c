/* mqtt_conn: a broker connection with its own network thread, for sinergi's admin and ingest
 * clients. It connects, runs the loop and reconnects with backoff for as long as sinergi runs
 * (libmosquitto's own loop_start thread gives up when the very first connect fails). Threaded
 * mode: packets leave only from this loop, after callbacks return; other threads may publish. */
#include <mosquitto.h>
#include <pthread.h>
#include <time.h>

#include "core/log.h"
#include "mqtt/mqtt_int.h"
#include "core/banned.h"

enum { LOOP_MS = 100, KEEPALIVE_S = 60, BACKOFF_MIN_MS = 100, BACKOFF_MAX_MS = 5000 };

bool mqtt__conn_stopping(struct mqtt__conn *c)
{
    pthread_mutex_lock(&c->lock);
    bool s = c->stopping;
    pthread_mutex_unlock(&c->lock);
    return s;
}

static void pause_ms(struct mqtt__conn *c, int ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&c->lock);
    if (!c->stopping)
        pthread_cond_timedwait(&c->cond, &c->lock, &until);
    pthread_mutex_unlock(&c->lock);
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
        int rc = mosquitto_loop(c->mosq, LOOP_MS, 1);
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
        mosquitto_loop(c->mosq, 10, 1); /* sends the DISCONNECT and any PUBACK still queued */
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

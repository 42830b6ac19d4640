/* mqtt_device: one device's connection to the broker, for the simulator and load generators:
 * connect with the station's credentials, publish, wait for the broker's acknowledgements. */
#include <mosquitto.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "mqtt/mqtt_int.h"
#include "core/banned.h"

struct mqtt_device {
    struct mosquitto *mosq;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int connack; /* -1 until the broker answers */
    bool connected;
    int unacked; /* published, not yet sent (QoS 0) or acknowledged (QoS 1) */
};

static void on_connect(struct mosquitto *m, void *ctx, int rc)
{
    struct mqtt_device *d = ctx;
    pthread_mutex_lock(&d->lock);
    d->connack = rc;
    d->connected = rc == 0;
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
}

static void on_disconnect(struct mosquitto *m, void *ctx, int rc)
{
    struct mqtt_device *d = ctx;
    pthread_mutex_lock(&d->lock);
    d->connected = false;
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
}

static void on_publish(struct mosquitto *m, void *ctx, int mid)
{
    struct mqtt_device *d = ctx;
    pthread_mutex_lock(&d->lock);
    if (d->unacked > 0)
        d->unacked--;
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
}

static struct timespec deadline_in(int ms)
{
    return clock_deadline(CLOCK_REALTIME, (uint64_t)ms * 1000000u);
}

static void device_free(struct mqtt_device *d)
{
    if (d->mosq)
        mosquitto_destroy(d->mosq);
    pthread_mutex_destroy(&d->lock);
    pthread_cond_destroy(&d->cond);
    free(d);
}

enum err_code mqtt_device_connect(struct mqtt_device **out, const char *host, int port,
                                  const char *username, const char *password, struct err *err)
{
    mqtt__lib_init();
    struct mqtt_device *d = calloc(1, sizeof *d);
    if (!d)
        return err_set(err, ERR_INTERNAL, "out of memory");
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->cond, NULL);
    d->connack = -1;
    d->mosq = mosquitto_new(NULL, true, d);
    if (!d->mosq) {
        device_free(d);
        return err_set(err, ERR_INTERNAL, "cannot create an MQTT client");
    }
    mosquitto_username_pw_set(d->mosq, username, password);
    mosquitto_connect_callback_set(d->mosq, on_connect);
    mosquitto_disconnect_callback_set(d->mosq, on_disconnect);
    mosquitto_publish_callback_set(d->mosq, on_publish);
    mosquitto_reconnect_delay_set(d->mosq, 1, 5, false);
    int rc = mosquitto_connect(d->mosq, host, port, 30);
    if (rc != MOSQ_ERR_SUCCESS) {
        device_free(d);
        return err_set(err, ERR_UNAVAILABLE, "cannot reach the broker at %s:%d: %s", host, port,
                       mosquitto_strerror(rc));
    }
    if (mosquitto_loop_start(d->mosq) != MOSQ_ERR_SUCCESS) {
        device_free(d);
        return err_set(err, ERR_INTERNAL, "cannot start an MQTT client thread");
    }
    struct timespec until = deadline_in(MQTT_WAIT_MS);
    pthread_mutex_lock(&d->lock);
    while (d->connack < 0)
        if (pthread_cond_timedwait(&d->cond, &d->lock, &until) != 0)
            break;
    int connack = d->connack;
    pthread_mutex_unlock(&d->lock);
    if (connack != 0) {
        mosquitto_disconnect(d->mosq);
        mosquitto_loop_stop(d->mosq, connack < 0);
        device_free(d);
        if (connack < 0)
            return err_set(err, ERR_UNAVAILABLE, "the broker did not answer in time");
        return err_set(err, ERR_UNAUTHENTICATED, "the broker refused '%s': %s", username,
                       mosquitto_connack_string(connack));
    }
    *out = d;
    return ERR_OK;
}

enum err_code mqtt_device_publish(struct mqtt_device *d, const char *topic, const void *payload,
                                  size_t len, int qos, struct err *err)
{
    pthread_mutex_lock(&d->lock);
    d->unacked++;
    pthread_mutex_unlock(&d->lock);
    int rc = mosquitto_publish(d->mosq, NULL, topic, (int)len, payload, qos, false);
    if (rc == MOSQ_ERR_SUCCESS)
        return ERR_OK;
    pthread_mutex_lock(&d->lock);
    d->unacked--;
    pthread_mutex_unlock(&d->lock);
    return err_set(err, ERR_UNAVAILABLE, "publishing to %s failed: %s", topic,
                   mosquitto_strerror(rc));
}

int mqtt_device_unacked(struct mqtt_device *d)
{
    pthread_mutex_lock(&d->lock);
    int n = d->unacked;
    pthread_mutex_unlock(&d->lock);
    return n;
}

int mqtt_device_close(struct mqtt_device *d, int timeout_ms)
{
    if (!d)
        return 0;
    struct timespec until = deadline_in(timeout_ms);
    pthread_mutex_lock(&d->lock);
    while (d->unacked > 0)
        if (pthread_cond_timedwait(&d->cond, &d->lock, &until) != 0)
            break;
    int left = d->unacked;
    pthread_mutex_unlock(&d->lock);
    mosquitto_disconnect(d->mosq);
    mosquitto_loop_stop(d->mosq, false);
    device_free(d);
    return left;
}

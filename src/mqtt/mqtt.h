/* mqtt: readings from devices over a Mosquitto broker, and the broker's accounts kept in step with
 * stations. Devices connect with username = station code and password = device token and may
 * publish only to sinergi/ingest/<code> (the broker's dynamic-security plugin enforces it);
 * sinergi subscribes with a persistent session and spools each message to disk before the broker
 * gets its PUBACK.
 *
 * What is guaranteed. A QoS 1 reading the broker PUBACKed to the device is stored exactly once
 * (same sensor and time: once) across any crash, kill -9 or restart of sinergi and a clean
 * restart of the broker: the broker queues it for sinergi's persistent session (and saves the
 * queue on exit), sinergi writes it to its spool before acknowledging it and replays the spool
 * at start. Not covered: a crash or power loss of the broker loses what it acknowledged in the
 * last autosave_interval (1 s) and had not yet delivered; a power loss of the machine loses
 * spooled messages not yet fdatasync'ed (mqtt_spool_fsync_ms, 1 s) nor committed; beyond
 * max_queued_messages per client (1,000,000) the broker drops, and every drop is counted on
 * /metrics (sinergi_mqtt_broker_dropped_messages) and logged, with one gap: Mosquitto 2.0
 * hands its retained drop counter to a new subscriber only within a minute of its last change,
 * so when sinergi reconnects later than that the drops made while it was away arrive only with
 * the next drop; until a value arrives after a connect, sinergi_mqtt_broker_dropped_known is 0
 * (the broker's log names every drop). The counter is read on a clean session of its own, so no
 * update of it is queued (and dropped, and counted) while sinergi is away. QoS 0 is at most once from the
 * device to the broker; the broker queues it for sinergi like QoS 1 (queue_qos0_messages), and
 * once received it is spooled the same way. */
#ifndef SINERGI_MQTT_H
#define SINERGI_MQTT_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"

struct mqtt_settings {
    const char *host;
    int port;
    const char *username;      /* the broker's dynamic-security admin */
    const char *password_file; /* its password: first line of this file */
    const char *spool_dir;     /* messages received, not yet committed */
    int spool_fsync_ms;        /* fdatasync the spool this often; 0 = before each PUBACK */
};

/* Replays what the spool holds (readings committed before this returns), then starts the
 * account keeper and the ingest client in the background: a broker that is down is retried,
 * never fatal. Sets the sensors station hook. Call after sensors_start. ERR_INVALID when the
 * password file cannot be read; ERR_INTERNAL when the spool directory cannot be used. */
enum err_code mqtt_start(const struct mqtt_settings *s, struct err *err);
/* Disconnects, stops the threads and clears the station hook. Call before sensors_stop: it waits
 * for the readings it submitted. */
void mqtt_stop(void);

/* Only the account keeper: broker accounts follow station changes made in this process (used by
 * `sinergi simulate`, which rotates demo stations' tokens). No reconciliation, no ingest. */
enum err_code mqtt_accounts_start(const struct mqtt_settings *s, struct err *err);
void mqtt_accounts_stop(void);
/* Waits until the admin connection is up; false on timeout (the broker is unreachable or refuses
 * the admin's credentials). */
bool mqtt_accounts_ready(int timeout_ms);
/* Waits until every account change made so far reached the broker; false on timeout. */
bool mqtt_accounts_flush(int timeout_ms);

/* Counters of the MQTT room in the Prometheus text format; empty when MQTT is off. The caller
 * frees the text; NULL when out of memory. */
char *mqtt_metrics_text(size_t *len);

/* ---- a device's connection (the simulator, benchmarks) ----------------------------------- */
struct mqtt_device;
/* Connects as `username` with `password` and runs its network loop in a thread.
 * ERR_UNAUTHENTICATED when the broker refuses the credentials, ERR_UNAVAILABLE when it cannot
 * be reached. */
enum err_code mqtt_device_connect(struct mqtt_device **out, const char *host, int port,
                                  const char *username, const char *password, struct err *err);
/* Queues one message (the library copies it). ERR_UNAVAILABLE when the connection is lost. */
enum err_code mqtt_device_publish(struct mqtt_device *d, const char *topic, const void *payload,
                                  size_t len, int qos, struct err *err);
/* Messages published and not yet sent (QoS 0) or acknowledged by the broker (QoS 1). */
int mqtt_device_unacked(struct mqtt_device *d);
/* Waits up to `timeout_ms` for every message to be sent (QoS 0) or acknowledged (QoS 1), then
 * disconnects and frees `d` (may be NULL). Returns how many were still waiting. */
int mqtt_device_close(struct mqtt_device *d, int timeout_ms);

#endif

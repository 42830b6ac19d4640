/* Private to src/mqtt/: settings, counters, the account keeper, the spool and the ingest client. */
#ifndef SINERGI_MQTT_INT_H
#define SINERGI_MQTT_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "mqtt/mqtt.h"

enum {
    MQTT_PASSWORD_MAX = 256,
    MQTT_CODE_MAX = 32,         /* station codes, as the sensors room allows */
    MQTT_PAYLOAD_MAX = 4 << 20, /* larger messages are refused, not spooled */
    MQTT_WAIT_MS = 5000,        /* one dynamic-security request */
};

/* Broker-side names sinergi owns. A '.' never appears in a station code, so no station can take
 * these usernames (a station named "admin" must not receive the admin's password). */
#define MQTT_SERVICE_USER "sinergi.service"
#define MQTT_SERVICE_ROLE "sinergi.service"
#define MQTT_INGEST_CLIENT_ID "sinergi.ingest"
#define MQTT_DROPS_CLIENT_ID "sinergi.drops" /* clean session: the drop counter only */
#define MQTT_STATION_ROLE_PREFIX "station-"
#define MQTT_INGEST_PREFIX "sinergi/ingest/"
#define MQTT_DROPPED_TOPIC "$SYS/broker/publish/messages/dropped"

struct mqtt__conf {
    char host[256];
    int port;
    char username[128];
    char password[MQTT_PASSWORD_MAX];
    char spool_dir[512];
    int spool_fsync_ms;
};
extern struct mqtt__conf mqtt__conf;

/* Copies the settings and reads the admin password file. */
enum err_code mqtt__configure(const struct mqtt_settings *s, struct err *err);
/* mosquitto_lib_init once per process. */
void mqtt__lib_init(void);
/* True for a station code as the sensors room accepts it: 2 to 32 of a-z 0-9 - _ */
bool mqtt__code_valid(const char *s, size_t len);

/* A broker connection with its own network thread (mqtt_conn.c): connects, loops and
 * reconnects with backoff until stopped. Packets leave only from its loop, after callbacks
 * return (libmosquitto threaded mode); other threads may publish. */
struct mqtt__conn {
    struct mosquitto *mosq;                /* set up by the owner; callbacks set before start */
    const char *what;                      /* "admin", "ingest": for the log */
    bool (*prepare)(struct mqtt__conn *c); /* before the first connect; false = give up */
    void (*tick)(void);                    /* between packets, about every 100 ms */
    /* Set: the connection reads every packet waiting (a burst, bounded) and calls this before
     * any packet leaves, so what the callbacks of a burst kept can be written once. Unset:
     * mosquitto_loop, one packet at a time. */
    void (*burst_end)(void);
    /* Set with burst_end: true ends a burst early (what it keeps is large). */
    bool (*burst_full)(void);
    atomic_bool up; /* the owner's on_connect sets it on an accepted CONNACK */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stopping, running;
};
enum err_code mqtt__conn_start(struct mqtt__conn *c, struct err *err);
/* Stops the thread after disconnecting; the owner destroys mosq. */
void mqtt__conn_stop(struct mqtt__conn *c);
bool mqtt__conn_stopping(struct mqtt__conn *c);

struct mqtt__counters {
    atomic_uint_fast64_t received, stored, duplicates, rejected, malformed, unknown_station,
        commit_failures, replayed, spool_errors, broker_dropped, account_errors;
    atomic_int connected, enabled, accounts_pending;
    /* 1 once the broker's drop counter arrived since the last connect: Mosquitto 2.0 stops
     * handing its retained $SYS value to new subscribers a minute after it last changed, so
     * after a long absence the count of drops made meanwhile may never arrive */
    atomic_int broker_dropped_known;
};
extern struct mqtt__counters mqtt__counters;

/* ---- accounts (mqtt_accounts.c) ---------------------------------------------------------- */
/* `service` true: also create the service account the ingest client uses and reconcile broker
 * accounts with the stations (serve); false: only follow station changes (simulate). */
enum err_code mqtt__accounts_start(bool service, struct err *err);
void mqtt__accounts_stop(void);
/* Blocks until the service account holds a fresh password and copies it; false when stopping
 * or when `give_up` (polled) says so. */
bool mqtt__service_password(char out[MQTT_PASSWORD_MAX], bool (*give_up)(void));

/* ---- spool (mqtt_spool.c) ---------------------------------------------------------------- */
struct spool_seg;
enum err_code mqtt__spool_open(const char *dir, int fsync_ms, struct err *err);
/* Ingests every message left in the spool by an earlier run and waits for the commits. */
enum err_code mqtt__spool_replay(struct err *err);
/* Stages one message for the next flush (ingest thread only); false when out of memory
 * (counted and logged; the message is then ingested without a spool record). */
bool mqtt__spool_stage(const char *code, const void *payload, size_t len);
size_t mqtt__spool_staged_bytes(void);
/* Writes every staged message with one write(2) (from then on it survives a crash of this
 * process). Returns the segment to pass to mqtt__spool_done once per staged message, or NULL
 * when nothing was staged or the spool could not be written (counted and logged; the messages
 * are still ingested). Ingest thread only. */
struct spool_seg *mqtt__spool_flush(void);
/* The message is finished: committed (or refused for good), or `failed` when storing failed and
 * the segment must be kept for replay at the next start. Any thread. */
void mqtt__spool_done(struct spool_seg *seg, bool failed);
/* Periodic work: fdatasync, closing and deleting finished segments. Ingest thread only. */
void mqtt__spool_tick(void);
/* Waits for outstanding messages (bounded), syncs and closes. */
void mqtt__spool_close(void);

/* ---- ingest (mqtt_ingest.c) -------------------------------------------------------------- */
/* Prepares and submits one message's payload; `seg` (may be NULL) is finished when it is
 * committed. Used by the client and by spool replay (`replay` counts separately). */
void mqtt__ingest_payload(const char *code, const char *payload, size_t len, struct spool_seg *seg,
                          bool replay);
enum err_code mqtt__ingest_start(struct err *err);
void mqtt__ingest_stop(void);

#endif

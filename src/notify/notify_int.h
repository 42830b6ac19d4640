/* Private to src/notify/: settings, the outbox queries the deliverers share, the webhook
 * deliverer (libcurl multi, one thread) and the MQTT publisher (libmosquitto, one thread). */
#ifndef SINERGI_NOTIFY_INT_H
#define SINERGI_NOTIFY_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "notify/notify.h"

enum {
    NOTIFY_POLL_MS = 1000,    /* the outbox is read at least this often */
    NOTIFY_MAX_INFLIGHT = 64, /* attempts in flight per channel */
    NOTIFY_TARGET_MAX = 48,
    NOTIFY_ID_MAX = 48,      /* "<alert id>.<version>" */
    NOTIFY_SIG_LEN = 7 + 64, /* "sha256=" + hex */
};

#define NOTIFY_TOPIC_PREFIX "sinergi/alerts/"
#define NOTIFY_MQTT_USER "sinergi.notify" /* a '.' never appears in a station code */

struct notify__conf {
    int64_t timeout_ms, backoff_min_ms, backoff_max_ms;
    bool mqtt;
    char mqtt_host[256];
    int mqtt_port;
    char mqtt_username[128];
    char mqtt_password[256]; /* the admin's */
};
extern struct notify__conf notify__conf;
extern struct db *notify__db;

/* One delivery being attempted: a deliveries row with what its channel needs to send it. */
struct notify__job {
    int64_t id;       /* deliveries.id */
    int64_t attempts; /* before this one */
    char target[NOTIFY_TARGET_MAX];
    char delivery[NOTIFY_ID_MAX];
    char station[40];
    int64_t webhook_id;
    char *payload; /* owned */
    size_t len;
    char *url, *secret; /* owned; webhooks only */
    int64_t started_ms;
    int mid;       /* MQTT message id */
    void *handle;  /* webhooks: the CURL easy handle */
    void *headers; /* webhooks: its curl_slist of headers */
};

/* Is `target` being attempted now? The deliverer's own bookkeeping. */
typedef bool (*notify__busy_fn)(const char *target, void *ctx);

/* Loads up to `max` due jobs of `channel` ("webhook" or "mqtt"), one per target, skipping busy
 * targets: for webhooks the oldest waiting delivery of each target (order), for MQTT the newest
 * (older waiting ones of that topic are marked superseded). *next_ms gets the time the next
 * not-yet-due delivery falls due (INT64_MAX: none). Returns the number loaded into out[]. */
int notify__due(const char *channel, notify__busy_fn busy, void *ctx, struct notify__job **out,
                int max, int64_t *next_ms);
void notify__job_free(struct notify__job *j);
/* Records one attempt: delivered, or failed with `error` (short, no secrets or payload) and
 * scheduled again after the backoff. */
void notify__record(const struct notify__job *j, bool ok, const char *error);
/* Delay before the next attempt after `attempts` failed ones. */
int64_t notify__backoff_ms(int64_t attempts);
/* "sha256=<hex>" of HMAC-SHA256(key = secret, body). */
void notify__sign(const char *secret, const char *body, size_t len, char out[NOTIFY_SIG_LEN + 1]);

/* ---- webhook_send.c ------------------------------------------------------------------------ */
enum err_code notify__webhooks_start(struct err *err);
void notify__webhooks_stop(void);
void notify__webhooks_kick(void);

/* ---- mqtt_pub.c -------------------------------------------------------------------------- */
enum err_code notify__mqtt_start(struct err *err);
void notify__mqtt_stop(void);
void notify__mqtt_kick(void);

#endif

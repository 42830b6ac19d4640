/* notify: delivers notifications written to an outbox in the same transaction as the change
 * that caused them, after commit: webhooks (JSON POST signed with HMAC-SHA256, for SMS and
 * WhatsApp gateways) and MQTT (retained, for sirens and displays). Survives kill -9 between
 * decision and delivery (the outbox is in the database), retries with backoff, and each target
 * is delivered on its own so a dead or slow endpoint never delays the others. Receivers
 * deduplicate by the delivery id "<alert id>.<version>" sent with every notification.
 *
 * What is guaranteed. A notification whose transaction committed reaches every target it was
 * queued for at least once, across crashes and restarts, for as long as the target exists
 * (deleting a webhook drops what it had not received). It may arrive more than once (a crash
 * after the receiver got it and before the delivery was recorded, or a timeout the receiver did
 * not notice): receivers deduplicate by delivery id. Per webhook, notifications arrive in the
 * order they were decided: the next one is sent only after the previous one was acknowledged
 * with a 2xx (a webhook that keeps failing holds its own queue, no other). Per MQTT topic only
 * the newest notification matters (the message is retained): an older one still waiting when a
 * newer one is queued is superseded and not published.
 *
 * Webhook request: POST <url>, body = the item's payload plus "delivery_id", headers
 *   Content-Type: application/json
 *   X-Sinergi-Delivery: <alert id>.<version>
 *   X-Sinergi-Signature: sha256=<lowercase hex HMAC-SHA256 of the raw body, key = the secret>
 * Delivered = any 2xx within notify_timeout_ms; anything else (including 3xx: redirects are not
 * followed) is retried after 1, 2, 4 ... s (notify_backoff_min_ms doubling), at most
 * notify_backoff_max_s apart, for ever. Secrets and payloads are never logged: log lines name
 * webhook and delivery ids only.
 *
 * MQTT: QoS 1, retained, on sinergi/alerts/<station>, MQTT 5 so the broker's PUBACK says whether
 * it accepted the message (a refused publish is an error, not a delivery). sinergi publishes as
 * its own broker account "sinergi.notify" (publish to sinergi/alerts/# only), created through
 * the dynamic-security plugin with the admin account of the mqtt_* settings, with a random
 * password set afresh at every start and kept in memory. Only public warnings of tier 0 go to
 * MQTT; with MQTT disabled no MQTT deliveries are queued.
 *
 * Tables (owned here):
 *   webhooks(id, url, secret, tier, public_only, description, enabled, created_at, created_by)
 *     tier 0 gets every notification of tier 0; tier N >= 1 only escalations to tier N.
 *     public_only: gets public warnings only (a gateway that texts the public).
 *   outbox(id, alert_id, version, station, tier, public, payload, created_at)
 *     one row per notification, UNIQUE (alert_id, version); payload is the exact body sent.
 *   deliveries(id, outbox_id, channel, target, webhook_id, state, attempts, next_at,
 *              delivered_at, last_error)
 *     one row per notification and target ('webhook:<id>' or 'mqtt:<station>'); state
 *     pending, delivered or superseded; times in ms. */
#ifndef SINERGI_NOTIFY_H
#define SINERGI_NOTIFY_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "auth/auth.h"
#include "core/err.h"
#include "db/db.h"

extern const struct db_migration notify_migrations[];

struct notify_item {
    int64_t alert_id, version;
    const char *station; /* station code: MQTT topic sinergi/alerts/<station> */
    int tier;            /* 0 = everyone; N = escalation tier N */
    bool public_warning; /* false: operators only (not published to public channels) */
    json_t *payload;     /* borrowed; a JSON object, the body sent (plus "delivery_id") */
};

/* Queues a notification: the outbox row and a delivery row per target that should get it
 * (enabled webhooks of the item's tier, not public_only ones for operator-only items; MQTT
 * for public warnings of tier 0 when MQTT is on). Call inside the transaction that makes the
 * change; it opens none. ERR_CONFLICT when (alert_id, version) was queued already. */
enum err_code notify_enqueue(struct db_conn *c, const struct notify_item *n, struct err *err);
/* Wakes the deliverers; call after the transaction committed. Thread-safe, cheap, and a no-op
 * when notify is not running (the deliverers also poll the outbox every second). */
void notify_kick(void);

struct notify_settings {
    int64_t timeout_ms;     /* per delivery attempt (webhook response, broker PUBACK) */
    int64_t backoff_min_ms; /* first retry delay, doubled per failure; 0 = 1000 */
    int64_t backoff_max_s;
    /* MQTT: publish retained to sinergi/alerts/<station>; NULL host = off. username and
     * password_file name the broker's dynamic-security admin (the mqtt_* settings). */
    const char *mqtt_host;
    int mqtt_port;
    const char *mqtt_username, *mqtt_password_file;
};
/* Starts the deliverers (one thread for every webhook, one for MQTT); what the outbox holds
 * from before is delivered too. Call before anything enqueues (ews_start), so MQTT deliveries
 * are queued from the first decision. A broker that is down is retried in the background.
 * ERR_INVALID when the admin password file cannot be read. */
enum err_code notify_start(struct db *db, const struct notify_settings *s, struct err *err);
/* Stops the deliverers at once: attempts in flight are abandoned and stay queued (at-least-once:
 * they are sent again at the next start). Call after the last enqueuer stopped, before
 * db_close. */
void notify_stop(void);

/* Webhook targets (admin): {"url","secret"?,"tier"?,"public_only"?,"description"?}. The secret is
 * generated when not given and returned once on create; lists never show it. Each webhook in a
 * list carries "pending" (deliveries waiting) and "last_error" (of the oldest waiting one). */
enum err_code notify_webhook_list(struct db_conn *c, json_t **out, struct err *err);
enum err_code notify_webhook_create(struct db_conn *c, const struct actor *a, json_t *in,
                                    json_t **out, struct err *err);
/* Deletes the webhook and what it had not received yet. */
enum err_code notify_webhook_delete(struct db_conn *c, const struct actor *a, int64_t id,
                                    struct err *err);

#endif

/* mqtt: start and stop of the room (spool replay, account keeper, ingest client), its settings
 * and its counters for /metrics. */
#include <errno.h>
#include <mosquitto.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/log.h"
#include "mqtt/mqtt_int.h"
#include "sensors/sensors.h"
#include "core/banned.h"

struct mqtt__conf mqtt__conf;
struct mqtt__counters mqtt__counters;

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;

static void lib_init_once(void)
{
    mosquitto_lib_init();
}

void mqtt__lib_init(void)
{
    pthread_once(&lib_once, lib_init_once);
}

bool mqtt__code_valid(const char *s, size_t len)
{
    if (len < 2 || len > MQTT_CODE_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
            return false;
    }
    return true;
}

static enum err_code read_password(const char *path, char out[MQTT_PASSWORD_MAX], struct err *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return err_set(err, ERR_INVALID,
                       "setting 'mqtt_password_file': %s cannot be read (%s); start the broker "
                       "with scripts/mqtt-broker.sh, which writes it",
                       path, strerror(errno));
    bool ok = fgets(out, MQTT_PASSWORD_MAX, f) != NULL;
    fclose(f);
    if (ok)
        out[strcspn(out, "\r\n")] = 0;
    if (!ok || !out[0])
        return err_set(err, ERR_INVALID, "setting 'mqtt_password_file': %s is empty", path);
    return ERR_OK;
}

enum err_code mqtt__configure(const struct mqtt_settings *s, struct err *err)
{
    struct mqtt__conf *c = &mqtt__conf;
    sodium_memzero(c, sizeof *c);
    snprintf(c->host, sizeof c->host, "%s", s->host);
    c->port = s->port;
    snprintf(c->username, sizeof c->username, "%s", s->username);
    snprintf(c->spool_dir, sizeof c->spool_dir, "%s", s->spool_dir ? s->spool_dir : "");
    c->spool_fsync_ms = s->spool_fsync_ms;
    if (strchr(c->username, '.') == NULL && mqtt__code_valid(c->username, strlen(c->username)))
        return err_set(err, ERR_INVALID,
                       "setting 'mqtt_username' '%s' could be a station code; the broker admin "
                       "needs a name with a '.', e.g. sinergi.admin",
                       c->username);
    mqtt__lib_init();
    return read_password(s->password_file, c->password, err);
}

enum err_code mqtt_start(const struct mqtt_settings *s, struct err *err)
{
    if (mqtt__configure(s, err) || mqtt__spool_open(s->spool_dir, s->spool_fsync_ms, err))
        return err->code;
    if (mqtt__spool_replay(err) || mqtt__accounts_start(true, err)) {
        mqtt__spool_close();
        return err->code;
    }
    if (mqtt__ingest_start(err)) {
        mqtt__accounts_stop();
        mqtt__spool_close();
        return err->code;
    }
    atomic_store(&mqtt__counters.enabled, 1);
    log_info("event=mqtt_started broker=%s:%d spool=%s", mqtt__conf.host, mqtt__conf.port,
             mqtt__conf.spool_dir);
    return ERR_OK;
}

void mqtt_stop(void)
{
    if (!atomic_load(&mqtt__counters.enabled))
        return;
    mqtt__ingest_stop();   /* no new messages */
    mqtt__accounts_stop(); /* clears the station hook */
    mqtt__spool_close();   /* waits for the writer to commit what was submitted */
    atomic_store(&mqtt__counters.enabled, 0);
    sodium_memzero(mqtt__conf.password, sizeof mqtt__conf.password);
}

enum err_code mqtt_accounts_start(const struct mqtt_settings *s, struct err *err)
{
    if (mqtt__configure(s, err))
        return err->code;
    return mqtt__accounts_start(false, err);
}

void mqtt_accounts_stop(void)
{
    mqtt__accounts_stop();
    sodium_memzero(mqtt__conf.password, sizeof mqtt__conf.password);
}

/* ---- metrics ------------------------------------------------------------------------------ */
static const struct {
    const char *name, *type, *help;
    size_t offset;
} metrics[] = {
#define C(field, name, help)                                                                       \
    {                                                                                              \
        name, "counter", help, offsetof(struct mqtt__counters, field)                              \
    }
    C(received, "sinergi_mqtt_messages_received_total",
      "Messages received on sinergi/ingest/<station> (spool replays not included)."),
    C(stored, "sinergi_mqtt_readings_stored_total", "Readings from MQTT committed to the store."),
    C(duplicates, "sinergi_mqtt_readings_duplicate_total",
      "Readings from MQTT already stored (same sensor and time), not stored again."),
    C(rejected, "sinergi_mqtt_records_rejected_total",
      "SenML records refused (unknown sensor, wrong unit, non-finite value, time out of window)."),
    C(malformed, "sinergi_mqtt_payloads_malformed_total",
      "Messages whose payload is not a SenML pack (or too big); nothing of them is stored."),
    C(unknown_station, "sinergi_mqtt_unknown_station_total",
      "Messages for a station that no longer exists."),
    C(commit_failures, "sinergi_mqtt_commit_failures_total",
      "Messages whose readings could not be committed; kept in the spool for the next start."),
    C(replayed, "sinergi_mqtt_spool_replayed_messages_total",
      "Messages ingested again from the spool at start (left by a crash)."),
    C(spool_errors, "sinergi_mqtt_spool_errors_total",
      "Messages that could not be written to the spool (ingested without crash protection)."),
    C(account_errors, "sinergi_mqtt_account_errors_total",
      "Broker account changes the broker refused."),
#undef C
};

char *mqtt_metrics_text(size_t *len)
{
    struct buf b;
    buf_init(&b, 1u << 20);
    if (!atomic_load(&mqtt__counters.enabled))
        return buf_detach(&b, len);
    for (size_t i = 0; i < sizeof metrics / sizeof metrics[0]; i++) {
        const atomic_uint_fast64_t *v =
            (const atomic_uint_fast64_t *)((const char *)&mqtt__counters + metrics[i].offset);
        buf_appendf(&b, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", metrics[i].name, metrics[i].help,
                    metrics[i].name, metrics[i].type, metrics[i].name,
                    (unsigned long long)atomic_load(v));
    }
    buf_appendf(&b,
                "# HELP sinergi_mqtt_broker_dropped_messages Messages the broker dropped since it "
                "started ($SYS/broker/publish/messages/dropped: full queues).\n"
                "# TYPE sinergi_mqtt_broker_dropped_messages gauge\n"
                "sinergi_mqtt_broker_dropped_messages %llu\n"
                "# HELP sinergi_mqtt_broker_dropped_known 1 when the broker reported its drop "
                "count since sinergi last connected; 0: drops made while sinergi was away may "
                "be missing from the count above (see the broker's log).\n"
                "# TYPE sinergi_mqtt_broker_dropped_known gauge\n"
                "sinergi_mqtt_broker_dropped_known %d\n"
                "# HELP sinergi_mqtt_connected 1 while the ingest client is connected to the "
                "broker.\n# TYPE sinergi_mqtt_connected gauge\nsinergi_mqtt_connected %d\n"
                "# HELP sinergi_mqtt_accounts_pending Station account changes not yet applied "
                "on the broker.\n# TYPE sinergi_mqtt_accounts_pending gauge\n"
                "sinergi_mqtt_accounts_pending %d\n",
                (unsigned long long)atomic_load(&mqtt__counters.broker_dropped),
                atomic_load(&mqtt__counters.broker_dropped_known),
                atomic_load(&mqtt__counters.connected),
                atomic_load(&mqtt__counters.accounts_pending));
    return buf_detach(&b, len);
}

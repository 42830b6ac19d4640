/* Unit tests of src/cap against a temporary SQLite file: Alert, Update and Cancel documents
 * validate against the OASIS CAP 1.2 schema (xmllint), references list exactly the earlier
 * messages, people's actions, escalation, backfill and operator-only alerts are not messages,
 * demo stations make Exercise messages, and the Atom feed lists the warnings in force. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "auth/auth.h"
#include "cap/cap.h"
#include "db/db.h"
#include "ews/ews.h"
#include "regions/regions.h"
#include "sensors/sensors.h"
#include "unit.h"

static const struct db_migration *const lists[] = {auth_migrations, regions_migrations,
                                                   sensors_migrations, ews_migrations, NULL};
static const struct cap_site site = {"73.22", "http://127.0.0.1:8080"};
#define XSD "data/cap-v1.2.xsd"

/* 2020-07-13T12:15:00Z = 20:15 WITA, when the Masamba overflowed */
#define T0 "1594642500000"

static const char *const seed =
    "INSERT INTO regions (code, name, level, parent_code) VALUES"
    " ('73', 'Sulawesi Selatan', 'provinsi', NULL),"
    " ('73.22', 'Luwu Utara', 'kabupaten', '73'),"
    " ('73.22.03', 'Masamba', 'kecamatan', '73.22'),"
    " ('73.22.03.1002', 'Bone', 'kelurahan', '73.22.03');"
    "INSERT INTO stations (id, code, name, kind, lat, lon, region, river, opd_code, interval_s,"
    " th_waspada, th_siaga, th_awas, demo, token_hash, created_at, updated_at) VALUES"
    " (1, 'pda-masamba-01', 'Pos Duga Air Masamba', 'water_level', -2.5569, 120.3304,"
    "  '73.22.03.1002', 'Sungai Masamba', 'bpbd', 600, 2.0, 3.0, 4.0, 0, 'h1', 0, 0),"
    " (2, 'demo-pda-radda', 'DEMO Pos <Radda> & Co', 'water_level', -2.56334, 120.29174,"
    "  '73.22.03.1002', 'Sungai Radda', 'bpbd', 600, 1.8, 2.7, 3.6, 1, 'h2', 0, 0),"
    " (3, 'arr-masamba', 'Penakar Hujan Masamba', 'rain', -2.5569, 120.3304,"
    "  '73.22.03.1002', 'Sungai Masamba', 'bpbd', 600, NULL, NULL, NULL, 0, 'h3', 0, 0);"
    "INSERT INTO sensors (id, station_id, name, unit) VALUES"
    " (1, 1, 'level', 'm'), (2, 2, 'level', 'm'), (3, 3, 'rain', 'mm');"
    /* 1: the full life of a public warning, with people's actions in between */
    "INSERT INTO alerts (id, station_code, rule, level, state, public, value, raised_at,"
    " updated_at, version) VALUES"
    " (1, 'pda-masamba-01', 'level', 0, 'closed', 1, 1.5, " T0 ", " T0 ", 8),"
    /* 2: an operator alarm, never public */
    " (2, 'pda-masamba-01', 'silent', 1, 'active_unack', 0, 0, " T0 ", " T0 ", 1),"
    /* 3: raised from backfilled readings, then a live level change */
    " (3, 'pda-masamba-01', 'rate_of_rise', 2, 'active_unack', 1, 2.4, " T0 ", " T0 ", 2),"
    /* 4: a demo station: Exercise */
    " (4, 'demo-pda-radda', 'level', 3, 'active_ack', 1, 3.9, " T0 ", " T0 ", 1),"
    /* 5: rain */
    " (5, 'arr-masamba', 'rain_1h', 1, 'active_unack', 1, 25, " T0 ", " T0 ", 1),"
    /* 6: raised and cleared while backfilling: nothing public, not even the Cancel */
    " (6, 'arr-masamba', 'rain_24h', 0, 'cleared_unack', 1, 3, " T0 ", " T0 ", 2);"
    "INSERT INTO alert_versions (alert_id, version, at, level, state, msg_type, value, actor,"
    " action, note, backfill) VALUES"
    " (1, 1, " T0 ", 1, 'active_unack', 'Alert', 2.1, 'rules', 'raised', '', 0),"
    " (1, 2, " T0 " + 60000, 1, 'active_ack', 'Update', 2.1, 'siti', 'ack', 'seen', 0),"
    " (1, 3, " T0 " + 600000, 2, 'active_unack', 'Update', 3.05, 'rules', 'level', '', 0),"
    " (1, 4, " T0 " + 660000, 2, 'active_unack', 'Update', 3.05, 'siti', 'shelve', 'x', 0),"
    " (1, 5, " T0 " + 900000, 2, 'active_unack', 'Update', 3.05, 'rules', 'escalate', '', 0),"
    " (1, 6, " T0 " + 1200000, 3, 'active_unack', 'Update', 4.2, 'rules', 'level', '', 0),"
    " (1, 7, " T0 " + 3600000, 2, 'active_ack', 'Update', 3.5, 'rules', 'level', '', 0),"
    " (1, 8, " T0 " + 9000000, 0, 'closed', 'Cancel', 1.5, 'rules', 'cleared', '', 0),"
    " (2, 1, " T0 ", 1, 'active_unack', 'Alert', 0, 'rules', 'raised', '', 0),"
    " (3, 1, " T0 " - 7200000, 1, 'active_unack', 'Alert', 1.9, 'rules', 'raised', '', 1),"
    " (3, 2, " T0 ", 2, 'active_unack', 'Update', 2.4, 'rules', 'level', '', 0),"
    " (4, 1, " T0 ", 3, 'active_unack', 'Alert', 3.9, 'rules', 'raised', '', 0),"
    " (5, 1, " T0 ", 1, 'active_unack', 'Alert', 25, 'rules', 'raised', '', 0),"
    " (6, 1, " T0 " - 90000000, 1, 'active_unack', 'Alert', 60, 'rules', 'raised', '', 1),"
    " (6, 2, " T0 ", 0, 'cleared_unack', 'Cancel', 3, 'rules', 'cleared', '', 0);";

static struct db *open_temp(char *path, size_t n)
{
    snprintf(path, n, "/tmp/sinergi-unit-cap-%d.db", (int)getpid());
    unlink(path);
    struct db *db;
    struct err e = ERR_INIT;
    struct db_options o = {.path = path, .pool_size = 2, .busy_timeout_ms = 1000, .sync_full = 0};
    if (db_open(&db, &o, &e))
        return NULL;
    struct db_conn *c = db_acquire(db);
    db_migrate(c, lists, &e);
    db_exec(c, seed, &e);
    if (e.code)
        fprintf(stderr, "test_cap: seeding failed: %s\n", e.msg);
    db_release(db, c);
    return e.code ? NULL : db;
}

/* xmllint's exit status for `doc`: with a schema it validates, without it checks it is
 * well-formed. */
static int xmllint(const char *doc, const char *schema, const char *name)
{
    char file[128], cmd[512];
    snprintf(file, sizeof file, "/tmp/sinergi-unit-cap-%d-%s.xml", (int)getpid(), name);
    FILE *f = fopen(file, "w");
    if (!f)
        return -1;
    fputs(doc, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "xmllint --noout %s%s %s >/dev/null 2>&1", schema ? "--schema " : "",
             schema ? schema : "", file);
    int rc = system(cmd);
    if (rc != 0) { /* again, with xmllint's explanation on stderr */
        snprintf(cmd, sizeof cmd, "xmllint --noout %s%s %s", schema ? "--schema " : "",
                 schema ? schema : "", file);
        if (system(cmd) == -1)
            return -1;
        fprintf(stderr, "test_cap: %s kept for inspection\n", file);
        return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    }
    unlink(file);
    return 0;
}

/* The text of the first <tag> in doc, into out ("" when absent). */
static const char *element(const char *doc, const char *tag, char *out, size_t n)
{
    char open[64], close[64];
    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    const char *s = doc ? strstr(doc, open) : NULL, *e = s ? strstr(s, close) : NULL;
    out[0] = 0;
    if (s && e)
        snprintf(out, n, "%.*s", (int)(e - s - strlen(open)), s + strlen(open));
    return out;
}

/* The <value> after <valueName>name</valueName> (parameter, geocode), into out. */
static const char *pair(const char *doc, const char *name, char *out, size_t n)
{
    char vn[96];
    snprintf(vn, sizeof vn, "<valueName>%s</valueName>", name);
    const char *s = doc ? strstr(doc, vn) : NULL;
    return element(s, "value", out, n);
}

/* Renders (id, version), expecting a document that validates; caller frees. */
static char *valid_message(struct db_conn *c, int64_t id, int64_t version)
{
    struct err e = ERR_INIT;
    char *doc = NULL, name[32];
    size_t len = 0;
    CHECK(cap_render_alert(c, &site, id, version, &doc, &len, &e) == ERR_OK);
    if (!doc) {
        fprintf(stderr, "test_cap: %lld-%lld: %s\n", (long long)id, (long long)version, e.msg);
        return NULL;
    }
    CHECK(strlen(doc) == len);
    snprintf(name, sizeof name, "%lld-%lld", (long long)id, (long long)version);
    CHECK(xmllint(doc, XSD, name) == 0);
    return doc;
}

static void not_a_message(struct db_conn *c, int64_t id, int64_t version)
{
    struct err e = ERR_INIT;
    char *doc = NULL;
    size_t len;
    CHECK(cap_render_alert(c, &site, id, version, &doc, &len, &e) == ERR_NOT_FOUND);
    CHECK(doc == NULL);
    free(doc);
}

#define REF(v, at) "bpbd@sinergi.73.22,urn:sinergi:73.22:alert:1:" #v ",2020-07-13T" at "+08:00"

static void test_life_of_a_warning(struct db_conn *c)
{
    char t[1024];
    char *d = valid_message(c, 1, 1);
    CHECK_STR(element(d, "identifier", t, sizeof t), "urn:sinergi:73.22:alert:1:1");
    CHECK_STR(element(d, "sender", t, sizeof t), "bpbd@sinergi.73.22");
    CHECK_STR(element(d, "sent", t, sizeof t), "2020-07-13T20:15:00+08:00");
    CHECK_STR(element(d, "status", t, sizeof t), "Actual");
    CHECK_STR(element(d, "msgType", t, sizeof t), "Alert");
    CHECK_STR(element(d, "scope", t, sizeof t), "Public");
    CHECK_STR(element(d, "references", t, sizeof t), "");
    CHECK_STR(element(d, "note", t, sizeof t), "");
    CHECK_STR(element(d, "incidents", t, sizeof t), "urn:sinergi:73.22:alert:1");
    CHECK_STR(element(d, "language", t, sizeof t), "id-ID");
    CHECK_STR(element(d, "category", t, sizeof t), "Met");
    CHECK_STR(element(d, "event", t, sizeof t), "Banjir");
    CHECK_STR(element(d, "responseType", t, sizeof t), "Monitor");
    CHECK_STR(element(d, "urgency", t, sizeof t), "Expected");
    CHECK_STR(element(d, "severity", t, sizeof t), "Moderate");
    CHECK_STR(element(d, "certainty", t, sizeof t), "Likely");
    CHECK_STR(element(d, "senderName", t, sizeof t), "BPBD Kabupaten Luwu Utara");
    CHECK(strstr(element(d, "headline", t, sizeof t), "Siaga 3 (Waspada)") != NULL);
    CHECK(strstr(t, "Sungai Masamba") != NULL);
    CHECK(strstr(element(d, "description", t, sizeof t), "2,10 m") != NULL);
    CHECK(strstr(t, "13 Juli 2020 pukul 20.15 WITA") != NULL);
    CHECK(strstr(element(d, "instruction", t, sizeof t), "Siaga 3 (Waspada) Sungai Masamba") !=
          NULL);
    CHECK_STR(element(d, "web", t, sizeof t), "http://127.0.0.1:8080/publik");
    CHECK_STR(element(d, "areaDesc", t, sizeof t),
              "Kelurahan Bone, Kecamatan Masamba, Kabupaten Luwu Utara");
    CHECK_STR(element(d, "circle", t, sizeof t), "-2.55690,120.33040 3");
    CHECK_STR(pair(d, "kode_wilayah", t, sizeof t), "73.22.03.1002");
    CHECK_STR(pair(d, "station", t, sizeof t), "pda-masamba-01");
    CHECK_STR(pair(d, "river", t, sizeof t), "Sungai Masamba");
    CHECK_STR(pair(d, "value_m", t, sizeof t), "2.10");
    CHECK_STR(pair(d, "level", t, sizeof t), "1");
    CHECK_STR(pair(d, "level_name", t, sizeof t), "Siaga 3 (Waspada)");
    free(d);

    /* the rise to Siaga references the Alert only: the ack between is not a message */
    d = valid_message(c, 1, 3);
    CHECK_STR(element(d, "msgType", t, sizeof t), "Update");
    CHECK_STR(element(d, "references", t, sizeof t), REF(1, "20:15:00"));
    CHECK_STR(element(d, "responseType", t, sizeof t), "Prepare");
    CHECK_STR(element(d, "urgency", t, sizeof t), "Immediate");
    CHECK_STR(element(d, "severity", t, sizeof t), "Severe");
    CHECK(strstr(element(d, "headline", t, sizeof t), "Naik ke Siaga 2 (Siaga)") != NULL);
    free(d);

    d = valid_message(c, 1, 6);
    CHECK_STR(element(d, "references", t, sizeof t), REF(1, "20:15:00") " " REF(3, "20:25:00"));
    CHECK_STR(element(d, "responseType", t, sizeof t), "Evacuate");
    CHECK_STR(element(d, "severity", t, sizeof t), "Extreme");
    CHECK_STR(element(d, "certainty", t, sizeof t), "Observed");
    CHECK(strstr(element(d, "instruction", t, sizeof t), "Segera mengungsi") != NULL);
    free(d);

    /* going down is still a warning, and says not to go back yet */
    d = valid_message(c, 1, 7);
    CHECK_STR(element(d, "msgType", t, sizeof t), "Update");
    CHECK(strstr(element(d, "headline", t, sizeof t), "Turun ke Siaga 2 (Siaga)") != NULL);
    CHECK(strstr(element(d, "instruction", t, sizeof t), "belum aman") != NULL);
    free(d);

    d = valid_message(c, 1, 8);
    CHECK_STR(element(d, "msgType", t, sizeof t), "Cancel");
    CHECK_STR(
        element(d, "references", t, sizeof t),
        REF(1, "20:15:00") " " REF(3, "20:25:00") " " REF(6, "20:35:00") " " REF(7, "21:15:00"));
    CHECK_STR(element(d, "responseType", t, sizeof t), "AllClear");
    CHECK_STR(element(d, "urgency", t, sizeof t), "Past");
    CHECK(strstr(element(d, "headline", t, sizeof t), "dicabut") != NULL);
    free(d);

    /* people's actions and escalation are for operators */
    not_a_message(c, 1, 2);
    not_a_message(c, 1, 4);
    not_a_message(c, 1, 5);
    not_a_message(c, 1, 9);
    not_a_message(c, 1, 0);
}

static void test_what_is_not_public(struct db_conn *c)
{
    char t[512];
    not_a_message(c, 2, 1); /* an operator alarm */
    not_a_message(c, 99, 1);
    /* raised from backfill: the first live change is the Alert, with nothing to reference */
    not_a_message(c, 3, 1);
    char *d = valid_message(c, 3, 2);
    CHECK_STR(element(d, "msgType", t, sizeof t), "Alert");
    CHECK_STR(element(d, "references", t, sizeof t), "");
    CHECK_STR(element(d, "certainty", t, sizeof t), "Likely");
    free(d);
    /* raised and cleared in backfill: no Cancel of a warning nobody got */
    not_a_message(c, 6, 1);
    not_a_message(c, 6, 2);
}

static void test_demo_and_rain(struct db_conn *c)
{
    char t[512];
    char *d = valid_message(c, 4, 1);
    CHECK_STR(element(d, "status", t, sizeof t), "Exercise");
    CHECK(element(d, "note", t, sizeof t)[0] != 0);
    CHECK(strstr(element(d, "headline", t, sizeof t), "LATIHAN") == t);
    CHECK(strstr(element(d, "description", t, sizeof t), "DEMO Pos &lt;Radda&gt; &amp; Co") !=
          NULL);
    CHECK_STR(element(d, "certainty", t, sizeof t), "Observed");
    free(d);
    d = valid_message(c, 5, 1);
    CHECK_STR(pair(d, "value_mm", t, sizeof t), "25.0");
    CHECK(strstr(element(d, "description", t, sizeof t), "25,0 mm dalam 1 jam") != NULL);
    free(d);
}

static void test_feed(struct db_conn *c)
{
    struct err e = ERR_INIT;
    char *doc = NULL, t[256];
    size_t len;
    CHECK(cap_render_feed(c, &site, 1594645200, &doc, &len, &e) == ERR_OK);
    if (!doc)
        return;
    CHECK(xmllint(doc, NULL, "feed") == 0);
    CHECK(strstr(doc, "<feed ") && strstr(doc, "xmlns=\"http://www.w3.org/2005/Atom\""));
    CHECK_STR(element(doc, "updated", t, sizeof t), "2020-07-13T20:15:00+08:00");
    /* in force: 4 (Awas), 3 (Siaga), 5 (Waspada), highest first; not 1 (closed), 2 (operators),
     * 6 (cleared) */
    const char *a4 = strstr(doc, "href=\"http://127.0.0.1:8080/cap/alerts/4-1.xml\"");
    const char *a3 = strstr(doc, "href=\"http://127.0.0.1:8080/cap/alerts/3-2.xml\"");
    const char *a5 = strstr(doc, "href=\"http://127.0.0.1:8080/cap/alerts/5-1.xml\"");
    CHECK(a4 && a3 && a5 && a4 < a3 && a3 < a5);
    CHECK(strstr(doc, "/cap/alerts/1-") == NULL && strstr(doc, "/cap/alerts/2-") == NULL &&
          strstr(doc, "/cap/alerts/6-") == NULL);
    CHECK(strstr(doc, "<id>urn:sinergi:73.22:alert:4</id>") != NULL);
    CHECK(strstr(doc, "rel=\"alternate\" type=\"application/cap+xml\"") != NULL);
    int entries = 0;
    for (const char *p = doc; (p = strstr(p, "<entry>")); p++)
        entries++;
    CHECK(entries == 3);
    free(doc);
}

static void test_identifiers(void)
{
    char id[CAP_ID_MAX];
    cap_identifier(id, "73.24", 12, 3);
    CHECK_STR(id, "urn:sinergi:73.24:alert:12:3");
    cap_sender(id, "73.24");
    CHECK_STR(id, "bpbd@sinergi.73.24");
}

int main(void)
{
    char path[128];
    struct err e = ERR_INIT;
    test_identifiers();
    struct db *db = open_temp(path, sizeof path);
    CHECK(db != NULL);
    if (!db)
        return unit_report("test_cap");
    struct sensors_settings ss = {.backfill_s = 30 * 86400,
                                  .clock_skew_s = 300,
                                  .raw_retention_days = 30,
                                  .max_records = 1000};
    CHECK(sensors_start(db, &ss, &e) == ERR_OK); /* the station registry */
    struct db_conn *c = db_acquire(db);
    test_life_of_a_warning(c);
    test_what_is_not_public(c);
    test_demo_and_rain(c);
    test_feed(c);
    db_release(db, c);
    sensors_stop();
    db_close(db);
    unlink(path);
    return unit_report("test_cap");
}

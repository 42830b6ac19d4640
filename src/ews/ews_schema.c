/* ews_schema: the early-warning tables and the names of levels and states. */
#include "ews/ews.h"
#include "core/banned.h"

const struct db_migration ews_migrations[] = {
    {30, "ews: rules, alerts, alert versions",
     "CREATE TABLE ews_rules ("
     "  station_code TEXT NOT NULL REFERENCES stations(code) ON DELETE CASCADE,"
     "  rule TEXT NOT NULL,"
     "  enabled INTEGER NOT NULL DEFAULT 1,"
     "  params TEXT NOT NULL,"
     "  updated_at INTEGER NOT NULL,"
     "  PRIMARY KEY (station_code, rule));"
     "CREATE TABLE alerts ("
     "  id INTEGER PRIMARY KEY,"
     "  station_code TEXT NOT NULL,"
     "  rule TEXT NOT NULL,"
     "  level INTEGER NOT NULL,"
     "  state TEXT NOT NULL CHECK (state IN ('active_unack','active_ack','cleared_unack','closed')),"
     "  public INTEGER NOT NULL,"
     "  value REAL,"
     "  raised_at INTEGER NOT NULL,"   /* reading time (ms) that raised it */
     "  updated_at INTEGER NOT NULL,"  /* ms */
     "  version INTEGER NOT NULL,"
     "  acked_by TEXT, acked_at INTEGER,"
     "  shelved_until INTEGER, shelve_reason TEXT,"
     "  escalation INTEGER NOT NULL DEFAULT 0,"
     "  unack_since INTEGER,"          /* wall ms since when it waits for a person: escalation */
     "  cleared_at INTEGER, closed_at INTEGER);"
     /* exactly one open alert per station and rule, whatever the concurrency */
     "CREATE UNIQUE INDEX alerts_open ON alerts(station_code, rule) WHERE state <> 'closed';"
     "CREATE INDEX alerts_station ON alerts(station_code, id);"
     "CREATE TABLE alert_versions ("
     "  alert_id INTEGER NOT NULL REFERENCES alerts(id),"
     "  version INTEGER NOT NULL,"
     "  at INTEGER NOT NULL,"          /* ms: reading time for rule decisions, wall time for people */
     "  level INTEGER NOT NULL,"
     "  state TEXT NOT NULL,"
     "  msg_type TEXT NOT NULL CHECK (msg_type IN ('Alert','Update','Cancel')),"
     "  value REAL,"
     "  actor TEXT NOT NULL,"          /* 'rules' or a username */
     "  action TEXT NOT NULL,"         /* raised, level, cleared, closed, ack, shelve, escalate */
     "  note TEXT NOT NULL DEFAULT '',"
     "  backfill INTEGER NOT NULL DEFAULT 0,"
     "  PRIMARY KEY (alert_id, version));"},
    {0, NULL, NULL},
};

static const char *const states[] = {"active_unack", "active_ack", "cleared_unack", "closed"};
static const char *const status_names[] = {"Normal", "Waspada", "Siaga", "Awas"};
static const char *const siaga_names[] = {"Siaga 4", "Siaga 3", "Siaga 2", "Siaga 1"};
static const char *const colours[] = {"green", "yellow", "orange", "red"};

const char *ews_state_name(enum ews_state s)
{
    return s >= EWS_ACTIVE_UNACK && s <= EWS_CLOSED ? states[s] : "unknown";
}

const char *ews_level_status(int level)
{
    return level >= 0 && level <= 3 ? status_names[level] : "Unknown";
}

const char *ews_level_siaga(int level)
{
    return level >= 0 && level <= 3 ? siaga_names[level] : "-";
}

const char *ews_level_colour(int level)
{
    return level >= 0 && level <= 3 ? colours[level] : "grey";
}

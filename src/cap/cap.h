/* cap: public flood warnings as OASIS CAP 1.2 documents, one per public version of an alert, and
 * an Atom 1.0 feed of the warnings in force. XML is written with libxml2's xmlTextWriter, which
 * does all escaping; documents validate against data/cap-v1.2.xsd.
 *
 * Which versions are CAP messages. An alert of a public rule (alerts.public = 1) is a warning;
 * of its alert_versions rows only those decided by the rules from live readings (backfill = 0)
 * with action 'raised' (msgType Alert), 'level' (Update) or 'cleared' (Cancel) are messages.
 * What people do (ack, shelve), escalation and 'closed' are for operators and never become CAP.
 * The first message published for an alert is always an Alert, even when its row is a level
 * change (the alert was raised from backfilled readings the public never got); a Cancel with no
 * message before it is not published (there is nothing to cancel).
 *
 * Identifiers (stable: they are derived from the row, never from the time of the request):
 *   URL          /cap/alerts/<alert id>-<version>.xml
 *   identifier   urn:sinergi:<regency>:alert:<alert id>:<version>
 *   sender       bpbd@sinergi.<regency>   (BPBD issues the regency's warnings, whichever OPD
 *                                         owns the gauge)
 *   incidents    urn:sinergi:<regency>:alert:<alert id>   (all messages of one alert)
 *   sent         the version's decision time (reading time), WITA "+08:00" */
#ifndef SINERGI_CAP_H
#define SINERGI_CAP_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "db/db.h"

/* Where the documents are published: what goes into identifiers and links. */
struct cap_site {
    const char *regency;  /* kode wilayah of the regency served, e.g. "73.22" */
    const char *base_url; /* absolute, without trailing slash: "http://127.0.0.1:8080" */
};

enum { CAP_ID_MAX = 96 };
/* The radius (km) of the <circle> drawn around a gauge: the river reach it warns for. */
#define CAP_CIRCLE_KM 3

void cap_identifier(char out[CAP_ID_MAX], const char *regency, int64_t alert_id, int64_t version);
void cap_sender(char out[CAP_ID_MAX], const char *regency);

/* The CAP document of version `version` of alert `alert_id`. *out (NUL-terminated, *len_out
 * bytes) is owned by the caller: free(). ERR_NOT_FOUND when that version is not a CAP message
 * (no such alert or version, not public, backfill, an action of people). */
enum err_code cap_render_alert(struct db_conn *c, const struct cap_site *site, int64_t alert_id,
                               int64_t version, char **out, size_t *len_out, struct err *err);

/* The Atom feed of the warnings in force (not closed, level >= 1, public): one entry per alert,
 * linking its newest CAP message. `now_s` dates an empty feed. *out as above. */
enum err_code cap_render_feed(struct db_conn *c, const struct cap_site *site, int64_t now_s,
                              char **out, size_t *len_out, struct err *err);

#endif

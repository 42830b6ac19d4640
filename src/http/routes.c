/* routes: the whole API and who may call each route, in one table. A route without an access
 * rule stops the server at start (http_server_start), and tests/api/test_access.py fails. */
#include "auth/auth_http.h"
#include "cap/cap_http.h"
#include "http/http.h"
#include "http/ops_http.h"
#include "http/sse.h"
#include "http/static.h"
#include "notify/notify_http.h"
#include "publik/publik_http.h"
#include "regions/regions_http.h"
#include "ews/ews_http.h"
#include "sensors/sensors_http.h"
#include "core/banned.h"

#define PUBLIC {ACCESS_PUBLIC, 0}
#define SIGNED_IN {ROLE_ANY, 0}
#define ADMIN {ROLE_ADMIN, 0}
#define DEVICE {ACCESS_DEVICE, 0}
/* Admins, and staff for their own OPD's objects. */
#define OWN_OPD_WRITE {ROLE_ADMIN | ROLE_STAFF, ROLE_STAFF}
/* People on duty: admins and operators on every object, staff on their own OPD's. */
#define ON_DUTY {ROLE_ADMIN | ROLE_OPERATOR | ROLE_STAFF, ROLE_STAFF}

const struct route http_routes[] = {
    /* operations */
    {"GET", "/healthz", ops_http_healthz, PUBLIC, NULL, 0},
    {"GET", "/metrics", ops_http_metrics, PUBLIC, NULL, 0},
    {"GET", "/api/v1/routes", ops_http_routes, ADMIN, NULL, 0},

    /* identity */
    {"POST", "/api/v1/auth/login", auth_http_login, PUBLIC, NULL, 4096},
    {"POST", "/api/v1/auth/logout", auth_http_logout, SIGNED_IN, NULL, 0},
    {"GET", "/api/v1/me", auth_http_me, SIGNED_IN, NULL, 0},

    {"GET", "/api/v1/opds", auth_http_opd_list, SIGNED_IN, NULL, 0},
    {"POST", "/api/v1/opds", auth_http_opd_create, ADMIN, NULL, 0},
    {"GET", "/api/v1/opds/{code}", auth_http_opd_get, SIGNED_IN, NULL, 0},
    {"PATCH", "/api/v1/opds/{code}", auth_http_opd_update, ADMIN, NULL, 0},
    {"DELETE", "/api/v1/opds/{code}", auth_http_opd_delete, ADMIN, NULL, 0},

    /* Staff see the accounts of their own OPD (colleagues); operators and admins see all. */
    {"GET", "/api/v1/users", auth_http_user_list, {ROLE_ADMIN | ROLE_OPERATOR | ROLE_STAFF, ROLE_STAFF}, NULL, 0},
    {"POST", "/api/v1/users", auth_http_user_create, ADMIN, NULL, 0},
    {"GET", "/api/v1/users/{username}", auth_http_user_get, {ROLE_ADMIN | ROLE_OPERATOR | ROLE_STAFF, ROLE_STAFF}, NULL, 0},
    {"PATCH", "/api/v1/users/{username}", auth_http_user_update, ADMIN, NULL, 0},
    {"DELETE", "/api/v1/users/{username}", auth_http_user_delete, ADMIN, NULL, 0},

    {"GET", "/api/v1/audit", auth_http_audit_list, ADMIN, NULL, 0},

    /* reference data (public: kode wilayah, boundaries and river points are open data) */
    {"GET", "/api/v1/regions", regions_http_list, PUBLIC, NULL, 0},
    {"GET", "/api/v1/regions/{code}", regions_http_get, PUBLIC, NULL, 0},
    {"GET", "/api/v1/rivers", regions_http_rivers, PUBLIC, NULL, 0},

    /* live stream (Server-Sent Events) */
    {"GET", "/api/v1/events", sse_http_stream, {ROLE_ANY, 0}, NULL, 0},

    /* sensors: every signed-in user reads; the owning OPD's staff and admins write */
    {"GET", "/api/v1/stations", sensors_http_list, SIGNED_IN, NULL, 0},
    {"POST", "/api/v1/stations", sensors_http_create, OWN_OPD_WRITE, NULL, 0},
    {"GET", "/api/v1/stations/latest", sensors_http_latest, SIGNED_IN, NULL, 0},
    {"GET", "/api/v1/stations/{code}", sensors_http_get, SIGNED_IN, NULL, 0},
    {"PATCH", "/api/v1/stations/{code}", sensors_http_update, OWN_OPD_WRITE, NULL, 0},
    {"DELETE", "/api/v1/stations/{code}", sensors_http_delete, OWN_OPD_WRITE, NULL, 0},
    {"POST", "/api/v1/stations/{code}/token", sensors_http_rotate_token, OWN_OPD_WRITE, NULL, 0},
    {"GET", "/api/v1/stations/{code}/readings", sensors_http_readings, SIGNED_IN, NULL, 0},
    {"GET", "/api/v1/public/stations", sensors_http_public_list, PUBLIC, NULL, 0},
    {"GET", "/api/v1/gateways", sensors_http_gateway_list, ON_DUTY, NULL, 0},
    {"POST", "/api/v1/gateways", sensors_http_gateway_create, OWN_OPD_WRITE, NULL, 0},
    {"GET", "/api/v1/gateways/{code}", sensors_http_gateway_get, ON_DUTY, NULL, 0},
    {"DELETE", "/api/v1/gateways/{code}", sensors_http_gateway_delete, OWN_OPD_WRITE, NULL, 0},
    {"POST", "/api/v1/gateways/{code}/token", sensors_http_gateway_rotate_token, OWN_OPD_WRITE,
     NULL, 0},
    {"POST", "/api/v1/ingest", sensors_http_ingest, DEVICE, "application/senml+json", 4u << 20},

    /* early warning: everyone signed in sees alerts; people on duty act on them */
    {"GET", "/api/v1/alerts", ews_http_alert_list, SIGNED_IN, NULL, 0},
    {"GET", "/api/v1/alerts/{id}", ews_http_alert_get, SIGNED_IN, NULL, 0},
    {"POST", "/api/v1/alerts/{id}/ack", ews_http_alert_ack, ON_DUTY, NULL, 0},
    {"POST", "/api/v1/alerts/{id}/shelve", ews_http_alert_shelve, ON_DUTY, NULL, 0},
    {"GET", "/api/v1/stations/{code}/rules", ews_http_rules_get, SIGNED_IN, NULL, 0},
    {"PUT", "/api/v1/stations/{code}/rules/{rule}", ews_http_rule_update, OWN_OPD_WRITE, NULL, 0},

    /* public warnings (CAP 1.2, Atom): for everyone, as sirens and aggregators read them */
    {"GET", "/cap/alerts.atom", cap_http_feed, PUBLIC, NULL, 0},
    {"GET", "/cap/alerts/{id}.xml", cap_http_alert, PUBLIC, NULL, 0},

    /* the public flood status page: plain HTML for residents, no sign-in, no JavaScript */
    {"GET", "/publik", publik_http_page, PUBLIC, NULL, 0},

    /* notification targets: their URLs and secrets are the platform's to manage */
    {"GET", "/api/v1/webhooks", notify_http_webhook_list, ADMIN, NULL, 0},
    {"POST", "/api/v1/webhooks", notify_http_webhook_create, ADMIN, NULL, 16384},
    {"DELETE", "/api/v1/webhooks/{id}", notify_http_webhook_delete, ADMIN, NULL, 0},

    /* the COC web app: its files are public (it signs in through the API); assets are flat */
    {"GET", "/", static_http_index, PUBLIC, NULL, 0},
    {"GET", "/assets/{file}", static_http_asset, PUBLIC, NULL, 0},
};

const size_t http_nroutes = sizeof http_routes / sizeof http_routes[0];

/* webhooks: the webhook targets (admin CRUD). The secret is shown once, on create; lists carry
 * how each target is doing (waiting deliveries and the last error) instead. */
#include <curl/curl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/jsonv.h"
#include "notify/notify_int.h"
#include "core/banned.h"

enum { URL_MAX = 2048, SECRET_MIN = 16, SECRET_MAX = 256, TIER_MAX = 9, HOST_MAX = 256 };

/* Checks an http(s) URL with libcurl's parser and gives its host (for the audit log: the URL
 * itself may hold a gateway's token). */
static enum err_code check_url(const char *url, char host[HOST_MAX], struct err *err)
{
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return err_set(err, ERR_INVALID,
                           "field 'url' must not hold spaces or control "
                           "characters");
    CURLU *u = curl_url();
    char *scheme = NULL, *h = NULL;
    bool ok = u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
              curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
              curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK && h && *h &&
              (strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0);
    if (ok)
        snprintf(host, HOST_MAX, "%s", h);
    curl_free(scheme);
    curl_free(h);
    curl_url_cleanup(u);
    return ok ? ERR_OK
              : err_set(err, ERR_INVALID,
                        "field 'url' must be an http:// or https:// URL with a host");
}

static enum err_code check_secret(const char *secret, struct err *err)
{
    size_t n = strlen(secret);
    bool ok = n >= SECRET_MIN;
    for (const char *p = secret; ok && *p; p++)
        ok = (unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f;
    return ok ? ERR_OK
              : err_set(err, ERR_INVALID,
                        "field 'secret' must be %d to %d printable ASCII characters without "
                        "spaces (or leave it out to have one generated)",
                        SECRET_MIN, SECRET_MAX);
}

static json_t *webhook_json(struct db_stmt *s)
{
    char created[CLOCK_FMT_LEN], last[CLOCK_FMT_LEN];
    clock_fmt_utc(created, db_col_int64(s, 6));
    json_t *j =
        json_pack("{s:I,s:s,s:I,s:b,s:s,s:b,s:s,s:s,s:I}", "id", (json_int_t)db_col_int64(s, 0),
                  "url", db_col_text(s, 1), "tier", (json_int_t)db_col_int64(s, 2), "public_only",
                  (int)db_col_int64(s, 3), "description", db_col_text(s, 4), "enabled",
                  (int)db_col_int64(s, 5), "created_at", created, "created_by", db_col_text(s, 7),
                  "pending", (json_int_t)db_col_int64(s, 8));
    const char *err = db_col_text(s, 9);
    json_object_set_new(j, "last_error", err ? json_string(err) : json_null());
    if (db_col_is_null(s, 10)) {
        json_object_set_new(j, "last_delivered_at", json_null());
    } else {
        clock_fmt_utc(last, db_col_int64(s, 10) / 1000);
        json_object_set_new(j, "last_delivered_at", json_string(last));
    }
    return j;
}

/* Every webhook (id 0) or one. */
static enum err_code select_webhooks(struct db_conn *c, int64_t id, json_t **out, struct err *err)
{
    struct db_stmt *s;
    bool row;
    if (db_prepare(c, &s,
                   "SELECT w.id, w.url, w.tier, w.public_only, w.description, w.enabled, "
                   "w.created_at, w.created_by, "
                   "(SELECT COUNT(*) FROM deliveries d WHERE d.webhook_id = w.id "
                   " AND d.state = 'pending'), "
                   "(SELECT d.last_error FROM deliveries d WHERE d.webhook_id = w.id "
                   " AND d.state = 'pending' ORDER BY d.id LIMIT 1), "
                   "(SELECT MAX(d.delivered_at) FROM deliveries d WHERE d.webhook_id = w.id "
                   " AND d.state = 'delivered') "
                   "FROM webhooks w WHERE (? = 0 OR w.id = ?) ORDER BY w.id",
                   err))
        return err->code;
    db_bind_int64(s, 1, id);
    db_bind_int64(s, 2, id);
    json_t *a = json_array();
    while (db_step(s, &row, err) == ERR_OK && row)
        json_array_append_new(a, webhook_json(s));
    if (err->code) {
        json_decref(a);
        return err->code;
    }
    *out = a;
    return ERR_OK;
}

enum err_code notify_webhook_list(struct db_conn *c, json_t **out, struct err *err)
{
    return select_webhooks(c, 0, out, err);
}

struct webhook_in {
    const char *url, *secret, *description;
    int64_t tier;
    bool public_only;
    char host[HOST_MAX];
};

static enum err_code parse_in(json_t *in, struct webhook_in *w, struct err *err)
{
    static const char *const fields[] = {"url",         "secret",      "tier",
                                         "public_only", "description", NULL};
    w->tier = 0;
    w->public_only = false;
    if (jsonv_only(in, fields, err) || jsonv_str(in, "url", URL_MAX, true, &w->url, err) ||
        check_url(w->url, w->host, err) ||
        jsonv_str(in, "secret", SECRET_MAX, false, &w->secret, err) ||
        (w->secret && check_secret(w->secret, err)) ||
        jsonv_int(in, "tier", 0, TIER_MAX, false, &w->tier, NULL, err) ||
        jsonv_bool(in, "public_only", false, &w->public_only, NULL, err) ||
        jsonv_str(in, "description", 500, false, &w->description, err))
        return err->code;
    return ERR_OK;
}

static enum err_code insert_webhook(struct db_conn *c, const struct actor *a,
                                    const struct webhook_in *w, const char *secret, int64_t *id,
                                    struct err *err)
{
    struct db_stmt *s;
    bool row;
    if (db_prepare(c, &s,
                   "INSERT INTO webhooks (url, secret, tier, public_only, description, "
                   "created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                   err))
        return err->code;
    db_bind_text(s, 1, w->url);
    db_bind_text(s, 2, secret);
    db_bind_int64(s, 3, w->tier);
    db_bind_int64(s, 4, w->public_only);
    db_bind_text(s, 5, w->description ? w->description : "");
    db_bind_int64(s, 6, clock_now_s());
    db_bind_text(s, 7, a && a->who ? a->who->username : "system");
    if (db_step(s, &row, err))
        return err->code;
    *id = row ? db_col_int64(s, 0) : 0;
    db_done(s);
    return row ? ERR_OK : err_set(err, ERR_INTERNAL, "webhook insert returned no id");
}

enum err_code notify_webhook_create(struct db_conn *c, const struct actor *a, json_t *in,
                                    json_t **out, struct err *err)
{
    struct webhook_in w;
    if (parse_in(in, &w, err))
        return err->code;
    char secret[SECRET_MAX + 1];
    if (w.secret) {
        snprintf(secret, sizeof secret, "%s", w.secret);
    } else {
        unsigned char raw[32];
        randombytes_buf(raw, sizeof raw);
        sodium_bin2base64(secret, sizeof secret, raw, sizeof raw,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        sodium_memzero(raw, sizeof raw);
    }
    int64_t id = 0;
    char ids[24];
    json_t *detail = json_pack("{s:s,s:I,s:b}", "host", w.host, "tier", (json_int_t)w.tier,
                               "public_only", w.public_only);
    if (db_begin(c, err) == ERR_OK && insert_webhook(c, a, &w, secret, &id, err) == ERR_OK) {
        snprintf(ids, sizeof ids, "%lld", (long long)id);
        if (audit_record(c, a, "webhook.create", "webhook", ids, detail, err) == ERR_OK)
            db_commit(c, err);
    }
    json_decref(detail);
    json_t *list = NULL;
    if (err->code || select_webhooks(c, id, &list, err)) {
        db_rollback(c);
        sodium_memzero(secret, sizeof secret);
        return err->code;
    }
    json_t *j = json_incref(json_array_get(list, 0));
    json_decref(list);
    if (!j) {
        sodium_memzero(secret, sizeof secret);
        return err_set(err, ERR_INTERNAL, "webhook %lld vanished after create", (long long)id);
    }
    json_object_set_new(j, "secret", json_string(secret));
    sodium_memzero(secret, sizeof secret);
    *out = j;
    return ERR_OK;
}

enum err_code notify_webhook_delete(struct db_conn *c, const struct actor *a, int64_t id,
                                    struct err *err)
{
    struct db_stmt *s;
    char ids[24];
    snprintf(ids, sizeof ids, "%lld", (long long)id);
    if (db_begin(c, err))
        return err->code;
    if (db_prepare(c, &s, "DELETE FROM webhooks WHERE id = ?", err) == ERR_OK) {
        db_bind_int64(s, 1, id);
        if (db_run(s, err) == ERR_OK && db_changes(c) == 0)
            err_set(err, ERR_NOT_FOUND, "no webhook with id %lld", (long long)id);
    }
    if (err->code || audit_record(c, a, "webhook.delete", "webhook", ids, NULL, err) ||
        db_commit(c, err)) {
        db_rollback(c);
        return err->code;
    }
    return ERR_OK;
}

/* audit: append-only log of every write, each row chained to the one before by SHA-256 so an
 * edited, deleted or reordered row is detected. The head (last id and hash) is kept in its own
 * row so a truncated tail is detected too. */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "auth/auth_int.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/banned.h"

static const char GENESIS[] = "0000000000000000000000000000000000000000000000000000000000000000";

struct audit_row {
    int64_t id, at;
    const char *actor, *role, *opd, *action, *object_type, *object_id, *request_id, *client,
        *detail, *prev_hash;
};

static void feed(crypto_hash_sha256_state *st, const char *s)
{
    char len[24];
    size_t n = strlen(s);
    int k = snprintf(len, sizeof len, "%zu:", n);
    crypto_hash_sha256_update(st, (const unsigned char *)len, (unsigned long long)k);
    crypto_hash_sha256_update(st, (const unsigned char *)s, n);
}

static void feed_int(crypto_hash_sha256_state *st, int64_t v)
{
    char s[24];
    snprintf(s, sizeof s, "%lld", (long long)v);
    feed(st, s);
}

/* Length-prefixed fields, so no two different rows hash the same text. */
static void row_hash(char out[65], const struct audit_row *r)
{
    crypto_hash_sha256_state st;
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_init(&st);
    feed(&st, r->prev_hash);
    feed_int(&st, r->id);
    feed_int(&st, r->at);
    const char *fields[] = {r->actor,     r->role,      r->opd,        r->action,
                            r->object_type, r->object_id, r->request_id, r->client, r->detail};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        feed(&st, fields[i]);
    crypto_hash_sha256_final(&st, h);
    sodium_bin2hex(out, 65, h, sizeof h);
}

enum err_code audit_record(struct db_conn *c, const struct actor *a, const char *action,
                           const char *object_type, const char *object_id, json_t *detail,
                           struct err *err)
{
    struct db_stmt *s;
    bool row;
    char prev[65];
    int64_t last_id = 0;
    if (db_prepare(c, &s, "SELECT last_id, last_hash FROM audit_head WHERE one = 1", err) ||
        db_step(s, &row, err))
        return err->code;
    snprintf(prev, sizeof prev, "%s", row ? db_col_text(s, 1) : GENESIS);
    if (row)
        last_id = db_col_int64(s, 0);
    db_done(s);

    char *detail_s = detail ? json_dumps(detail, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    const struct principal *who = a ? a->who : NULL;
    struct audit_row r = {
        .id = last_id + 1,
        .at = clock_now_s(),
        .actor = who ? who->username : "system",
        .role = who ? auth_role_name(who->role) : "system",
        .opd = who ? who->opd : "",
        .action = action,
        .object_type = object_type,
        .object_id = object_id,
        .request_id = a && a->request_id ? a->request_id : "cli",
        .client = a && a->client ? a->client : "local",
        .detail = detail_s ? detail_s : "{}",
        .prev_hash = prev,
    };
    char hash[65];
    row_hash(hash, &r);
    enum err_code rc = db_prepare(c, &s,
                                  "INSERT INTO audit_log (id, at, actor, role, opd, action, "
                                  "object_type, object_id, request_id, client, detail, prev_hash, "
                                  "hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                                  err);
    if (rc == ERR_OK) {
        db_bind_int64(s, 1, r.id);
        db_bind_int64(s, 2, r.at);
        db_bind_text(s, 3, r.actor);
        db_bind_text(s, 4, r.role);
        db_bind_text(s, 5, r.opd);
        db_bind_text(s, 6, r.action);
        db_bind_text(s, 7, r.object_type);
        db_bind_text(s, 8, r.object_id);
        db_bind_text(s, 9, r.request_id);
        db_bind_text(s, 10, r.client);
        db_bind_text(s, 11, r.detail);
        db_bind_text(s, 12, r.prev_hash);
        db_bind_text(s, 13, hash);
        rc = db_run(s, err);
    }
    free(detail_s);
    if (rc == ERR_OK &&
        (rc = db_prepare(c, &s,
                         "INSERT INTO audit_head (one, last_id, last_hash) VALUES (1, ?, ?) "
                         "ON CONFLICT (one) DO UPDATE SET last_id = excluded.last_id, "
                         "last_hash = excluded.last_hash",
                         err)) == ERR_OK) {
        db_bind_int64(s, 1, r.id);
        db_bind_text(s, 2, hash);
        rc = db_run(s, err);
    }
    return rc;
}

static const char *text_or_empty(struct db_stmt *s, int i)
{
    const char *t = db_col_text(s, i);
    return t ? t : "";
}

enum err_code audit_verify(struct db_conn *c, int64_t *rows, int64_t *bad_id, char *why,
                           size_t why_len, struct err *err)
{
    struct db_stmt *s;
    bool row;
    char prev[65];
    int64_t expect_id = 1;
    snprintf(prev, sizeof prev, "%s", GENESIS);
    *rows = 0;
    *bad_id = 0;
    if (db_prepare(c, &s,
                   "SELECT id, at, actor, role, opd, action, object_type, object_id, request_id, "
                   "client, detail, prev_hash, hash FROM audit_log ORDER BY id",
                   err))
        return err->code;
    while (db_step(s, &row, err) == ERR_OK && row) {
        struct audit_row r = {
            .id = db_col_int64(s, 0),          .at = db_col_int64(s, 1),
            .actor = text_or_empty(s, 2),      .role = text_or_empty(s, 3),
            .opd = text_or_empty(s, 4),        .action = text_or_empty(s, 5),
            .object_type = text_or_empty(s, 6), .object_id = text_or_empty(s, 7),
            .request_id = text_or_empty(s, 8), .client = text_or_empty(s, 9),
            .detail = text_or_empty(s, 10),    .prev_hash = text_or_empty(s, 11),
        };
        char hash[65];
        row_hash(hash, &r);
        const char *problem = NULL;
        if (r.id != expect_id)
            problem = "a row before this one is missing";
        else if (strcmp(r.prev_hash, prev) != 0)
            problem = "its link to the previous row is broken";
        else if (strcmp(hash, text_or_empty(s, 12)) != 0)
            problem = "its content does not match its hash (edited)";
        if (problem) {
            *bad_id = r.id;
            snprintf(why, why_len, "%s", problem);
            db_done(s);
            return ERR_OK;
        }
        snprintf(prev, sizeof prev, "%s", hash);
        expect_id++;
        (*rows)++;
    }
    if (err->code)
        return err->code;
    if (db_prepare(c, &s, "SELECT last_id, last_hash FROM audit_head WHERE one = 1", err) ||
        db_step(s, &row, err))
        return err->code;
    if ((row && (db_col_int64(s, 0) != *rows || strcmp(text_or_empty(s, 1), prev) != 0)) ||
        (!row && *rows > 0)) {
        *bad_id = *rows + 1;
        snprintf(why, why_len, "rows at the end of the log were removed (head does not match)");
    }
    db_done(s);
    return ERR_OK;
}

static void bind_opt(struct db_stmt *s, int i, const char *v)
{
    db_bind_text(s, i, v);
    db_bind_text(s, i + 1, v);
}

enum err_code audit_list(struct db_conn *c, const struct audit_filter *f, json_t **out,
                         struct err *err)
{
    struct db_stmt *s;
    if (db_prepare(c, &s,
                   "SELECT id, at, actor, role, opd, action, object_type, object_id, request_id, "
                   "client, detail FROM audit_log WHERE "
                   "(? IS NULL OR actor = ?) AND (? IS NULL OR action = ?) AND "
                   "(? IS NULL OR object_type = ?) AND (? IS NULL OR object_id = ?) AND "
                   "(? IS NULL OR opd = ?) AND at >= ? AND at <= ? AND id < ? "
                   "ORDER BY id DESC LIMIT ?",
                   err))
        return err->code;
    bind_opt(s, 1, f->actor);
    bind_opt(s, 3, f->action);
    bind_opt(s, 5, f->object_type);
    bind_opt(s, 7, f->object_id);
    bind_opt(s, 9, f->opd);
    db_bind_int64(s, 11, f->from);
    db_bind_int64(s, 12, f->to ? f->to : INT64_MAX);
    db_bind_int64(s, 13, f->before_id ? f->before_id : INT64_MAX);
    db_bind_int64(s, 14, f->limit);
    json_t *items = json_array();
    bool row;
    while (db_step(s, &row, err) == ERR_OK && row) {
        char at[CLOCK_FMT_LEN];
        clock_fmt_utc(at, db_col_int64(s, 1));
        json_t *detail = json_loads(text_or_empty(s, 10), 0, NULL);
        json_array_append_new(
            items, json_pack("{s:I,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:o}", "id",
                             (json_int_t)db_col_int64(s, 0), "at", at, "actor", text_or_empty(s, 2),
                             "role", text_or_empty(s, 3), "opd", text_or_empty(s, 4), "action",
                             text_or_empty(s, 5), "object_type", text_or_empty(s, 6), "object_id",
                             text_or_empty(s, 7), "request_id", text_or_empty(s, 8), "client",
                             text_or_empty(s, 9), "detail", detail ? detail : json_object()));
    }
    if (err->code) {
        json_decref(items);
        return err->code;
    }
    *out = items;
    return ERR_OK;
}

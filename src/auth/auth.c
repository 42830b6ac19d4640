/* auth: schema, settings, roles and the small primitives (tokens, hashes, names) of the room. */
#include <sodium.h>
#include <string.h>

#include "auth/auth_int.h"
#include "core/banned.h"

struct auth_settings auth__settings = {
    .session_idle_s = 1800, .session_max_s = 43200,
    .fail_user_max = 5,     .fail_addr_max = 20, .window_s = 900,
};

void auth_configure(const struct auth_settings *s)
{
    auth__settings = *s;
}

/* The OPDs of DOMAIN.md §1 are seeded: every deployment has them. */
const struct db_migration auth_migrations[] = {
    {1, "auth: opds, users, sessions",
     "CREATE TABLE opds ("
     "  code TEXT PRIMARY KEY,"
     "  name TEXT NOT NULL,"
     "  description TEXT NOT NULL DEFAULT '',"
     "  created_at INTEGER NOT NULL,"
     "  updated_at INTEGER NOT NULL);"
     "CREATE TABLE users ("
     "  id INTEGER PRIMARY KEY,"
     "  username TEXT NOT NULL UNIQUE,"
     "  display_name TEXT NOT NULL DEFAULT '',"
     "  role TEXT NOT NULL CHECK (role IN ('admin','operator','staff','viewer')),"
     "  opd_code TEXT NOT NULL REFERENCES opds(code),"
     "  password_hash TEXT NOT NULL,"
     "  disabled INTEGER NOT NULL DEFAULT 0,"
     "  created_at INTEGER NOT NULL,"
     "  updated_at INTEGER NOT NULL);"
     "CREATE INDEX users_opd ON users(opd_code);"
     "CREATE TABLE sessions ("
     "  id INTEGER PRIMARY KEY,"
     "  token_hash TEXT NOT NULL UNIQUE,"
     "  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
     "  csrf TEXT NOT NULL,"
     "  created_at INTEGER NOT NULL,"
     "  last_seen_at INTEGER NOT NULL,"
     "  expires_at INTEGER NOT NULL,"
     "  revoked_at INTEGER);"
     "CREATE INDEX sessions_user ON sessions(user_id);"
     "INSERT INTO opds (code, name, description, created_at, updated_at) VALUES"
     " ('diskominfo','Dinas Komunikasi dan Informatika','runs the COC and the platform',0,0),"
     " ('disdukcapil','Dinas Kependudukan dan Pencatatan Sipil','population administration',0,0),"
     " ('bpbd','Badan Penanggulangan Bencana Daerah','disaster management, flood response',0,0),"
     " ('pupr','Dinas Pekerjaan Umum dan Penataan Ruang','public works: rivers, roads, drainage',0,0),"
     " ('dlh','Dinas Lingkungan Hidup','environment: waste',0,0),"
     " ('dinsos','Dinas Sosial','social aid, displaced people',0,0),"
     " ('dinkes','Dinas Kesehatan','health',0,0),"
     " ('dishub','Dinas Perhubungan','transport',0,0),"
     " ('bappeda','Badan Perencanaan Pembangunan Daerah','planning, smart-city masterplan',0,0),"
     " ('satpolpp','Satuan Polisi Pamong Praja','public order',0,0),"
     " ('dpmptsp','Dinas Penanaman Modal dan Pelayanan Terpadu Satu Pintu','one-stop permits',0,0),"
     " ('dispar','Dinas Pariwisata','tourism, smart branding',0,0);"},
    {2, "auth: hash-chained audit log",
     "CREATE TABLE audit_log ("
     "  id INTEGER PRIMARY KEY,"
     "  at INTEGER NOT NULL,"
     "  actor TEXT NOT NULL,"
     "  role TEXT NOT NULL,"
     "  opd TEXT NOT NULL,"
     "  action TEXT NOT NULL,"
     "  object_type TEXT NOT NULL,"
     "  object_id TEXT NOT NULL,"
     "  request_id TEXT NOT NULL,"
     "  client TEXT NOT NULL,"
     "  detail TEXT NOT NULL,"
     "  prev_hash TEXT NOT NULL,"
     "  hash TEXT NOT NULL);"
     "CREATE INDEX audit_at ON audit_log(at);"
     "CREATE INDEX audit_object ON audit_log(object_type, object_id);"
     "CREATE TABLE audit_head (one INTEGER PRIMARY KEY CHECK (one = 1),"
     "  last_id INTEGER NOT NULL, last_hash TEXT NOT NULL);"},
    {0, NULL, NULL},
};

static const struct {
    enum role role;
    const char *name;
} roles[] = {
    {ROLE_ADMIN, "admin"},
    {ROLE_OPERATOR, "operator"},
    {ROLE_STAFF, "staff"},
    {ROLE_VIEWER, "viewer"},
};

const char *auth_role_name(enum role r)
{
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++)
        if (roles[i].role == r)
            return roles[i].name;
    return "unknown";
}

bool auth_role_parse(const char *s, enum role *out)
{
    for (size_t i = 0; s && i < sizeof roles / sizeof roles[0]; i++)
        if (strcmp(roles[i].name, s) == 0) {
            *out = roles[i].role;
            return true;
        }
    return false;
}

void auth__random_token(char *out, size_t outsz, size_t nbytes)
{
    unsigned char raw[64];
    if (nbytes > sizeof raw)
        nbytes = sizeof raw;
    randombytes_buf(raw, nbytes);
    sodium_bin2base64(out, outsz, raw, nbytes, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof raw);
}

void auth__sha256_hex(char out[65], const void *data, size_t n)
{
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, data, n);
    sodium_bin2hex(out, 65, h, sizeof h);
}

void auth_random_password(char *out, size_t len)
{
    static const char alphabet[] = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    for (size_t i = 0; i < len; i++)
        out[i] = alphabet[randombytes_uniform(sizeof alphabet - 1)];
    out[len] = 0;
}

enum err_code auth__check_name(const char *field, const char *v, size_t min, size_t max,
                               struct err *err)
{
    size_t n = v ? strlen(v) : 0;
    if (n < min || n > max)
        return err_set(err, ERR_INVALID, "field '%s' must be %zu to %zu characters", field, min,
                       max);
    for (size_t i = 0; i < n; i++) {
        char ch = v[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' ||
              ch == '.'))
            return err_set(err, ERR_INVALID,
                           "field '%s' may hold only a-z, 0-9, '.', '_' and '-'", field);
    }
    return ERR_OK;
}

void auth_token_new(char token[AUTH_TOKEN_LEN + 1], char hash[65])
{
    auth__random_token(token, AUTH_TOKEN_LEN + 1, 32);
    auth__sha256_hex(hash, token, strlen(token));
}

void auth_token_hash(const char *token, char hash[65])
{
    auth__sha256_hex(hash, token, strlen(token));
}

bool auth_token_well_formed(const char *t)
{
    size_t n = strlen(t);
    if (n != AUTH_TOKEN_LEN)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = t[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_'))
            return false;
    }
    return true;
}

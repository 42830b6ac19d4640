/* senml: RFC 8428 SenML JSON packs into resolved records: base name, time, unit and value
 * applied, relative times resolved, each record checked on its own.
 *
 * One pass over the body, specialised to SenML's shape (an array of flat objects): no JSON tree,
 * and no allocation but the records array. It accepts exactly the JSON that jansson's
 * json_loadb(body, len, 0) accepts, and yields what the jansson-based parser before it yielded;
 * tests/fuzz/fuzz_senml.c holds the two to that (tests/fuzz/senml_jansson.c is the old one).
 * The one difference: a NUL byte right after a number or true/false/null, which jansson's lexer
 * drops by accident ("[1\0]" loads), is refused like any other NUL outside a string. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sensors/sensors_int.h"
#include "core/banned.h"

/* Times below 2^28 are relative to now (RFC 8428 §4.5.3). */
#define SENML_RELATIVE_LIMIT 268435456.0
/* jansson's JSON_PARSER_MAX_DEPTH: a value nested deeper fails the body. The top-level array is
 * at depth 1, a record at 2, the values of its fields at 3. */
#define DEPTH_MAX 2048
/* Bytes of a key kept: enough to quote an unsupported one in an error message as before. */
#define KEY_CAP 256
#define NAME_CAP sizeof(((struct senml_record *)0)->name)
#define UNIT_CAP sizeof(((struct senml_record *)0)->unit)

/* ---- tokenizer: JSON as jansson reads it ------------------------------------------------ */

struct lex {
    const char *p, *end;
    const char *why; /* the first syntax error, NULL while the body is well-formed */
    const char *at;  /* where it is */
};

static bool fail(struct lex *x, const char *at, const char *why)
{
    if (!x->why) {
        x->why = why;
        x->at = at;
    }
    return false;
}

/* Skips blanks; returns the byte there, or -1 at the end of the body. */
static inline int peek(struct lex *x)
{
    const char *p = x->p;
    while (p < x->end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    x->p = p;
    return p < x->end ? (unsigned char)*p : -1;
}

static bool expect(struct lex *x, int c, const char *why)
{
    if (peek(x) != c)
        return fail(x, x->p, why);
    x->p++;
    return true;
}

static inline bool is_digit(const char *p, const char *end)
{
    return p < end && *p >= '0' && *p <= '9';
}

/* A decoded string: its first `cap` bytes land in `buf` (none when cap is 0); `len` counts all
 * of them and `last` is the last one. Never NUL-terminated. */
struct text {
    char *buf;
    size_t cap, len;
    char last;
};

static inline void text_put(struct text *t, const char *s, size_t n)
{
    if (!n)
        return;
    if (t->len < t->cap)
        memcpy(t->buf + t->len, s, n < t->cap - t->len ? n : t->cap - t->len);
    t->len += n;
    t->last = s[n - 1];
}

/* Length of the UTF-8 sequence at p if it is valid (no overlong forms, no surrogates, nothing
 * above U+10FFFF: jansson's utf8_check_full), else 0. */
static size_t utf8_valid(const unsigned char *p, const unsigned char *end)
{
    static const uint32_t least[5] = {0, 0, 0x80, 0x800, 0x10000};
    size_t n = p[0] >= 0xC2 && p[0] <= 0xDF   ? 2
               : p[0] >= 0xE0 && p[0] <= 0xEF ? 3
               : p[0] >= 0xF0 && p[0] <= 0xF4 ? 4
                                              : 0;
    if (!n || (size_t)(end - p) < n)
        return 0;
    uint32_t cp = p[0] & (0xFFu >> (n + 1));
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3Fu);
    }
    if (cp < least[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

static int hex4(const char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v << 4 | d;
    }
    return v;
}

/* \uXXXX at p, with the low half when it is a high surrogate: the code point, or -1. */
static long unicode_escape(struct lex *x, const char **pp)
{
    const char *p = *pp;
    long cp = x->end - p >= 6 ? hex4(p + 2) : -1;
    if (cp < 0)
        return fail(x, p, "invalid escape"), -1;
    p += 6;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        long lo = x->end - p >= 6 && p[0] == '\\' && p[1] == 'u' ? hex4(p + 2) : -1;
        if (lo < 0xDC00 || lo > 0xDFFF)
            return fail(x, *pp, "invalid Unicode surrogate pair"), -1;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        p += 6;
    } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
        return fail(x, *pp, "invalid Unicode surrogate pair"), -1;
    } else if (cp == 0) { /* jansson refuses NUL without JSON_ALLOW_NUL, in keys too */
        return fail(x, *pp, "\\u0000 is not allowed"), -1;
    }
    *pp = p;
    return cp;
}

/* Decodes the escape at p (a backslash) into t; returns what follows it, or NULL. */
static const char *unescape(struct lex *x, const char *p, struct text *t)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    static const unsigned char lead[5] = {0, 0, 0xC0, 0xE0, 0xF0};
    if (x->end - p < 2)
        return fail(x, p, "premature end of input"), NULL;
    if (p[1] != 'u') {
        const char *c = p[1] ? strchr(from, p[1]) : NULL;
        if (!c)
            return fail(x, p, "invalid escape"), NULL;
        text_put(t, &to[c - from], 1);
        return p + 2;
    }
    long cp = unicode_escape(x, &p);
    if (cp < 0)
        return NULL;
    char u[4]; /* UTF-8 */
    size_t n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    for (size_t i = n - 1; i > 0; i--, cp >>= 6)
        u[i] = (char)(0x80 | (cp & 0x3F));
    u[0] = (char)(lead[n] | cp);
    text_put(t, u, n);
    return p;
}

/* Reads the string at x->p (a quote) into t: escapes decoded, UTF-8 checked, control
 * characters refused. */
static bool parse_string(struct lex *x, struct text *t)
{
    const char *p = x->p + 1, *end = x->end;
    t->len = 0;
    for (;;) {
        const char *run = p;
        while (p < end && (unsigned char)*p >= 0x20 && (unsigned char)*p < 0x80 && *p != '"' &&
               *p != '\\')
            p++;
        text_put(t, run, (size_t)(p - run));
        if (p == end)
            return fail(x, p, "premature end of input");
        unsigned char c = (unsigned char)*p;
        if (c == '"') {
            x->p = p + 1;
            return true;
        }
        if (c == '\\') {
            if (!(p = unescape(x, p, t)))
                return false;
        } else if (c < 0x20) {
            return fail(x, p, "control character in string");
        } else {
            size_t n = utf8_valid((const unsigned char *)p, (const unsigned char *)end);
            if (!n)
                return fail(x, p, "invalid UTF-8");
            text_put(t, p, n);
            p += n;
        }
    }
}

/* A JSON number as jansson keeps it: an integer (no fraction, no exponent) or a real. */
struct num {
    bool integer;
    int64_t i; /* when integer */
    double d;  /* always: (double)i for an integer */
};

static inline void add_digit(uint64_t *m, bool *over, char c)
{
    unsigned d = (unsigned)(c - '0');
    if (*over || *m > (UINT64_MAX - d) / 10)
        *over = true;
    else
        *m = *m * 10 + d;
}

static bool to_integer(struct lex *x, const char *start, bool neg, uint64_t m, bool over,
                       struct num *out)
{
    if (over || m > (uint64_t)INT64_MAX + neg)
        return fail(x, start, neg ? "too big negative integer" : "too big integer");
    out->integer = true;
    out->i = !neg ? (int64_t)m : m > (uint64_t)INT64_MAX ? INT64_MIN : -(int64_t)m;
    out->d = (double)out->i;
    return true;
}

/* The double nearest to m * 10^e10, bit for bit what strtod gives: when m and 10^|e10| are both
 * exact doubles, one correctly rounded operation is the answer (Clinger's fast path); other
 * numbers go to strtod itself. */
static bool to_real(struct lex *x, const char *start, const char *stop, bool neg, uint64_t m,
                    bool exact, int64_t e10, struct num *out)
{
    static const double pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                   1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                   1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    out->integer = false;
#if FLT_EVAL_METHOD == 0
    if (exact && m <= (1ull << 53) && e10 >= -22 && e10 <= 22) {
        double d = (double)m;
        d = e10 < 0 ? d / pow10[-e10] : d * pow10[e10];
        out->d = neg ? -d : d;
        return true;
    }
#endif
    /* strtod cannot read past `stop`: the grammar above ended the number at a byte of the body
     * that cannot continue it. sinergi never calls setlocale, so the decimal point is '.'. */
    char *end;
    errno = 0;
    out->d = strtod(start, &end);
    if (end != stop)
        return fail(x, start, "invalid number");
    if (errno == ERANGE && (out->d == HUGE_VAL || out->d == -HUGE_VAL))
        return fail(x, start, "real number overflow");
    return true;
}

/* Reads the number at x->p by JSON's grammar: no '+', no leading zeros, digits on both sides
 * of a '.', digits in an exponent. Integers must fit int64_t and reals a double, as in jansson. */
static bool parse_number(struct lex *x, struct num *out)
{
    const char *p = x->p, *end = x->end, *start = p;
    bool neg = *p == '-', over = false;
    uint64_t m = 0;
    p += neg;
    if (!is_digit(p, end))
        return fail(x, start, "invalid number");
    if (*p == '0' && is_digit(p + 1, end))
        return fail(x, start, "leading zero in a number");
    while (is_digit(p, end))
        add_digit(&m, &over, *p++);
    if (p == end || (*p != '.' && *p != 'e' && *p != 'E')) {
        x->p = p;
        return to_integer(x, start, neg, m, over, out);
    }
    int64_t e10 = 0, e = 0;
    if (*p == '.') {
        if (!is_digit(++p, end))
            return fail(x, start, "invalid number");
        for (; is_digit(p, end); p++, e10--)
            add_digit(&m, &over, *p);
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        bool eneg = ++p < end && *p == '-';
        p += p < end && (*p == '-' || *p == '+');
        if (!is_digit(p, end))
            return fail(x, start, "invalid number");
        for (; is_digit(p, end); p++)
            e = e < 100000 ? e * 10 + (*p - '0') : e; /* beyond any double: strtod decides */
        e10 += eneg ? -e : e;
    }
    if (p == end) /* the body cannot end in a number: the array around it is open */
        return fail(x, p, "premature end of input");
    x->p = p;
    return to_real(x, start, p, neg, m, !over && e < 100000, e10, out);
}

static bool skip_scalar(struct lex *x, int c)
{
    static const char *const words[] = {"true", "false", "null"};
    struct text none = {0};
    struct num n;
    if (c == '"')
        return parse_string(x, &none);
    if (c == '-' || (c >= '0' && c <= '9'))
        return parse_number(x, &n);
    for (size_t i = 0; i < 3; i++) {
        size_t len = strlen(words[i]);
        if ((size_t)(x->end - x->p) >= len && memcmp(x->p, words[i], len) == 0) {
            x->p += len;
            return true;
        }
    }
    return fail(x, x->p, "invalid token");
}

/* A key and its colon, inside an object being skipped. */
static bool skip_key(struct lex *x)
{
    struct text none = {0};
    if (peek(x) != '"')
        return fail(x, x->p, "string or '}' expected");
    return parse_string(x, &none) && expect(x, ':', "':' expected");
}

/* Checks and steps over the value at x->p, of any kind, nested at `depth`. Iterative: one byte
 * per array or object it is inside, up to jansson's depth limit. */
static bool skip_value(struct lex *x, int depth)
{
    char close[DEPTH_MAX]; /* the bracket that closes each open array or object */
    int top = 0;
    for (;;) {
        if (depth + top > DEPTH_MAX)
            return fail(x, x->p, "maximum nesting depth reached");
        int c = peek(x);
        if (c == '[' || c == '{') {
            char want = c == '[' ? ']' : '}';
            x->p++;
            if (peek(x) != want) {
                close[top++] = want;
                if (want == ']' || skip_key(x))
                    continue;
                return false;
            }
            x->p++;
        } else if (!skip_scalar(x, c)) {
            return false;
        }
        for (;;) { /* after a value: closing brackets, then a comma or the end */
            if (top == 0)
                return true;
            c = peek(x);
            if (c == close[top - 1]) {
                x->p++;
                top--;
                continue;
            }
            if (c != ',')
                return fail(x, x->p,
                            close[top - 1] == ']' ? "',' or ']' expected" : "',' or '}' expected");
            x->p++;
            if (close[top - 1] == '}' && !skip_key(x))
                return false;
            break;
        }
    }
}

/* ---- SenML records ------------------------------------------------------------------------ */

/* The fields that count, in the order the checks read them. vs, vb, vd and s are one: any of
 * them makes the record non-numeric. */
enum field { F_BN, F_BU, F_BT, F_BV, F_N, F_U, F_T, F_V, F_BVER, F_NONNUM, F__COUNT, F_OTHER };

static enum field field_of(const struct text *k)
{
    /* Four bytes, zero-padded: keys hold no NUL, so "n" cannot be mistaken for "n\0". */
    static const struct {
        char name[4];
        enum field f;
    } known[] = {{"n", F_N},       {"u", F_U},       {"t", F_T},       {"v", F_V},
                 {"bn", F_BN},     {"bu", F_BU},     {"bt", F_BT},     {"bv", F_BV},
                 {"bver", F_BVER}, {"vs", F_NONNUM}, {"vb", F_NONNUM}, {"vd", F_NONNUM},
                 {"s", F_NONNUM}};
    char name[4] = {0};
    if (k->len == 0 || k->len > sizeof name)
        return F_OTHER;
    memcpy(name, k->buf, k->len);
    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
        if (memcmp(name, known[i].name, sizeof name) == 0)
            return known[i].f;
    return F_OTHER;
}

enum jtype { J_ABSENT, J_STRING, J_NUMBER, J_OTHER };

struct value {
    enum jtype type;
    struct num num;
    struct text text; /* bn, bu, n and u keep their strings */
};

/* One record as read. Of a repeated key the last value counts, as it did in jansson's object. */
struct fields {
    struct value f[F__COUNT];
    char bn[NAME_CAP], bu[UNIT_CAP], n[NAME_CAP], u[UNIT_CAP];
    char key[KEY_CAP];
    char understand[KEY_CAP + 1]; /* the first key that ends in '_', or "" */
};

static void fields_init(struct fields *f)
{
    memset(f, 0, sizeof *f);
    f->f[F_BN].text = (struct text){f->bn, sizeof f->bn, 0, 0};
    f->f[F_BU].text = (struct text){f->bu, sizeof f->bu, 0, 0};
    f->f[F_N].text = (struct text){f->n, sizeof f->n, 0, 0};
    f->f[F_U].text = (struct text){f->u, sizeof f->u, 0, 0};
}

static bool read_value(struct lex *x, struct value *v)
{
    int c = peek(x);
    if (c == '"') {
        v->type = J_STRING;
        return parse_string(x, &v->text);
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        v->type = J_NUMBER;
        return parse_number(x, &v->num);
    }
    v->type = J_OTHER;
    return skip_value(x, 3);
}

/* Reads the record object at x->p (a '{') into f. */
static bool read_record(struct lex *x, struct fields *f)
{
    struct text key = {f->key, sizeof f->key, 0, 0};
    for (int i = 0; i < F__COUNT; i++)
        f->f[i].type = J_ABSENT;
    f->understand[0] = 0;
    x->p++;
    if (peek(x) == '}') {
        x->p++;
        return true;
    }
    for (;;) {
        if (peek(x) != '"')
            return fail(x, x->p, "string or '}' expected");
        if (!parse_string(x, &key) || !expect(x, ':', "':' expected"))
            return false;
        if (key.len && key.last == '_' && !f->understand[0]) {
            size_t n = key.len < KEY_CAP ? key.len : KEY_CAP;
            memcpy(f->understand, key.buf, n);
            f->understand[n] = 0;
        }
        enum field which = field_of(&key);
        if (!(which == F_OTHER ? skip_value(x, 3) : read_value(x, &f->f[which])))
            return false;
        int c = peek(x);
        if (c == '}') {
            x->p++;
            return true;
        }
        if (c != ',')
            return fail(x, x->p, "',' or '}' expected");
        x->p++;
    }
}

/* The checks that fail the whole pack, in the order the jansson parser made them. */
static enum err_code check_record(const struct fields *f, size_t i, struct err *err)
{
    static const struct {
        enum field f;
        enum jtype type;
        const char *name;
    } typed[] = {{F_BN, J_STRING, "bn"}, {F_BU, J_STRING, "bu"}, {F_BT, J_NUMBER, "bt"},
                 {F_BV, J_NUMBER, "bv"}, {F_N, J_STRING, "n"},   {F_U, J_STRING, "u"},
                 {F_T, J_NUMBER, "t"},   {F_V, J_NUMBER, "v"}};
    const struct value *ver = &f->f[F_BVER];
    if (ver->type != J_ABSENT && (ver->type != J_NUMBER || !ver->num.integer || ver->num.i > 10))
        return err_set(err, ERR_INVALID, "record %zu: SenML version 'bver' is not supported", i);
    /* Fields ending in '_' must be understood (RFC 8428 §4.4); we understand none. */
    if (f->understand[0])
        return err_set(err, ERR_INVALID,
                       "record %zu: field '%s' must be understood but is not supported", i,
                       f->understand);
    for (size_t k = 0; k < sizeof typed / sizeof *typed; k++) {
        enum jtype t = f->f[typed[k].f].type;
        if (t != J_ABSENT && t != typed[k].type)
            return err_set(err, ERR_INVALID, "record %zu: '%s' must be %s", i, typed[k].name,
                           typed[k].type == J_STRING ? "a string" : "a number");
    }
    return ERR_OK;
}

/* Base fields carry forward to the records after the one that sets them (RFC 8428 §4.5.1). */
struct base {
    char bn[NAME_CAP], bu[UNIT_CAP]; /* the first bytes of each */
    size_t bn_len, bu_len;           /* their whole lengths */
    double bt, bv;
};

static void base_update(struct base *b, const struct fields *f)
{
    const struct text *bn = &f->f[F_BN].text, *bu = &f->f[F_BU].text;
    if (f->f[F_BN].type == J_STRING) {
        memcpy(b->bn, bn->buf, bn->len < bn->cap ? bn->len : bn->cap);
        b->bn_len = bn->len;
    }
    if (f->f[F_BU].type == J_STRING) {
        memcpy(b->bu, bu->buf, bu->len < bu->cap ? bu->len : bu->cap);
        b->bu_len = bu->len;
    }
    if (f->f[F_BT].type == J_NUMBER)
        b->bt = f->f[F_BT].num.d;
    if (f->f[F_BV].type == J_NUMBER)
        b->bv = f->f[F_BV].num.d;
}

static bool name_ok(const char *s)
{
    if (!*s)
        return false;
    for (const char *p = s; *p; p++) {
        char ch = *p;
        bool alnum =
            (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        if (!alnum && (p == s || !(ch == '-' || ch == ':' || ch == '.' || ch == '_' || ch == '/')))
            return false;
    }
    return true;
}

/* Writes a + b into dst[cap] cut as snprintf("%s%s") cuts it; returns the whole length. */
static size_t join(char *dst, size_t cap, const char *a, size_t alen, const char *b, size_t blen)
{
    size_t na = alen < cap - 1 ? alen : cap - 1;
    size_t nb = blen < cap - 1 - na ? blen : cap - 1 - na;
    memcpy(dst, a, na);
    memcpy(dst + na, b, nb);
    dst[na + nb] = 0;
    return alen + blen;
}

static void resolve(const struct fields *f, const struct base *b, struct senml_record *r,
                    int64_t now_ms)
{
    const struct value *n = &f->f[F_N], *u = &f->f[F_U], *t = &f->f[F_T], *v = &f->f[F_V];
    size_t w = join(r->name, sizeof r->name, b->bn, b->bn_len, n->text.buf,
                    n->type == J_STRING ? n->text.len : 0);
    bool own_unit = u->type == J_STRING; /* even "": it overrides bu */
    size_t unit_len = join(r->unit, sizeof r->unit, own_unit ? u->text.buf : b->bu,
                           own_unit ? u->text.len : b->bu_len, "", 0);
    double abs_t = b->bt + (t->type == J_NUMBER ? t->num.d : 0);
    double value = v->type == J_NUMBER ? v->num.d : 0;
    r->error = NULL;
    r->t_ms = 0;
    if (w >= sizeof r->name || !name_ok(r->name))
        r->error = "name must be '<station-code>:<sensor>' of letters, digits and - : . _ /";
    else if (unit_len >= sizeof r->unit)
        r->error = "unit is too long";
    else if (f->f[F_NONNUM].type != J_ABSENT)
        r->error = "only numeric values ('v') are stored";
    else if (v->type != J_NUMBER)
        r->error = "record has no value 'v'";
    else if (!isfinite(value + b->bv))
        r->error = "value is not a finite number";
    else if (!isfinite(abs_t))
        r->error = "time is not a finite number";
    r->value = value + b->bv;
    if (!r->error) {
        double ms =
            fabs(abs_t) < SENML_RELATIVE_LIMIT ? (double)now_ms + abs_t * 1000.0 : abs_t * 1000.0;
        if (ms < 0 || ms > 9.2e15)
            r->error = "time is out of range";
        else
            r->t_ms = (int64_t)llround(ms);
    }
}

/* ---- the pack ----------------------------------------------------------------------------- */

struct reader {
    int64_t now_ms;
    size_t max, count; /* records allowed; elements of the array so far */
    struct senml_record *recs;
    size_t cap;
    struct err broken; /* the first record that breaks the pack: reported if the JSON is good */
    struct base base;
    struct fields fields;
};

static struct senml_record *slot(struct reader *rd, size_t i)
{
    if (i == rd->cap) {
        size_t cap = rd->cap * 2 < rd->max ? rd->cap * 2 : rd->max;
        struct senml_record *recs = realloc(rd->recs, cap * sizeof *recs);
        if (!recs)
            return NULL;
        rd->recs = recs;
        rd->cap = cap;
    }
    return &rd->recs[i];
}

/* One element of the pack. After the pack is broken or over its limit, elements are only
 * checked as JSON: a syntax error anywhere still makes the body invalid JSON. */
static bool read_element(struct lex *x, struct reader *rd)
{
    size_t i = rd->count;
    if (rd->broken.code || i >= rd->max)
        return skip_value(x, 2);
    if (peek(x) != '{') {
        err_set(&rd->broken, ERR_INVALID, "record %zu is not a JSON object", i);
        return skip_value(x, 2);
    }
    if (!read_record(x, &rd->fields))
        return false;
    if (check_record(&rd->fields, i, &rd->broken))
        return true;
    base_update(&rd->base, &rd->fields);
    struct senml_record *r = slot(rd, i);
    if (!r)
        err_set(&rd->broken, ERR_INTERNAL, "out of memory parsing SenML");
    else
        resolve(&rd->fields, &rd->base, r, rd->now_ms);
    return true;
}

static bool read_pack(struct lex *x, struct reader *rd)
{
    x->p++; /* '[' */
    if (peek(x) == ']') {
        x->p++;
        return true;
    }
    for (;;) {
        if (!read_element(x, rd))
            return false;
        rd->count++;
        int c = peek(x);
        if (c == ']') {
            x->p++;
            return true;
        }
        if (c != ',')
            return fail(x, x->p, "',' or ']' expected");
        x->p++;
    }
}

static enum err_code json_error(const char *body, const struct lex *x, struct err *err)
{
    int line = 1;
    const char *bol = body;
    for (const char *p = body; p < x->at; p++)
        if (*p == '\n')
            line++, bol = p + 1;
    return err_set(err, ERR_INVALID, "body is not valid JSON: %s at line %d column %lld", x->why,
                   line, (long long)(x->at - bol + 1));
}

enum err_code senml_parse(const char *body, size_t len, int64_t now_ms, size_t max_records,
                          struct senml_record **out, size_t *n, struct err *err)
{
    struct lex x = {body, body + len, NULL, NULL};
    struct reader rd = {.now_ms = now_ms, .max = max_records, .broken = ERR_INIT};
    fields_init(&rd.fields);
    /* Room for the records of a typical pack (~36 bytes each): one allocation, no zeroing. */
    size_t guess = len / 32 + 16;
    rd.cap = guess < max_records ? guess : max_records;
    rd.recs = malloc((rd.cap ? rd.cap : 1) * sizeof *rd.recs);
    if (!rd.recs)
        return err_set(err, ERR_INTERNAL, "out of memory parsing SenML");
    int c = peek(&x);
    if (c == '[')
        read_pack(&x, &rd);
    else if (c == '{' && skip_value(&x, 1))
        err_set(&rd.broken, ERR_INVALID, "a SenML pack must be a JSON array of records");
    else if (c != '{')
        fail(&x, x.p, "'[' or '{' expected");
    if (!x.why && peek(&x) != -1)
        fail(&x, x.p, "end of input expected");
    enum err_code rc = ERR_OK;
    if (x.why)
        rc = json_error(body, &x, err);
    else if (rd.count > max_records)
        rc = err_set(err, ERR_TOO_BIG, "the pack holds %zu records; send at most %zu per request",
                     rd.count, max_records);
    else if (rd.broken.code)
        rc = err_set(err, rd.broken.code, "%s", rd.broken.msg);
    if (rc) {
        free(rd.recs);
        return rc;
    }
    *out = rd.recs;
    *n = rd.count;
    return ERR_OK;
}

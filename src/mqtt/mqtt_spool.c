/* mqtt_spool: messages received from the broker, on disk before the broker learns they arrived.
 * libmosquitto 2.0 in threaded mode only queues a QoS 1 PUBACK; the ingest connection reads a
 * burst of messages, on_message stages each here, and the burst's records reach the segment
 * with one write(2) before any of the burst's PUBACKs leave (mqtt_conn.c). From then on a kill
 * -9 of sinergi cannot lose them: the kernel holds the bytes and the next start replays them. Power loss
 * can lose what was written since the last fdatasync (every mqtt_spool_fsync_ms) and not yet
 * committed to the database.
 *
 * Segments seg-<n>.spool hold records {magic, crc32, code_len, payload_len, code, payload}. A
 * segment is deleted once every message in it is committed (or refused for good); one with a
 * failed commit is kept for the next start. Replaying a message that was already committed is
 * harmless: a reading is stored once per (sensor, time). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "mqtt/mqtt_int.h"
#include "core/banned.h"

enum {
    SPOOL_MAGIC = 0x314c5053, /* "SPL1" */
    SEG_MAX = 4 << 20,        /* a segment is sealed at this size */
    SEG_AGE_MS = 1000,        /* ... or when it is this old: a replay repeats at most ~1 s */
    STAGE_KEEP = 4 << 20,     /* a staging buffer larger than this is freed after its flush */
};

struct rec_header {
    uint32_t magic, crc, code_len, payload_len;
};

struct spool_seg {
    struct spool_seg *next;
    uint64_t id;
    int fd; /* open while it is the current segment */
    size_t bytes;
    int64_t appended, finished;
    uint64_t opened_ns;
    bool sealed, failed;
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t idle;
    bool open;
    int dirfd;
    char dir[512];
    int fsync_ms;
    struct spool_seg *head, *cur;
    uint64_t next_id, last_sync_ns, last_error_ns;
    bool dirty;
    int64_t inflight;
} sp = {.lock = PTHREAD_MUTEX_INITIALIZER, .idle = PTHREAD_COND_INITIALIZER, .dirfd = -1};

/* ---- CRC-32 (IEEE 802.3, as zlib) --------------------------------------------------------- */
static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

static uint32_t crc32_update(uint32_t crc, const void *data, size_t n)
{
    const unsigned char *p = data;
    crc = ~crc;
    while (n--)
        crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

static uint32_t record_crc(uint32_t code_len, uint32_t payload_len, const void *code,
                           const void *payload)
{
    uint32_t lens[2] = {code_len, payload_len};
    uint32_t c = crc32_update(0, lens, sizeof lens);
    c = crc32_update(c, code, code_len);
    return crc32_update(c, payload, payload_len);
}

/* ---- segments (caller holds sp.lock) ------------------------------------------------------ */
static void seg_name(char out[64], uint64_t id)
{
    snprintf(out, 64, "seg-%020llu.spool", (unsigned long long)id);
}

static void error_throttled(const char *what, int e)
{
    atomic_fetch_add(&mqtt__counters.spool_errors, 1);
    uint64_t now = clock_mono_ns();
    if (now - sp.last_error_ns < 1000000000ull && sp.last_error_ns)
        return;
    sp.last_error_ns = now;
    log_error("event=mqtt_spool_error op=%s dir=%s detail=\"%s\"", what, sp.dir, strerror(e));
}

static void seg_remove(struct spool_seg *s)
{
    for (struct spool_seg **pp = &sp.head; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    if (sp.cur == s)
        sp.cur = NULL;
    char name[64];
    seg_name(name, s->id);
    if (sp.dirfd < 0) /* finished after the spool closed: the file stays, replay is harmless */
        ;
    else if (s->failed)
        log_warn("event=mqtt_spool_kept segment=%s reason=\"a commit failed; replayed at the "
                 "next start\"",
                 name);
    else if (unlinkat(sp.dirfd, name, 0) != 0 && errno != ENOENT)
        error_throttled("unlink", errno);
    free(s);
}

/* No more appends to `s`; deleted at once if all its messages are finished. */
static void seg_seal(struct spool_seg *s)
{
    if (s->fd >= 0) {
        if (sp.dirty && s->finished < s->appended && fdatasync(s->fd) != 0)
            error_throttled("fdatasync", errno);
        close(s->fd);
        s->fd = -1;
        sp.dirty = false;
    }
    s->sealed = true;
    if (sp.cur == s)
        sp.cur = NULL;
    if (s->finished == s->appended)
        seg_remove(s);
}

static struct spool_seg *seg_add(uint64_t id, int fd)
{
    struct spool_seg *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->id = id;
    s->fd = fd;
    s->opened_ns = clock_mono_ns();
    struct spool_seg **pp = &sp.head;
    while (*pp)
        pp = &(*pp)->next;
    *pp = s;
    return s;
}

static struct spool_seg *seg_open(void)
{
    char name[64];
    uint64_t id = sp.next_id++;
    seg_name(name, id);
    int fd = openat(sp.dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        error_throttled("open", errno);
        return NULL;
    }
    if (fsync(sp.dirfd) != 0) /* the new name itself survives power loss */
        error_throttled("fsync-dir", errno);
    struct spool_seg *s = seg_add(id, fd);
    if (!s) {
        close(fd);
        unlinkat(sp.dirfd, name, 0);
        return NULL;
    }
    sp.cur = s;
    return s;
}

/* ---- the API ------------------------------------------------------------------------------ */
static int mkdirs(const char *path)
{
    char p[512];
    snprintf(p, sizeof p, "%s", path);
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            if (mkdir(p, 0700) != 0 && errno != EEXIST)
                return -1;
            *s = '/';
        }
    return mkdir(p, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

enum err_code mqtt__spool_open(const char *dir, int fsync_ms, struct err *err)
{
    pthread_once(&crc_once, crc_init);
    snprintf(sp.dir, sizeof sp.dir, "%s", dir);
    sp.fsync_ms = fsync_ms;
    if (!dir[0] || mkdirs(dir) != 0 ||
        (sp.dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        return err_set(err, ERR_INTERNAL, "setting 'mqtt_spool_dir': cannot use %s: %s", dir,
                       strerror(errno));
    sp.head = sp.cur = NULL;
    sp.next_id = 1;
    sp.inflight = 0;
    sp.dirty = false;
    sp.open = true;
    return ERR_OK;
}

/* Records staged by the ingest thread during one read burst, written by mqtt__spool_flush. */
static struct {
    char *buf;
    size_t len, cap;
    int64_t n;
} stage;

bool mqtt__spool_stage(const char *code, const void *payload, size_t len)
{
    uint32_t code_len = (uint32_t)strlen(code);
    struct rec_header h = {SPOOL_MAGIC, record_crc(code_len, (uint32_t)len, code, payload),
                           code_len, (uint32_t)len};
    size_t total = sizeof h + code_len + len;
    if (stage.len + total > stage.cap) {
        size_t cap = stage.cap ? stage.cap : 64 * 1024;
        while (cap < stage.len + total)
            cap *= 2;
        char *p = realloc(stage.buf, cap);
        if (!p) {
            pthread_mutex_lock(&sp.lock);
            error_throttled("stage", ENOMEM);
            pthread_mutex_unlock(&sp.lock);
            return false;
        }
        stage.buf = p;
        stage.cap = cap;
    }
    memcpy(stage.buf + stage.len, &h, sizeof h);
    memcpy(stage.buf + stage.len + sizeof h, code, code_len);
    memcpy(stage.buf + stage.len + sizeof h + code_len, payload, len);
    stage.len += total;
    stage.n++;
    return true;
}

size_t mqtt__spool_staged_bytes(void)
{
    return stage.len;
}

struct spool_seg *mqtt__spool_flush(void)
{
    if (stage.n == 0)
        return NULL;
    pthread_mutex_lock(&sp.lock);
    if (sp.cur && sp.cur->bytes >= SEG_MAX)
        seg_seal(sp.cur);
    struct spool_seg *s = sp.cur ? sp.cur : seg_open();
    if (s) {
        size_t off = 0;
        while (off < stage.len) {
            ssize_t n = write(s->fd, stage.buf + off, stage.len - off);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            off += (size_t)n;
        }
        if (off != stage.len) {
            /* A torn record ends the segment: replay stops there, so nothing may follow it. */
            error_throttled("write", errno ? errno : ENOSPC);
            seg_seal(s);
            s = NULL;
        } else {
            s->bytes += stage.len;
            s->appended += stage.n;
            sp.inflight += stage.n;
            sp.dirty = true;
            if (sp.fsync_ms == 0) {
                if (fdatasync(s->fd) != 0)
                    error_throttled("fdatasync", errno);
                sp.dirty = false;
            }
        }
    }
    pthread_mutex_unlock(&sp.lock);
    stage.len = 0;
    stage.n = 0;
    if (stage.cap > STAGE_KEEP) { /* one huge message does not keep its buffer */
        free(stage.buf);
        stage.buf = NULL;
        stage.cap = 0;
    }
    return s;
}

void mqtt__spool_done(struct spool_seg *s, bool failed)
{
    if (!s)
        return;
    pthread_mutex_lock(&sp.lock);
    s->finished++;
    if (failed)
        s->failed = true;
    if (--sp.inflight == 0)
        pthread_cond_broadcast(&sp.idle);
    if (s->sealed && s->finished == s->appended)
        seg_remove(s);
    pthread_mutex_unlock(&sp.lock);
}

void mqtt__spool_tick(void)
{
    pthread_mutex_lock(&sp.lock);
    uint64_t now = clock_mono_ns();
    struct spool_seg *s = sp.cur;
    if (s && now - s->opened_ns >= SEG_AGE_MS * 1000000ull) {
        seg_seal(s); /* deleted now, or when its last message is committed */
    } else if (s && sp.dirty && now - sp.last_sync_ns >= (uint64_t)sp.fsync_ms * 1000000ull) {
        if (fdatasync(s->fd) != 0)
            error_throttled("fdatasync", errno);
        sp.dirty = false;
        sp.last_sync_ns = now;
    }
    pthread_mutex_unlock(&sp.lock);
}

/* ---- replay ------------------------------------------------------------------------------- */
static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

/* Ids of the segments in the directory, sorted; *n is their count. */
static uint64_t *list_segments(size_t *n)
{
    DIR *d = fdopendir(dup(sp.dirfd));
    uint64_t *ids = NULL;
    size_t cap = 0;
    *n = 0;
    if (!d)
        return NULL;
    rewinddir(d);
    for (struct dirent *e; (e = readdir(d));) {
        unsigned long long id;
        char tail[8];
        if (sscanf(e->d_name, "seg-%llu.%7s", &id, tail) != 2 || strcmp(tail, "spool") != 0)
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            uint64_t *p = realloc(ids, cap * sizeof *ids);
            if (!p)
                break;
            ids = p;
        }
        ids[(*n)++] = id;
    }
    closedir(d);
    if (*n)
        qsort(ids, *n, sizeof *ids, cmp_u64);
    return ids;
}

static char *read_segment(uint64_t id, size_t *len)
{
    char name[64];
    seg_name(name, id);
    int fd = openat(sp.dirfd, name, O_RDONLY | O_CLOEXEC);
    struct stat st;
    char *buf = NULL;
    *len = 0;
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_size > 1024L * 1024 * 1024 ||
        !(buf = malloc((size_t)st.st_size + 1))) {
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    *len = got;
    return buf;
}

/* Submits every intact record of one segment; returns how many. */
static int64_t replay_segment(struct spool_seg *s, const char *buf, size_t len)
{
    size_t off = 0;
    int64_t n = 0;
    while (off + sizeof(struct rec_header) <= len) {
        struct rec_header h;
        memcpy(&h, buf + off, sizeof h);
        const char *code = buf + off + sizeof h, *payload = code + h.code_len;
        if (h.magic != SPOOL_MAGIC || h.code_len > MQTT_CODE_MAX ||
            h.payload_len > MQTT_PAYLOAD_MAX ||
            len - off - sizeof h < (size_t)h.code_len + h.payload_len ||
            record_crc(h.code_len, h.payload_len, code, payload) != h.crc)
            break;
        char c[MQTT_CODE_MAX + 1];
        memcpy(c, code, h.code_len);
        c[h.code_len] = 0;
        pthread_mutex_lock(&sp.lock);
        s->appended++;
        sp.inflight++;
        pthread_mutex_unlock(&sp.lock);
        mqtt__ingest_payload(c, payload, h.payload_len, s, true);
        off += sizeof h + h.code_len + h.payload_len;
        n++;
    }
    if (off < len) {
        char name[64];
        seg_name(name, s->id);
        log_warn("event=mqtt_spool_torn segment=%s offset=%zu bytes=%zu reason=\"the end of "
                 "a record interrupted by a crash; it was never acknowledged\"",
                 name, off, len - off);
    }
    return n;
}

enum err_code mqtt__spool_replay(struct err *err)
{
    size_t nseg = 0;
    uint64_t *ids = list_segments(&nseg);
    int64_t messages = 0;
    uint64_t before = atomic_load(&mqtt__counters.stored);
    for (size_t i = 0; i < nseg; i++) {
        if (ids[i] >= sp.next_id)
            sp.next_id = ids[i] + 1;
        size_t len;
        char *buf = read_segment(ids[i], &len);
        if (!buf) {
            log_error("event=mqtt_spool_unreadable segment=%llu detail=\"%s\"",
                      (unsigned long long)ids[i], strerror(errno));
            continue;
        }
        pthread_mutex_lock(&sp.lock);
        struct spool_seg *s = seg_add(ids[i], -1);
        pthread_mutex_unlock(&sp.lock);
        if (s) {
            messages += replay_segment(s, buf, len);
            pthread_mutex_lock(&sp.lock);
            seg_seal(s);
            pthread_mutex_unlock(&sp.lock);
        }
        free(buf);
    }
    free(ids);
    pthread_mutex_lock(&sp.lock);
    while (sp.inflight > 0)
        pthread_cond_wait(&sp.idle, &sp.lock);
    pthread_mutex_unlock(&sp.lock);
    if (nseg)
        log_info("event=mqtt_spool_replayed segments=%zu messages=%lld readings_stored=%llu", nseg,
                 (long long)messages,
                 (unsigned long long)(atomic_load(&mqtt__counters.stored) - before));
    (void)err;
    return ERR_OK;
}

void mqtt__spool_close(void)
{
    if (!sp.open)
        return;
    pthread_mutex_lock(&sp.lock);
    struct timespec until = clock_deadline(CLOCK_REALTIME, 30000000000ull);
    while (sp.inflight > 0)
        if (pthread_cond_timedwait(&sp.idle, &sp.lock, &until) != 0)
            break;
    if (sp.inflight > 0)
        log_error("event=mqtt_spool_close_pending messages=%lld reason=\"not committed in 30 s; "
                  "replayed at the next start\"",
                  (long long)sp.inflight);
    if (sp.cur)
        seg_seal(sp.cur);
    free(stage.buf);
    stage.buf = NULL;
    stage.len = stage.cap = 0;
    stage.n = 0;
    while (sp.head && sp.inflight == 0) { /* sealed, a commit failed: the files stay */
        struct spool_seg *s = sp.head;
        sp.head = s->next;
        free(s);
    }
    sp.head = NULL; /* with messages still pending the writer may yet finish them: not freed */
    close(sp.dirfd);
    sp.dirfd = -1;
    sp.open = false;
    pthread_mutex_unlock(&sp.lock);
}

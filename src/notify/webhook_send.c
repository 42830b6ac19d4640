/* webhook_send: one thread delivers to every webhook through libcurl's multi interface. Each
 * target has at most one attempt in flight, with its own timeout, so an endpoint that hangs or
 * refuses holds only its own queue. Woken by notify_kick (curl_multi_wakeup); polls the outbox
 * every second and when the next retry falls due. */
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "notify/notify_int.h"
#include "core/banned.h"

#ifndef SINERGI_VERSION
#define SINERGI_VERSION "dev"
#endif

static struct {
    pthread_mutex_t lock; /* guards multi against kick during start and stop */
    CURLM *multi;
    pthread_t thread;
    bool running;
    atomic_bool stopping, kicked;
    struct notify__job *inflight[NOTIFY_MAX_INFLIGHT];
    int n;
} w = {.lock = PTHREAD_MUTEX_INITIALIZER};

static bool busy(const char *target, void *ctx)
{
    (void)ctx;
    for (int i = 0; i < w.n; i++)
        if (strcmp(w.inflight[i]->target, target) == 0)
            return true;
    return false;
}

static size_t discard(char *ptr, size_t size, size_t n, void *ctx)
{
    (void)ptr;
    (void)ctx;
    return size * n;
}

static bool add_header(struct curl_slist **h, const char *name, const char *value)
{
    char line[256];
    snprintf(line, sizeof line, "%s: %s", name, value);
    struct curl_slist *n = curl_slist_append(*h, line);
    if (n)
        *h = n;
    return n != NULL;
}

/* Sets up the POST of one job; false when out of memory. */
static bool begin(struct notify__job *j)
{
    char sig[NOTIFY_SIG_LEN + 1];
    notify__sign(j->secret, j->payload, j->len, sig);
    struct curl_slist *h = NULL;
    CURL *e = curl_easy_init();
    bool ok = e && add_header(&h, "Content-Type", "application/json") &&
              add_header(&h, "X-Sinergi-Delivery", j->delivery) &&
              add_header(&h, "X-Sinergi-Signature", sig) &&
              add_header(&h, "Expect", ""); /* no 100-continue round trip */
    if (ok) {
        curl_easy_setopt(e, CURLOPT_URL, j->url);
#if LIBCURL_VERSION_NUM >= 0x075500
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#else
        curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, j->payload);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)j->len);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(e, CURLOPT_USERAGENT, "sinergi/" SINERGI_VERSION);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)notify__conf.timeout_ms);
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)notify__conf.timeout_ms);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(e, CURLOPT_PRIVATE, j);
        ok = curl_multi_add_handle(w.multi, e) == CURLM_OK;
    }
    if (!ok) {
        curl_slist_free_all(h);
        if (e)
            curl_easy_cleanup(e);
        return false;
    }
    j->handle = e;
    j->headers = h;
    j->started_ms = clock_now_ms();
    w.inflight[w.n++] = j;
    return true;
}

static void release(struct notify__job *j)
{
    for (int i = 0; i < w.n; i++)
        if (w.inflight[i] == j) {
            w.inflight[i] = w.inflight[--w.n];
            break;
        }
    curl_multi_remove_handle(w.multi, j->handle);
    curl_easy_cleanup(j->handle);
    curl_slist_free_all(j->headers);
    notify__job_free(j);
}

static void scan(int64_t *next_ms)
{
    struct notify__job *jobs[NOTIFY_MAX_INFLIGHT];
    int n = notify__due("webhook", busy, NULL, jobs, NOTIFY_MAX_INFLIGHT - w.n, next_ms);
    for (int i = 0; i < n; i++)
        if (!begin(jobs[i])) {
            log_error("event=webhook_attempt_failed webhook=%lld delivery=%s detail=\"out of "
                      "memory\"",
                      (long long)jobs[i]->webhook_id, jobs[i]->delivery);
            notify__job_free(jobs[i]);
        }
}

/* Records the attempts that ended; true when any did (its target may have more waiting). */
static bool finish(void)
{
    CURLMsg *m;
    int left;
    bool any = false;
    while ((m = curl_multi_info_read(w.multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        struct notify__job *j = NULL;
        long status = 0;
        CURLcode rc = m->data.result;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&j);
        curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
        bool ok = rc == CURLE_OK && status >= 200 && status < 300;
        char why[128];
        if (rc != CURLE_OK)
            snprintf(why, sizeof why, "%s", curl_easy_strerror(rc));
        else
            snprintf(why, sizeof why, "http status %ld", status);
        int64_t ms = clock_now_ms() - j->started_ms;
        notify__record(j, ok, ok ? NULL : why);
        if (ok)
            log_info("event=webhook_delivered webhook=%lld delivery=%s attempt=%lld ms=%lld",
                     (long long)j->webhook_id, j->delivery, (long long)j->attempts + 1,
                     (long long)ms);
        else
            log_warn("event=webhook_failed webhook=%lld delivery=%s attempt=%lld ms=%lld "
                     "error=\"%s\" retry_in_ms=%lld",
                     (long long)j->webhook_id, j->delivery, (long long)j->attempts + 1,
                     (long long)ms, why, (long long)notify__backoff_ms(j->attempts + 1));
        release(j);
        any = true;
    }
    return any;
}

static void *deliver_main(void *arg)
{
    (void)arg;
    int64_t next_scan = 0;
    while (!atomic_load(&w.stopping)) {
        int64_t now = clock_now_ms();
        if (atomic_exchange(&w.kicked, false) || now >= next_scan) {
            int64_t due = INT64_MAX;
            scan(&due);
            next_scan = now + NOTIFY_POLL_MS < due ? now + NOTIFY_POLL_MS : due;
        }
        int still;
        curl_multi_perform(w.multi, &still);
        if (finish())
            atomic_store(&w.kicked, true);
        int64_t wait = next_scan - clock_now_ms();
        wait = wait < 0 ? 0 : wait > NOTIFY_POLL_MS ? NOTIFY_POLL_MS : wait;
        if (!atomic_load(&w.kicked) && !atomic_load(&w.stopping))
            curl_multi_poll(w.multi, NULL, 0, (int)wait, NULL);
    }
    while (w.n > 0) /* abandoned: still pending in the outbox, sent at the next start */
        release(w.inflight[w.n - 1]);
    return NULL;
}

enum err_code notify__webhooks_start(struct err *err)
{
    pthread_mutex_lock(&w.lock);
    w.multi = curl_multi_init();
    w.n = 0;
    atomic_store(&w.stopping, false);
    atomic_store(&w.kicked, true);
    bool ok = w.multi && pthread_create(&w.thread, NULL, deliver_main, NULL) == 0;
    if (!ok && w.multi) {
        curl_multi_cleanup(w.multi);
        w.multi = NULL;
    }
    w.running = ok;
    pthread_mutex_unlock(&w.lock);
    return ok ? ERR_OK : err_set(err, ERR_INTERNAL, "cannot start the webhook deliverer");
}

void notify__webhooks_stop(void)
{
    pthread_mutex_lock(&w.lock);
    bool was = w.running;
    atomic_store(&w.stopping, true);
    if (was)
        curl_multi_wakeup(w.multi);
    pthread_mutex_unlock(&w.lock);
    if (!was)
        return;
    pthread_join(w.thread, NULL);
    pthread_mutex_lock(&w.lock);
    curl_multi_cleanup(w.multi);
    w.multi = NULL;
    w.running = false;
    pthread_mutex_unlock(&w.lock);
}

void notify__webhooks_kick(void)
{
    atomic_store(&w.kicked, true);
    pthread_mutex_lock(&w.lock);
    if (w.running)
        curl_multi_wakeup(w.multi);
    pthread_mutex_unlock(&w.lock);
}

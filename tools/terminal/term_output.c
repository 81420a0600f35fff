/*
 * term_output — output capping and cleaning (see term_output.h).
 */
#include "term_output.h"

#include "redact.h"
#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_util.h"
#include "term_backend.h"

#include <string.h>

static const char *const noise[] = {
    "bash: cannot set terminal process group",
    "bash: no job control in this shell",
    "no job control in this shell",
    "cannot set terminal process group",
    "tcsetattr: Inappropriate ioctl for device",
    "can't access tty; job control turned off", /* dash -i without a terminal */
};

static const char *const sudo_failures[] = {
    "sudo: a password is required",
    "sudo: no tty present",
    "sudo: a terminal is required",
};

/* ------------------------------------------------------------------ UTF-8 */

/* Length of the valid sequence at p (1..4), or 0 with *bad = the length of its maximal
 * invalid subpart (Unicode 3.9 / Python's "replace": one U+FFFD per subpart). */
static size_t seq_len(const unsigned char *p, size_t n, size_t *bad)
{
    unsigned char c = p[0], lo = 0x80, hi = 0xBF;
    size_t need;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        lo = c == 0xE0 ? 0xA0 : 0x80;
        hi = c == 0xED ? 0x9F : 0xBF;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF;
    } else {
        *bad = 1;
        return 0;
    }
    size_t i = 1;
    for (; i <= need && i < n; i++) {
        unsigned char l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
        if (p[i] < l || p[i] > h)
            break;
    }
    if (i == need + 1)
        return i;
    *bad = i;
    return 0;
}

char *term_utf8_clean(const char *p, size_t n, size_t *outlen)
{
    rt_buf b;
    rt_buf_init(&b, n * 3 + 16); /* each bad byte becomes at most 3 */
    const unsigned char *u = (const unsigned char *)p;
    size_t i = 0;
    while (i < n) {
        size_t start = i;
        while (i < n && u[i] && u[i] < 0x80) /* fast path: plain ASCII */
            i++;
        if (i > start)
            (void)rt_buf_append(&b, p + start, i - start);
        if (i >= n)
            break;
        if (!u[i]) {
            i++; /* NUL: dropped */
            continue;
        }
        size_t bad = 0, k = seq_len(u + i, n - i, &bad);
        if (k) {
            (void)rt_buf_append(&b, p + i, k);
            i += k;
        } else {
            (void)rt_buf_append(&b, "\xEF\xBF\xBD", 3);
            i += bad;
        }
    }
    return rt_buf_steal(&b, outlen);
}

size_t term_utf8_count(const char *p, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += ((unsigned char)p[i] & 0xC0) != 0x80;
    return k;
}

size_t term_utf8_prefix(const char *p, size_t n, size_t chars)
{
    size_t i = 0;
    for (size_t c = 0; i < n && c < chars; c++) {
        i++;
        while (i < n && ((unsigned char)p[i] & 0xC0) == 0x80)
            i++;
    }
    return i;
}

size_t term_utf8_suffix(const char *p, size_t n, size_t chars)
{
    size_t i = n;
    for (size_t c = 0; i > 0 && c < chars; c++) {
        i--;
        while (i > 0 && ((unsigned char)p[i] & 0xC0) == 0x80)
            i--;
    }
    return i;
}

/* ------------------------------------------------------------------ noise */

bool term_noise_line(const char *line, size_t n)
{
    for (size_t i = 0; i < sizeof(noise) / sizeof(noise[0]); i++)
        if (memmem(line, n, noise[i], strlen(noise[i])))
            return true;
    return false;
}

size_t term_strip_noise(char *s, size_t n)
{
    size_t off = 0;
    while (off < n) {
        const char *nl = memchr(s + off, '\n', n - off);
        size_t len = nl ? (size_t)(nl - (s + off)) : n - off;
        if (!term_noise_line(s + off, len))
            break;
        off += nl ? len + 1 : len;
    }
    memmove(s, s + off, n - off);
    s[n - off] = '\0';
    return n - off;
}

/* ------------------------------------------------------------------ capping */

static void append_notice(rt_buf *b, uint64_t omitted, uint64_t total)
{
    (void)rt_buf_printf(b,
                        "\n\n... [OUTPUT TRUNCATED - %llu chars omitted out of %llu total] "
                        "...\n\n",
                        (unsigned long long)omitted, (unsigned long long)total);
}

char *term_cap_output(const char *s, size_t n)
{
    size_t total = term_utf8_count(s, n);
    if (total <= TERM_OUT_MAX_CHARS)
        return rt_xstrndup(s, n);
    size_t h = term_utf8_prefix(s, n, TERM_OUT_HEAD_CHARS);
    size_t t = term_utf8_suffix(s, n, TERM_OUT_TAIL_CHARS);
    rt_buf b;
    rt_buf_init(&b, n + 256);
    (void)rt_buf_append(&b, s, h);
    append_notice(&b, total - TERM_OUT_MAX_CHARS, total);
    (void)rt_buf_append(&b, s + t, n - t);
    return rt_buf_steal(&b, NULL);
}

static bool is_ws(unsigned char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}

char *term_strip(char *s)
{
    size_t n = strlen(s), a = 0;
    while (a < n && is_ws((unsigned char)s[a]))
        a++;
    while (n > a && is_ws((unsigned char)s[n - 1]))
        n--;
    memmove(s, s + a, n - a);
    s[n - a] = '\0';
    return s;
}

char *term_mask_secret(const char *s, const char *secret)
{
    size_t k = secret ? strlen(secret) : 0;
    if (k < 4 || !strstr(s, secret))
        return rt_xstrdup(s);
    rt_buf b;
    rt_buf_init(&b, strlen(s) + 16);
    for (const char *p = s, *hit; *p; p = hit + k) {
        hit = strstr(p, secret);
        if (!hit) {
            (void)rt_buf_append_str(&b, p);
            break;
        }
        (void)rt_buf_append(&b, p, (size_t)(hit - p));
        (void)rt_buf_append(&b, "***", 3);
    }
    return rt_buf_steal(&b, NULL);
}

static bool sudo_failed(const char *s)
{
    for (size_t i = 0; i < sizeof(sudo_failures) / sizeof(sudo_failures[0]); i++)
        if (strstr(s, sudo_failures[i]))
            return true;
    return false;
}

/* ------------------------------------------------------------------ outbuf */

void term_outbuf_init(term_outbuf *b)
{
    memset(b, 0, sizeof(*b));
}

void term_outbuf_fini(term_outbuf *b)
{
    rt_free(b->head);
    rt_free(b->ring);
    memset(b, 0, sizeof(*b));
}

void term_outbuf_append(term_outbuf *b, const char *p, size_t n)
{
    b->total_bytes += n;
    b->total_chars += term_utf8_count(p, n);
    size_t h = TERM_OUT_HEAD_BYTES - b->head_len;
    if (h > n)
        h = n;
    if (h) {
        if (!b->head)
            b->head = rt_xmalloc(TERM_OUT_HEAD_BYTES);
        memcpy(b->head + b->head_len, p, h);
        b->head_len += h;
        p += h;
        n -= h;
    }
    if (!n)
        return;
    if (!b->ring)
        b->ring = rt_xmalloc(TERM_OUT_TAIL_BYTES);
    b->ring_total += n;
    if (n >= TERM_OUT_TAIL_BYTES) {
        memcpy(b->ring, p + n - TERM_OUT_TAIL_BYTES, TERM_OUT_TAIL_BYTES);
        b->ring_pos = 0;
        return;
    }
    size_t first = TERM_OUT_TAIL_BYTES - b->ring_pos;
    if (first > n)
        first = n;
    memcpy(b->ring + b->ring_pos, p, first);
    memcpy(b->ring, p + first, n - first);
    b->ring_pos = (b->ring_pos + n) % TERM_OUT_TAIL_BYTES;
}

/* The ring's bytes in order (a new heap buffer, *n bytes). */
static char *ring_linear(const term_outbuf *b, size_t *n)
{
    size_t len = b->ring_total < TERM_OUT_TAIL_BYTES ? (size_t)b->ring_total : TERM_OUT_TAIL_BYTES;
    char *out = rt_xmalloc(len + 1);
    if (b->ring_total <= TERM_OUT_TAIL_BYTES) {
        memcpy(out, b->ring, len);
    } else {
        size_t a = TERM_OUT_TAIL_BYTES - b->ring_pos;
        memcpy(out, b->ring + b->ring_pos, a);
        memcpy(out + a, b->ring, b->ring_pos);
    }
    *n = len;
    return out;
}

/* Everything fits in head + ring: the exact text, then the exact cap. */
static char *finish_whole(const term_outbuf *b, const term_finish_opts *o)
{
    size_t rn = 0;
    char *r = b->ring ? ring_linear(b, &rn) : NULL;
    rt_buf raw;
    rt_buf_init(&raw, b->head_len + rn + 1);
    (void)rt_buf_append(&raw, b->head ? b->head : "", b->head_len);
    (void)rt_buf_append(&raw, r ? r : "", rn);
    rt_free(r);
    size_t n;
    char *text = term_utf8_clean(raw.data ? raw.data : "", raw.len, &n);
    rt_buf_fini(&raw);
    if (o->strip_noise)
        n = term_strip_noise(text, n);
    rt_buf t;
    rt_buf_init(&t, n + 4096);
    (void)rt_buf_append(&t, text, n);
    rt_free(text);
    if (o->note)
        (void)rt_buf_append_str(&t, o->note);
    if (o->sudo_tip && sudo_failed(rt_buf_cstr(&t)))
        (void)rt_buf_append_str(&t, TERM_SUDO_TIP);
    char *capped = term_cap_output(rt_buf_cstr(&t), t.len);
    rt_buf_fini(&t);
    return capped;
}

/* More than head + ring: the first 20,000 characters come from head, the last 30,000
 * from the ring, and the totals give the omitted count. */
static char *finish_gap(const term_outbuf *b, const term_finish_opts *o)
{
    size_t hn, tn, rn;
    char *head = term_utf8_clean(b->head, b->head_len, &hn);
    uint64_t removed = 0;
    if (o->strip_noise) {
        size_t before = term_utf8_count(head, hn);
        hn = term_strip_noise(head, hn);
        removed = before - term_utf8_count(head, hn);
    }
    char *r = ring_linear(b, &rn);
    size_t skip = 0;
    while (skip < rn && ((unsigned char)r[skip] & 0xC0) == 0x80)
        skip++; /* the ring may start inside a character */
    char *tail0 = term_utf8_clean(r + skip, rn - skip, &tn);
    rt_free(r);
    rt_buf t;
    rt_buf_init(&t, tn + 4096);
    (void)rt_buf_append(&t, tail0, tn);
    rt_free(tail0);
    uint64_t extra = 0;
    if (o->note) {
        (void)rt_buf_append_str(&t, o->note);
        extra += term_utf8_count(o->note, strlen(o->note));
    }
    if (o->sudo_tip && (sudo_failed(head) || sudo_failed(rt_buf_cstr(&t)))) {
        (void)rt_buf_append_str(&t, TERM_SUDO_TIP);
        extra += term_utf8_count(TERM_SUDO_TIP, strlen(TERM_SUDO_TIP));
    }
    uint64_t total = b->total_chars - removed + extra;
    if (total < TERM_OUT_MAX_CHARS)
        total = TERM_OUT_MAX_CHARS; /* only for output far from valid UTF-8 */
    size_t h = term_utf8_prefix(head, hn, TERM_OUT_HEAD_CHARS);
    size_t s = term_utf8_suffix(rt_buf_cstr(&t), t.len, TERM_OUT_TAIL_CHARS);
    rt_buf out;
    rt_buf_init(&out, h + (t.len - s) + 256);
    (void)rt_buf_append(&out, head, h);
    append_notice(&out, total - TERM_OUT_MAX_CHARS, total);
    (void)rt_buf_append(&out, rt_buf_cstr(&t) + s, t.len - s);
    rt_free(head);
    rt_buf_fini(&t);
    return rt_buf_steal(&out, NULL);
}

char *term_outbuf_finish(const term_outbuf *b, const term_finish_opts *o)
{
    static const term_finish_opts none;
    if (!o)
        o = &none;
    char *text = b->ring_total <= TERM_OUT_TAIL_BYTES ? finish_whole(b, o) : finish_gap(b, o);
    term_strip(text);
    char *masked = term_mask_secret(text, o->mask);
    rt_free(text);
    char *red = redact_secrets(masked);
    rt_free(masked);
    return red;
}

/* ------------------------------------------------------------------ marker */

static bool marker_line(term_marker *m)
{
    size_t k = m->len, ml = strlen(TERM_PID_MARKER);
    while (k && (m->line[k - 1] == '\n' || m->line[k - 1] == '\r'))
        k--;
    if (k <= ml || memcmp(m->line, TERM_PID_MARKER, ml) != 0)
        return false;
    char num[24];
    if (k - ml >= sizeof(num))
        return false;
    memcpy(num, m->line + ml, k - ml);
    num[k - ml] = '\0';
    int64_t pid;
    if (rt_parse_i64(num, 1, INT32_MAX, &pid) != 0)
        return false;
    m->pid = (long)pid;
    return true;
}

void term_marker_feed(term_marker *m, const char *p, size_t n, term_sink out, void *arg)
{
    while (!m->done && n) {
        const char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) + 1 : n;
        if (m->len + take > sizeof(m->line) || m->scanned + take > TERM_MARKER_SCAN) {
            m->done = true; /* no marker in sight: it is all output */
            if (m->len)
                out(arg, m->line, m->len);
            m->len = 0;
            break;
        }
        memcpy(m->line + m->len, p, take);
        m->len += take;
        m->scanned += take;
        p += take;
        n -= take;
        if (!nl)
            return;
        if (marker_line(m))
            m->done = true;
        else
            out(arg, m->line, m->len);
        m->len = 0;
    }
    if (n)
        out(arg, p, n);
}

void term_marker_flush(term_marker *m, term_sink out, void *arg)
{
    if (m->len)
        out(arg, m->line, m->len);
    m->len = 0;
    m->done = true;
}

/*
 * hm_env — .env parsing (python-dotenv's grammar), in-place edits and atomic file writes.
 */
#include "hm_env.h"

#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void hm_env_init(hm_env *e)
{
    *e = (hm_env){0};
}

void hm_env_fini(hm_env *e)
{
    for (size_t i = 0; i < e->n; i++) {
        rt_free(e->v[i].key);
        rt_free(e->v[i].value);
    }
    rt_free(e->v);
    *e = (hm_env){0};
}

bool hm_env_valid_key(const char *key)
{
    if (!key ||
        !(key[0] == '_' || (key[0] >= 'A' && key[0] <= 'Z') || (key[0] >= 'a' && key[0] <= 'z')))
        return false;
    for (const char *p = key; *p; p++)
        if (!(*p == '_' || (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
              (*p >= '0' && *p <= '9')))
            return false;
    return true;
}

const char *hm_env_get(const hm_env *e, const char *key)
{
    for (size_t i = e->n; i-- > 0;)
        if (strcmp(e->v[i].key, key) == 0)
            return e->v[i].value;
    return NULL;
}

/* ---- parsing -------------------------------------------------------------------------- */

typedef struct scan {
    const char *s;
    size_t n, i;
    int line; /* 1-based line of position i */
} scan;

static bool at_eol(const scan *sc)
{
    return sc->i >= sc->n || sc->s[sc->i] == '\n' || sc->s[sc->i] == '\r';
}

static void skip_blanks(scan *sc)
{
    while (sc->i < sc->n && (sc->s[sc->i] == ' ' || sc->s[sc->i] == '\t'))
        sc->i++;
}

/* Move past the end of the current line. */
static void next_line(scan *sc)
{
    while (sc->i < sc->n && sc->s[sc->i] != '\n')
        sc->i++;
    if (sc->i < sc->n) {
        sc->i++;
        sc->line++;
    }
}

/* End of the statement ending at the line break at or after i (before a "\r\n"). */
static size_t stmt_end(const scan *sc)
{
    size_t j = sc->i;
    while (j < sc->n && sc->s[j] != '\n')
        j++;
    return j > 0 && j <= sc->n && j > sc->i && sc->s[j - 1] == '\r' ? j - 1 : j;
}

/* ${NAME} or ${NAME:-default}: environment first, then earlier lines, then the default. */
static void interpolate(const hm_env *e, const char *v, rt_buf *out)
{
    while (*v) {
        const char *open = strstr(v, "${");
        const char *close = open ? strchr(open + 2, '}') : NULL;
        if (!close) {
            rt_buf_append_str(out, v);
            return;
        }
        rt_buf_append(out, v, (size_t)(open - v));
        char *name = rt_xstrndup(open + 2, (size_t)(close - open - 2));
        char *def = strstr(name, ":-");
        if (def)
            *def = 0, def += 2;
        if (strchr(name, ':')) { /* not a reference in python-dotenv's grammar: keep it */
            rt_buf_append(out, open, (size_t)(close - open) + 1);
        } else {
            const char *val = getenv(name);
            if (!val)
                val = hm_env_get(e, name);
            rt_buf_append_str(out, val ? val : def ? def : "");
        }
        rt_free(name);
        v = close + 1;
    }
}

/* A quoted value starting at the quote; returns false if it is not closed. */
static bool quoted(scan *sc, char q, rt_buf *raw)
{
    sc->i++;
    while (sc->i < sc->n) {
        char c = sc->s[sc->i];
        if (c == q) {
            sc->i++;
            return true;
        }
        if (c == '\\' && sc->i + 1 < sc->n && sc->s[sc->i + 1] == q) {
            rt_buf_append(raw, sc->s + sc->i, 2);
            sc->i += 2;
            continue;
        }
        if (c == '\n')
            sc->line++;
        rt_buf_append(raw, &c, 1);
        sc->i++;
    }
    return false;
}

/* python-dotenv's escapes: \\ \' in single quotes; \\ \' \" \a \b \f \n \r \t \v in double. */
static void unescape(const char *r, bool dq, rt_buf *out)
{
    static const char from[] = "\\'\"abfnrtv", to[] = "\\'\"\a\b\f\n\r\t\v";
    for (; *r; r++) {
        const char *k = r[0] == '\\' && r[1] ? strchr(dq ? from : "\\'", r[1]) : NULL;
        if (k) {
            char c = dq ? to[k - from] : r[1];
            rt_buf_append(out, &c, 1);
            r++;
        } else {
            rt_buf_append(out, r, 1);
        }
    }
}

/* A bare value: to the end of the line, a blank followed by '#' starts a comment. */
static char *bare_value(scan *sc)
{
    size_t a = sc->i;
    while (!at_eol(sc))
        sc->i++;
    size_t b = sc->i;
    for (size_t j = a; j < b; j++)
        if (sc->s[j] == '#' && j > a && (sc->s[j - 1] == ' ' || sc->s[j - 1] == '\t')) {
            b = j;
            break;
        }
    while (b > a && (sc->s[b - 1] == ' ' || sc->s[b - 1] == '\t'))
        b--;
    return rt_xstrndup(sc->s + a, b - a);
}

static void push(hm_env *e, char *key, char *value, int line, size_t start, size_t end)
{
    if (e->n == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 16;
        e->v = rt_xrealloc(e->v, e->cap * sizeof(*e->v));
    }
    e->v[e->n++] = (hm_env_var){key, value, line, start, end};
}

static char *read_key(scan *sc)
{
    size_t a = sc->i;
    if (a >= sc->n) /* "export" and blanks at the very end */
        return NULL;
    if (sc->s[a] == '\'' || sc->s[a] == '"') {
        const char *q = memchr(sc->s + a + 1, sc->s[a], sc->n - a - 1);
        const char *nl = memchr(sc->s + a + 1, '\n', sc->n - a - 1);
        if (!q || (nl && nl < q) || q == sc->s + a + 1 ||             /* unterminated, or '' */
            memchr(sc->s + a + 1, '\0', (size_t)(q - sc->s) - a - 1)) /* a NUL in the name */
            return NULL;
        sc->i = (size_t)(q - sc->s) + 1;
        return rt_xstrndup(sc->s + a + 1, (size_t)(q - sc->s) - a - 1);
    }
    while (sc->i < sc->n && !strchr("=# \t\r\n", sc->s[sc->i]))
        sc->i++;
    return sc->i > a ? rt_xstrndup(sc->s + a, sc->i - a) : NULL;
}

/* One statement starting at a non-blank character. Returns false for a line that does not
 * parse (the caller skips it). */
static bool statement(hm_env *e, scan *sc)
{
    size_t start = sc->i;
    int line = sc->line;
    if (sc->n - sc->i > 7 && memcmp(sc->s + sc->i, "export", 6) == 0 &&
        (sc->s[sc->i + 6] == ' ' || sc->s[sc->i + 6] == '\t')) {
        sc->i += 7;
        skip_blanks(sc);
    }
    char *key = read_key(sc);
    if (!key)
        return false;
    skip_blanks(sc);
    if (at_eol(sc) || sc->s[sc->i] == '#') { /* "KEY" alone: no value, nothing to set */
        rt_free(key);
        next_line(sc);
        return true;
    }
    if (sc->s[sc->i] != '=') {
        rt_free(key);
        return false;
    }
    sc->i++;
    skip_blanks(sc);
    rt_buf raw, val;
    rt_buf_init(&raw, HM_ENV_MAX_BYTES);
    rt_buf_init(&val, HM_ENV_MAX_BYTES * 2);
    char q = sc->i < sc->n ? sc->s[sc->i] : 0;
    if (q == '\'' || q == '"') {
        if (!quoted(sc, q, &raw))
            goto bad;
        skip_blanks(sc);
        if (!at_eol(sc) && sc->s[sc->i] != '#')
            goto bad;
        rt_buf un;
        rt_buf_init(&un, HM_ENV_MAX_BYTES);
        unescape(rt_buf_cstr(&raw), q == '"', &un);
        if (q == '"')
            interpolate(e, rt_buf_cstr(&un), &val);
        else
            rt_buf_append(&val, rt_buf_cstr(&un), un.len);
        rt_buf_fini(&un);
    } else {
        char *b = bare_value(sc);
        interpolate(e, b, &val);
        rt_free(b);
    }
    size_t end = stmt_end(sc);
    push(e, key, rt_buf_steal(&val, NULL), line, start, end);
    rt_buf_fini(&raw);
    next_line(sc);
    return true;
bad:
    rt_free(key);
    rt_buf_fini(&raw);
    rt_buf_fini(&val);
    return false;
}

static bool utf8_valid(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t k = c < 0x80             ? 0
                   : (c & 0xE0) == 0xC0 ? 1
                   : (c & 0xF0) == 0xE0 ? 2
                   : (c & 0xF8) == 0xF0 ? 3
                                        : 9;
        if (k == 9 || (k == 1 && c < 0xC2) || i + k >= n + (k == 0))
            return false;
        for (size_t j = 1; j <= k; j++)
            if ((s[i + j] & 0xC0) != 0x80)
                return false;
        i += k + 1;
    }
    return true;
}

void hm_env_parse(hm_env *e, const char *text, size_t len)
{
    char *latin = NULL;
    size_t *orig = NULL; /* latin offset → offset in the caller's text (spans refer to it) */
    size_t n0 = e->n;
    if (!utf8_valid((const unsigned char *)text, len)) { /* the original's latin-1 fallback */
        latin = rt_xmalloc(len * 2 + 1);
        orig = rt_xmalloc((len * 2 + 1) * sizeof(*orig));
        size_t j = 0;
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)text[i];
            orig[j] = i;
            if (c < 0x80) {
                latin[j++] = (char)c;
            } else {
                latin[j++] = (char)(0xC0 | (c >> 6));
                orig[j] = i;
                latin[j++] = (char)(0x80 | (c & 0x3F));
            }
        }
        orig[j] = len;
        text = latin;
        len = j;
    }
    scan sc = {text, len, 0, 1};
    while (sc.i < sc.n) {
        skip_blanks(&sc);
        if (at_eol(&sc) || sc.s[sc.i] == '#') {
            next_line(&sc);
            continue;
        }
        int line = sc.line;
        size_t at = sc.i;
        if (!statement(e, &sc)) {
            if (!e->bad_lines++)
                e->first_bad = line;
            sc.i = at;
            sc.line = line;
            next_line(&sc);
        }
    }
    if (orig) /* spans end on character boundaries, where orig is exact */
        for (size_t k = n0; k < e->n; k++) {
            e->v[k].start = orig[e->v[k].start];
            e->v[k].end = orig[e->v[k].end];
        }
    rt_free(orig);
    rt_free(latin);
}

int hm_read_file(const char *path, size_t max, char **out, size_t *len)
{
    *out = NULL;
    if (len)
        *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size > max) {
        close(fd);
        return -E2BIG;
    }
    rt_buf b;
    rt_buf_init(&b, max);
    int err = 0;
    char chunk[65536];
    for (;;) {
        ssize_t r = read(fd, chunk, sizeof(chunk));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            err = -errno;
            break;
        }
        if (r == 0)
            break;
        if (rt_buf_append(&b, chunk, (size_t)r)) {
            err = -E2BIG;
            break;
        }
    }
    close(fd);
    if (err) {
        rt_buf_fini(&b);
        return err;
    }
    *out = rt_buf_steal(&b, len);
    return 0;
}

int hm_env_read(hm_env *e, const char *path)
{
    char *text;
    size_t len;
    int rc = hm_read_file(path, HM_ENV_MAX_BYTES, &text, &len);
    if (rc)
        return rc;
    hm_env_parse(e, text, len);
    rt_free(text);
    return 0;
}

int hm_env_apply(const hm_env *e, bool override)
{
    int n = 0;
    for (size_t i = 0; i < e->n; i++) {
        /* the last assignment of a key counts: skip earlier ones */
        if (hm_env_get(e, e->v[i].key) != e->v[i].value)
            continue;
        if (!override && getenv(e->v[i].key))
            continue;
        if (setenv(e->v[i].key, e->v[i].value, 1) == 0)
            n++;
    }
    return n;
}

/* ---- writing -------------------------------------------------------------------------- */

int hm_write_atomic(const char *path, const char *data, size_t len, mode_t mode)
{
    char *tmp = rt_xasprintf("%s.tmp.XXXXXX", path);
    int err = 0;
    int fd = mkstemp(tmp); /* created 0600, so a secret is never readable by others */
    if (fd < 0) {
        err = -errno;
        goto out_free;
    }
    for (size_t off = 0; off < len;) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            err = -errno;
            goto out_close;
        }
        off += (size_t)w;
    }
    if (fchmod(fd, mode) || fsync(fd)) {
        err = -errno;
        goto out_close;
    }
    if (close(fd)) {
        fd = -1;
        err = -errno;
        goto out_unlink;
    }
    fd = -1;
    if (rename(tmp, path)) {
        err = -errno;
        goto out_unlink;
    }
    const char *slash = strrchr(path, '/');
    char *dir =
        slash ? rt_xstrndup(path, slash == path ? 1 : (size_t)(slash - path)) : rt_xstrdup(".");
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd); /* best effort: the rename itself has happened */
        close(dfd);
    }
    rt_free(dir);
    goto out_free;
out_close:
    close(fd);
out_unlink:
    unlink(tmp);
out_free:
    rt_free(tmp);
    return err;
}

/* Bare when it reads back unchanged, otherwise single-quoted (no ${} expansion in those). */
static void format_value(rt_buf *b, const char *v)
{
    size_t n = strlen(v);
    bool bare = !(n && (v[0] == ' ' || v[0] == '\t' || v[n - 1] == ' ' || v[n - 1] == '\t' ||
                        v[0] == '\'' || v[0] == '"')) &&
                !strpbrk(v, "\r\n") && !strstr(v, "${") && !strstr(v, " #") && !strstr(v, "\t#");
    if (bare) {
        rt_buf_append_str(b, v);
        return;
    }
    rt_buf_append_str(b, "'");
    for (const char *p = v; *p; p++) {
        if (*p == '\'' || *p == '\\')
            rt_buf_append_str(b, "\\");
        rt_buf_append(b, p, 1);
    }
    rt_buf_append_str(b, "'");
}

/* The new file text: the first assignment of key replaced, later ones removed, or appended. */
static void edit_text(const char *old, size_t len, const hm_env *e, const char *key,
                      const char *line, rt_buf *out)
{
    size_t at = 0;
    bool done = false;
    for (size_t i = 0; i < e->n; i++) {
        const hm_env_var *v = &e->v[i];
        if (strcmp(v->key, key) != 0)
            continue;
        rt_buf_append(out, old + at, v->start - at);
        at = v->end;
        if (!done) {
            rt_buf_append_str(out, line);
            done = true;
        } else if (at < len && old[at] == '\r') { /* drop the whole duplicate line */
            at += at + 1 < len && old[at + 1] == '\n' ? 2 : 1;
        } else if (at < len && old[at] == '\n') {
            at++;
        }
    }
    rt_buf_append(out, old + at, len - at);
    if (!done) {
        const char *nl = memchr(old, '\n', len);
        const char *eol = nl && nl > old && nl[-1] == '\r' ? "\r\n" : "\n";
        if (len && old[len - 1] != '\n')
            rt_buf_append_str(out, eol);
        rt_buf_printf(out, "%s%s", line, eol);
    }
}

int hm_env_set_file(const char *path, const char *key, const char *value)
{
    if (!hm_env_valid_key(key) || !value)
        return -EINVAL;
    char *old = NULL;
    size_t len = 0;
    int rc = hm_read_file(path, HM_ENV_MAX_BYTES, &old, &len);
    if (rc == -ENOENT)
        old = rt_xstrdup(""), rc = 0;
    if (rc)
        return rc;
    hm_env e;
    hm_env_init(&e);
    hm_env_parse(&e, old, len);
    rt_buf line, out;
    rt_buf_init(&line, HM_ENV_MAX_BYTES);
    rt_buf_init(&out, HM_ENV_MAX_BYTES);
    rt_buf_printf(&line, "%s=", key);
    format_value(&line, value);
    edit_text(old, len, &e, key, rt_buf_cstr(&line), &out);
    if (out.len + line.len >= HM_ENV_MAX_BYTES) {
        rc = -E2BIG;
        goto out;
    }
    /* Check what we wrote reads back as the value (interpolation cannot touch it: values that
     * contain "${" are single-quoted). */
    hm_env chk;
    hm_env_init(&chk);
    hm_env_parse(&chk, rt_buf_cstr(&out), out.len);
    const char *got = hm_env_get(&chk, key);
    rc = got && strcmp(got, value) == 0 ? 0 : -EINVAL;
    hm_env_fini(&chk);
    if (rc == 0)
        rc = hm_write_atomic(path, rt_buf_cstr(&out), out.len, 0600);
out:
    rt_buf_fini(&line);
    rt_buf_fini(&out);
    hm_env_fini(&e);
    rt_free(old);
    return rc;
}

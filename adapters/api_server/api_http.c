/*
 * api_http — the API server's HTTP policy: bearer auth, CORS, security headers, the loopback
 * rule, the port pre-check and the configuration (gateway.md §1.3, §10.1).
 */
#include "api_int.h"

#include "hm_config.h"
#include "rt_alloc.h"
#include "rt_log.h"
#include "rt_util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#define DEFAULT_MAX_INFLIGHT 64
#define DEFAULT_KEEPALIVE_MS 30000
#define DEFAULT_GRACE_MS     30000
#define MAX_ORIGINS          64

/* ============================================================ configuration */

static void digest(const char *s, size_t n, uint8_t out[API__DIGEST])
{
    unsigned len = API__DIGEST;
    RT_VERIFY(EVP_Digest(s, n, out, &len, EVP_sha256(), NULL) == 1);
}

/* Trim blanks around [s, s+n). */
static const char *trim(const char *s, size_t *n)
{
    while (*n && isspace((unsigned char)*s)) {
        s++;
        (*n)--;
    }
    while (*n && isspace((unsigned char)s[*n - 1]))
        (*n)--;
    return s;
}

static char **split_origins(const char *list, bool *any)
{
    char **v = rt_xcalloc(MAX_ORIGINS + 1, sizeof(*v));
    size_t k = 0;
    for (const char *p = list; p && *p && k < MAX_ORIGINS;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        const char *t = trim(p, &n);
        if (n) {
            v[k] = rt_xstrndup(t, n);
            if (!strcmp(v[k], "*"))
                *any = true;
            k++;
        }
        p = comma ? comma + 1 : p + strlen(p);
    }
    return v;
}

void api__cfg_init(api_cfg *c, const api_server_opts *o)
{
    memset(c, 0, sizeof(*c));
    if (o->key && o->key[0]) {
        c->has_key = true;
        digest(o->key, strlen(o->key), c->key_digest);
    }
    c->origins = split_origins(o->cors_origins, &c->any_origin);
    c->model = rt_xstrdup(o->model_name && o->model_name[0] ? o->model_name : "hermes-agent");
    if (o->hermes_home && o->hermes_home[0])
        c->status_path = rt_xasprintf("%s/gateway_state.json", o->hermes_home);
    c->max_inflight = o->max_inflight ? o->max_inflight : DEFAULT_MAX_INFLIGHT;
    c->keepalive_ms = o->keepalive_ms > 0 ? o->keepalive_ms : DEFAULT_KEEPALIVE_MS;
    c->cancel_grace_ms = o->cancel_grace_ms > 0 ? o->cancel_grace_ms : DEFAULT_GRACE_MS;
    c->reactor = o->reactor;
}

void api__cfg_fini(api_cfg *c)
{
    for (char **p = c->origins; p && *p; p++)
        rt_free(*p);
    rt_free(c->origins);
    rt_free(c->model);
    rt_free(c->status_path);
    OPENSSL_cleanse(c->key_digest, sizeof(c->key_digest));
    memset(c, 0, sizeof(*c));
}

/* ============================================================ auth */

bool api__auth_ok(const api_cfg *c, const char *authorization)
{
    if (!c->has_key)
        return true; /* loopback without a key: everything is accepted (warned at start) */
    bool bearer = authorization && strncasecmp(authorization, "Bearer ", 7) == 0;
    const char *tok = bearer ? authorization + 7 : "";
    size_t n = strlen(tok);
    tok = trim(tok, &n);
    /* Digests have a fixed length, so the comparison takes the same time whatever the
     * token's length or content; CRYPTO_memcmp does not stop at the first difference. */
    uint8_t d[API__DIGEST];
    digest(tok, n, d);
    bool same = CRYPTO_memcmp(d, c->key_digest, API__DIGEST) == 0;
    return bearer && same;
}

/* ============================================================ the loopback rule */

static bool addr_is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a))
            return true;
        return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
    }
    return false;
}

bool api__is_network_accessible(const char *host)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    if (!host || !host[0])
        return true;
    /* Numeric addresses first (no DNS), then names: every address must be loopback, and a
     * name that does not resolve counts as network-accessible (the original's rule). */
    hints.ai_flags = AI_NUMERICHOST;
    if (getaddrinfo(host, NULL, &hints, &res) != 0) {
        hints.ai_flags = 0;
        if (getaddrinfo(host, NULL, &hints, &res) != 0)
            return true;
    }
    bool loop = res != NULL;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
        if (!addr_is_loopback(ai->ai_addr))
            loop = false;
    freeaddrinfo(res);
    return !loop;
}

bool api__key_usable(const char *key)
{
    if (!key || hm_is_placeholder_secret(key))
        return false;
    size_t n = strlen(key);
    (void)trim(key, &n);
    return n >= 8;
}

bool api__port_in_use(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool used = false;
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
        used = true;
    } else if (errno == EINPROGRESS) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (poll(&p, 1, 1000) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0)
            used = soerr == 0;
    }
    close(fd);
    return used;
}

/* ============================================================ headers */

void api__hdrs_add(api_hdrs *h, const char *fmt, ...)
{
    RT_VERIFY(h->n < API__MAX_HDRS);
    va_list ap;
    va_start(ap, fmt);
    char buf[1024];
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    RT_VERIFY(n >= 0 && (size_t)n < sizeof(buf));
    h->line[h->n++] = rt_xstrdup(buf);
    h->line[h->n] = NULL;
}

const char *const *api__hdrs_list(api_hdrs *h)
{
    h->line[h->n] = NULL;
    return (const char *const *)h->line;
}

void api__hdrs_fini(api_hdrs *h)
{
    for (size_t i = 0; i < h->n; i++)
        rt_free(h->line[i]);
    h->n = 0;
    h->line[0] = NULL;
}

static bool origin_listed(const api_cfg *c, const char *origin)
{
    for (char **p = c->origins; *p; p++)
        if (!strcmp(*p, origin))
            return true;
    return false;
}

int api__origin_check(const api_cfg *c, const char *origin)
{
    if (!origin || !origin[0])
        return API_ORIGIN_NONE;
    if (c->any_origin || origin_listed(c, origin))
        return API_ORIGIN_OK;
    return API_ORIGIN_FORBIDDEN;
}

void api__cors_headers(const api_cfg *c, const char *origin, api_hdrs *h)
{
    if (api__origin_check(c, origin) != API_ORIGIN_OK)
        return;
    if (c->any_origin) {
        api__hdrs_add(h, "Access-Control-Allow-Origin: *");
    } else {
        api__hdrs_add(h, "Access-Control-Allow-Origin: %s", origin);
        api__hdrs_add(h, "Vary: Origin");
    }
    api__hdrs_add(h, "Access-Control-Allow-Methods: GET, POST, DELETE, OPTIONS");
    api__hdrs_add(h, "Access-Control-Allow-Headers: Authorization, Content-Type, "
                     "Idempotency-Key");
    api__hdrs_add(h, "Access-Control-Max-Age: 600");
}

void api__security_headers(api_hdrs *h)
{
    api__hdrs_add(h, "X-Content-Type-Options: nosniff");
    api__hdrs_add(h, "Referrer-Policy: no-referrer");
}

/* ============================================================ configuration */

static const char *own(api_server_opts *o, char *s)
{
    for (size_t i = 0; i < RT_ARRAY_LEN(o->owned_); i++)
        if (!o->owned_[i]) {
            o->owned_[i] = s;
            return s;
        }
    RT_VERIFY(!"api_server_opts: owned_ is full");
    return NULL;
}

/* env var (non-empty) first, then platforms.api_server.extra.<key>, as a string. */
static const char *setting(const hm_config *cfg, const cJSON *extra, const char *env,
                           const char *key, api_server_opts *o)
{
    const char *v = hm_config_getenv(cfg, env, NULL);
    if (v && v[0])
        return v;
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(extra, key);
    if (cJSON_IsString(n))
        return n->valuestring;
    if (cJSON_IsNumber(n))
        return own(o, rt_xasprintf("%lld", (long long)n->valuedouble));
    if (cJSON_IsArray(n)) { /* cors_origins as a YAML list */
        rt_buf b;
        rt_buf_init(&b, 64 << 10);
        const cJSON *it;
        cJSON_ArrayForEach(it, n) if (cJSON_IsString(it))
        {
            if (b.len)
                (void)rt_buf_append(&b, ",", 1);
            (void)rt_buf_append_str(&b, it->valuestring);
        }
        return own(o, rt_buf_steal(&b, NULL));
    }
    return NULL;
}

static bool truthy_env(const char *v)
{
    return v && (!strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes"));
}

static int config_ints(const hm_config *cfg, const cJSON *extra, api_server_opts *o, char *err,
                       size_t errlen)
{
    const char *port = setting(cfg, extra, "API_SERVER_PORT", "port", o);
    int64_t v = API_SERVER_DEFAULT_PORT;
    if (port && rt_parse_i64(port, 1, 65535, &v) != 0) {
        snprintf(err, errlen, "API server port must be a number from 1 to 65535 (got \"%s\")",
                 port);
        return -EINVAL;
    }
    o->port = (int)v;
    const cJSON *mc = cJSON_GetObjectItemCaseSensitive(extra, "max_concurrent");
    if (mc) {
        if (!cJSON_IsNumber(mc) || mc->valuedouble < 1 || mc->valuedouble > 100000) {
            snprintf(err, errlen,
                     "platforms.api_server.extra.max_concurrent must be a number "
                     "from 1 to 100000");
            return -EINVAL;
        }
        o->max_inflight = (size_t)mc->valuedouble;
    }
    return 0;
}

int api_server_opts_from_config(const hm_config *cfg, api_server_opts *o, char *err, size_t errlen)
{
    memset(o, 0, sizeof(*o));
    if (err && errlen)
        err[0] = '\0';
    const cJSON *extra = hm_config_node(cfg, "platforms.api_server.extra");
    if (!cJSON_IsObject(extra))
        extra = NULL;
    const char *key = setting(cfg, extra, "API_SERVER_KEY", "key", o);
    bool on = truthy_env(hm_config_getenv(cfg, "API_SERVER_ENABLED", NULL)) || (key && key[0]) ||
              hm_config_bool(cfg, "platforms.api_server.enabled");
    o->key = key && key[0] ? key : NULL;
    const char *host = setting(cfg, extra, "API_SERVER_HOST", "host", o);
    o->host = host && host[0] ? host : "127.0.0.1";
    o->cors_origins = setting(cfg, extra, "API_SERVER_CORS_ORIGINS", "cors_origins", o);
    const char *model = setting(cfg, extra, "API_SERVER_MODEL_NAME", "model_name", o);
    o->model_name = model && model[0] ? model : NULL;
    o->hermes_home = hm_config_home_dir(cfg);
    char dummy[1];
    int rc = config_ints(cfg, extra, o, err ? err : dummy, err ? errlen : sizeof(dummy));
    if (rc)
        return rc;
    return on ? 1 : 0;
}

void api_server_opts_fini(api_server_opts *o)
{
    if (!o)
        return;
    for (size_t i = 0; i < RT_ARRAY_LEN(o->owned_); i++)
        rt_free(o->owned_[i]);
    memset(o, 0, sizeof(*o));
}

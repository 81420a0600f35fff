/*
 * mx_crypto — the plain implementation of the encryption seam (see mx_crypto.h): no E2EE.
 *
 * matrix_start refuses MATRIX_ENCRYPTION while mx_crypto_available() is false
 * (MATRIX_E2EE_UNSUPPORTED), so `enabled` is never set in practice; should it be, connect
 * warns that encrypted rooms cannot be read. Every encrypted event is refused so the adapter
 * drops it with a warning naming the room.
 */
#include "mx_crypto.h"

#include "rt_alloc.h"
#include "rt_log.h"

#include <errno.h>

struct mx_crypto {
    mx_crypto_env env;
    bool enabled; /* MATRIX_ENCRYPTION was asked for */
};

bool mx_crypto_available(void)
{
    return false;
}

mx_crypto *mx_crypto_new(const mx_crypto_env *env, const char *store_dir, bool enabled)
{
    (void)store_dir; /* crypto.db would live there */
    mx_crypto *c = rt_xcalloc(1, sizeof(*c));
    c->env = *env;
    c->enabled = enabled;
    return c;
}

void mx_crypto_free(mx_crypto *c)
{
    rt_free(c);
}

void mx_crypto_connect(mx_crypto *c, const char *user_id, const char *device_id)
{
    (void)user_id;
    (void)device_id;
    if (c->enabled)
        RT_WARN("matrix", "Matrix: MATRIX_ENCRYPTION is set but this build has no end-to-end "
                          "encryption; falling back to a plain (unencrypted) client. Messages "
                          "in encrypted rooms cannot be read.");
    if (c->env.ready)
        c->env.ready(c->env.arg, 0, NULL);
}

void mx_crypto_filter(mx_crypto *c, cJSON *filter)
{
    (void)c;
    (void)filter;
}

void mx_crypto_on_sync(mx_crypto *c, const cJSON *sync)
{
    (void)c;
    (void)sync;
}

int mx_crypto_decrypt(mx_crypto *c, const char *room_id, const cJSON *ev, cJSON **out)
{
    (void)c;
    (void)room_id;
    (void)ev;
    *out = NULL;
    return -ENOTSUP;
}

int mx_crypto_encrypt(mx_crypto *c, const char *room_id, const char *type, const char *content,
                      char **out_type, char **out_content)
{
    (void)c;
    (void)room_id;
    *out_type = rt_xstrdup(type);
    *out_content = rt_xstrdup(content);
    return 0;
}

void mx_crypto_on_http(mx_crypto *c, rt_io_msg_http_done *d)
{
    (void)c;
    (void)d;
}

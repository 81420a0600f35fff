/*
 * ckpt — the pure parts of the checkpoints module: the directory hash, argument checks, which
 * tool calls change files, and the request message. The service is ckpt_svc.c.
 */
#include "ckpt.h"

#include "rt_alloc.h"
#include "rt_util.h"
#include "term_approval.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

/* ================================================================ request */

static void drop_req(rt_msg *m)
{
    ckpt_msg_req *q = (ckpt_msg_req *)m;
    rt_free(q->home);
    rt_free(q->dir);
    rt_free(q->path);
    rt_free(q->reason);
    rt_free(q->target);
}

static char *dup_or_null(const char *s)
{
    return s ? rt_xstrdup(s) : NULL;
}

ckpt_msg_req *ckpt_req_new(int op, const char *home, const char *dir)
{
    ckpt_msg_req *q = RT_MSG_NEW(ckpt_msg_req, CKPT_MSG_REQ);
    q->op = op;
    q->home = dup_or_null(home);
    q->dir = dup_or_null(dir);
    q->enabled = -1;
    q->hdr.drop = drop_req;
    return q;
}

bool ckpt_request_send(rt_ctx *cx, ckpt_msg_req *req)
{
    rt_ref svc = ckpt_service(cx);
    if (!svc) {
        rt_msg_free(&req->hdr);
        return false;
    }
    return rt_send(cx, svc, &req->hdr);
}

/* ================================================================ hashes */

void ckpt_dir_hash(const char *abs_dir, char out[CKPT_HASH_HEX + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!EVP_Digest(abs_dir, strlen(abs_dir), md, &n, EVP_sha256(), NULL) ||
        n * 2 < CKPT_HASH_HEX) {
        memset(md, 0, sizeof(md)); /* libcrypto without sha256: cannot happen with OpenSSL 3 */
    }
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < CKPT_HASH_HEX / 2; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[CKPT_HASH_HEX] = '\0';
}

bool ckpt_hash_is_valid(const char *target, char *err, size_t errlen)
{
    if (!target || !*target) {
        snprintf(err, errlen, "Empty commit hash");
        return false;
    }
    if (target[0] == '-') {
        snprintf(err, errlen, "Invalid commit hash (must not start with '-'): '%.80s'", target);
        return false;
    }
    size_t n = strlen(target);
    bool hex = n >= 4 && n <= 64;
    for (size_t i = 0; hex && i < n; i++)
        hex = isxdigit((unsigned char)target[i]) != 0;
    if (!hex) {
        snprintf(err, errlen, "Invalid commit hash (expected 4-64 hex characters): '%.80s'",
                 target);
        return false;
    }
    return true;
}

bool ckpt_target_is_number(const char *target, int max_snapshots, int64_t *k)
{
    int64_t v = 0;
    if (!target || rt_parse_i64(target, INT64_MIN, INT64_MAX, &v) != 0)
        return false;
    if (strlen(target) >= 4 && v > max_snapshots) /* a hash of digits */
        return false;
    *k = v;
    return true;
}

/* ================================================================ destructive commands */

/* Where a command word may start: the beginning, after blanks or a shell operator. */
static bool word_start(const char *cmd, size_t i)
{
    if (i == 0)
        return true;
    char p = cmd[i - 1];
    return p == ' ' || p == '\t' || p == '\n' || p == '&' || p == '|' || p == ';' || p == '`' ||
           p == '(';
}

static bool blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n';
}

/* cmd + i starts with word followed by a blank. */
static bool word_at(const char *cmd, size_t i, const char *word)
{
    size_t n = strlen(word);
    return strncmp(cmd + i, word, n) == 0 && blank(cmd[i + n]);
}

/* "sed  -i…", "git  reset …" */
static bool pair_at(const char *cmd, size_t i, const char *first, const char *const *second,
                    bool second_prefix)
{
    if (!word_at(cmd, i, first))
        return false;
    const char *p = cmd + i + strlen(first);
    while (blank(*p))
        p++;
    for (size_t k = 0; second[k]; k++) {
        size_t n = strlen(second[k]);
        if (strncmp(p, second[k], n) == 0 && (second_prefix || blank(p[n])))
            return true;
    }
    return false;
}

/* An output redirect that overwrites a file: '>' not part of '>>', not a descriptor copy
 * ('>&', "2>&1"). */
static bool overwrites(const char *cmd)
{
    for (size_t i = 0; cmd[i]; i++) {
        if (cmd[i] != '>')
            continue;
        if ((i > 0 && cmd[i - 1] == '>') || cmd[i + 1] == '>' || cmd[i + 1] == '&' ||
            (i > 0 && cmd[i - 1] == '<') || cmd[i + 1] == '\0')
            continue;
        return true;
    }
    return false;
}

bool ckpt_command_is_destructive(const char *cmd)
{
    if (!cmd || !*cmd)
        return false;
    static const char *const words[] = {"rm", "rmdir", "mv", "truncate", "dd", "shred"};
    static const char *const sed_i[] = {"-i", NULL};
    static const char *const git_ops[] = {"reset", "clean", "checkout", NULL};
    for (size_t i = 0; cmd[i]; i++) {
        if (!word_start(cmd, i))
            continue;
        for (size_t k = 0; k < sizeof(words) / sizeof(words[0]); k++)
            if (word_at(cmd, i, words[k]))
                return true;
        if (pair_at(cmd, i, "sed", sed_i, true) || pair_at(cmd, i, "git", git_ops, false))
            return true;
    }
    return overwrites(cmd) || term_is_dangerous(cmd, NULL, 0, NULL);
}

static char *str_arg(const cJSON *a, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(a, key);
    return cJSON_IsString(v) && *v->valuestring ? rt_xstrdup(v->valuestring) : NULL;
}

bool ckpt_call_changes_files(const char *tool, const char *args, char **path)
{
    if (path)
        *path = NULL;
    if (!tool)
        return false;
    bool write = strcmp(tool, "write_file") == 0, patch = strcmp(tool, "patch") == 0;
    bool term = strcmp(tool, "terminal") == 0;
    if (!write && !patch && !term)
        return false;
    cJSON *a = args && *args ? cJSON_Parse(args) : NULL;
    bool yes = true;
    char *p = NULL;
    if (term) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(a, "command");
        yes = cJSON_IsString(c) && ckpt_command_is_destructive(c->valuestring);
        if (yes)
            p = str_arg(a, "workdir");
    } else {
        const cJSON *mode = cJSON_GetObjectItemCaseSensitive(a, "mode");
        bool v4a = patch && cJSON_IsString(mode) && strcmp(mode->valuestring, "patch") == 0;
        if (!v4a) /* a V4A patch names its files inside: the working directory is used */
            p = str_arg(a, "path");
    }
    cJSON_Delete(a);
    if (path && yes)
        *path = p;
    else
        rt_free(p);
    return yes;
}

char *ckpt_call_reason(const char *tool, const char *args)
{
    if (!tool || strcmp(tool, "terminal") != 0)
        return rt_xasprintf("before %s", tool ? tool : "a tool");
    cJSON *a = args && *args ? cJSON_Parse(args) : NULL;
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(a, "command");
    const char *cmd = cJSON_IsString(c) ? c->valuestring : "";
    size_t n = 0, chars = 0; /* 60 characters, not bytes: never cut a UTF-8 sequence */
    while (cmd[n] && chars < 60) {
        n++;
        while (((unsigned char)cmd[n] & 0xC0) == 0x80)
            n++;
        chars++;
    }
    char *r = rt_xasprintf("before terminal: %.*s", (int)n, cmd);
    cJSON_Delete(a);
    return r;
}

/*
 * tool_scan — see tool_scan.h.
 */
#include "tool_scan.h"

#include "rt_util.h"

#include <pthread.h>
#include <regex.h>
#include <string.h>

typedef struct pattern {
    const char *id;
    const char *re;
    unsigned profiles; /* bit (1 << profile) */
    regex_t rx;
    bool ok;
} pattern;

#define CTX  (1u << TOOL_SCAN_CONTEXT)
#define MEM  (1u << TOOL_SCAN_MEMORY)
#define CRON (1u << TOOL_SCAN_CRON)
#define ALL  (CTX | MEM | CRON)

static pattern patterns[] = {
    {"prompt_injection",
     "ignore[[:space:]]+(all[[:space:]]+)?(previous|all|above|prior)[[:space:]]+instructions",
     ALL,
     {0},
     false},
    {"role_hijack", "you[[:space:]]+are[[:space:]]+now[[:space:]]", MEM, {0}, false},
    {"deception_hide",
     "do[[:space:]]+not[[:space:]]+tell[[:space:]]+the[[:space:]]+user",
     ALL,
     {0},
     false},
    {"sys_prompt_override", "system[[:space:]]+prompt[[:space:]]+override", ALL, {0}, false},
    {"disregard_rules",
     "disregard[[:space:]]+(your|all|any)[[:space:]]+(instructions|rules|guidelines)",
     ALL,
     {0},
     false},
    {"bypass_restrictions",
     "act[[:space:]]+as[[:space:]]+(if|though)[[:space:]]+you[[:space:]]+(have[[:space:]]+no|don'?"
     "t[[:space:]]+have)[[:space:]]+(restrictions|limits|rules)",
     ALL,
     {0},
     false},
    {"html_comment_injection", "<!--[^>]*(ignore|override|system|secret|hidden)", CTX, {0}, false},
    {"hidden_div", "<div[[:space:]]+style=[\"'][^\"']*display:[[:space:]]*none", CTX, {0}, false},
    {"translate_execute",
     "translate[[:space:]].*[[:space:]]into[[:space:]].*[[:space:]]and[[:space:]]+(execute|run|"
     "eval)",
     CTX,
     {0},
     false},
    {"exfil_curl",
     "(curl|wget)[[:space:]][^\n]*\\$[{]?[A-Za-z_]*(KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL|API)",
     ALL,
     {0},
     false},
    {"read_secrets",
     "cat[[:space:]][^\n]*(\\.env|credentials|\\.netrc|\\.pgpass|\\.npmrc|\\.pypirc)",
     ALL,
     {0},
     false},
    {"ssh_backdoor", "authorized_keys", MEM | CRON, {0}, false},
    {"ssh_access", "(\\$HOME|~)/\\.ssh", MEM, {0}, false},
    {"hermes_env", "(\\$HOME|~)/\\.hermes/\\.env", MEM, {0}, false},
    {"sudoers_mod", "(/etc/sudoers|visudo)", CRON, {0}, false},
    {"destructive_root_rm",
     "rm[[:space:]]+-[a-z]*r[a-z]*f?[a-z]*[[:space:]]+/([[:space:]]|$)",
     CRON,
     {0},
     false},
};

static pthread_once_t compile_once = PTHREAD_ONCE_INIT;

static void compile(void)
{
    for (size_t i = 0; i < RT_ARRAY_LEN(patterns); i++)
        patterns[i].ok =
            regcomp(&patterns[i].rx, patterns[i].re, REG_EXTENDED | REG_ICASE | REG_NOSUB) == 0;
}

/* Zero-width space/joiners, word joiner, BOM, and the bidirectional embeddings/overrides. */
static bool has_invisible(const char *s)
{
    static const char *const seqs[] = {
        "\xe2\x80\x8b", "\xe2\x80\x8c", "\xe2\x80\x8d", "\xe2\x81\xa0", "\xef\xbb\xbf",
        "\xe2\x80\xaa", "\xe2\x80\xab", "\xe2\x80\xac", "\xe2\x80\xad", "\xe2\x80\xae"};
    for (size_t i = 0; i < RT_ARRAY_LEN(seqs); i++)
        if (strstr(s, seqs[i]))
            return true;
    return false;
}

static void add_id(char *ids, size_t idslen, const char *id, bool *first)
{
    size_t len = strlen(ids);
    if (len + 3 + strlen(id) >= idslen)
        return;
    if (!*first) {
        memcpy(ids + len, ", ", 2);
        len += 2;
    }
    rt_strlcpy(ids + len, id, idslen - len);
    *first = false;
}

bool tool_scan(const char *text, int profile, char *ids, size_t idslen)
{
    pthread_once(&compile_once, compile);
    if (ids && idslen)
        ids[0] = '\0';
    if (!text)
        return false;
    bool found = false, first = true;
    if (has_invisible(text)) {
        found = true;
        if (ids && idslen)
            add_id(ids, idslen, "invisible_unicode", &first);
    }
    for (size_t i = 0; i < RT_ARRAY_LEN(patterns); i++) {
        const pattern *p = &patterns[i];
        if (!p->ok || !(p->profiles & (1u << profile)))
            continue;
        if (regexec(&p->rx, text, 0, NULL, 0) == 0) {
            found = true;
            if (ids && idslen)
                add_id(ids, idslen, p->id, &first);
        }
    }
    return found;
}

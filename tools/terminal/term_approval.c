/*
 * term_approval — the dangerous-command patterns (see term_approval.h).
 *
 * Each entry keeps the original's Python expression (the source of its pattern_key) next
 * to the POSIX extended expression glibc runs. The translation is mechanical: [^\s]
 * becomes [^[:space:]] (a bracket cannot hold \s in POSIX), the look-ahead of
 * "DELETE FROM without WHERE" becomes code, and REG_NEWLINE is off so '.' matches a
 * newline (the DOTALL fix). glibc's regex supports \b, \s and \w in extended mode.
 */
#include "term_approval.h"

#include "rt_alloc.h"
#include "rt_util.h"

#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <string.h>

enum { PAT_PLAIN, PAT_DELETE_NO_WHERE };

static const struct {
    const char *py;    /* the original's expression: pattern_key comes from it */
    const char *posix; /* what we run */
    const char *desc;
    int kind;
} pats[] = {
    /* deletion */
    {"\\brm\\s+(-[^\\s]*\\s+)*/", "\\brm\\s+(-[^[:space:]]*\\s+)*/", "delete in root path",
     PAT_PLAIN},
    {"\\brm\\s+-[^\\s]*r", "\\brm\\s+-[^[:space:]]*r", "recursive delete", PAT_PLAIN},
    {"\\brm\\s+--recursive\\b", "\\brm\\s+--recursive\\b", "recursive delete (long flag)",
     PAT_PLAIN},
    /* permissions and ownership */
    {"\\bchmod\\s+(-[^\\s]*\\s+)*777\\b", "\\bchmod\\s+(-[^[:space:]]*\\s+)*777\\b",
     "world-writable permissions", PAT_PLAIN},
    {"\\bchmod\\s+--recursive\\b.*777", "\\bchmod\\s+--recursive\\b.*777",
     "recursive world-writable (long flag)", PAT_PLAIN},
    {"\\bchown\\s+(-[^\\s]*)?R\\s+root", "\\bchown\\s+(-[^[:space:]]*)?r\\s+root",
     "recursive chown to root", PAT_PLAIN},
    {"\\bchown\\s+--recursive\\b.*root", "\\bchown\\s+--recursive\\b.*root",
     "recursive chown to root (long flag)", PAT_PLAIN},
    /* disks and file systems */
    {"\\bmkfs\\b", "\\bmkfs\\b", "format filesystem", PAT_PLAIN},
    {"\\bdd\\s+.*if=", "\\bdd\\s+.*if=", "disk copy", PAT_PLAIN},
    {">\\s*/dev/sd", ">\\s*/dev/sd", "write to block device", PAT_PLAIN},
    /* databases */
    {"\\bDROP\\s+(TABLE|DATABASE)\\b", "\\bdrop\\s+(table|database)\\b", "SQL DROP", PAT_PLAIN},
    {"\\bDELETE\\s+FROM\\b(?!.*\\bWHERE\\b)", "\\bdelete\\s+from\\b", "SQL DELETE without WHERE",
     PAT_DELETE_NO_WHERE},
    {"\\bTRUNCATE\\s+(TABLE)?\\s*\\w", "\\btruncate\\s+(table)?\\s*\\w", "SQL TRUNCATE", PAT_PLAIN},
    /* system configuration, services, processes */
    {">\\s*/etc/", ">\\s*/etc/", "overwrite system config", PAT_PLAIN},
    {"\\bsystemctl\\s+(stop|disable|mask)\\b", "\\bsystemctl\\s+(stop|disable|mask)\\b",
     "stop/disable system service", PAT_PLAIN},
    {"\\bkill\\s+-9\\s+-1\\b", "\\bkill\\s+-9\\s+-1\\b", "kill all processes", PAT_PLAIN},
    {"\\bpkill\\s+-9\\b", "\\bpkill\\s+-9\\b", "force kill processes", PAT_PLAIN},
    {":()\\s*{\\s*:\\s*\\|\\s*:&\\s*}\\s*;:",
     ":(\\(\\))?\\s*\\{\\s*:\\s*\\|\\s*:\\s*&\\s*\\}\\s*;\\s*:", "fork bomb", PAT_PLAIN},
    /* indirect execution */
    {"\\b(bash|sh|zsh)\\s+-c\\s+", "\\b(bash|sh|zsh)\\s+-c\\s+", "shell command via -c flag",
     PAT_PLAIN},
    {"\\b(python[23]?|perl|ruby|node)\\s+-[ec]\\s+", "\\b(python[23]?|perl|ruby|node)\\s+-[ec]\\s+",
     "script execution via -e/-c flag", PAT_PLAIN},
    {"\\b(curl|wget)\\b.*\\|\\s*(ba)?sh\\b", "\\b(curl|wget)\\b.*\\|\\s*(ba)?sh\\b",
     "pipe remote content to shell", PAT_PLAIN},
    /* more deletion */
    {"\\bxargs\\s+.*\\brm\\b", "\\bxargs\\s+.*\\brm\\b", "xargs with rm", PAT_PLAIN},
    {"\\bfind\\b.*-exec\\s+rm\\b", "\\bfind\\b.*-exec\\s+rm\\b", "find -exec rm", PAT_PLAIN},
    {"\\bfind\\b.*-delete\\b", "\\bfind\\b.*-delete\\b", "find -delete", PAT_PLAIN},
};

#define NPATS RT_ARRAY_LEN(pats)

static regex_t compiled[NPATS];
static regex_t where_re;
static pthread_once_t compile_once = PTHREAD_ONCE_INIT;

static void compile_all(void)
{
    for (size_t i = 0; i < NPATS; i++) {
        int fl = REG_EXTENDED | REG_ICASE | (pats[i].kind == PAT_PLAIN ? REG_NOSUB : 0);
        RT_VERIFY(regcomp(&compiled[i], pats[i].posix, fl) == 0);
    }
    RT_VERIFY(regcomp(&where_re, "\\bwhere\\b", REG_EXTENDED | REG_ICASE | REG_NOSUB) == 0);
}

/* pattern.split(r'\b')[1] if r'\b' in pattern else pattern[:20] */
static void derive_key(const char *py, char *key, size_t keylen)
{
    const char *b = strstr(py, "\\b");
    if (!b) {
        snprintf(key, keylen, "%.20s", py);
        return;
    }
    const char *s = b + 2;
    const char *e = strstr(s, "\\b");
    size_t n = e ? (size_t)(e - s) : strlen(s);
    snprintf(key, keylen, "%.*s", (int)n, s);
}

/* DELETE FROM with no WHERE anywhere after it (the original's look-ahead, DOTALL). Only
 * the last DELETE FROM matters: any later one has less text after it. */
static bool delete_without_where(const regex_t *re, const char *s)
{
    size_t len = strlen(s), from = 0;
    bool found = false;
    size_t last_end = 0;
    while (from <= len) {
        regmatch_t m[1] = {{.rm_so = (regoff_t)from, .rm_eo = (regoff_t)len}};
        if (regexec(re, s, 1, m, REG_STARTEND) != 0)
            break;
        found = true;
        last_end = (size_t)m[0].rm_eo;
        from = (size_t)m[0].rm_eo > from ? (size_t)m[0].rm_eo : from + 1;
    }
    if (!found)
        return false;
    regmatch_t w[1] = {{.rm_so = (regoff_t)last_end, .rm_eo = (regoff_t)len}};
    return regexec(&where_re, s, 1, w, REG_STARTEND) != 0;
}

/* Lower-case ASCII; bytes outside ASCII become a word character (see the header). */
static char *normalise(const char *cmd)
{
    size_t n = strlen(cmd);
    char *s = rt_xmalloc(n + 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)cmd[i];
        s[i] = c >= 0x80 ? 'x' : (c >= 'A' && c <= 'Z') ? (char)(c + 32) : (char)c;
    }
    s[n] = '\0';
    return s;
}

bool term_is_dangerous(const char *cmd, char *key, size_t keylen, const char **desc)
{
    if (key && keylen)
        key[0] = '\0';
    if (desc)
        *desc = NULL;
    if (!cmd || !*cmd)
        return false;
    pthread_once(&compile_once, compile_all);
    char *s = normalise(cmd);
    bool hit = false;
    size_t i = 0;
    for (; i < NPATS && !hit; i++) {
        if (pats[i].kind == PAT_DELETE_NO_WHERE)
            hit = delete_without_where(&compiled[i], s);
        else
            hit = regexec(&compiled[i], s, 0, NULL, 0) == 0;
    }
    rt_free(s);
    if (!hit)
        return false;
    term_pattern_info(i - 1, key, keylen, desc);
    return true;
}

char *term_blocked_message(const char *desc)
{
    return rt_xasprintf("BLOCKED: User denied this potentially dangerous command (matched '%s' "
                        "pattern). Do NOT retry this command - the user has explicitly "
                        "rejected it.",
                        desc ? desc : "dangerous command");
}

bool term_key_allowed(char *const *allowlist, const char *key)
{
    for (char *const *a = allowlist; a && *a && key; a++)
        if (strcmp(*a, key) == 0)
            return true;
    return false;
}

size_t term_pattern_count(void)
{
    return NPATS;
}

void term_pattern_info(size_t i, char *key, size_t keylen, const char **desc)
{
    if (i >= NPATS)
        return;
    if (key && keylen)
        derive_key(pats[i].py, key, keylen);
    if (desc)
        *desc = pats[i].desc;
}

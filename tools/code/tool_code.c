/*
 * tool_code — see tool_code.h.
 */
#include "tool_code.h"

#include "code_rpc.h"
#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_proc.h"
#include "rt_sched.h"
#include "rt_util.h"
#include "tool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

static _Atomic int64_t limit_timeout_s = CODE_TIMEOUT_S;
static _Atomic int limit_calls = CODE_MAX_TOOL_CALLS;

void tool_code_set_limits(int64_t timeout_s, int max_tool_calls)
{
    atomic_store(&limit_timeout_s, timeout_s > 0 ? timeout_s : CODE_TIMEOUT_S);
    atomic_store(&limit_calls, max_tool_calls > 0 ? max_tool_calls : CODE_MAX_TOOL_CALLS);
}

/* ====================================================== the hermes_tools module */

static const char *const sandbox_tools[] = {
    "web_search",   "web_extract", "read_file", "write_file",
    "search_files", "patch",       "terminal",  NULL};

static const char stub_head[] =
    "\"\"\"hermes_tools: call Hermes tools from an execute_code script (generated).\n"
    "\n"
    "Each function sends one request over the Unix socket named by HERMES_RPC_SOCKET and\n"
    "returns the tool's result, decoded from JSON when it is JSON.\n"
    "\"\"\"\n"
    "import json as _json\n"
    "import os as _os\n"
    "import socket as _socket\n"
    "\n"
    "_conn = None\n"
    "_pending = b\"\"\n"
    "\n"
    "\n"
    "def _connect():\n"
    "    global _conn\n"
    "    if _conn is None:\n"
    "        where = _os.environ.get(\"HERMES_RPC_SOCKET\")\n"
    "        if not where:\n"
    "            raise RuntimeError(\"hermes_tools works only inside execute_code\")\n"
    "        s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)\n"
    "        s.connect(where)\n"
    "        _conn = s\n"
    "    return _conn\n"
    "\n"
    "\n"
    "def _call(tool, args):\n"
    "    global _pending\n"
    "    s = _connect()\n"
    "    req = {\"tool\": tool, \"args\": {k: v for k, v in args.items() if v is not None}}\n"
    "    s.sendall((_json.dumps(req) + \"\\n\").encode(\"utf-8\"))\n"
    "    while b\"\\n\" not in _pending:\n"
    "        got = s.recv(65536)\n"
    "        if not got:\n"
    "            raise RuntimeError(\"the connection to Hermes was closed\")\n"
    "        _pending += got\n"
    "    line, _, _pending = _pending.partition(b\"\\n\")\n"
    "    text = line.decode(\"utf-8\", \"replace\")\n"
    "    try:\n"
    "        value = _json.loads(text)\n"
    "    except ValueError:\n"
    "        return text\n"
    "    if isinstance(value, str):\n"
    "        try:\n"
    "            return _json.loads(value)\n"
    "        except ValueError:\n"
    "            return value\n"
    "    return value\n";

typedef struct stub {
    const char *tool;
    const char *def; /* the Python function */
} stub;

static const stub stubs[] = {
    {"web_search", "def web_search(query, limit=5):\n"
                   "    return _call(\"web_search\", {\"query\": query, \"limit\": limit})\n"},
    {"web_extract", "def web_extract(urls):\n"
                    "    if isinstance(urls, str):\n"
                    "        urls = [urls]\n"
                    "    return _call(\"web_extract\", {\"urls\": list(urls)})\n"},
    {"read_file", "def read_file(path, offset=1, limit=500):\n"
                  "    return _call(\"read_file\", {\"path\": path, \"offset\": offset, "
                  "\"limit\": limit})\n"},
    {"write_file", "def write_file(path, content):\n"
                   "    return _call(\"write_file\", {\"path\": path, \"content\": content})\n"},
    {"search_files", "def search_files(pattern, target=\"content\", path=\".\", file_glob=None, "
                     "limit=50):\n"
                     "    return _call(\"search_files\", {\"pattern\": pattern, \"target\": "
                     "target, \"path\": path, \"file_glob\": file_glob, \"limit\": limit})\n"},
    {"patch", "def patch(path, old_string, new_string, replace_all=False):\n"
              "    return _call(\"patch\", {\"mode\": \"replace\", \"path\": path, \"old_string\": "
              "old_string, \"new_string\": new_string, \"replace_all\": replace_all})\n"},
    {"terminal", "def terminal(command, timeout=None, workdir=None):\n"
                 "    return _call(\"terminal\", {\"command\": command, \"timeout\": timeout, "
                 "\"workdir\": workdir})\n"},
};

/* ================================================================ the call */

typedef struct nested {
    uint64_t seq;
    rt_ref ref;
    uint64_t conn;
    code_rpc *rpc;
} nested;

typedef struct code_call {
    rt_runtime *rt;
    char *dir; /* the sandbox directory */
    code_rpc *rpc;
    uint64_t proc; /* rt_proc id, 0 before the spawn */
    bool exited;
    rt_buf out, err;
    const char *allowed[8]; /* NULL-terminated, static strings */
    int max_calls;
    int calls;
    int64_t timeout_s;
    nested *pending;
    size_t npending;
    uint64_t next_seq;
} code_call;

static bool in_list(const char *const *l, const char *s)
{
    for (; l && *l; l++)
        if (strcmp(*l, s) == 0)
            return true;
    return false;
}

static bool code_available(const tool_env *env)
{
    return !env || env->delegate_depth == 0; /* never in subagents */
}

static void choose_tools(code_call *c, const tool_env *env)
{
    size_t n = 0;
    for (const char *const *t = sandbox_tools; *t; t++)
        if (tool_find(*t) &&
            (!env || !env->enabled_tools || in_list((const char *const *)env->enabled_tools, *t)))
            c->allowed[n++] = *t;
    if (n == 0) /* the original's rule: no overlap means every sandbox tool */
        for (const char *const *t = sandbox_tools; *t; t++)
            if (tool_find(*t))
                c->allowed[n++] = *t;
    c->allowed[n] = NULL;
}

static int write_file_at(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -errno;
    size_t n = strlen(text), off = 0;
    int rc = 0;
    while (off < n) {
        ssize_t w = write(fd, text + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            rc = -errno;
            break;
        }
        off += (size_t)w;
    }
    if (close(fd) < 0 && !rc)
        rc = -errno;
    return rc;
}

static int write_stubs(const code_call *c)
{
    rt_buf b;
    rt_buf_init(&b, SIZE_MAX / 2);
    rt_buf_append_str(&b, stub_head);
    for (const char *const *t = c->allowed; *t; t++)
        for (size_t i = 0; i < RT_ARRAY_LEN(stubs); i++)
            if (strcmp(stubs[i].tool, *t) == 0)
                rt_buf_printf(&b, "\n\n%s", stubs[i].def);
    char *path = rt_xasprintf("%s/hermes_tools.py", c->dir);
    int rc = write_file_at(path, rt_buf_cstr(&b));
    rt_free(path);
    rt_buf_fini(&b);
    return rc;
}

static int rm_tree_at(int dfd, const char *name, int depth)
{
    if (depth > 16)
        return -ELOOP;
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISDIR(st.st_mode)) /* gone meanwhile is fine: the reactor removes rpc.sock too */
        return unlinkat(dfd, name, 0) < 0 && errno != ENOENT ? -errno : 0;
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return -errno;
    }
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) /* on, past a failure: remove as much as we can */
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            int r = rm_tree_at(dirfd(d), e->d_name, depth + 1);
            if (r && !rc)
                rc = r;
        }
    closedir(d);
    return rc ? rc : (unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT ? -errno : 0);
}

/* The child's environment: the variables the original passes on, minus anything whose
 * name suggests a secret, plus the RPC socket. NULL-terminated heap array of heap strings. */
static char **child_env(const char *sock)
{
    static const char *const keep[] = {
        "PATH", "HOME",  "USER",    "LANG", "LC_",        "TERM",        "TMPDIR", "TMP",
        "TEMP", "SHELL", "LOGNAME", "XDG_", "PYTHONPATH", "VIRTUAL_ENV", "CONDA",  NULL};
    static const char *const secret[] = {"KEY",        "TOKEN",  "SECRET", "PASSWORD",
                                         "CREDENTIAL", "PASSWD", "AUTH",   NULL};
    size_t n = 0;
    for (char **e = environ; e && *e; e++)
        n++;
    char **out = rt_xcalloc(n + 3, sizeof(*out));
    size_t k = 0;
    for (char **e = environ; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        if (!eq)
            continue;
        char name[256];
        size_t nl = (size_t)(eq - *e);
        if (nl >= sizeof(name))
            continue;
        memcpy(name, *e, nl);
        name[nl] = '\0';
        bool ok = false;
        for (const char *const *p = keep; *p && !ok; p++)
            ok = strncmp(name, *p, strlen(*p)) == 0;
        for (const char *const *p = secret; *p && ok; p++)
            if (strstr(name, *p))
                ok = false;
        if (ok && strcmp(name, "HERMES_RPC_SOCKET") != 0)
            out[k++] = rt_xstrdup(*e);
    }
    out[k++] = rt_xasprintf("HERMES_RPC_SOCKET=%s", sock);
    out[k++] = rt_xstrdup("PYTHONDONTWRITEBYTECODE=1");
    out[k] = NULL;
    return out;
}

static void free_strv(char **v)
{
    for (char **p = v; p && *p; p++)
        rt_free(*p);
    rt_free(v);
}

static void code_cleanup(tool_run *run)
{
    code_call *c = run->data;
    if (!c)
        return;
    run->data = NULL;
    if (c->proc && !c->exited)
        rt_proc_kill(rt_ctx_external(c->rt), c->proc);
    code_rpc_close(c->rpc);
    if (c->dir)
        rm_tree_at(AT_FDCWD, c->dir, 0);
    rt_free(c->dir);
    rt_buf_fini(&c->out);
    rt_buf_fini(&c->err);
    rt_free(c->pending);
    rt_free(c);
}

static const char *python_name(void)
{
    const char *p = getenv("HERMES_PYTHON");
    return p && *p ? p : "python3";
}

static void code_start(rt_ctx *cx, tool_run *run)
{
    const char *code = tool_arg_str(run, "code");
    if (!code || !*code) {
        tool_finish_error(cx, run, "No code provided.");
        return;
    }
    if (!code_available(run->env)) {
        tool_finish_error(cx, run, "execute_code is not available to subagents.");
        return;
    }
    rt_reactor *r = rt_reactor_of(rt_ctx_runtime(cx));
    if (!r) {
        tool_finish_error(cx, run, "execute_code needs the I/O reactor, which is not running.");
        return;
    }
    code_call *c = rt_xcalloc(1, sizeof(*c));
    run->data = c;
    c->rt = rt_ctx_runtime(cx);
    c->max_calls = atomic_load(&limit_calls);
    c->timeout_s = atomic_load(&limit_timeout_s);
    rt_buf_init(&c->out, CODE_STDOUT_MAX);
    rt_buf_init(&c->err, CODE_STDERR_MAX);
    choose_tools(c, run->env);
    const char *tmp = getenv("TMPDIR");
    char *templ = rt_xasprintf("%s/hermes_sandbox_XXXXXX", tmp && *tmp == '/' ? tmp : "/tmp");
    if (!mkdtemp(templ)) {
        int e = errno;
        rt_free(templ);
        tool_finish_error(cx, run, "Could not create the sandbox directory: %s", rt_strerror(-e));
        return;
    }
    c->dir = templ;
    char *script = rt_xasprintf("%s/script.py", c->dir);
    char *sock = rt_xasprintf("%s/rpc.sock", c->dir);
    int rc = write_file_at(script, code);
    if (!rc)
        rc = write_stubs(c);
    if (rc) {
        tool_finish_error(cx, run, "Could not write the script: %s", rt_strerror(rc));
        goto out;
    }
    c->rpc = code_rpc_open(r, sock, rt_self(cx), &rc);
    if (!c->rpc) {
        tool_finish_error(cx, run, "Could not open the tool RPC socket: %s", rt_strerror(rc));
        goto out;
    }
    struct stat st;
    const char *cwd =
        run->env && run->env->cwd && stat(run->env->cwd, &st) == 0 && S_ISDIR(st.st_mode)
            ? run->env->cwd
            : c->dir;
    char **env = child_env(sock);
    const char *argv[] = {python_name(), script, NULL};
    rt_proc_opts o = {
        .argv = argv,
        .cwd = cwd,
        .env = (const char *const *)env,
        .timeout_ms = c->timeout_s * 1000,
        .max_output = CODE_STDOUT_MAX,
        .reply_to = rt_self(cx),
    };
    c->proc = rt_proc_spawn(cx, &o);
    free_strv(env);
    if (!c->proc)
        tool_finish_error(cx, run, "Could not start the script.");
out:
    rt_free(sock);
    rt_free(script);
}

/* ---- RPC ---- */

static void reply_error(code_call *c, code_rpc *rpc, uint64_t conn, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", msg);
    char *s = cJSON_PrintUnformatted(o);
    code_rpc_reply(rpc, conn, s);
    cJSON_free(s);
    cJSON_Delete(o);
    (void)c;
}

static void on_request(rt_ctx *cx, tool_run *run, code_call *c, code_msg_rpc_req *q)
{
    cJSON *req = cJSON_Parse(q->line);
    const cJSON *tool = cJSON_GetObjectItemCaseSensitive(req, "tool");
    cJSON *args = cJSON_GetObjectItemCaseSensitive(req, "args");
    if (!cJSON_IsObject(req) || !cJSON_IsString(tool) || (args && !cJSON_IsObject(args))) {
        reply_error(c, q->rpc, q->conn,
                    "Invalid RPC request: expected {\"tool\": name, \"args\": {...}}.");
        cJSON_Delete(req);
        return;
    }
    const char *name = tool->valuestring;
    if (!in_list(c->allowed, name)) {
        rt_buf b;
        rt_buf_init(&b, 4096);
        rt_buf_printf(&b, "Tool '%.64s' is not available in execute_code. Available: ", name);
        for (const char *const *t = c->allowed; *t; t++)
            rt_buf_printf(&b, "%s%s", t == c->allowed ? "" : ", ", *t);
        reply_error(c, q->rpc, q->conn, rt_buf_cstr(&b));
        rt_buf_fini(&b);
        cJSON_Delete(req);
        return;
    }
    if (c->calls >= c->max_calls) {
        char msg[160];
        snprintf(msg, sizeof(msg),
                 "Tool call limit reached (%d). No more tool calls are allowed in this "
                 "execution.",
                 c->max_calls);
        reply_error(c, q->rpc, q->conn, msg);
        cJSON_Delete(req);
        return;
    }
    if (run->interrupted || c->exited) {
        reply_error(c, q->rpc, q->conn, "The execution is ending.");
        cJSON_Delete(req);
        return;
    }
    if (strcmp(name, "terminal") == 0 && args) { /* foreground only */
        cJSON_DeleteItemFromObjectCaseSensitive(args, "background");
        cJSON_DeleteItemFromObjectCaseSensitive(args, "check_interval");
        cJSON_DeleteItemFromObjectCaseSensitive(args, "pty");
    }
    char *aj = args ? cJSON_PrintUnformatted(args) : NULL;
    uint64_t seq = ++c->next_seq;
    char call_id[48];
    snprintf(call_id, sizeof(call_id), "execute_code_%llu", (unsigned long long)seq);
    const tool_def *def = tool_find(name); /* name dies with req */
    rt_ref ref = tool_start_call(cx, def, run->env, seq, call_id, aj ? aj : "{}");
    cJSON_free(aj);
    cJSON_Delete(req);
    if (!ref) {
        reply_error(c, q->rpc, q->conn, "The tool could not be started.");
        return;
    }
    c->calls++;
    c->pending = rt_xrealloc(c->pending, (c->npending + 1) * sizeof(*c->pending));
    c->pending[c->npending++] = (nested){seq, ref, q->conn, q->rpc};
    tool_progress(cx, run, "execute_code → %s", def->name);
}

static void on_nested_result(code_call *c, tool_msg_result *m)
{
    for (size_t i = 0; i < c->npending; i++) {
        if (c->pending[i].seq != m->seq)
            continue;
        nested n = c->pending[i];
        c->pending[i] = c->pending[--c->npending];
        const char *res = m->result ? m->result : "";
        if (strchr(res, '\n')) { /* one line per answer: send it as a JSON string */
            cJSON *s = cJSON_CreateString(res);
            char *line = cJSON_PrintUnformatted(s);
            code_rpc_reply(n.rpc, n.conn, line);
            cJSON_free(line);
            cJSON_Delete(s);
        } else {
            code_rpc_reply(n.rpc, n.conn, res);
        }
        return;
    }
}

static void drop_ask(rt_msg *m)
{
    tool_msg_ask *a = (tool_msg_ask *)m;
    rt_free(a->text);
    rt_free(a->description);
    rt_free(a->pattern_key);
    cJSON_Delete(a->choices);
}

/* A question of a nested tool goes to the session as ours; the answer goes straight back
 * to the asking tool (reply_to is kept). */
static void forward_ask(rt_ctx *cx, tool_run *run, tool_msg_ask *q)
{
    tool_msg_ask *a = RT_MSG_NEW(tool_msg_ask, TOOL_MSG_ASK);
    a->seq = run->seq;
    a->reply_to = q->reply_to;
    a->kind = q->kind;
    a->text = q->text;
    a->description = q->description;
    a->pattern_key = q->pattern_key;
    a->choices = q->choices;
    q->text = q->description = q->pattern_key = NULL;
    q->choices = NULL;
    a->hdr.drop = drop_ask;
    rt_send(cx, run->session, &a->hdr);
}

/* ---- the end ---- */

static void finish(rt_ctx *cx, tool_run *run, code_call *c, const rt_proc_msg_exit *e)
{
    c->exited = true;
    for (size_t i = 0; i < c->npending; i++) /* the script is gone: stop its tools */
        rt_interrupt(cx, c->pending[i].ref, 1);
    c->npending = 0;
    cJSON *o = cJSON_CreateObject();
    double secs = (double)(e->duration_ms / 10) / 100.0;
    if (e->err) {
        char msg[512];
        if (e->err == -ENOENT)
            snprintf(msg, sizeof(msg),
                     "Python 3 is not available: '%s' was not found on PATH. execute_code needs "
                     "a python3 interpreter (Debian package python3).",
                     python_name());
        else
            snprintf(msg, sizeof(msg), "Could not run '%s': %s", python_name(),
                     rt_strerror(e->err));
        cJSON_AddStringToObject(o, "status", "error");
        cJSON_AddStringToObject(o, "output", "");
        cJSON_AddNumberToObject(o, "tool_calls_made", c->calls);
        cJSON_AddNumberToObject(o, "duration_seconds", secs);
        cJSON_AddStringToObject(o, "error", msg);
        tool_finish_json(cx, run, o);
        return;
    }
    rt_buf out;
    rt_buf_init(&out, SIZE_MAX / 2);
    rt_buf_append(&out, rt_buf_cstr(&c->out), c->out.len);
    if (e->bytes_dropped[0])
        rt_buf_append_str(&out, "\n[output truncated at 50KB]");
    const char *status;
    char *error = NULL;
    if (run->interrupted) {
        status = "interrupted";
        rt_buf_append_str(&out, "\n[execution interrupted \xe2\x80\x94 user sent a new message]");
    } else if (e->timed_out) {
        status = "timeout";
        error =
            rt_xasprintf("Script timed out after %llds and was killed.", (long long)c->timeout_s);
    } else if (e->exit_code != 0) {
        status = "error";
        if (c->err.len) {
            error = rt_xstrdup(rt_buf_cstr(&c->err));
            rt_buf_printf(&out, "\n--- stderr ---\n%s", rt_buf_cstr(&c->err));
        } else if (e->term_signal) {
            error = rt_xasprintf("Script was killed by signal %d", e->term_signal);
        } else {
            error = rt_xasprintf("Script exited with code %d", e->exit_code);
        }
    } else {
        status = "success";
    }
    rt_buf_append(&out, "", 0);
    cJSON_AddStringToObject(o, "status", status);
    cJSON_AddStringToObject(o, "output", rt_buf_cstr(&out));
    cJSON_AddNumberToObject(o, "tool_calls_made", c->calls);
    cJSON_AddNumberToObject(o, "duration_seconds", secs);
    if (error)
        cJSON_AddStringToObject(o, "error", error);
    rt_free(error);
    rt_buf_fini(&out);
    tool_finish_json(cx, run, o);
}

static void code_on_msg(rt_ctx *cx, tool_run *run, rt_msg *m)
{
    code_call *c = run->data;
    if (!c)
        return;
    switch (m->type) {
    case RT_PROC_MSG_OUTPUT: {
        rt_proc_msg_output *o = (rt_proc_msg_output *)m;
        if (o->id != c->proc)
            break;
        rt_buf *b = o->stream == RT_PROC_STDERR ? &c->err : &c->out;
        size_t room = b->max - b->len;
        rt_buf_append(b, o->data, o->len < room ? o->len : room);
        break;
    }
    case RT_PROC_MSG_EXIT:
        if (((rt_proc_msg_exit *)m)->id == c->proc)
            finish(cx, run, c, (rt_proc_msg_exit *)m);
        break;
    case CODE_MSG_RPC_REQ: on_request(cx, run, c, (code_msg_rpc_req *)m); break;
    case TOOL_MSG_RESULT: on_nested_result(c, (tool_msg_result *)m); break;
    case TOOL_MSG_ASK: forward_ask(cx, run, (tool_msg_ask *)m); break;
    case TOOL_MSG_PROGRESS: {
        tool_msg_progress *p = (tool_msg_progress *)m;
        if (p->text)
            tool_progress(cx, run, "%s", p->text);
        break;
    }
    default: break;
    }
}

static void code_on_interrupt(rt_ctx *cx, tool_run *run)
{
    code_call *c = run->data;
    if (c && c->proc && !c->exited)
        rt_proc_interrupt(cx, c->proc); /* the EXIT finishes the call */
}

const tool_def tool_def_execute_code = {
    .name = "execute_code",
    .toolset = "code_execution",
    .schema = "{\"name\":\"execute_code\",\"description\":\"Run a Python 3 script that can call "
              "Hermes tools, to do several tool steps in one turn: loops, filtering, conditional "
              "steps. Only what the script prints comes back to you; the tools' intermediate "
              "results stay out of the conversation.\\n\\nIn the script, `from hermes_tools import "
              "...` gives these functions (each returns the tool's result as a dict):\\n"
              "  web_search(query, limit=5)\\n  web_extract(urls)\\n"
              "  read_file(path, offset=1, limit=500)\\n  write_file(path, content)\\n"
              "  search_files(pattern, target='content', path='.', file_glob=None, limit=50)\\n"
              "  patch(path, old_string, new_string, replace_all=False)\\n"
              "  terminal(command, timeout=None, workdir=None)   (foreground only)\\n\\n"
              "Use it for three or more tool calls with logic between them, bulk processing or "
              "retries. Limits: 5 minutes, 50 tool calls, 50 KB of printed output. Print a concise "
              "summary of what you found.\",\"parameters\":{\"type\":\"object\",\"properties\":{"
              "\"code\":{\"type\":\"string\",\"description\":\"The Python script. Import the tools "
              "from hermes_tools and print the results you need.\"}},\"required\":[\"code\"]}}",
    .blocking = true, /* writes the sandbox files; waits through the reactor */
    .parallel_safe = false,
    .available = code_available,
    .start = code_start,
    .on_msg = code_on_msg,
    .on_interrupt = code_on_interrupt,
    .cleanup = code_cleanup,
};

/*
 * cli_gateway — `hermes gateway [run|status|install|uninstall|start|stop|restart]`.
 *
 *   run       the gateway in the foreground (the default): host services, the gateway actor,
 *             every enabled platform adapter; SIGINT/SIGTERM drain and stop it. A lock on
 *             $HERMES_HOME/gateway.lock keeps a second gateway off the same home (--replace
 *             asks the running one to stop first); gateway.pid says who holds it.
 *   status    whether a gateway runs, its platforms, sessions and load (gateway_state.json).
 *   install   a systemd user unit (gateway.md §11.3); --system for a system-wide one.
 *   start/stop/restart
 *             through systemd when the unit is installed; otherwise start launches
 *             `hermes gateway run` in the background (log: logs/gateway.log) and stop sends
 *             SIGTERM to the pid in gateway.pid and waits for it to exit.
 *
 * Exit status: 0 ok, 1 failure (or "not running" for status), 2 usage.
 */
#include "cli.h"

#include "cron.h"
#include "gw_adapter.h"
#include "gw.h"
#include "hm_config.h"
#include "hm_env.h"
#include "hm_host.h"
#include "rt_alloc.h"
#include "rt_log.h"
#include "rt_reactor.h"
#include "rt_signal.h"
#include "rt_util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define UNIT_NAME "hermes-gateway"

/* ================================================================ adapters */

/* One running platform adapter and how to stop it. */
typedef struct adapter_run {
    const gw_adapter_def *def;
    void *handle;
} adapter_run;

/* Start every enabled adapter (gw_adapters[], generated from the folders under adapters/).
 * Returns how many failed to start (each logged). */
static int start_adapters(hm_host *h, rt_ref gateway, adapter_run *runs, size_t max, size_t *n)
{
    rt_ctx *cx = rt_ctx_external(h->rt);
    gw_adapter_env env = {
        .cfg = h->cfg, .home = h->home, .gateway = gateway, .reactor = h->reactor, .lws = h->lws};
    int failures = 0;
    *n = 0;
    for (size_t i = 0; gw_adapters[i] && *n < max; i++) {
        const gw_adapter_def *d = gw_adapters[i];
        char err[512] = "";
        void *handle = NULL;
        int rc = d->start(cx, &env, &handle, err, sizeof(err));
        if (rc < 0) {
            RT_ERROR("gateway", "%s: %s", d->platform, err[0] ? err : rt_strerror(rc));
            failures++;
        } else if (rc == 1) {
            RT_INFO("gateway", "platform %s started", d->platform);
            runs[(*n)++] = (adapter_run){.def = d, .handle = handle};
        }
    }
    return failures;
}

/* Stop them in reverse order of starting. */
static void stop_adapters(hm_host *h, adapter_run *runs, size_t n, int64_t grace_ms)
{
    rt_ctx *cx = rt_ctx_external(h->rt);
    while (n--)
        runs[n].def->stop(cx, runs[n].handle, grace_ms);
}

/* =========================================================== pid and lock */

/* Field 22 of /proc/<pid>/stat: the process start time in clock ticks (pid reuse check). */
static long long proc_start_time(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
    if (!p)
        return -1;
    int field = 2;
    for (p++; *p && field < 22; p++)
        if (*p == ' ')
            field++;
    int64_t v = 0;
    char num[32];
    size_t i = 0;
    while (p[i] && p[i] != ' ' && i + 1 < sizeof(num)) {
        num[i] = p[i];
        i++;
    }
    num[i] = '\0';
    return rt_parse_i64(num, 0, INT64_MAX, &v) == 0 ? (long long)v : -1;
}

typedef struct pid_record {
    pid_t pid;
    long long start_time;
} pid_record;

/* The live gateway recorded in home/gateway.pid, or pid 0 (a stale file is removed). */
static pid_record running_gateway(const char *home)
{
    pid_record r = {0};
    char *path = hm_config_file(home, "gateway.pid");
    char *text = NULL;
    size_t len = 0;
    if (hm_read_file(path, 64 * 1024, &text, &len) == 0) {
        cJSON *j = cJSON_Parse(text);
        int64_t bare = 0;
        if (cJSON_IsObject(j)) {
            r.pid = (pid_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(j, "pid"));
            const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "start_time");
            r.start_time = cJSON_IsNumber(st) ? (long long)st->valuedouble : -1;
        } else if (rt_parse_i64(text, 1, INT32_MAX, &bare) == 0) {
            r.pid = (pid_t)bare; /* an old bare-integer file */
            r.start_time = -1;
        }
        cJSON_Delete(j);
        rt_free(text);
        bool alive = r.pid > 0 && kill(r.pid, 0) == 0;
        if (alive && r.start_time >= 0 && proc_start_time(r.pid) != r.start_time)
            alive = false; /* the pid was reused */
        if (!alive) {
            (void)unlink(path);
            r.pid = 0;
        }
    }
    rt_free(path);
    return r;
}

static int write_pid_file(const char *home, int argc, char **argv)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "pid", getpid());
    cJSON_AddStringToObject(o, "kind", "hermes-gateway");
    cJSON *a = cJSON_AddArrayToObject(o, "argv");
    cJSON_AddItemToArray(a, cJSON_CreateString("hermes"));
    for (int i = 0; i < argc; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(argv[i]));
    cJSON_AddNumberToObject(o, "start_time", (double)proc_start_time(getpid()));
    char *txt = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    char *path = hm_config_file(home, "gateway.pid");
    int rc = hm_write_atomic(path, txt, strlen(txt), 0644);
    cJSON_free(txt);
    rt_free(path);
    return rc;
}

static void remove_pid_file(const char *home)
{
    pid_record r = running_gateway(home);
    if (r.pid == getpid()) {
        char *path = hm_config_file(home, "gateway.pid");
        (void)unlink(path);
        rt_free(path);
    }
}

/* Take home/gateway.lock; with replace, ask its holder to stop first (SIGTERM, then SIGKILL
 * after the drain time). The fd (held for the process's life) or -1 with a message printed. */
static int take_lock(const char *home, bool replace, int64_t drain_s)
{
    char *path = hm_config_file(home, "gateway.lock");
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    rt_free(path);
    if (fd < 0) {
        cli_err("cannot open the gateway lock in %s: %s", home, rt_strerror(-errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) == 0)
        return fd;
    pid_record other = running_gateway(home);
    if (!replace) {
        if (other.pid)
            fprintf(stderr,
                    "\xe2\x9d\x8c Gateway already running (PID %d). Use 'hermes gateway run "
                    "--replace' to take over, or 'hermes gateway stop'.\n",
                    (int)other.pid);
        else
            fprintf(stderr, "\xe2\x9d\x8c Another gateway holds %s/gateway.lock.\n", home);
        close(fd);
        return -1;
    }
    if (other.pid) {
        fprintf(stderr, "Stopping the running gateway (PID %d)...\n", (int)other.pid);
        (void)kill(other.pid, SIGTERM);
    }
    /* Wait for the lock: the old gateway drains (up to drain_s) and exits. */
    int64_t waited_ms = 0, limit_ms = (drain_s + 10) * 1000;
    while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (waited_ms >= limit_ms) {
            if (other.pid)
                (void)kill(other.pid, SIGKILL);
            if (flock(fd, LOCK_EX) != 0) { /* SIGKILL releases it at once */
                close(fd);
                return -1;
            }
            break;
        }
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
        waited_ms += 100;
    }
    return fd;
}

/* ===================================================================== run */

typedef struct run_state {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop_requested;
    bool stopped;
    rt_ref gateway;
    int64_t drain_ms;
} run_state;

/* The controller: signals in, a graceful shutdown of the gateway, then the main thread. */
static void controller_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    run_state *rs = *(run_state **)state;
    if (m->type == RT_SIGNAL_MSG_SHUTDOWN) {
        pthread_mutex_lock(&rs->lock);
        bool again = rs->stop_requested;
        rs->stop_requested = true;
        pthread_mutex_unlock(&rs->lock);
        if (again) { /* a second Ctrl+C: stop now */
            pthread_mutex_lock(&rs->lock);
            rs->stopped = true;
            pthread_cond_signal(&rs->cond);
            pthread_mutex_unlock(&rs->lock);
            return;
        }
        RT_INFO("gateway", "stopping (signal %d): draining running turns",
                ((rt_signal_msg *)m)->signo);
        rt_send(cx, rs->gateway, gw_shutdown_new(rt_self(cx), 1, rs->drain_ms));
    } else if (m->type == RT_MSG_TIMEOUT && ((rt_msg_timeout *)m)->tag == 1) {
        pthread_mutex_lock(&rs->lock);
        rs->stopped = true;
        pthread_cond_signal(&rs->cond);
        pthread_mutex_unlock(&rs->lock);
    }
}

static const rt_actor_type controller_type = {"gateway.controller", controller_behave, NULL,
                                              sizeof(run_state *)};

static void run_usage(void)
{
    fprintf(stderr, "usage: hermes gateway [run] [--replace] [-v|-q] [--workers N]\n");
}

static int gateway_run(int argc, char **argv)
{
    static const struct option opts[] = {
        {"replace", no_argument, NULL, 'r'}, {"verbose", no_argument, NULL, 'v'},
        {"quiet", no_argument, NULL, 'q'},   {"workers", required_argument, NULL, 'w'},
        {"help", no_argument, NULL, 'h'},    {NULL, 0, NULL, 0}};
    bool replace = false;
    int verbose = 0;
    int64_t workers = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "rvqw:h", opts, NULL)) != -1) {
        switch (c) {
        case 'r': replace = true; break;
        case 'v': verbose++; break;
        case 'q': verbose = -1; break;
        case 'w':
            if (rt_parse_i64(optarg, 1, 256, &workers) != 0) {
                cli_err("--workers needs a number from 1 to 256");
                return 2;
            }
            break;
        case 'h': run_usage(); return 0;
        default: run_usage(); return 2;
        }
    }
    if (optind < argc) {
        run_usage();
        return 2;
    }
    rt_log_set_level(verbose < 0 ? RT_LOG_WARN : (verbose > 1 ? RT_LOG_DEBUG : RT_LOG_INFO));

    char *home = hm_config_home();
    int err = hm_config_ensure_home(home);
    if (err) {
        cli_err("cannot create %s: %s", home, rt_strerror(err));
        rt_free(home);
        return 1;
    }
    int lock = take_lock(home, replace, 60);
    if (lock < 0) {
        rt_free(home);
        return 1;
    }

    hm_host_opts ho = {.ctx = HM_CTX_GATEWAY, .home = home, .lws = true, .workers = (int)workers};
    hm_host *h = NULL;
    char msg[512];
    int rc = hm_host_start(&ho, &h, msg, sizeof(msg));
    if (rc) {
        cli_err("%s", msg);
        close(lock);
        rt_free(home);
        return 1;
    }
    if (!h->provider_configured)
        RT_WARN("gateway", "no LLM provider is configured: messages will get an error until "
                           "one is (hermes config set OPENROUTER_API_KEY …)");
    rt_ctx *cx = rt_ctx_external(h->rt);
    char *state_db = hm_config_file(home, "state.db");
    gw_opts go = {
        .cfg = h->cfg,
        .home = home,
        .spawn = hm_host_spawn_session,
        .spawn_arg = h,
        .store = h->store.writer,
        .state_db = state_db,
        .model = h->model,
        .provider = h->provider_name,
        .base_url = h->popts.base_url,
    };
    rt_ref gateway = 0;
    rc = gw_start(cx, &go, &gateway, msg, sizeof(msg));
    rt_free(state_db);
    if (rc) {
        cli_err("%s", msg);
        hm_host_stop(h);
        close(lock);
        rt_free(home);
        return 1;
    }

    /* Scheduled jobs run whether or not any platform is configured. */
    cron_opts co = {.home = home,
                    .cfg = h->cfg,
                    .spawn = cron_host_spawn,
                    .spawn_arg = h,
                    .gateway = gateway,
                    .store = h->store.writer};
    rt_ref cron = 0;
    if (cron_start(cx, &co, &cron, msg, sizeof(msg)))
        RT_WARN("gateway", "the cron scheduler did not start: %s", msg);

    adapter_run adapters[16];
    size_t nadapters = 0;
    int failures = start_adapters(h, gateway, adapters, 16, &nadapters);
    if (!nadapters && failures) {
        cli_err("no messaging platform could start (see the errors above)");
        hm_host_stop(h);
        close(lock);
        rt_free(home);
        return 1;
    }
    if (!nadapters)
        RT_INFO("gateway", "No messaging platforms enabled. The gateway keeps running for cron.");
    gw_restart_notify(cx, home, gateway); /* after a /restart: tell the chat it asked from */
    (void)write_pid_file(home, argc, argv);

    run_state rs = {.gateway = gateway,
                    .drain_ms =
                        hm_config_env_int(h->cfg, "agent.restart_drain_timeout", NULL) * 1000};
    pthread_mutex_init(&rs.lock, NULL);
    pthread_cond_init(&rs.cond, NULL);
    run_state *rsp = &rs;
    rt_ref ctl = rt_spawn(cx, &controller_type, &rsp, NULL);
    rc = rt_signal_watch(h->reactor, ctl);
    if (rc)
        RT_WARN("gateway", "signals are not watched (%s): stop the gateway with SIGKILL",
                rt_strerror(rc));
    RT_INFO("gateway", "running (PID %d, home %s)", (int)getpid(), home);

    pthread_mutex_lock(&rs.lock);
    while (!rs.stopped)
        pthread_cond_wait(&rs.cond, &rs.lock);
    pthread_mutex_unlock(&rs.lock);

    if (cron)
        rt_stop(cx, cron, RT_EXIT_STOPPED);
    stop_adapters(h, adapters, nadapters, 5000);
    (void)rt_wait_quiescent(h->rt, 10000);
    rt_stop(cx, gateway, RT_EXIT_NORMAL);
    hm_host_stop(h);
    remove_pid_file(home);
    close(lock);
    RT_INFO("gateway", "stopped");
    rt_free(home);
    return 0;
}

/* ================================================================== status */

static int gateway_status(void)
{
    char *home = hm_config_home();
    pid_record r = running_gateway(home);
    char *path = hm_config_file(home, "gateway_state.json");
    char *text = NULL;
    size_t len = 0;
    cJSON *st = NULL;
    if (hm_read_file(path, 1 << 20, &text, &len) == 0)
        st = cJSON_Parse(text);
    rt_free(text);
    rt_free(path);
    if (!r.pid) {
        printf("Gateway: not running\n");
        const cJSON *gs = cJSON_GetObjectItemCaseSensitive(st, "gateway_state");
        if (cJSON_IsString(gs))
            printf("Last state: %s\n", gs->valuestring);
        cJSON_Delete(st);
        rt_free(home);
        return 1;
    }
    double started = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(st, "start_time"));
    long long up = started > 0 ? (long long)(time(NULL) - (time_t)started) : -1;
    const cJSON *gs = cJSON_GetObjectItemCaseSensitive(st, "gateway_state");
    printf("Gateway: %s (PID %d", cJSON_IsString(gs) ? gs->valuestring : "running", (int)r.pid);
    if (up >= 0)
        printf(", up %lldh %02lldm", up / 3600, (up / 60) % 60);
    printf(")\nHome: %s\n", home);
    const cJSON *ps = cJSON_GetObjectItemCaseSensitive(st, "platforms");
    printf("Platforms:");
    const cJSON *p;
    int np = 0;
    cJSON_ArrayForEach(p, ps)
    {
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(p, "state");
        printf("%s %s (%s", np++ ? "," : "", p->string, cJSON_IsString(s) ? s->valuestring : "?");
        /* restarted by its supervisor (adapters/kit/ak_supervise.h) */
        const cJSON *rs = cJSON_GetObjectItemCaseSensitive(p, "restarts");
        long long n = cJSON_IsNumber(rs) ? (long long)rs->valuedouble : 0;
        if (n > 0)
            printf(", restarted %lld time%s", n, n == 1 ? "" : "s");
        const cJSON *em = cJSON_GetObjectItemCaseSensitive(p, "error_message");
        if (n > 0 && cJSON_IsString(em) && em->valuestring[0])
            printf(": %s", em->valuestring);
        printf(")");
    }
    printf("%s\n", np ? "" : " none (cron only)");
#define NUM(k) (long long)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(st, k))
    printf("Sessions: %lld known, %lld in memory, %lld running a turn\n", NUM("sessions_known"),
           NUM("sessions_live"), NUM("active_agents"));
    printf("Load: %lld actors, %lld messages handled, %lld events, %lld denied, %lld dead "
           "letters\n",
           NUM("actors"), NUM("messages_handled"), NUM("events"), NUM("denied"),
           NUM("dead_letters"));
#undef NUM
    const cJSON *ob = cJSON_GetObjectItemCaseSensitive(st, "outbox");
    if (cJSON_IsObject(ob)) {
#define OB(k) (long long)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(ob, k))
        printf("Outbox: %lld waiting, %lld sent, %lld given up", OB("pending"), OB("sent"),
               OB("failed"));
#undef OB
        const cJSON *lf = cJSON_GetObjectItemCaseSensitive(ob, "last_failure");
        if (cJSON_IsString(lf))
            printf(" (last: %s)", lf->valuestring);
        printf("\n");
    }
    cJSON_Delete(st);
    rt_free(home);
    return 0;
}

/* ================================================================= service */

static int run_cmd(char *const argv[], bool quiet)
{
    pid_t pid;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (quiet) {
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    }
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        return -rc;
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

static bool have_systemctl(void)
{
    char *const argv[] = {"systemctl", "--user", "--version", NULL};
    return run_cmd(argv, true) == 0;
}

static char *unit_path(bool system_wide)
{
    if (system_wide)
        return rt_xstrdup("/etc/systemd/system/" UNIT_NAME ".service");
    const char *xdg = getenv("XDG_CONFIG_HOME");
    const char *homedir = getenv("HOME");
    if (xdg && *xdg)
        return rt_xasprintf("%s/systemd/user/" UNIT_NAME ".service", xdg);
    return rt_xasprintf("%s/.config/systemd/user/" UNIT_NAME ".service",
                        homedir ? homedir : "/root");
}

static int mkdirs(const char *path)
{
    char *p = rt_xstrdup(path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        (void)mkdir(p, 0755);
        *s = '/';
    }
    rt_free(p);
    return 0;
}

static int gateway_install(bool system_wide)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0) {
        cli_err("cannot find the hermes binary's path");
        return 1;
    }
    exe[n] = '\0';
    char *home = hm_config_home();
    hm_config *cfg = hm_config_load(home, 0, NULL, NULL);
    int64_t drain = cfg ? hm_config_int(cfg, "agent.restart_drain_timeout") : 60;
    hm_config_unref(cfg);
    const char *path_env = getenv("PATH");
    char *unit = rt_xasprintf(
        "[Unit]\nDescription=Hermes Agent Gateway - Messaging Platform Integration\n"
        "After=%s\n%sStartLimitIntervalSec=600\nStartLimitBurst=5\n\n"
        "[Service]\nType=simple\n%sExecStart=%s gateway run --replace\nWorkingDirectory=%s\n"
        "Environment=PATH=%s\nEnvironment=HERMES_HOME=%s\nRestart=on-failure\nRestartSec=30\n"
        "RestartForceExitStatus=75\nKillMode=mixed\nKillSignal=SIGTERM\n"
        "ExecReload=/bin/kill -USR1 $MAINPID\nTimeoutStopSec=%lld\n"
        "StandardOutput=journal\nStandardError=journal\n\n[Install]\nWantedBy=%s\n",
        system_wide ? "network-online.target" : "network.target",
        system_wide ? "Wants=network-online.target\n" : "", system_wide ? "User=root\n" : "", exe,
        home, path_env ? path_env : "/usr/local/bin:/usr/bin:/bin", home,
        (long long)(drain > 60 ? drain : 60), system_wide ? "multi-user.target" : "default.target");
    char *path = unit_path(system_wide);
    mkdirs(path);
    int rc = hm_write_atomic(path, unit, strlen(unit), 0644);
    rt_free(unit);
    if (rc) {
        cli_err("cannot write %s: %s", path, rt_strerror(rc));
        rt_free(path);
        rt_free(home);
        return 1;
    }
    printf("Installed %s\n", path);
    if (have_systemctl() || system_wide) {
        char *const reload[] = {"systemctl", system_wide ? "daemon-reload" : "--user",
                                system_wide ? NULL : "daemon-reload", NULL};
        char *const enable[] = {"systemctl", system_wide ? "enable" : "--user",
                                system_wide ? UNIT_NAME : "enable", system_wide ? NULL : UNIT_NAME,
                                NULL};
        if (run_cmd(reload, false) == 0 && run_cmd(enable, false) == 0)
            printf("Enabled. Start it with: hermes gateway start\n");
        else
            printf("systemctl failed; enable it yourself: systemctl %senable --now %s\n",
                   system_wide ? "" : "--user ", UNIT_NAME);
        if (!system_wide)
            printf("To keep it running after you log out: loginctl enable-linger $USER\n");
    } else {
        printf("systemd is not available here; run the gateway with: hermes gateway start\n");
    }
    rt_free(path);
    rt_free(home);
    return 0;
}

static bool unit_installed(void)
{
    char *p = unit_path(false);
    bool yes = access(p, F_OK) == 0;
    rt_free(p);
    return yes;
}

static int systemctl_verb(const char *verb)
{
    char *const argv[] = {"systemctl", "--user", (char *)verb, UNIT_NAME, NULL};
    int rc = run_cmd(argv, false);
    return rc == 0 ? 0 : 1;
}

static int gateway_stop(void)
{
    if (unit_installed() && have_systemctl())
        return systemctl_verb("stop");
    char *home = hm_config_home();
    pid_record r = running_gateway(home);
    rt_free(home);
    if (!r.pid) {
        printf("Gateway is not running.\n");
        return 0;
    }
    if (kill(r.pid, SIGTERM) != 0) {
        cli_err("cannot signal PID %d: %s", (int)r.pid, rt_strerror(-errno));
        return 1;
    }
    printf("Stopping the gateway (PID %d)...\n", (int)r.pid);
    for (int i = 0; i < 900 && kill(r.pid, 0) == 0; i++) { /* up to 90 s: the drain */
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (kill(r.pid, 0) == 0) {
        cli_err("the gateway (PID %d) did not stop; it is still draining or stuck", (int)r.pid);
        return 1;
    }
    printf("Stopped.\n");
    return 0;
}

static int gateway_start(void)
{
    if (unit_installed() && have_systemctl())
        return systemctl_verb("start");
    char *home = hm_config_home();
    pid_record r = running_gateway(home);
    if (r.pid) {
        printf("Gateway already running (PID %d).\n", (int)r.pid);
        rt_free(home);
        return 0;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0) {
        rt_free(home);
        return 1;
    }
    exe[n] = '\0';
    (void)hm_config_ensure_home(home);
    char *log = rt_xasprintf("%s/logs/gateway.log", home);
    pid_t pid = fork();
    if (pid < 0) {
        cli_err("fork: %s", rt_strerror(-errno));
        rt_free(log);
        rt_free(home);
        return 1;
    }
    if (pid == 0) {
        setsid();
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0)
            dup2(nul, 0);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        char *const argv[] = {exe, "gateway", "run", NULL};
        execv(exe, argv);
        _exit(127);
    }
    /* Wait until it wrote its pid file (or died). */
    for (int i = 0; i < 300; i++) {
        if (running_gateway(home).pid)
            break;
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            cli_err("the gateway exited at start-up; see %s", log);
            rt_free(log);
            rt_free(home);
            return 1;
        }
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
    printf("Gateway started (PID %d). Log: %s\n", (int)pid, log);
    rt_free(log);
    rt_free(home);
    return 0;
}

static int gateway_uninstall(void)
{
    char *p = unit_path(false);
    if (have_systemctl()) {
        char *const disable[] = {"systemctl", "--user", "disable", "--now", UNIT_NAME, NULL};
        (void)run_cmd(disable, true);
    }
    int rc = unlink(p) == 0 || errno == ENOENT ? 0 : 1;
    printf(rc ? "Could not remove %s\n" : "Removed %s\n", p);
    rt_free(p);
    return rc;
}

/* ================================================================== entry */

static void usage(FILE *f)
{
    fprintf(f, "usage: hermes gateway [run|status|install [--system]|uninstall|start|stop|"
               "restart]\n");
}

int cli_gateway(int argc, char **argv)
{
    if (argc < 2 || argv[1][0] == '-')
        return gateway_run(argc, argv);
    const char *sub = argv[1];
    if (strcmp(sub, "run") == 0)
        return gateway_run(argc - 1, argv + 1);
    if (strcmp(sub, "status") == 0)
        return gateway_status();
    if (strcmp(sub, "install") == 0)
        return gateway_install(argc > 2 && strcmp(argv[2], "--system") == 0);
    if (strcmp(sub, "uninstall") == 0)
        return gateway_uninstall();
    if (strcmp(sub, "start") == 0)
        return gateway_start();
    if (strcmp(sub, "stop") == 0)
        return gateway_stop();
    if (strcmp(sub, "restart") == 0) {
        if (unit_installed() && have_systemctl())
            return systemctl_verb("restart");
        int rc = gateway_stop();
        return rc ? rc : gateway_start();
    }
    if (strcmp(sub, "help") == 0 || strcmp(sub, "--help") == 0) {
        usage(stdout);
        return 0;
    }
    usage(stderr);
    return 2;
}

#!/usr/bin/python3
"""The capacity benchmark through a chat platform (issue 11): N users in M rooms talking to the
real `hermes gateway run` through the Matrix homeserver double or the Mattermost server double
(tests/doubles/), the model being bench_gw_llm (a scripted OpenAI-compatible server in C) at a
fixed latency, through the real provider actor and HTTP client.

  1. The world: M rooms (Matrix) or channels (Mattermost) with the bot and N users (user i in
     room i mod M). M == N: every user has a direct room / DM with the bot; otherwise shared
     rooms, where the bot answers each user in the user's own session (group_sessions_per_user)
     and names the message it answers (Matrix: a reply, Mattermost: the thread).
  2. The gateway starts; its RSS once it has seen every room (idle).
  3. The double plays the users (tests/doubles/autopilot.py): each posts a message, waits for
     the bot's answer, posts the next at once; the first messages spread over the model's
     latency. After --warmup, a --duration window is measured.

Measured: turns/s (answers arriving inside the window); added latency p50/p99/p99.9/max = answer seen by the double − message posted
− the model's latency (so it contains the platform path: the sync long-poll or the WebSocket
event, the adapter, router, session, store, provider, the reply's HTTP request; and the
double's own loop); the gateway's CPU-µs per turn and cores over the window; the double's cores
(a Python double near 1.0 is the bottleneck, not the gateway); RSS idle and after.

Usage: bench/gateway/chat_load.py --platform matrix|mattermost [--users 200] [--rooms N]
       [--llm-latency-ms 2000] [--tokens 8] [--text-batch-ms 0] [--duration 15] [--warmup 5] [--workers W]
       [--hermes build/hermes] [--llm-bin build/bench/gateway/bench_gw_llm] [--label L]
       [--log-dir DIR] [--quiet]
Prints one RESULT line (bench/README.md's format) on stdout, a progress bar on stderr.
Loopback only; every wait is bounded; exit 1 when the run failed (nothing answered, a process
died), 2 for bad usage.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DOUBLES = os.path.join(ROOT, "tests", "doubles")
PY = "/usr/bin/python3"


class Failed(Exception):
    pass


def http(method, url, body=None, timeout=60):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        raw = r.read()
    return json.loads(raw) if raw else None


def wait_for(pred, timeout, what, procs=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in procs:
            if p.poll() is not None:
                raise Failed(f"{what}: a process exited ({' '.join(p.args[:2])}, "
                             f"status {p.returncode})")
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise Failed(f"timed out waiting for {what}")


def proc_stat(pid):
    """(cpu seconds, rss kb) of a process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    with open(f"/proc/{pid}/status") as f:
        rss = next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0)
    return cpu, rss


def machine_busy():
    """(busy jiffies, all jiffies) of the whole machine."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return sum(v) - idle, sum(v)


def pct(sorted_vals, p):
    if not sorted_vals:
        return 0.0
    i = min(len(sorted_vals) - 1, max(0, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[i]


def progress(quiet, label, frac, extra=""):
    if quiet:
        return
    n = int(frac * 30)
    sys.stderr.write(f"\r  {label:<28} [{'#' * n}{'.' * (30 - n)}] {frac * 100:5.1f}% {extra:<40}")
    sys.stderr.flush()


# ------------------------------------------------------------------------ the platforms

class Matrix:
    name = "matrix"

    def __init__(self, tmp, log):
        self.proc = subprocess.Popen([PY, os.path.join(DOUBLES, "matrix_double.py"),
                                      "--port", "0"], stdout=subprocess.PIPE, stderr=log,
                                     text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            raise Failed(f"the homeserver double said {line!r}")
        self.base = "http://127.0.0.1:" + line.split()[1]
        self.control = self.base + "/_double"

    def world(self, users, rooms):
        direct = users == rooms
        room_ids = [f"!load{j}:localhost" for j in range(rooms)]
        members = [[] for _ in range(rooms)]
        pairs = []
        for i in range(users):
            u = f"@user{i}:localhost"
            members[i % rooms].append(u)
            pairs.append([room_ids[i % rooms], u])
        for j, r in enumerate(room_ids):
            http("POST", self.control + "/room",
                 {"room_id": r, "members": ["@bot:localhost"] + members[j], "direct": direct})
        self.home = room_ids[0]
        return pairs, "hello hermes"

    def env(self, a):
        # The adapter waits for a quiet period before it hands a person's text on (the
        # original's batching of quick follow-ups, 0.6 s by default): --text-batch-ms.
        return {"MATRIX_HOMESERVER": self.base, "MATRIX_ACCESS_TOKEN": "bot-token",
                "MATRIX_USER_ID": "@bot:localhost", "MATRIX_HOME_ROOM": self.home,
                "MATRIX_REQUIRE_MENTION": "false",
                "HERMES_MATRIX_TEXT_BATCH_DELAY_SECONDS": f"{a.text_batch_ms / 1000:g}"}

    def connected(self):
        return len(http("GET", self.control + "/requests?label=sync")) >= 2


class Mattermost:
    name = "mattermost"

    def __init__(self, tmp, log):
        self.proc = subprocess.Popen([PY, os.path.join(DOUBLES, "mattermost_double.py"),
                                      "--port", "0", "--control-port", "0",
                                      "--exit-on-stdin-eof"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                     text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("PORTS "):
            raise Failed(f"the Mattermost double said {line!r}")
        port, cport = line.split()[1:3]
        self.base = "http://127.0.0.1:" + port
        self.control = "http://127.0.0.1:" + cport + "/_test"
        w = http("GET", self.control + "/world")
        self.token = w["token"]

    def world(self, users, rooms):
        pairs = http("POST", self.control + "/load_world", {"users": users, "channels": rooms})
        self.home = pairs["users"][0][0]
        # a DM answers every message; a channel needs the @mention
        return pairs["users"], "hello hermes" if users == rooms else "@hermes hello"

    def env(self, a):
        return {"MATTERMOST_URL": self.base, "MATTERMOST_TOKEN": self.token,
                "MATTERMOST_HOME_CHANNEL": self.home, "MATTERMOST_REPLY_MODE": "thread"}

    def connected(self):
        try:
            http("GET", self.control + "/wait?what=ws&n=1&timeout_ms=100")
            return True
        except urllib.error.HTTPError:
            return False


PLATFORMS = {"matrix": Matrix, "mattermost": Mattermost}


# ------------------------------------------------------------------------------ the run

def run(a, tmp, procs, logs):
    llm = subprocess.Popen([a.llm_bin, "--port", "0", "--latency-ms", str(a.llm_latency_ms),
                            "--tokens", str(a.tokens), "--seconds",
                            str(int(a.warmup + a.duration) + 600)],
                           stdout=subprocess.PIPE, stderr=logs["llm"], text=True)
    procs.append(llm)
    line = llm.stdout.readline()
    if not line.startswith("READY port="):
        raise Failed(f"bench_gw_llm said {line!r}")
    llm_url = "http://127.0.0.1:" + line.split()[1].split("=")[1] + "/v1"

    plat = PLATFORMS[a.platform](tmp, logs["double"])
    procs.append(plat.proc)
    t = time.monotonic()
    pairs, text = plat.world(a.users, a.rooms)
    world_s = time.monotonic() - t

    home = os.path.join(tmp, "home")
    os.makedirs(home)
    with open(os.path.join(home, "config.yaml"), "w") as f:
        # every user's request on the wire at once: the provider's cap is not what is measured
        f.write(f"model: bench-model\nagent:\n  api_max_inflight: {a.users + 64}\n")
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": tmp, "HERMES_HOME": home,
           "LANG": "C.UTF-8", "OPENAI_BASE_URL": llm_url, "OPENAI_API_KEY": "sk-bench",
           "GATEWAY_ALLOW_ALL_USERS": "true", "HERMES_TOOL_PROGRESS": "off",
           "HERMES_WORKERS": str(a.workers)}
    env.update(plat.env(a))
    gw = subprocess.Popen([a.hermes, "gateway", "run"], env=env, stdout=logs["gateway"],
                          stderr=subprocess.STDOUT)
    procs.append(gw)
    wait_for(plat.connected, 120, f"the gateway to connect to the {a.platform} double",
             [gw, plat.proc])
    time.sleep(2.0)  # the first sync / channel list settles (bounded, once)
    _, rss_idle = proc_stat(gw.pid)

    http("POST", plat.control + "/load",
         {"users": pairs, "text": text, "seconds": a.duration, "warmup": a.warmup,
          "ramp_ms": a.llm_latency_ms})
    t0 = time.monotonic()
    total = a.warmup + a.duration
    st = {}
    mark = None
    while True:
        if gw.poll() is not None or plat.proc.poll() is not None:
            raise Failed("the gateway or the double exited during the load")
        st = http("GET", plat.control + "/load")
        el = time.monotonic() - t0
        if mark is None and el >= a.warmup:  # the measured window starts
            mark = (time.monotonic(), proc_stat(gw.pid)[0], proc_stat(plat.proc.pid)[0],
                    machine_busy())
        if not st["running"]:
            break
        if el > total + 60:
            raise Failed("the load did not finish")
        progress(a.quiet, f"{a.platform} {a.users}u/{a.rooms}r", min(1.0, el / total),
                 f"answered {st['answered']} waiting {st['waiting']}")
        time.sleep(0.25)
    t1 = time.monotonic()
    gw_cpu1, rss_busy = proc_stat(gw.pid)
    dbl_cpu1, _ = proc_stat(plat.proc.pid)
    busy1 = machine_busy()
    if not a.quiet:
        sys.stderr.write("\n")
    if mark is None:
        mark = (t0 + a.warmup, gw_cpu1, dbl_cpu1, busy1)
    cores = os.cpu_count() or 1
    busy_cores = (busy1[0] - mark[3][0]) / max(1, busy1[1] - mark[3][1]) * cores
    # a message still unanswered after the model's latency + 10 s is lost or stuck: an error
    errors = sum(1 for w in st.get("waiting_s", []) if w > a.llm_latency_ms / 1000 + 10)
    window = max(0.001, t1 - mark[0])
    lat = sorted(max(0.0, x - a.llm_latency_ms) for x in st.get("latencies_ms", []))
    turns = len(lat)
    if turns == 0:
        raise Failed(f"no turn was answered in the window (posted {st.get('posted')}, "
                     f"answered {st.get('answered')}); see {a.log_dir or 'the logs'}")
    gw_cpu = gw_cpu1 - mark[1]
    dbl_cpu = dbl_cpu1 - mark[2]
    fields = [
        ("bench", "gw_chat"), ("label", a.label or a.platform), ("platform", a.platform),
        ("users", a.users), ("rooms", a.rooms), ("workers", a.workers),
        ("llm_latency_ms", a.llm_latency_ms),
        ("text_batch_ms", a.text_batch_ms if a.platform == "matrix" else 0), ("secs", f"{a.duration:g}"), ("turns", turns),
        ("turns_per_s", f"{st.get('in_window', turns) / a.duration:.1f}"),
        ("added_p50_ms", f"{pct(lat, 50):.2f}"), ("added_p99_ms", f"{pct(lat, 99):.2f}"),
        ("added_p999_ms", f"{pct(lat, 99.9):.2f}"), ("added_max_ms", f"{lat[-1]:.2f}"),
        ("errors", errors), ("posted", st["posted"]), ("answered", st["answered"]),
        ("other", st["other"]),
        ("server_cpu_us_per_turn", f"{gw_cpu * 1e6 / max(1, st.get('in_window', turns)):.0f}"),
        ("server_cores", f"{gw_cpu / window:.2f}"), ("double_cores", f"{dbl_cpu / window:.2f}"),
        ("machine_cores_busy", f"{busy_cores:.2f}"),
        ("rss_idle_kb", rss_idle), ("rss_kb", rss_busy),
        ("bytes_per_active_session", f"{(rss_busy - rss_idle) * 1024 / max(1, a.users):.0f}"),
        ("world_s", f"{world_s:.1f}"),
    ]
    print("RESULT " + " ".join(f"{k}={v}" for k, v in fields), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--platform", required=True, choices=sorted(PLATFORMS))
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--rooms", type=int, default=0, help="default: --users (direct rooms)")
    ap.add_argument("--llm-latency-ms", type=int, default=2000)
    ap.add_argument("--tokens", type=int, default=8)
    ap.add_argument("--text-batch-ms", type=int, default=0,
                    help="Matrix: the adapter's text batching quiet period (users' default 600; "
                         "0 = off, the gateway's own latency)")
    ap.add_argument("--duration", type=float, default=15)
    ap.add_argument("--warmup", type=float, default=5)
    ap.add_argument("--workers", type=int, default=int(os.environ.get("HERMES_WORKERS", "2")))
    ap.add_argument("--hermes", default=os.path.join(ROOT, "build", "hermes"))
    ap.add_argument("--llm-bin", default=os.path.join(ROOT, "build", "bench", "gateway",
                                                      "bench_gw_llm"))
    ap.add_argument("--label", default="")
    ap.add_argument("--log-dir", default="")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args()
    a.rooms = a.rooms or a.users
    bad = []
    if not 1 <= a.users <= 20000:
        bad.append("--users 1..20000")
    if not 1 <= a.rooms <= a.users:
        bad.append("--rooms 1..--users")
    if not 0 <= a.llm_latency_ms <= 600000 or not 0 <= a.tokens <= 10000 or \
            not 0 <= a.text_batch_ms <= 60000:
        bad.append("--llm-latency-ms 0..600000, --tokens 0..10000, --text-batch-ms 0..60000")
    if not 1 <= a.duration <= 600 or not 0 <= a.warmup <= 300 or not 1 <= a.workers <= 64:
        bad.append("--duration 1..600, --warmup 0..300, --workers 1..64")
    for path in (a.hermes, a.llm_bin):
        if not os.access(path, os.X_OK):
            bad.append(f"{path} is not built (cmake --preset release && cmake --build build)")
    if bad:
        ap.error("; ".join(bad))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("chat_load: terminated"))
    tmp = tempfile.mkdtemp(prefix="hermes-chatload-")
    log_dir = a.log_dir or tmp
    os.makedirs(log_dir, exist_ok=True)
    tag = a.label or a.platform
    logs = {k: open(os.path.join(log_dir, f"chat-{tag}-{k}.log"), "w")
            for k in ("llm", "double", "gateway")}
    procs = []
    rc = 0
    try:
        run(a, tmp, procs, logs)
    except (Failed, OSError, urllib.error.URLError) as e:
        sys.stderr.write(f"\nchat_load: {e}\n")
        rc = 1
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        for f in logs.values():
            f.close()
        if not a.log_dir:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            shutil.rmtree(os.path.join(tmp, "home"), ignore_errors=True)
    sys.exit(rc)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Matrix throughput and memory (issue 7): the real `hermes gateway run` against the homeserver
double (tests/doubles/matrix_double.py) and the scripted LLM (tests/doubles/fake_llm.py,
answering at once).

  1. ROOMS direct rooms between the bot and one person each are created, and the gateway
     starts with every one joined: its RSS then is the cost of the rooms.
  2. MESSAGES messages are posted at once, spread over the rooms; the clock runs until the
     bot's answers cover every one (a person's messages that arrive together are answered in
     one turn, as the original does): messages/s through the bot (sync → gateway → agent →
     state.db → reply PUT), and the RSS after.

Both doubles are Python on the same two cores, so the figure is a floor for the bot, not a
ceiling: the double's own cost is measured too (its CPU seconds during the run) and printed.

Usage: bench/matrix/run.py [--rooms 1000] [--messages 2000] [--hermes build/hermes]
Prints RESULT lines (bench/README.md's format). Loopback only; every wait is bounded.
"""
import argparse
import concurrent.futures
import json
import re
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


def http(method, url, body=None, timeout=30):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        raw = r.read()
    return json.loads(raw) if raw else None


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    sys.exit(f"bench/matrix: timed out waiting for {what}")


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rooms", type=int, default=1000)
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--hermes", default=os.path.join(ROOT, "build", "hermes"))
    a = ap.parse_args()
    if a.rooms < 1 or a.messages < 1 or a.rooms > 100000 or a.messages > 1000000:
        sys.exit("bench/matrix: --rooms 1..100000, --messages 1..1000000")
    if not os.access(a.hermes, os.X_OK):
        sys.exit(f"bench/matrix: {a.hermes} is not built (cmake --preset release && "
                 "cmake --build build)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("bench/matrix: terminated"))
    tmp = tempfile.mkdtemp(prefix="hermes-bench-matrix-")
    procs = []
    try:
        llm_port_file = os.path.join(tmp, "llm.port")
        procs.append(subprocess.Popen(
            ["/usr/bin/python3", os.path.join(DOUBLES, "fake_llm.py"), "--port", "0",
             "--port-file", llm_port_file],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        llm = "http://127.0.0.1:" + wait_for(
            lambda: os.path.exists(llm_port_file) and open(llm_port_file).read().strip(),
            20, "the scripted LLM")
        hs = subprocess.Popen(["/usr/bin/python3", os.path.join(DOUBLES, "matrix_double.py"),
                               "--port", "0"], stdout=subprocess.PIPE, text=True)
        procs.append(hs)
        line = hs.stdout.readline()
        if not line.startswith("PORT "):
            sys.exit(f"bench/matrix: the homeserver double said {line!r}")
        base = "http://127.0.0.1:" + line.split()[1]
        rooms = [f"!r{i}:localhost" for i in range(a.rooms)]
        for i, r in enumerate(rooms):
            http("POST", base + "/_double/room",
                 {"room_id": r, "members": ["@bot:localhost", f"@u{i}:localhost"],
                  "direct": True})
        home = os.path.join(tmp, "home")
        os.makedirs(home)
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": tmp, "HERMES_HOME": home,
               "LANG": "C.UTF-8", "OPENAI_BASE_URL": llm + "/v1",
               "OPENAI_API_KEY": "sk-bench", "MATRIX_HOMESERVER": base,
               "MATRIX_ACCESS_TOKEN": "bot-token", "MATRIX_USER_ID": "@bot:localhost",
               "GATEWAY_ALLOW_ALL_USERS": "true", "MATRIX_HOME_ROOM": rooms[0],
               "HERMES_TOOL_PROGRESS": "off"}
        log = open(os.path.join(tmp, "gateway.log"), "w")
        gw = subprocess.Popen([a.hermes, "gateway", "run"], env=env, stdout=log,
                              stderr=subprocess.STDOUT)
        procs.append(gw)

        def syncs():
            return len(http("GET", base + "/_double/requests?label=sync"))
        wait_for(lambda: syncs() >= 2, 60, "the bot's first /sync")
        time.sleep(1.0)  # settle after the first sync batch (bounded, once)
        idle_kb = rss_kb(gw.pid)
        print(f"RESULT bench=matrix_rooms impl=hermes rooms={a.rooms} rss_kb={idle_kb}",
              flush=True)

        hs_cpu0, gw_cpu0 = cpu_s(hs.pid), cpu_s(gw.pid)
        t0 = time.monotonic()
        def post(i):
            r = i % a.rooms
            http("POST", base + "/_double/message",
                 {"room_id": rooms[r], "sender": f"@u{r}:localhost", "body": f"hello {i}"})
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(post, range(a.messages)))
        posted = time.monotonic() - t0

        # The adapter batches a person's messages that arrive together into one turn (as the
        # original does), so count the messages the answers cover, not the answers.
        def answered():
            sent = http("GET", base + "/_double/sent?type=m.room.message")
            seen = set()
            for e in sent:
                body = str(e.get("content", {}).get("body", ""))
                if body.startswith("echo: "):
                    seen.update(re.findall(r"hello (\d+)", body))
            return len(seen) >= a.messages
        wait_for(answered, 600, "every message to be answered")
        took = time.monotonic() - t0
        busy_kb = rss_kb(gw.pid)
        hs_cpu, gw_cpu = cpu_s(hs.pid) - hs_cpu0, cpu_s(gw.pid) - gw_cpu0
        print(f"RESULT bench=matrix_messages impl=hermes rooms={a.rooms} messages={a.messages} "
              f"seconds={took:.2f} msgs_per_s={a.messages / took:.0f} posting_s={posted:.2f} "
              f"gateway_cpu_s={gw_cpu:.2f} gateway_cpu_us_per_msg={gw_cpu * 1e6 / a.messages:.0f} "
              f"double_cpu_s={hs_cpu:.2f} rss_kb={busy_kb}", flush=True)
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

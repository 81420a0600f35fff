#!/usr/bin/python3
"""bench/gateway/soak.py — 72 simulated hours of gateway traffic; is memory flat? (issue 13)

One bench_gw_server (the real host, gateway, agent sessions and state.db, with the API server
in front of the in-process zero-latency model) is driven hour by simulated hour through the
API server by bench_gw_load:

  * regulars: --regulars people who come back every hour and talk for --talk-s seconds
    (closed loop: each sends the next message as soon as the answer came), so their
    transcripts grow all the way through (compression included);
  * newcomers: --newcomers new people every hour, one message each, never seen again;
  * then the hour ends: nobody talks for --idle-ms plus a margin, so every conversation
    leaves memory (--chat-idle-ms on the server), and the server reports its heap in use
    (mallinfo2), RSS, live actors and pending timers.

A simulated hour takes a few seconds; the default 72 hours about five minutes. Memory is
flat when the least-squares slope over the hours after --warmup-hours, times the hours
measured, stays under --budget-kb (both heap in use and RSS are judged; heap is the honest
one, RSS also shows allocator retention). Growth is also given per conversation ever seen
(regulars + every hour's newcomers): the slope of heap and RSS against that count, in bytes.

Sessions index entries (issue 13) leave memory for state.db after gateway.index_warm_hours;
the server gets GATEWAY_INDEX_WARM_HOURS so that happens after --warm-s real seconds (default:
one simulated hour, idle-ms + 1.5 s). --compare runs the soak twice in one go, first with
entries kept in memory for ever ("before": the behaviour until issue 13) and then with
--warm-s ("after"), and prints both side by side; the verdict is the "after" run's.

Prints a table per hour, one RESULT line per run, writes bench/out/<label>.csv (and
<label>-before.csv with --compare), and exits 0 when flat, 1 when memory grew, 2 on a usage
or start-up error. Loopback only; every loop bounded.

Usage: bench/gateway/soak.py [--hours 72] [--regulars 300] [--newcomers 200] [--talk-s 1]
       [--idle-ms 1000] [--warmup-hours 12] [--budget-kb 4096] [--workers 2]
       [--warm-s S] [--memory-budget-mb MB] [--context-length TOKENS] [--compare]
       [--build-dir build] [--label soak]
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def fail(msg, code=2):
    sys.stderr.write(f"soak.py: {msg}\n")
    sys.exit(code)


class Server:
    """bench_gw_server under our control: commands on stdin, one answer line each."""

    def __init__(self, binary, home, workers, idle_ms, limit_s, log, env=None, extra=()):
        self.p = subprocess.Popen(
            [binary, "--home", home, "--workers", str(workers), "--latency-ms", "0",
             "--chat-idle-ms", str(idle_ms), "--seconds", str(limit_s),
             "--max-inflight", "40000", *extra],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
            env=dict(os.environ, HERMES_WORKERS=str(workers), **(env or {})))
        line = self._line(60)
        m = re.match(r"READY port=(\d+) pid=(\d+)", line or "")
        if not m:
            self.p.kill()
            fail(f"the server did not start (said {line!r}); see its log")
        self.port, self.pid = int(m.group(1)), int(m.group(2))

    def _line(self, timeout_s):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            line = self.p.stdout.readline()
            if not line:
                return None
            line = line.strip()
            if line:
                return line
        return None

    def ask(self, cmd, prefix):
        self.p.stdin.write(cmd + "\n")
        self.p.stdin.flush()
        for _ in range(100):  # skip unrelated lines, bounded
            line = self._line(60)
            if line is None:
                fail(f"the server ended while answering {cmd!r}")
            if line.startswith(prefix):
                return dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)
        fail(f"no {prefix} answer to {cmd!r}")

    def stop(self):
        try:
            self.p.stdin.write("quit\n")
            self.p.stdin.flush()
            self.p.wait(timeout=60)
        except Exception:
            self.p.kill()
            self.p.wait()


def load(binary, srv, mode_args, label):
    r = subprocess.run(
        [binary, "--port", str(srv.port), "--pid", str(srv.pid), "--warmup", "0",
         "--label", label, *mode_args],
        capture_output=True, text=True, timeout=300)
    m = re.search(r"^RESULT .*$", r.stdout, re.M)
    if not m:
        fail(f"bench_gw_load gave no result ({label}): {r.stderr[-400:]}")
    res = dict(kv.split("=", 1) for kv in m.group(0).split()[1:] if "=" in kv)
    return res


def slope(xs, ys):
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0


def run_soak(a, server_bin, load_bin, label, env):
    """One soak: a fresh server with env, a.hours simulated hours; the rows and the base."""
    out_dir = os.path.join(ROOT, "bench", "out")
    tmp = tempfile.mkdtemp(prefix="hermes-soak.")
    log_path = os.path.join(out_dir, f"{label}-server.log")
    per_hour = a.talk_s + 1 + (a.idle_ms + 1500) / 1000
    limit = int(a.hours * per_hour * 3 + 300)
    print(f"soak {label}: {a.hours} simulated hours, {a.regulars} regulars talking {a.talk_s} "
          f"s/hour, {a.newcomers} newcomers/hour, conversations leave memory after "
          f"{a.idle_ms} ms (about {int(a.hours * per_hour)} s); server env {env}",
          file=sys.stderr)
    rows = []
    with open(log_path, "w") as log:
        extra = ("--context-length", str(a.context_length)) if a.context_length else ()
        srv = Server(server_bin, os.path.join(tmp, "home"), a.workers, a.idle_ms, limit, log, env,
                     extra)
        try:
            base = srv.ask("heap", "HEAP")
            print(f"{'hour':>4} {'seen':>6} {'turns':>7} {'errors':>6} {'heap_kb':>9} "
                  f"{'rss_kb':>8} {'actors':>7} {'timers':>7}", file=sys.stderr)
            seen = a.regulars
            for h in range(a.hours):
                talk = load(load_bin, srv, ["--conns", str(min(a.regulars, 32)),
                                            "--sessions", str(a.regulars), "--prefix", "regular",
                                            "--seconds", str(a.talk_s)], f"h{h}-regulars")
                turns, errors = int(talk.get("turns", 0)), int(talk.get("errors", 0))
                if a.newcomers:
                    new = load(load_bin, srv, ["--conns", str(min(a.newcomers, 32)),
                                               "--create", str(a.newcomers),
                                               "--prefix", f"new{h}", "--settle-ms", "0"],
                               f"h{h}-newcomers")
                    turns += a.newcomers
                    errors += int(new.get("errors", 0))
                    seen += a.newcomers
                time.sleep((a.idle_ms + 1500) / 1000)  # the hour's quiet end: let them leave
                heap = srv.ask("heap", "HEAP")
                st = srv.ask("stats", "STATS")
                row = dict(hour=h + 1, seen=seen, turns=turns, errors=errors,
                           heap_kb=int(heap["in_use"]) // 1024, rss_kb=int(heap["rss_kb"]),
                           actors=int(st.get("actors", 0)),
                           timers=int(st.get("timers_pending", 0)))
                rows.append(row)
                print(f"{row['hour']:>4} {seen:>6} {turns:>7} {errors:>6} {row['heap_kb']:>9} "
                      f"{row['rss_kb']:>8} {row['actors']:>7} {row['timers']:>7}",
                      file=sys.stderr)
        finally:
            srv.stop()
            shutil.rmtree(tmp, ignore_errors=True)
    csv = os.path.join(out_dir, f"{label}.csv")
    with open(csv, "w") as f:
        f.write("hour,seen,turns,errors,heap_kb,rss_kb,actors,timers\n")
        for r in rows:
            f.write(f"{r['hour']},{r['seen']},{r['turns']},{r['errors']},{r['heap_kb']},"
                    f"{r['rss_kb']},{r['actors']},{r['timers']}\n")
    print(f"wrote {csv}; server log {log_path}", file=sys.stderr)
    return rows, base


def summarize(a, label, rows, base):
    """The RESULT line's fields for one run, and whether it is flat."""
    meas = rows[a.warmup_hours:]
    xs = [r["hour"] for r in meas]
    span = xs[-1] - xs[0]
    seen = [r["seen"] for r in meas]
    res = dict(
        label=label, hours=a.hours, turns=sum(r["turns"] for r in rows),
        errors=sum(r["errors"] for r in rows), seen=rows[-1]["seen"],
        base_heap_kb=int(base["in_use"]) // 1024,
        heap_kb_first=meas[0]["heap_kb"], heap_kb_last=meas[-1]["heap_kb"],
        heap_growth_kb=round(slope(xs, [r["heap_kb"] for r in meas]) * span),
        heap_b_per_conv=round(slope(seen, [r["heap_kb"] * 1024 for r in meas])),
        rss_kb_first=meas[0]["rss_kb"], rss_kb_last=meas[-1]["rss_kb"],
        rss_growth_kb=round(slope(xs, [r["rss_kb"] for r in meas]) * span),
        rss_b_per_conv=round(slope(seen, [r["rss_kb"] * 1024 for r in meas])),
        budget_kb=a.budget_kb)
    flat = (res["heap_growth_kb"] < a.budget_kb and res["rss_growth_kb"] < a.budget_kb
            and res["errors"] == 0)
    res["verdict"] = "flat" if flat else "GROWS"
    return res, flat


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hours", type=int, default=72)
    ap.add_argument("--regulars", type=int, default=300)
    ap.add_argument("--newcomers", type=int, default=200)
    ap.add_argument("--talk-s", type=int, default=1)
    ap.add_argument("--idle-ms", type=int, default=1000)
    ap.add_argument("--warmup-hours", type=int, default=12)
    ap.add_argument("--budget-kb", type=int, default=4096)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--warm-s", type=float, default=0.0,
                    help="real seconds a quiet conversation's index entry stays in memory "
                         "(0: idle-ms + 1.5 s, one simulated hour)")
    ap.add_argument("--memory-budget-mb", type=int, default=0)
    # the model's context window in tokens: the agent compresses the regulars' transcripts at
    # 85 % of it, as with a real model (0: the bench model's, never reached)
    ap.add_argument("--context-length", type=int, default=0)
    ap.add_argument("--compare", action="store_true",
                    help="also run with entries kept in memory for ever, side by side")
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    ap.add_argument("--label", default="soak")
    a = ap.parse_args()
    if not 2 <= a.hours <= 1000:
        fail("--hours must be 2..1000")
    if not 0 <= a.warmup_hours < a.hours - 1:
        fail("--warmup-hours must leave at least two measured hours")
    if not (1 <= a.regulars <= 10000 and 0 <= a.newcomers <= 10000):
        fail("--regulars must be 1..10000 and --newcomers 0..10000")
    if not (1 <= a.talk_s <= 60 and 100 <= a.idle_ms <= 60000):
        fail("--talk-s must be 1..60 and --idle-ms 100..60000")
    if not (0 <= a.warm_s <= 86400 and 0 <= a.memory_budget_mb <= 1000000):
        fail("--warm-s must be 0..86400 and --memory-budget-mb 0..1000000")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", a.label):
        fail("--label: letters, digits, - and _ only")
    bindir = os.path.join(a.build_dir, "bench", "gateway")
    server_bin, load_bin = (os.path.join(bindir, b) for b in ("bench_gw_server", "bench_gw_load"))
    for b in (server_bin, load_bin):
        if not os.access(b, os.X_OK):
            fail(f"{b} is missing: cmake --preset release && cmake --build build --target bench_gateway")
    os.makedirs(os.path.join(ROOT, "bench", "out"), exist_ok=True)

    warm_s = a.warm_s if a.warm_s > 0 else (a.idle_ms + 1500) / 1000
    after_env = {"GATEWAY_INDEX_WARM_HOURS": f"{warm_s / 3600:.9f}",
                 "GATEWAY_MEMORY_BUDGET_MB": str(a.memory_budget_mb)}
    runs = []
    if a.compare:  # entries never leave memory: 100 years
        before_env = {"GATEWAY_INDEX_WARM_HOURS": "876000", "GATEWAY_MEMORY_BUDGET_MB": "0"}
        runs.append((f"{a.label}-before", before_env))
    runs.append((a.label, after_env))
    results = []
    for label, env in runs:
        rows, base = run_soak(a, server_bin, load_bin, label, env)
        results.append(summarize(a, label, rows, base))
    for res, _ in results:
        print("RESULT bench=gw_soak " + " ".join(f"{k}={v}" for k, v in res.items()))
    if a.compare:
        (b, _), (f, _) = results
        print(f"{'':24} {'before':>12} {'after':>12}", file=sys.stderr)
        for k in ("seen", "heap_kb_first", "heap_kb_last", "heap_growth_kb", "heap_b_per_conv",
                  "rss_kb_first", "rss_kb_last", "rss_growth_kb", "rss_b_per_conv", "errors",
                  "verdict"):
            print(f"{k:24} {b[k]!s:>12} {f[k]!s:>12}", file=sys.stderr)
    return 0 if results[-1][1] else 1


if __name__ == "__main__":
    sys.exit(main())

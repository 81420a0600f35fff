#!/usr/bin/env python3
"""bench/gateway/report.py — the report of bench/gateway/run.sh (standard library only).

Reads bench/out/gateway-results.csv (one row per measured point), gateway-raw.txt (every
RESULT/PERSISTED/STATS line) and gateway-meta.txt (key=value: the machine and the options),
prints the sizing table, and writes the Markdown report and a hand-made SVG plot (added
latency vs load, p99 vs concurrent users, memory vs sessions).

Usage: report.py --csv F --raw F --meta F --md OUT.md --svg OUT.svg
"""
import argparse
import csv
import math
import sys


def num(v, default=None):
    try:
        return float(v)
    except (TypeError, ValueError):
        return default


def fields(line):
    out = {}
    for tok in line.split():
        if "=" in tok:
            k, v = tok.split("=", 1)
            out.setdefault(k, v)
    return out


def load(args):
    with open(args.csv, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k in list(r):
            if k not in ("scenario", "label", "extra"):
                r[k] = num(r[k])
        r.update({k: num(v) for k, v in fields(r.get("extra") or "").items()})
    raw = []
    with open(args.raw) as f:
        raw = [fields(l) | {"_line": l.strip()} for l in f if l.strip()]
    meta = {}
    with open(args.meta) as f:
        for l in f:
            if "=" in l:
                k, v = l.rstrip("\n").split("=", 1)
                meta[k] = v
    return rows, raw, meta


def fmt(v, nd=1, unit=""):
    if v is None:
        return "n/a"
    if abs(v) >= 100 or nd == 0:
        return f"{v:,.0f}{unit}"
    return f"{v:.{nd}f}{unit}"


def kib(b):
    return None if b is None else b / 1024.0


# ---------------------------------------------------------------- analysis


def analyse(rows, raw, meta):
    a = {}
    budget = num(meta.get("p99_budget_ms"), 20)
    tp = [r for r in rows if r["scenario"] == "throughput"]
    tp.sort(key=lambda r: r["conns"] or 0)
    a["tp"] = tp
    a["sse"] = [r for r in rows if r["scenario"] == "throughput_sse"]
    a["hist"] = [r for r in rows if r["scenario"] == "throughput_history"]
    a["prov"] = [r for r in rows if r["scenario"] == "provider"]
    if tp:
        best = max(tp, key=lambda r: r["turns_per_s"] or 0)
        a["tp_best"] = best
        base = tp[0]["added_p99_ms"] or 0
        knee = None
        for prev, r in zip(tp, tp[1:]):
            p = r["added_p99_ms"] or 0
            if p > max(2 * base, 1.0):
                knee = (prev, r)
                break
        a["knee"] = knee
    cap = sorted([r for r in rows if r["scenario"] == "capacity"], key=lambda r: r["conns"] or 0)
    a["cap"] = cap
    ok = [r for r in cap if (r["added_p99_ms"] or 1e9) < budget and not r["errors"]]
    a["cap_ok"] = max(ok, key=lambda r: r["conns"]) if ok else None
    a["budget"] = budget
    a["drive"] = sorted([r for r in rows if r["scenario"] == "drive"], key=lambda r: r["conns"] or 0)
    for r in a["drive"]:
        r["errors"] = r.get("failures") or 0
    ok = [r for r in a["drive"] if (r["added_p99_ms"] or 1e9) < budget and not r["errors"]]
    a["drive_ok"] = max(ok, key=lambda r: r["conns"]) if ok else None
    a["chat"] = [r for r in rows if (r["scenario"] or "").startswith("chat_")]
    a["scale"] = [r for r in rows if r["scenario"] == "scale"]
    a["create"] = [r for r in rows if r["scenario"] == "scale_create"]
    a["rest"] = [r for r in rows if r["scenario"] == "scale_rest"]
    a["int"] = {r.get("step"): r for r in raw if r.get("bench") == "gw_interrupt"}
    a["int_load"] = [r for r in rows if r["scenario"] == "interrupt_load"]
    a["persisted"] = {r.get("step"): r for r in raw if "_line" in r and "PERSISTED" in r["_line"]}
    a["stats"] = {r.get("step"): r for r in raw if "STATS" in r.get("_line", "")}
    # memory per active session: the capacity server's peak RSS over its start, per user
    if cap and meta.get("cap_rss_start_kb"):
        top = cap[-1]
        peak = top.get("rss_peak_kb") or top["rss_kb"]
        start = num(meta["cap_rss_start_kb"])
        if peak and start is not None and top["conns"]:
            a["active_bytes"] = (peak - start) * 1024 / top["conns"]
            a["active_users"] = top["conns"]
    return a


def interrupt_p(a, step, key):
    r = a["int"].get(step)
    if not r:
        return None, None
    vals = [num(r.get(f"{k}_{key}_p99_us")) for k in ("stop", "newmsg")]
    p50 = [num(r.get(f"{k}_{key}_p50_us")) for k in ("stop", "newmsg")]
    vals = [v for v in vals if v is not None and v >= 0]
    p50 = [v for v in p50 if v is not None and v >= 0]
    return (max(p50) if p50 else None), (max(vals) if vals else None)


# ---------------------------------------------------------------- report


def report(rows, raw, meta, a):
    L = []
    w = L.append
    lat = num(meta.get("llm_latency_ms"), 2000)
    w("# Gateway capacity benchmark (bench/gateway/run.sh)")
    w("")
    w(f"Run {meta.get('date', '?')} on {meta.get('host_cpus', '?')} cores "
      f"({meta.get('cpu_model', '?')}), {meta.get('mem_total_mb', '?')} MB; "
      f"gateway workers: {meta.get('workers', '?')}; load average "
      f"{meta.get('loadavg_start', '?')} at the start, {meta.get('loadavg_end', '?')} at the end "
      f"(the machine is shared: `machine_cores_busy` below is every process's CPU use during "
      f"each point, so a noisy point shows). Wall time {meta.get('wall_s', '?')} s"
      f"{', --quick' if meta.get('quick') == '1' else ''}. The scripted model streams "
      f"{meta.get('tokens', '8')} tokens per answer; {meta.get('tool_mix', '0')}% of turns "
      f"call a tool first.")
    w("")
    w("## Sizing")
    w("")
    co = a.get("cap_ok")
    budget = a["budget"]
    do = a.get("drive_ok")
    think = num(meta.get("think_ms"), 0)
    again = (f"within {think:,.0f} ms of the answer (evenly random)" if think > 0
             else "as soon as answered")
    if do:
        most = a["drive"][-1]["conns"]
        more = "" if do["conns"] < most else " (the most tried: it may hold more)"
        w(f"**The gateway holds {do['conns']:,.0f} concurrent active users at p99 < {budget:g} ms "
          f"added latency** (in-process adapter, no HTTP; LLM latency {lat / 1000:g} s, every "
          f"user sending again {again}: {fmt(do['turns_per_s'], 0)} turns/s; "
          f"measured p99 {fmt(do['added_p99_ms'], 2)} ms){more}.")
    elif a["drive"]:
        w(f"**No in-process point met p99 < {budget:g} ms** (LLM latency {lat / 1000:g} s); the "
          f"lowest tried, {a['drive'][0]['conns']:,.0f} users, had p99 "
          f"{fmt(a['drive'][0]['added_p99_ms'], 2)} ms.")
    w("")
    if co:
        most = a["cap"][-1]["conns"] if a["cap"] else 0
        more = "" if co["conns"] < most else " (the most tried: it may hold more)"
        w(f"**Through the API server this machine holds {co['conns']:,.0f} concurrent active users at p99 < "
          f"{budget:g} ms added latency** (LLM latency {lat / 1000:g} s, every user sending "
          f"again as soon as answered: {fmt(co['turns_per_s'], 0)} turns/s; measured "
          f"p99 {fmt(co['added_p99_ms'], 2)} ms){more}.")
    elif a["cap"]:
        w(f"**No API server point met p99 < {budget:g} ms** (LLM latency {lat / 1000:g} s); "
          f"the lowest tried, {a['cap'][0]['conns']:,.0f} users, had p99 "
          f"{fmt(a['cap'][0]['added_p99_ms'], 2)} ms.")
    w("")
    if a.get("tp_best"):
        b = a["tp_best"]
        w(f"**Throughput: {fmt(b['turns_per_s'], 0)} turns/s** through the API server with a "
          f"zero-latency model, every message persisted ({b['conns']:.0f} connections, "
          f"transcripts under ~30 turns; {fmt(b['server_cpu_us_per_turn'], 0)} CPU-µs per turn "
          f"on the server).")
        for h in a["hist"]:
            w(f"With long transcripts (~{h.get('transcript_msgs_end') or 0:.0f} messages) it falls "
              f"to {fmt(h['turns_per_s'], 0)} turns/s ({fmt(h['server_cpu_us_per_turn'], 0)} "
              f"CPU-µs per turn): every model call copies the whole transcript.")
        for p in a["prov"]:
            w(f"Through the real provider actor and its HTTP client (to a scripted LLM on "
              f"127.0.0.1): {fmt(p['turns_per_s'], 0)} turns/s, "
              f"{fmt(p['server_cpu_us_per_turn'], 0)} CPU-µs per turn in the gateway.")
    w("")
    w("| users (connections) | sessions | turns/s | added p50 ms | p99 ms | p99.9 ms | errors | "
      "server cores | machine busy cores | RSS peak MB |")
    w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in a["cap"]:
        mark = " ✓" if (r["added_p99_ms"] or 1e9) < budget and not r["errors"] else ""
        w(f"| {r['conns']:,.0f}{mark} | {r['sessions']:,.0f} | {fmt(r['turns_per_s'], 0)} | "
          f"{fmt(r['added_p50_ms'], 2)} | {fmt(r['added_p99_ms'], 2)} | "
          f"{fmt(r['added_p999_ms'], 2)} | {r['errors']:.0f} | {fmt(r['server_cores'], 2)} | "
          f"{fmt(r['machine_cores_busy'], 2)} | {fmt((r.get('rss_peak_kb') or 0) / 1024, 0)} |")
    if a["drive"]:
        w("")
        w("The same closed loop from the in-process adapter (no HTTP; the gateway, agent "
          f"sessions and store on their own; users send again {again}):")
        w("")
        w("| users (chats) | turns/s | added p50 ms | p99 ms | p99.9 ms | failures | RSS peak MB | "
          "KB per active chat |")
        w("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in a["drive"]:
            mark = " ✓" if (r["added_p99_ms"] or 1e9) < budget and not r["errors"] else ""
            w(f"| {r['conns']:,.0f}{mark} | {fmt(r['turns_per_s'], 0)} | "
              f"{fmt(r['added_p50_ms'], 2)} | {fmt(r['added_p99_ms'], 2)} | "
              f"{fmt(r['added_p999_ms'], 2)} | {r['errors']:.0f} | "
              f"{fmt((r.get('rss_peak_kb') or 0) / 1024, 0)} | "
              f"{fmt(kib(r['bytes_per_session']), 1)} |")
    w("")
    w("## Throughput and latency (zero-latency model, API server)")
    w("")
    w("| connections | turns/s | added p50 ms | p99 ms | p99.9 ms | max ms | CPU-µs/turn | "
      "server cores | machine busy cores | errors |")
    w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in a["tp"] + a["sse"] + a["hist"] + a["prov"]:
        sse = {"throughput_sse": " (SSE)",
               "provider": " (real provider, HTTP to bench_gw_llm)",
               "throughput_history": f" (50 sessions, ~{r.get('transcript_msgs_end') or 0:.0f}-message "
                                     "transcripts at the end)"}.get(r["scenario"], "")
        w(f"| {r['conns']:.0f}{sse} | {fmt(r['turns_per_s'], 0)} | {fmt(r['added_p50_ms'], 2)} | "
          f"{fmt(r['added_p99_ms'], 2)} | {fmt(r['added_p999_ms'], 2)} | "
          f"{fmt(r['added_max_ms'], 2)} | {fmt(r['server_cpu_us_per_turn'], 0)} | "
          f"{fmt(r['server_cores'], 2)} | {fmt(r['machine_cores_busy'], 2)} | {r['errors']:.0f} |")
    k = a.get("knee")
    if k:
        w("")
        w(f"p99 starts to climb between {fmt(k[0]['turns_per_s'], 0)} turns/s "
          f"({k[0]['conns']:.0f} connections, p99 {fmt(k[0]['added_p99_ms'], 2)} ms) and "
          f"{fmt(k[1]['turns_per_s'], 0)} turns/s ({k[1]['conns']:.0f} connections, p99 "
          f"{fmt(k[1]['added_p99_ms'], 2)} ms): beyond that more load only queues.")
    p = a["persisted"].get("tp")
    if p:
        w("")
        w(f"Persisted in state.db by the throughput server: {int(num(p.get('sessions'), 0)):,} "
          f"sessions, {int(num(p.get('messages'), 0)):,} messages (user and assistant, every "
          f"turn, warm-ups and interrupt probes included).")
    w("")
    if a["chat"]:
        w("## Through the chat platforms")
        w("")
        w(f"The real `hermes gateway run` with its Matrix or Mattermost adapter, against the "
          f"platform doubles in `tests/doubles/` (which play the users: each posts, waits for the "
          f"answer, posts again), the model bench_gw_llm at {num(meta.get('llm_latency_ms'), 0):,.0f} ms "
          f"through the real provider. Added latency = the answer reaching the double − the "
          f"message posted − the model's latency: the sync long-poll or WebSocket event, the "
          f"adapter, gateway, session, store, provider and the reply's HTTP request, and the "
          f"double's own loop. The doubles are Python on the same cores (double cores): their "
          f"rate, not the gateway's, is the limit here. Matrix's text batching (0.6 s by "
          f"default, `HERMES_MATRIX_TEXT_BATCH_DELAY_SECONDS`) is off in these runs.")
        w("")
        w("| platform | users | rooms | turns/s | added p50 ms | p99 ms | p99.9 ms | errors | "
          "CPU-µs/turn | server cores | double cores | RSS MB | KB per active user |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in a["chat"]:
            w(f"| {r['scenario'][5:]} | {r['conns'] or 0:,.0f} | {r.get('rooms') or 0:,.0f} | "
              f"{fmt(r['turns_per_s'], 0)} | {fmt(r['added_p50_ms'], 2)} | "
              f"{fmt(r['added_p99_ms'], 2)} | {fmt(r['added_p999_ms'], 2)} | "
              f"{fmt(r['errors'], 0)} | {fmt(r['server_cpu_us_per_turn'], 0)} | "
              f"{fmt(r['server_cores'], 2)} | {fmt(r.get('double_cores'), 2)} | "
              f"{fmt((r['rss_kb'] or 0) / 1024, 0)} | {fmt(kib(r['bytes_per_session']), 0)} |")
        w("")
    w("## Interrupts")
    w("")
    w("Latency from the adapter sending `/stop` (urgent lane) or a new message (normal lane) "
      "into a chat whose turn the model holds, to the model receiving the cancel (µs):")
    w("")
    w("| when | /stop p50 | /stop p99 | new message p50 | new message p99 | turn end p99 | samples |")
    w("|---|---:|---:|---:|---:|---:|---:|")
    cap_top = a["cap"][-1]["conns"] if a["cap"] else 0
    for step, name in (("interrupt-idle", "idle"),
                       ("interrupt-load", "under full load (zero-latency model, 64 connections)"),
                       ("interrupt-cap", f"{cap_top:,.0f} API users active, LLM {lat / 1000:g} s")):
        r = a["int"].get(step)
        if not r:
            continue
        endp = max(num(r.get("stop_end_p99_us"), -1), num(r.get("newmsg_end_p99_us"), -1))
        w(f"| {name} | {r.get('stop_cancel_p50_us')} | {r.get('stop_cancel_p99_us')} | "
          f"{r.get('newmsg_cancel_p50_us')} | {r.get('newmsg_cancel_p99_us')} | {endp:.1f} | "
          f"{int(num(r.get('stop_n'), 0)) + int(num(r.get('newmsg_n'), 0))} |")
    for r in a["int_load"]:
        w("")
        w(f"The load during the probe: {fmt(r['turns_per_s'], 0)} turns/s, added p99 "
          f"{fmt(r['added_p99_ms'], 2)} ms.")
    w("")
    w("## Memory and scaling")
    w("")
    if meta.get("rss_empty_kb"):
        w(f"An empty gateway (host, store, API server, no sessions): "
          f"{num(meta['rss_empty_kb']) / 1024:.1f} MB RSS.")
    if a.get("active_bytes") is not None:
        w(f"Per active session (a turn in flight, {a['active_users']:,.0f} users at "
          f"{lat / 1000:g} s LLM latency; peak RSS minus the server's RSS before): "
          f"{a['active_bytes'] / 1024:.1f} KB, the session's idle cost included.")
    if a["drive"] and a["drive"][-1]["bytes_per_session"] is not None:
        r = a["drive"][-1]
        w(f"Per active chat through the in-process adapter ({r['conns']:,.0f} chats): "
          f"{r['bytes_per_session'] / 1024:.1f} KB.")
    w("")
    sch = [r for r in a["create"] if r.get("schema_bytes")]
    if sch:
        r = sch[-1]
        w(f"The parsed tool schemas take {r['schema_bytes'] / 1024:.1f} KB of heap, once per "
          f"tool set and shared by every session; each session keeps its own system prompt, "
          f"{(r.get('system_prompt_bytes') or 0) / 1024:.1f} KB.")
    st = a["stats"].get("tp")
    if st and st.get("timers_pending"):
        w(f"Timers pending when the throughput server stopped: {int(num(st['timers_pending'])):,} "
          f"after {int(num(st.get('model_requests'), 0)):,} turns (at most one chat-idle timer "
          f"per resident conversation).")
    w("")
    w("| workers | sessions | idle KB/session (RSS delta) | heap KB/session | create turns/s | "
      "turns/s across all | added p50 ms | p99 ms | CPU-µs/turn | RSS MB | machine busy cores |")
    w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    creates = {(r["workers"], r["sessions"]): r for r in a["create"]}
    for r in sorted(a["scale"], key=lambda r: (r["workers"], r["sessions"])):
        c = creates.get((r["workers"], r["sessions"]))
        w(f"| {r['workers']:.0f} | {r['sessions']:,.0f} | "
          f"{fmt(kib(c['bytes_per_session']) if c else None, 2)} | "
          f"{fmt(kib(c.get('heap_bytes_per_session')) if c else None, 2)} | "
          f"{fmt(c['turns_per_s'] if c else None, 0)} | {fmt(r['turns_per_s'], 0)} | "
          f"{fmt(r['added_p50_ms'], 2)} | {fmt(r['added_p99_ms'], 2)} | "
          f"{fmt(r['server_cpu_us_per_turn'], 0)} | {fmt((r['rss_kb'] or 0) / 1024, 0)} | "
          f"{fmt(r['machine_cores_busy'], 2)} |")
    w("")
    for r in a["rest"]:
        w(f"Resting conversations (their agents left memory after `gateway.agent_idle_s`; the chat "
          f"actors wait): {fmt(kib(r['bytes_per_session']), 2)} KB RSS, "
          f"{fmt(kib(r.get('heap_bytes_per_session')), 2)} KB of heap per conversation for the "
          f"first {r['sessions']:,.0f} ({fmt(kib(r.get('resident_bytes_per_session')), 2)} KB while "
          f"their agents were still loaded; the first batch's RSS keeps the peak of the loaded "
          f"agents, which later agents reuse); {fmt(kib(r.get('more_rss_bytes_per_session')), 2)} "
          f"KB RSS and {fmt(kib(r.get('more_heap_bytes_per_session')), 2)} KB of heap for each of "
          f"the next {r['sessions']:,.0f}.")
        w("")
    w("## Against the targets (issue 11)")
    w("")
    w("| target | measured | |")
    w("|---|---|---|")

    def verdict(ok):
        return "met" if ok else "**missed**"

    top = a["drive"][-1] if a["drive"] else (a["cap"][-1] if a["cap"] else None)
    if top:
        w(f"| {top['conns']:,.0f} active sessions at {lat / 1000:g} s LLM latency, p99 added "
          f"< {budget:g} ms | p99 {fmt(top['added_p99_ms'], 2)} ms, errors {top['errors']:.0f} | "
          f"{verdict((top['added_p99_ms'] or 1e9) < budget and not top['errors'])} |")
    if a.get("tp_best"):
        b = a["tp_best"]
        fresh = [r for r in a["scale"] if (r["sessions"] or 0) <= 10000]
        fb = max(fresh, key=lambda r: r["turns_per_s"] or 0) if fresh else None
        extra = (f"; {fmt(fb['turns_per_s'], 0)} turns/s across {fb['sessions']:,.0f} fresh "
                 f"sessions (1-2 turns each, {fb['workers']:.0f} worker"
                 f"{'s' if fb['workers'] > 1 else ''})") if fb else ""
        ok = (b["turns_per_s"] or 0) >= 5000
        fok = fb is not None and (fb["turns_per_s"] or 0) >= 5000
        w(f"| ≥ 5,000 turns/s, zero-latency LLM, every message persisted | "
          f"{fmt(b['turns_per_s'], 0)} turns/s with transcripts of up to ~30 turns{extra} | "
          f"{verdict(ok) if ok or not fok else 'met with fresh sessions only'} |")
    idle = [kib(r["bytes_per_session"]) for r in a["create"] if r["bytes_per_session"] is not None]
    if idle:
        big = max((r for r in a["create"]), key=lambda r: r["sessions"] or 0)
        v = kib(big["bytes_per_session"])
        rest = a["rest"][0] if a["rest"] else None
        rv = kib(rest.get("more_rss_bytes_per_session")) if rest else None
        more = (f"; resting (agent left memory): {fmt(rv, 2)} KB RSS and "
                f"{fmt(kib(rest.get('more_heap_bytes_per_session')), 2)} KB heap per further "
                f"conversation ({fmt(kib(rest['bytes_per_session']), 2)} KB RSS for the first "
                f"{rest['sessions']:,.0f}, which hold the loaded agents' peak)") if rest else ""
        ok = (v is not None and v < 4) or (rv is not None and rv < 4)
        how = (verdict(True) if v is not None and v < 4 else
               "**met** once idle past `gateway.agent_idle_s`" if ok else verdict(False))
        w(f"| idle sessions < 4 KB RSS each | {fmt(v, 2)} KB at {big['sessions']:,.0f} sessions "
          f"with their agents loaded (range {min(idle):.2f}–{max(idle):.2f} KB){more} | "
          f"{how} |")
    _, cp99 = interrupt_p(a, "interrupt-cap", "cancel")
    r = a["int"].get("interrupt-load") or {}
    sp99, mp99 = num(r.get("stop_cancel_p99_us")), num(r.get("newmsg_cancel_p99_us"))
    if sp99 is not None and sp99 >= 0:
        more = f"; {cp99:.0f} µs with {cap_top:,.0f} API users active" if cp99 is not None else ""
        msg = (f"; a new message cancels the turn in {mp99:.0f} µs p99 (it keeps its order behind "
               f"the messages queued before it at the router)") if mp99 is not None else ""
        w(f"| interrupt p99 < 1 ms at full load | `/stop` {sp99:.0f} µs at full zero-latency load"
          f"{more} (to the model's cancel){msg} | {verdict(sp99 < 1000)} |")
    w("")
    w("Files: gateway-results.csv (every point), gateway-raw.txt (every RESULT line), "
      "gateway.svg (plots), logs/gateway-* (server output).")
    return L


# ---------------------------------------------------------------- SVG


def nice_ticks(lo, hi, n=5):
    if hi <= lo:
        hi = lo + 1
    span = hi - lo
    step = 10 ** math.floor(math.log10(span / n))
    for m in (1, 2, 2.5, 5, 10):
        if span / (step * m) <= n:
            step *= m
            break
    t = math.floor(lo / step) * step
    out = []
    while t <= hi + step * 0.5 and len(out) < 20:
        out.append(t)
        t += step
    return out


def esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def panel(x0, y0, W, H, title, xlabel, ylabel, series, logx=False, hline=None, logy=False):
    """series: [(name, colour, [(x, y, label)])]"""
    P = []
    ml, mr, mt, mb = 58, 26, 28, 42
    pw, ph = W - ml - mr, H - mt - mb
    pts = [(x, y) for _, _, s in series for x, y, _ in s if x is not None and y is not None]
    P.append(f'<text x="{x0 + W / 2}" y="{y0 + 16}" text-anchor="middle" font-weight="bold">'
             f'{esc(title)}</text>')
    if not pts:
        P.append(f'<text x="{x0 + W / 2}" y="{y0 + H / 2}" text-anchor="middle">no data</text>')
        return P
    xs = [p[0] for p in pts]
    ys = [p[1] for p in pts] + ([hline[0]] if hline else [])
    if logx:
        xs = [x for x in xs if x > 0]
        lx0, lx1 = math.floor(math.log10(min(xs))), math.ceil(math.log10(max(xs)))
        if lx1 == lx0:
            lx1 += 1
        xt = [10 ** e for e in range(lx0, lx1 + 1)]
        fx = lambda x: x0 + ml + (math.log10(x) - lx0) / (lx1 - lx0) * pw
    else:
        xt = nice_ticks(0, max(xs) * 1.05)
        fx = lambda x: x0 + ml + x / xt[-1] * pw
    if logy:
        ys = [y for y in ys if y > 0]
        ly0, ly1 = math.floor(math.log10(min(ys))), math.ceil(math.log10(max(ys)))
        if ly1 == ly0:
            ly1 += 1
        yt = [10 ** e for e in range(ly0, ly1 + 1)]
        fy = lambda y: y0 + mt + ph - (math.log10(y) - ly0) / (ly1 - ly0) * ph
    else:
        yt = nice_ticks(0, max(ys) * 1.1)
        fy = lambda y: y0 + mt + ph - y / yt[-1] * ph
    P.append(f'<rect x="{x0 + ml}" y="{y0 + mt}" width="{pw}" height="{ph}" fill="none" '
             f'stroke="#888"/>')
    for t in xt:
        X = fx(t)
        lab = f"{t:,.0f}" if t >= 1 else f"{t:g}"
        P.append(f'<line x1="{X:.1f}" y1="{y0 + mt}" x2="{X:.1f}" y2="{y0 + mt + ph}" '
                 f'stroke="#eee"/><text x="{X:.1f}" y="{y0 + mt + ph + 14}" '
                 f'text-anchor="middle" font-size="10">{lab}</text>')
    for t in yt:
        Y = fy(t)
        P.append(f'<line x1="{x0 + ml}" y1="{Y:.1f}" x2="{x0 + ml + pw}" y2="{Y:.1f}" '
                 f'stroke="#eee"/><text x="{x0 + ml - 4}" y="{Y + 3:.1f}" text-anchor="end" '
                 f'font-size="10">{t:,g}</text>')
    P.append(f'<text x="{x0 + ml + pw / 2}" y="{y0 + H - 8}" text-anchor="middle" '
             f'font-size="11">{esc(xlabel)}</text>')
    P.append(f'<text transform="translate({x0 + 14},{y0 + mt + ph / 2}) rotate(-90)" '
             f'text-anchor="middle" font-size="11">{esc(ylabel)}</text>')
    if hline:
        Y = fy(hline[0])
        P.append(f'<line x1="{x0 + ml}" y1="{Y:.1f}" x2="{x0 + ml + pw}" y2="{Y:.1f}" '
                 f'stroke="#c00" stroke-dasharray="4 3"/><text x="{x0 + ml + pw - 2}" '
                 f'y="{Y - 3:.1f}" text-anchor="end" font-size="10" fill="#c00">'
                 f'{esc(hline[1])}</text>')
    for i, (name, col, s) in enumerate(series):
        s = [(x, y, l) for x, y, l in s if x is not None and y is not None and (x > 0 or not logx)
             and (y > 0 or not logy)]
        if not s:
            continue
        path = " ".join(f"{fx(x):.1f},{fy(y):.1f}" for x, y, _ in s)
        P.append(f'<polyline points="{path}" fill="none" stroke="{col}" stroke-width="2"/>')
        for x, y, l in s:
            P.append(f'<circle cx="{fx(x):.1f}" cy="{fy(y):.1f}" r="3" fill="{col}">'
                     f'<title>{esc(l)}</title></circle>')
        ly = y0 + mt + 12 + 14 * i
        P.append(f'<rect x="{x0 + ml + 8}" y="{ly - 8}" width="10" height="10" fill="{col}"/>'
                 f'<text x="{x0 + ml + 22}" y="{ly + 1}" font-size="10">{esc(name)}</text>')
    return P


def svg(a, meta, path):
    W, H = 400, 300
    panels = []
    tp = a["tp"]
    panels.append(panel(0, 0, W, H, "Added latency vs load (zero-latency model)",
                        "turns/s through the API server", "added latency, ms",
                        [("p50", "#1f77b4", [(r["turns_per_s"], r["added_p50_ms"],
                                              f"{r['conns']:.0f} conns") for r in tp]),
                         ("p99", "#d62728", [(r["turns_per_s"], r["added_p99_ms"],
                                              f"{r['conns']:.0f} conns") for r in tp]),
                         ("p99.9", "#ff7f0e", [(r["turns_per_s"], r["added_p999_ms"],
                                                f"{r['conns']:.0f} conns") for r in tp])]))
    lat = num(meta.get("llm_latency_ms"), 2000)
    panels.append(panel(W, 0, W, H, f"Added latency vs active users (LLM {lat / 1000:g} s)",
                        "concurrent active users", "added latency, ms (log)",
                        [("p99, in-process adapter", "#d62728",
                          [(r["conns"], r["added_p99_ms"], "") for r in a["drive"]]),
                         ("p50, in-process adapter", "#1f77b4",
                          [(r["conns"], r["added_p50_ms"], "") for r in a["drive"]]),
                         ("p99, API server", "#ff7f0e",
                          [(r["conns"], r["added_p99_ms"], "") for r in a["cap"]]),
                         ("p99, Matrix (direct rooms)", "#8c564b",
                          [(r["conns"], r["added_p99_ms"], "") for r in a["chat"]
                           if r["scenario"] == "chat_matrix" and r.get("rooms") == r["conns"]]),
                         ("p99, Mattermost (DMs)", "#e377c2",
                          [(r["conns"], r["added_p99_ms"], "") for r in a["chat"]
                           if r["scenario"] == "chat_mattermost" and r.get("rooms") == r["conns"]])],
                        hline=(a["budget"], f"budget {a['budget']:g} ms"), logy=True))
    ser = []
    for w, col in ((1, "#2ca02c"), (2, "#9467bd")):
        pts = []
        for r in sorted(a["create"], key=lambda r: r["sessions"] or 0):
            if r["workers"] == w and r.get("rss_before_kb") is not None and r["rss_kb"]:
                pts.append((r["sessions"], r["rss_kb"] / 1024, ""))
        if pts:
            ser.append((f"RSS, {w} worker{'s' if w > 1 else ''}", col, pts))
    panels.append(panel(2 * W, 0, W, H, "Memory vs idle sessions", "sessions (log)",
                        "server RSS, MB", ser, logx=True))
    body = [l for p in panels for l in p]
    note = (f"bench/gateway/run.sh, {meta.get('date', '')}, {meta.get('host_cpus', '?')} shared "
            f"cores, {meta.get('workers', '?')} workers")
    with open(path, "w") as f:
        f.write(f'<svg xmlns="http://www.w3.org/2000/svg" width="{3 * W}" height="{H + 20}" '
                f'font-family="sans-serif" font-size="12">\n<rect width="100%" height="100%" '
                f'fill="white"/>\n' + "\n".join(body) +
                f'\n<text x="6" y="{H + 14}" font-size="10" fill="#666">{esc(note)}</text>\n</svg>\n')


def main():
    ap = argparse.ArgumentParser()
    for k in ("csv", "raw", "meta", "md", "svg"):
        ap.add_argument("--" + k, required=True)
    args = ap.parse_args()
    rows, raw, meta = load(args)
    a = analyse(rows, raw, meta)
    L = report(rows, raw, meta, a)
    with open(args.md, "w") as f:
        f.write("\n".join(L) + "\n")
    svg(a, meta, args.svg)
    print("\n".join(L))
    print(f"\n(written: {args.md}, {args.svg}, {args.csv})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

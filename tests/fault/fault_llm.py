#!/usr/bin/env python3
"""The scripted LLM of tests/doubles/fake_llm.py with faults chosen per conversation.

Test code only. fake_llm.py scripts one FIFO shared by every request, which cannot say which
of several concurrent chats gets which fault. This wrapper adds rules keyed by text:

    POST /_rules   {"match": "tok", "specs": [spec, ...]}  the next requests whose new user
                   text contains "tok" take these specs in order (then the default answer)
    GET  /_rules   [{"match", "left", "used"}]
    POST /_reset   also clears the rules

    POST /_outage  {"phases": [{"seconds": S, "spec": spec}, ...]}  a provider-wide outage
                   starting now: for the first S seconds every completion request (whatever
                   its text, before any rule) gets the first phase's spec, then the next
                   phase's, and so on; afterwards requests are served normally again
    GET  /_outage  {"active", "elapsed", "ends_in", "served": [n per phase], "after": n}
                   ("after": completion requests served normally since the outage ended)

    POST /_stt_delay {"ms": N}   every /audio/transcriptions request waits N ms first (a slow
                                 Whisper: a voice note stays "being transcribed")
    GET  /_stt_delay  {"ms": N, "started": transcription requests received so far}

Extra spec keys (besides fake_llm's status/headers/body/delay_ms/cut_after/...):

    reset   true: the connection is reset (RST, no response at all)

The default answer is "echo: " + every user message after the last assistant message,
joined with " | ", so a reply names every message it answers even when the gateway folded
several messages (a burst, an interrupted turn, a crash recovery) into one turn. That is what
lets the fault tests count: each message's token appears in exactly one reply.

    /usr/bin/python3 tests/fault/fault_llm.py --port 0 --port-file FILE
"""
import asyncio
import os
import socket
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "doubles"))

import fake_llm as F  # noqa: E402
from aiohttp import web  # noqa: E402

RULES = []


def _text(c):
    if isinstance(c, list):
        return " ".join(p.get("text", "") for p in c if isinstance(p, dict))
    return c or ""


def new_user_text(body):
    out = []
    for m in reversed(body.get("messages", [])):
        if m.get("role") == "assistant":
            break
        if m.get("role") == "user":
            out.append(_text(m.get("content")))
    return " | ".join(reversed(out))


OUTAGE = {"phases": [], "t0": 0.0, "served": [], "after": 0}


def outage_phase(now):
    """Index of the outage phase at time now, or -1 when no outage is running."""
    t = OUTAGE["t0"]
    for i, ph in enumerate(OUTAGE["phases"]):
        t += ph["seconds"]
        if now < t:
            return i
    return -1


def next_spec(body):
    if OUTAGE["phases"]:
        i = outage_phase(time.monotonic())
        if i >= 0:
            OUTAGE["served"][i] += 1
            return dict(OUTAGE["phases"][i]["spec"])
        OUTAGE["after"] += 1
    text = new_user_text(body)
    for r in RULES:
        if r["match"] in text and r["specs"]:
            r["used"] += 1
            return dict(r["specs"].pop(0))
    if F.QUEUE:
        return _orig_next_spec(body)
    return {"content": "echo: " + text}


async def raw_or_error(request, spec):
    if spec.get("reset"):
        sock = request.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        request.transport.abort()
        return web.Response(status=502)  # never reaches the client
    return await _orig_raw_or_error(request, spec)


_orig_next_spec = F.next_spec
_orig_raw_or_error = F.raw_or_error
F.next_spec = next_spec
F.raw_or_error = raw_or_error


STT = {"ms": 0, "started": 0}
_orig_transcriptions = F.audio_transcriptions


async def slow_transcriptions(request):
    STT["started"] += 1
    if STT["ms"]:
        await asyncio.sleep(STT["ms"] / 1000)
    return await _orig_transcriptions(request)


F.audio_transcriptions = slow_transcriptions


async def ctl_stt_post(request):
    STT["ms"] = int((await request.json()).get("ms", 0))
    return web.json_response(STT)


async def ctl_stt_get(request):
    return web.json_response(STT)


async def ctl_outage_post(request):
    phases = (await request.json()).get("phases") or []
    OUTAGE.update(phases=[{"seconds": float(p["seconds"]), "spec": dict(p["spec"])}
                          for p in phases],
                  t0=time.monotonic(), served=[0] * len(phases), after=0)
    return await ctl_outage_get(request)


async def ctl_outage_get(request):
    now = time.monotonic()
    total = sum(p["seconds"] for p in OUTAGE["phases"])
    return web.json_response({"active": outage_phase(now) >= 0,
                              "elapsed": now - OUTAGE["t0"] if OUTAGE["phases"] else 0,
                              "ends_in": max(0.0, OUTAGE["t0"] + total - now)
                              if OUTAGE["phases"] else 0,
                              "served": OUTAGE["served"], "after": OUTAGE["after"]})


async def ctl_rules_post(request):
    body = await request.json()
    RULES.append({"match": body["match"], "specs": list(body.get("specs", [])), "used": 0})
    return web.json_response({"rules": len(RULES)})


async def ctl_rules_get(request):
    return web.json_response([{"match": r["match"], "left": len(r["specs"]), "used": r["used"]}
                              for r in RULES])


async def ctl_reset(request):
    RULES.clear()
    STT.update(ms=0, started=0)
    OUTAGE.update(phases=[], t0=0.0, served=[], after=0)
    return await _orig_reset(request)


_orig_reset = F.ctl_reset
F.ctl_reset = ctl_reset
_orig_make_app = F.make_app


def make_app():
    app = _orig_make_app()
    app.router.add_post("/_rules", ctl_rules_post)
    app.router.add_get("/_rules", ctl_rules_get)
    app.router.add_post("/_outage", ctl_outage_post)
    app.router.add_get("/_outage", ctl_outage_get)
    app.router.add_post("/_stt_delay", ctl_stt_post)
    app.router.add_get("/_stt_delay", ctl_stt_get)
    return app


F.make_app = make_app

if __name__ == "__main__":
    F.main()

#!/usr/bin/env python3
"""A Slack double for tests: the Web API methods the Hermes adapter uses and Socket Mode,
following Slack's published shapes (https://api.slack.com/methods, /apis/socket-mode).

Test code only — never shipped. Start it with

    python3 tests/doubles/slack_double.py --port 0 --port-file /tmp/p

Web API (POST /api/<method>, form-encoded or JSON, token in "Authorization: Bearer"):
    auth.test                    bot token → {"ok":true,"user_id":"UBOT",...}
    apps.connections.open        app token (xapp-) → {"ok":true,"url":"ws://…/link/?ticket=N"}
    chat.postMessage             → {"ok":true,"channel","ts","message"}
    reactions.add / .remove      → {"ok":true}
    users.info                   → {"ok":true,"user":{…}}
    files.getUploadURLExternal   → {"ok":true,"upload_url","file_id"}
    files.completeUploadExternal → {"ok":true,"files":[…]}
    conversations.history        channel, cursor, inclusive, latest, limit (default 100,
                                 at most 999), oldest (default "0") → {"ok":true,
                                 "messages":[newest first; top-level messages and thread
                                 broadcasts],"has_more","pin_count",
                                 "response_metadata":{"next_cursor"}};
                                 channel_not_found / not_in_channel / invalid_cursor
    conversations.replies        channel, ts (the thread's parent), cursor, inclusive,
                                 latest, limit, oldest → {"ok":true,"messages":[the parent
                                 first, then replies oldest first],"has_more",
                                 "response_metadata":{"next_cursor"}}; thread_not_found
  every message the double knows (events sent, posts made) is in the channel's history;
  a ts is "<unix seconds>.<6 digits>" from the wall clock, always increasing;
  wrong or missing token → {"ok":false,"error":"invalid_auth"} (200, as Slack does);
  an xoxb token on apps.connections.open → "not_allowed_token_type".
POST /upload/<file_id>            the upload URL (raw bytes)
GET  /files-pri/<team>-<id>/<name> url_private_download; needs the bot token
GET  /link/?ticket=N              the Socket Mode WebSocket: sends hello, then what the test
                                  asks; records every ack with its delay

Control (JSON):
    POST /_test/event      {"event":{…}, "event_id"?, "retry_attempt"?, "envelope_id"?}
                           → {"envelope_id"}: an events_api envelope on the open socket
                           (the message goes into the channel's history too)
    POST /_test/post       {"event":{…}} a message posted in Slack: into the history, and
                           delivered on the open socket if there is one → {"ts",
                           "delivered"} (with no socket it is only in the history, as when
                           Socket Mode is down)
    POST /_test/member     {"channel", "member": false} the bot leaves (not_in_channel)
    POST /_test/resend     {"envelope_id"} the same envelope again (same envelope_id)
    POST /_test/disconnect {"reason":"refresh_requested"} then closes the socket 1 s later
    POST /_test/drop       close the socket abruptly (no disconnect frame)
    POST /_test/raw        {"text"} one raw text frame (bad input)
    POST /_test/fault      {"method", "status"?:429, "retry_after"?:1, "error"?, "count"?:1}
                           (429: HTTP 429 with Retry-After, body {"ok":false,
                           "error":"ratelimited"})
    POST /_test/file       {"name","data","mimetype"} → the file object for an event
    GET  /_test/state      {"connections","open","hellos","acks":[{envelope_id,delay_ms}],
                            "unacked":[…],"calls":[{method,args,token,t}],"posts":[…],
                            "uploads":[…]}
    POST /_test/reset
"""
import argparse
import asyncio
import base64
import itertools
import json
import os
import time
import urllib.parse

from aiohttp import web, WSMsgType

BOT_TOKEN = os.environ.get("SLACK_DOUBLE_BOT_TOKEN", "xoxb-test-bot-token")
APP_TOKEN = os.environ.get("SLACK_DOUBLE_APP_TOKEN", "xapp-test-app-token")
BOT_USER = "UBOT"
TEAM = "T0001"


class State:
    def __init__(self):
        self.reset()

    def reset(self):
        self.calls = []
        self.posts = []
        self.uploads = {}
        self.completed = []
        self.faults = []
        self.sockets = []          # open WebSocketResponse objects
        self.connections = 0
        self.hellos = 0
        self.sent = {}             # envelope_id -> (frame, sent_at)
        self.acks = []
        self.files = {}
        self.last_us = 0
        self.history = {}          # channel -> {ts: message}
        self.not_member = set()
        self.ids = itertools.count(1)
        self.tickets = itertools.count(1)


S = State()
PORT = [0]  # the port we listen on (control requests may carry a Host without it)


def host_of(request):
    return f"127.0.0.1:{PORT[0]}" if PORT[0] else request.host


def now():
    return time.monotonic()


def next_ts():
    us = max(int(time.time() * 1e6), S.last_us + 1)
    S.last_us = us
    return "%d.%06d" % divmod(us, 1000000)


def ts_key(ts):
    try:
        sec, _, frac = str(ts).partition(".")
        return (int(sec), int((frac + "000000")[:6]))
    except ValueError:
        return None


STORED_KEYS = ("type", "subtype", "user", "bot_id", "text", "ts", "thread_ts", "files",
               "team", "blocks", "attachments")


def store(channel, ev):
    """Keep a message in channel's history (the first of the message/app_mention pair)."""
    if ev.get("type") not in ("message", "app_mention") or not channel or not ev.get("ts"):
        return
    sub = ev.get("subtype")
    if sub and sub not in ("file_share", "thread_broadcast", "bot_message"):
        return
    h = S.history.setdefault(channel, {})
    if ev["ts"] in h:
        return
    m = {k: ev[k] for k in STORED_KEYS if k in ev}
    m["type"] = "message"
    h[ev["ts"]] = m
    parent = h.get(ev.get("thread_ts")) if ev.get("thread_ts") != ev["ts"] else None
    if parent is not None:
        parent["thread_ts"] = parent["ts"]
        parent["reply_count"] = parent.get("reply_count", 0) + 1
        users = set(parent.get("reply_users", []))
        users.add(ev.get("user"))
        parent["reply_users"] = sorted(u for u in users if u)
        parent["reply_users_count"] = len(parent["reply_users"])
        parent["latest_reply"] = ev["ts"]


def encode_cursor(ts):
    return base64.b64encode(("next_ts:" + ts).encode()).decode()


def decode_cursor(c):
    try:
        t = base64.b64decode(c.encode(), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    return t[8:] if t.startswith("next_ts:") and ts_key(t[8:]) else None


def window(args):
    """(oldest, latest, inclusive, limit) from a history call's arguments, or an error."""
    oldest = ts_key(args.get("oldest", "0") or "0")
    latest = ts_key(args.get("latest") or "%d.000000" % (int(time.time()) + 1))
    if oldest is None or latest is None:
        return None
    inclusive = str(args.get("inclusive", "false")).lower() in ("true", "1")
    try:
        limit = int(args.get("limit", 100) or 100)
    except ValueError:
        limit = 100
    limit = max(1, min(limit, 999))
    return oldest, latest, inclusive, limit


def in_window(ts, w):
    k = ts_key(ts)
    oldest, latest, inclusive, _ = w
    if inclusive:
        return oldest <= k <= latest
    return oldest < k < latest


def page(msgs, args, limit, descending):
    """msgs sorted in answer order → (page, has_more, next_cursor) or None (bad cursor)."""
    cur = args.get("cursor")
    if cur:
        start = decode_cursor(cur)
        if start is None:
            return None
        sk = ts_key(start)
        msgs = [m for m in msgs if (ts_key(m["ts"]) <= sk if descending
                                    else ts_key(m["ts"]) >= sk)]
    out = msgs[:limit]
    more = len(msgs) > limit
    return out, more, encode_cursor(msgs[limit]["ts"]) if more else ""


def history_call(method, args):
    ch = args.get("channel")
    if not ch or ch not in S.history:
        return {"ok": False, "error": "channel_not_found"}
    if ch in S.not_member:
        return {"ok": False, "error": "not_in_channel"}
    w = window(args)
    if w is None:
        return {"ok": False, "error": "invalid_ts_oldest"}
    h = S.history[ch]
    if method == "conversations.history":
        msgs = [m for m in h.values()
                if (not m.get("thread_ts") or m["thread_ts"] == m["ts"] or
                    m.get("subtype") == "thread_broadcast") and in_window(m["ts"], w)]
        msgs.sort(key=lambda m: ts_key(m["ts"]), reverse=True)
        p = page(msgs, args, w[3], True)
        if p is None:
            return {"ok": False, "error": "invalid_cursor"}
        return {"ok": True, "messages": [dict(m) for m in p[0]], "has_more": p[1],
                "pin_count": 0, "channel_actions_ts": None, "channel_actions_count": 0,
                "response_metadata": {"next_cursor": p[2]}}
    root = args.get("ts")
    if not root or root not in h:
        return {"ok": False, "error": "thread_not_found"}
    replies = [m for m in h.values()
               if m.get("thread_ts") == root and m["ts"] != root and in_window(m["ts"], w)]
    replies.sort(key=lambda m: ts_key(m["ts"]))
    p = page(replies, args, w[3], False)
    if p is None:
        return {"ok": False, "error": "invalid_cursor"}
    msgs = ([dict(h[root])] if not args.get("cursor") else []) + [dict(m) for m in p[0]]
    return {"ok": True, "messages": msgs, "has_more": p[1],
            "response_metadata": {"next_cursor": p[2]}}


async def read_args(request):
    ct = request.headers.get("Content-Type", "")
    if ct.startswith("application/json"):
        try:
            body = await request.json()
            return body if isinstance(body, dict) else {}
        except ValueError:
            return {}
    post = await request.post()
    return {k: v for k, v in post.items()}


def token_of(request, args):
    h = request.headers.get("Authorization", "")
    if h.startswith("Bearer "):
        return h[7:]
    return args.get("token")


def take_fault(method):
    for f in S.faults:
        if f["method"] == method and f.get("count", 1) > 0:
            f["count"] = f.get("count", 1) - 1
            return f
    return None


async def api(request):
    method = request.match_info["method"]
    args = await read_args(request)
    tok = token_of(request, args)
    S.calls.append({"method": method, "args": args, "token": tok, "t": now()})
    f = take_fault(method)
    if f:
        status = f.get("status", 200)
        headers = {}
        if status == 429:
            headers["Retry-After"] = str(f.get("retry_after", 1))
            return web.json_response({"ok": False, "error": "ratelimited"}, status=429,
                                     headers=headers)
        return web.json_response({"ok": False, "error": f.get("error", "internal_error")},
                                 status=status)
    if method == "apps.connections.open":
        if tok != APP_TOKEN:
            err = "not_allowed_token_type" if tok == BOT_TOKEN else "invalid_auth"
            return web.json_response({"ok": False, "error": err})
        host = host_of(request)
        return web.json_response({"ok": True,
                                  "url": f"ws://{host}/link/?ticket={next(S.tickets)}"})
    if tok != BOT_TOKEN:
        err = "not_allowed_token_type" if tok == APP_TOKEN else (
            "not_authed" if not tok else "invalid_auth")
        return web.json_response({"ok": False, "error": err})
    if method == "auth.test":
        return web.json_response({"ok": True, "url": "https://test.slack.com/", "team": "Test",
                                  "user": "hermes", "team_id": TEAM, "user_id": BOT_USER,
                                  "bot_id": "B0001", "is_enterprise_install": False})
    if method == "chat.postMessage":
        ch = args.get("channel")
        if not ch:
            return web.json_response({"ok": False, "error": "channel_not_found"})
        text = args.get("text", "")
        if not text:
            return web.json_response({"ok": False, "error": "no_text"})
        if len(text) > 40000:
            return web.json_response({"ok": False, "error": "msg_too_long"})
        ts = next_ts()
        msg = {"type": "message", "user": BOT_USER, "text": text, "ts": ts, "bot_id": "B0001"}
        if args.get("thread_ts"):
            msg["thread_ts"] = args["thread_ts"]
        S.posts.append({"channel": ch, "text": text, "thread_ts": args.get("thread_ts"),
                        "ts": ts, "t": now()})
        store(ch, dict(msg, team=TEAM))
        return web.json_response({"ok": True, "channel": ch, "ts": ts, "message": msg})
    if method in ("conversations.history", "conversations.replies"):
        return web.json_response(history_call(method, args))
    if method in ("reactions.add", "reactions.remove"):
        if not args.get("channel") or not args.get("timestamp") or not args.get("name"):
            return web.json_response({"ok": False, "error": "invalid_arguments"})
        return web.json_response({"ok": True})
    if method == "users.info":
        u = args.get("user", "")
        if not u:
            return web.json_response({"ok": False, "error": "user_not_found"})
        name = u[1:].lower() if u.startswith("U") else u.lower()  # UALICE → alice
        return web.json_response({"ok": True, "user": {"id": u, "name": name, "real_name": name,
                                                       "profile": {"display_name": name,
                                                                   "real_name": name}}})
    if method == "files.getUploadURLExternal":
        try:
            length = int(args.get("length", ""))
        except ValueError:
            return web.json_response({"ok": False, "error": "invalid_arguments"})
        fid = "F%04d" % next(S.ids)
        S.uploads[fid] = {"filename": args.get("filename"), "length": length, "data": None}
        return web.json_response({"ok": True, "file_id": fid,
                                  "upload_url": f"http://{host_of(request)}/upload/{fid}"})
    if method == "files.completeUploadExternal":
        files = args.get("files")
        if isinstance(files, str):
            try:
                files = json.loads(files)
            except ValueError:
                files = None
        if not isinstance(files, list) or not files:
            return web.json_response({"ok": False, "error": "invalid_arguments"})
        out = []
        for f in files:
            up = S.uploads.get(f.get("id"))
            if not up or up["data"] is None:
                return web.json_response({"ok": False, "error": "file_not_found"})
            out.append({"id": f["id"], "title": f.get("title", up["filename"])})
            S.completed.append({"id": f["id"], "filename": up["filename"],
                                "title": f.get("title"), "size": len(up["data"]),
                                "data": up["data"].decode("utf-8", "replace"),
                                "channel_id": args.get("channel_id"),
                                "thread_ts": args.get("thread_ts")})
        return web.json_response({"ok": True, "files": out})
    return web.json_response({"ok": False, "error": "unknown_method"})


async def upload(request):
    fid = request.match_info["fid"]
    up = S.uploads.get(fid)
    if not up:
        return web.Response(status=404, text="no such upload")
    up["data"] = await request.read()
    return web.Response(text="OK - %d" % len(up["data"]))


async def file_get(request):
    key = request.match_info["key"]
    f = S.files.get(key)
    if request.headers.get("Authorization") != "Bearer " + BOT_TOKEN:
        # Slack answers an unauthenticated url_private with its login page
        return web.Response(status=200, content_type="text/html", text="<html>login</html>")
    if not f:
        return web.Response(status=404)
    return web.Response(body=f["data"], content_type=f["mimetype"])


async def link(request):
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    S.connections += 1
    S.sockets.append(ws)
    S.hellos += 1
    await ws.send_json({"type": "hello", "num_connections": len(S.sockets),
                        "debug_info": {"host": "applink-test", "approximate_connection_time":
                                       18060},
                        "connection_info": {"app_id": "A0001"}})
    try:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            try:
                body = json.loads(msg.data)
            except ValueError:
                continue
            eid = body.get("envelope_id") if isinstance(body, dict) else None
            if eid:
                sent = S.sent.get(eid)
                delay = (now() - sent[1]) * 1000 if sent else None
                S.acks.append({"envelope_id": eid, "delay_ms": delay})
    finally:
        if ws in S.sockets:
            S.sockets.remove(ws)
    return ws


def envelope(event, event_id=None, retry_attempt=0, envelope_id=None):
    eid = envelope_id or "env-%d" % next(S.ids)
    return {"envelope_id": eid, "type": "events_api", "accepts_response_payload": False,
            "retry_attempt": retry_attempt, "retry_reason": "timeout" if retry_attempt else "",
            "payload": {"token": "verification", "team_id": TEAM, "api_app_id": "A0001",
                        "event": event, "type": "event_callback",
                        "event_id": event_id or "Ev%06d" % next(S.ids),
                        "event_time": int(time.time())}}


async def ctl_event(request):
    body = await request.json()
    if not S.sockets:
        return web.json_response({"error": "no socket"}, status=409)
    ev = body["event"]
    ev.setdefault("ts", next_ts())
    ev.setdefault("event_ts", ev["ts"])
    store(ev.get("channel"), ev)
    fr = envelope(ev, body.get("event_id"), body.get("retry_attempt", 0),
                  body.get("envelope_id"))
    S.sent[fr["envelope_id"]] = (fr, now())
    await S.sockets[-1].send_json(fr)
    return web.json_response({"envelope_id": fr["envelope_id"], "ts": ev["ts"]})


async def ctl_post(request):
    body = await request.json()
    ev = body["event"]
    ev.setdefault("type", "message")
    ev.setdefault("ts", next_ts())
    ev.setdefault("event_ts", ev["ts"])
    store(ev.get("channel"), ev)
    delivered = False
    if S.sockets and not S.sockets[-1].closed:
        fr = envelope(ev)
        S.sent[fr["envelope_id"]] = (fr, now())
        try:
            await S.sockets[-1].send_json(fr)
            delivered = True
        except (ConnectionResetError, RuntimeError):
            delivered = False
    return web.json_response({"ts": ev["ts"], "delivered": delivered})


async def ctl_member(request):
    body = await request.json()
    if body.get("member", True):
        S.not_member.discard(body["channel"])
    else:
        S.not_member.add(body["channel"])
    return web.json_response({"ok": True})


async def ctl_resend(request):
    body = await request.json()
    fr = S.sent.get(body["envelope_id"])
    if not fr or not S.sockets:
        return web.json_response({"error": "unknown"}, status=404)
    S.sent[body["envelope_id"]] = (fr[0], now())
    await S.sockets[-1].send_json(fr[0])
    return web.json_response({"ok": True})


async def close_later(ws, delay):
    await asyncio.sleep(delay)
    if not ws.closed:
        await ws.close()


async def ctl_disconnect(request):
    body = await request.json()
    if not S.sockets:
        return web.json_response({"error": "no socket"}, status=409)
    ws = S.sockets[-1]
    await ws.send_json({"type": "disconnect", "reason": body.get("reason", "refresh_requested"),
                        "debug_info": {"host": "applink-test"}})
    asyncio.get_running_loop().create_task(close_later(ws, body.get("close_after", 1.0)))
    return web.json_response({"ok": True})


async def ctl_raw(request):
    body = await request.json()
    if not S.sockets:
        return web.json_response({"error": "no socket"}, status=409)
    await S.sockets[-1].send_str(body.get("text", ""))
    return web.json_response({"ok": True})


async def ctl_drop(request):
    for ws in list(S.sockets):
        await ws.close(code=1011)
    return web.json_response({"ok": True})


async def ctl_fault(request):
    S.faults.append(await request.json())
    return web.json_response({"ok": True})


async def ctl_file(request):
    body = await request.json()
    fid = "F%04d" % next(S.ids)
    name = body.get("name", "file.txt")
    key = f"{TEAM}-{fid}"
    S.files[key] = {"data": body.get("data", "").encode(),
                    "mimetype": body.get("mimetype", "text/plain")}
    url = f"http://{host_of(request)}/files-pri/{key}/{urllib.parse.quote(name)}"
    return web.json_response({"id": fid, "name": name, "mimetype": S.files[key]["mimetype"],
                              "size": len(S.files[key]["data"]), "url_private": url,
                              "url_private_download": url + "?download=1"})


async def ctl_state(request):
    acked = {a["envelope_id"] for a in S.acks}
    return web.json_response({
        "connections": S.connections, "open": len(S.sockets), "hellos": S.hellos,
        "acks": S.acks, "unacked": [e for e in S.sent if e not in acked],
        "calls": [{k: c[k] for k in ("method", "args", "token")} for c in S.calls],
        "posts": S.posts, "uploads": S.completed})


async def ctl_reset(request):
    for ws in list(S.sockets):
        await ws.close()
    S.reset()
    return web.json_response({"ok": True})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    a = ap.parse_args()
    app = web.Application(client_max_size=64 << 20)
    app.router.add_post("/api/{method}", api)
    app.router.add_post("/upload/{fid}", upload)
    app.router.add_get("/files-pri/{key}/{name}", file_get)
    app.router.add_get("/link/", link)
    app.router.add_post("/_test/event", ctl_event)
    app.router.add_post("/_test/resend", ctl_resend)
    app.router.add_post("/_test/post", ctl_post)
    app.router.add_post("/_test/member", ctl_member)
    app.router.add_post("/_test/disconnect", ctl_disconnect)
    app.router.add_post("/_test/drop", ctl_drop)
    app.router.add_post("/_test/raw", ctl_raw)
    app.router.add_post("/_test/fault", ctl_fault)
    app.router.add_post("/_test/file", ctl_file)
    app.router.add_get("/_test/state", ctl_state)
    app.router.add_post("/_test/reset", ctl_reset)

    async def start():
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", a.port)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        PORT[0] = port
        if a.port_file:
            tmp = a.port_file + ".tmp"
            with open(tmp, "w") as f:
                f.write(str(port))
            os.replace(tmp, a.port_file)
        print(f"slack double on 127.0.0.1:{port}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(start())


if __name__ == "__main__":
    main()

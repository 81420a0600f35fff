#!/usr/bin/env python3
"""A Discord double for tests: the Gateway (WebSocket, v10 JSON) and the REST v10 routes the
Hermes adapter uses, following https://discord.com/developers/docs (payload shapes, opcodes,
close codes, rate-limit headers and 429 bodies).

Test code only — never shipped. Start it with

    python3 tests/doubles/discord_double.py --port 0 --port-file /tmp/p

REST (prefix /api/v10, "Authorization: Bot <token>", else 401 {"message":"401: Unauthorized",
"code":0}):
    GET  /gateway/bot                  {"url":"ws://127.0.0.1:<port>/gw","shards":1,…}
    POST /channels/{id}/messages       JSON or multipart (payload_json + files[n]) → message;
                                       bucket per channel: limit 50 (see /_test/config),
                                       X-RateLimit-Limit/-Remaining/-Reset/-Reset-After/
                                       -Bucket/-Scope on every answer, 429 past the limit
    POST /channels/{id}/typing         204
    POST /channels/{id}/messages/{mid}/threads
                                       Start Thread from Message: {"name" (1-100),
                                       "auto_archive_duration"? (60|1440|4320|10080),
                                       "rate_limit_per_user"?} → 201 the thread channel
                                       (type 11, id = the message's id, parent_id, owner_id,
                                       thread_metadata), then THREAD_CREATE (newly_created)
                                       on the Gateway; 400 code 160004 when the message has
                                       a thread already, 404 10003/10008 for an unknown
                                       channel/message, 403 50013 without the permission
                                       (/_test/config "can_create_threads": false); its own
                                       bucket with the same rate-limit headers; 429 past it
    GET  /channels/{id}/messages       Get Channel Messages: around / before / after (at most
                                       one; snowflakes) and limit (1-100, default 50), newest
                                       first; with after: the oldest `limit` after it (still
                                       newest first); 403 {"code":50001,"message":"Missing
                                       Access"} for channels in /_test/config "forbidden",
                                       404 {"code":10003,"message":"Unknown Channel"} for a
                                       channel never seen, 400 50035 for bad parameters; its
                                       own bucket per channel with the rate-limit headers,
                                       429 past it or on a "history" fault; "history_delay"
                                       (s) holds every answer that long
GET  /attachments/{id}/{name}           the CDN (no token)
GET  /gw?v=10&encoding=json             the Gateway: Hello (op 10), then Identify (op 2: token
                                        and intents checked: 4004 / 4014) → READY, or Resume
                                        (op 6) → the missed dispatches + RESUMED, or op 9;
                                        heartbeats (op 1) are answered with op 11

Control (JSON):
    POST /_test/message  a message: {"channel_id","guild_id"?,"author_id","content",
                         "mentions"?:[ids],"attachments"?:[…],"referenced_author"?,
                         "history_only"?} → {"id","seq"}: kept in the channel's history and
                         dispatched as MESSAGE_CREATE to the current session (kept for its
                         Resume while no socket is open); with no session, or with
                         "history_only", only the history has it (seq null). Ids are
                         snowflakes of the current time, increasing.
    POST /_test/redeliver {"id"} MESSAGE_CREATE again for a message in the history
    POST /_test/dispatch {"t","d"} any dispatch
    POST /_test/op       {"op","d"} a raw opcode (7 reconnect, 9 invalid session, 1 heartbeat)
    POST /_test/close    {"code"} close the socket with that code
    POST /_test/config   {"heartbeat_interval", "mute_acks", "limit", "reset_after",
                          "message_content_enabled", "manual_reset" (windows end only with
                          /_test/reset_buckets), "forbidden": [channel ids],
                          "history_delay", "slow_posts": {channel id: ms} (the message is
                          made at once, its answer comes ms later)}
    POST /channels/{id}/messages honours nonce + enforce_nonce: the same bot's message with the
                          same nonce made in the last NONCE_WINDOW_S (120 s, "the past few
                          minutes") is answered again instead of a new one (/_test/state
                          "nonce_hits" counts them); a nonce over 25 characters is a 400
    POST /_test/reset_buckets
    POST /_test/fault    {"route":"messages"|"threads"|"history","count":1,"retry_after":1.5,
                          "global":false}
    POST /_test/attachment {"name","data","content_type"} → an attachment object
    GET  /_test/state    {"connections","open","identifies":[…],"resumes":[…],
                          "heartbeats":[…],"posts":[…],"typing":[…],"requests":[…],"threads":[…],
                          "history_reads":[{"channel","query","status"}]}
"""
import argparse
import asyncio
import json
import os
import time
import urllib.parse

from aiohttp import web, WSMsgType

TOKEN = os.environ.get("DISCORD_DOUBLE_TOKEN", "test-discord-token")
BOT_ID = "100000000000000001"
MESSAGE_CONTENT = 1 << 15
PORT = [0]
DISCORD_EPOCH_MS = 1420070400000


class Snowflakes:
    """Ids as Discord makes them: milliseconds since the Discord epoch << 22, increasing."""

    def __init__(self):
        self.last = 0

    def __next__(self):
        n = (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22
        self.last = max(n, self.last + 1)
        return self.last

    def __iter__(self):
        return self


class State:
    def __init__(self):
        self.ids = Snowflakes()
        self.history = {}  # channel id -> {message id (int): message object}
        self.history_reads = []
        self.connections = 0
        self.sockets = []
        self.identifies = []
        self.resumes = []
        self.heartbeats = []
        self.posts = []
        self.typing = []
        self.requests = []
        self.nonces = {}  # (author, nonce) -> (message, monotonic time made)
        self.nonce_hits = 0
        self.faults = []
        self.buckets = {}
        self.attachments = {}
        self.messages = {}  # id -> MESSAGE_CREATE payload (for Start Thread from Message)
        self.threads = []   # the thread channels created
        self.sessions = {}  # session_id -> {"seq": n, "events": [(seq, payload)]}
        self.current = None  # session id of the live socket
        self.close_req = {}  # id(ws) -> (code, reason) asked for by /_test/close
        self.cfg = {"heartbeat_interval": 41250, "mute_acks": False, "limit": 50,
                    "reset_after": 2.0, "message_content_enabled": True,
                    "can_create_threads": True, "forbidden": [], "history_delay": 0}


S = State()


def host():
    return f"127.0.0.1:{PORT[0]}"


def authed(request):
    return request.headers.get("Authorization") == "Bot " + TOKEN


def unauthorized():
    return web.json_response({"message": "401: Unauthorized", "code": 0}, status=401)


async def gateway_bot(request):
    S.requests.append({"route": "GET /gateway/bot", "auth": request.headers.get("Authorization")})
    if not authed(request):
        return unauthorized()
    return web.json_response({"url": f"ws://{host()}/gw", "shards": 1,
                              "session_start_limit": {"total": 1000, "remaining": 999,
                                                      "reset_after": 14400000,
                                                      "max_concurrency": 1}})


def rl_headers(channel, remaining, reset_after, bucket="abcd1234messages"):
    return {"X-RateLimit-Limit": str(S.cfg["limit"]), "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": "%.3f" % (time.time() + reset_after),
            "X-RateLimit-Reset-After": "%.3f" % reset_after,
            "X-RateLimit-Bucket": bucket, "X-RateLimit-Scope": "user"}


def take_fault(route):
    for f in S.faults:
        if f.get("route") == route and f.get("count", 1) > 0:
            f["count"] = f.get("count", 1) - 1
            return f
    return None


async def read_message_body(request):
    ct = request.headers.get("Content-Type", "")
    files = []
    if ct.startswith("multipart/form-data"):
        payload = {}
        reader = await request.multipart()
        async for part in reader:
            if part.name == "payload_json":
                payload = json.loads(await part.text())
            elif part.name and part.name.startswith("files["):
                data = await part.read()
                files.append({"field": part.name, "filename": part.filename,
                              "data": data.decode("utf-8", "replace"), "size": len(data)})
        return payload, files
    try:
        return await request.json(), files
    except ValueError:
        return None, files


async def post_message(request):
    ch = request.match_info["cid"]
    S.requests.append({"route": "POST /channels/{id}/messages", "channel": ch,
                       "t": time.monotonic()})
    if not authed(request):
        return unauthorized()
    f = take_fault("messages")
    if f:
        ra = f.get("retry_after", 1.0)
        body = {"message": "You are being rate limited.", "retry_after": ra,
                "global": bool(f.get("global"))}
        h = {"Retry-After": str(int(ra + 0.999))}
        if f.get("global"):
            h["X-RateLimit-Global"] = "true"
            h["X-RateLimit-Scope"] = "global"
        else:
            h.update(rl_headers(ch, 0, ra))
        return web.json_response(body, status=429, headers=h)
    now = time.monotonic()
    b = S.buckets.get(ch)
    if not b or (now >= b["reset_at"] and not S.cfg.get("manual_reset")):
        b = {"used": 0, "reset_at": now + S.cfg["reset_after"]}
        S.buckets[ch] = b
    if b["used"] >= S.cfg["limit"]:
        ra = b["reset_at"] - now
        S.posts_rejected = getattr(S, "posts_rejected", 0) + 1
        return web.json_response({"message": "You are being rate limited.",
                                  "retry_after": round(ra, 3), "global": False},
                                 status=429, headers=rl_headers(ch, 0, ra))
    b["used"] += 1
    payload, files = await read_message_body(request)
    if not isinstance(payload, dict):
        return web.json_response({"message": "Invalid Form Body", "code": 50035}, status=400)
    # nonce (integer or string of up to 25 characters) + enforce_nonce: a message created by
    # the same author with the same nonce "in the past few minutes" is returned instead of
    # making another (Create Message, discord.com/developers/docs/resources/message);
    # NONCE_WINDOW_S models "a few minutes"
    nonce = payload.get("nonce")
    if nonce is not None and (not isinstance(nonce, (str, int)) or len(str(nonce)) > 25):
        return web.json_response({"message": "Invalid Form Body", "code": 50035,
                                  "errors": {"nonce": {"_errors": [
                                      {"code": "BASE_TYPE_MAX_LENGTH",
                                       "message": "Must be 25 or fewer in length."}]}}},
                                 status=400)
    if nonce is not None and payload.get("enforce_nonce") is True:
        seen = S.nonces.get((BOT_ID, str(nonce)))
        if seen and now - seen[1] < NONCE_WINDOW_S:
            S.nonce_hits += 1
            return web.json_response(seen[0], headers=rl_headers(ch, S.cfg["limit"] - b["used"],
                                                                 b["reset_at"] - now))
    content = payload.get("content", "")
    if len(content) > 2000:
        return web.json_response({"message": "Invalid Form Body", "code": 50035,
                                  "errors": {"content": {"_errors": [
                                      {"code": "BASE_TYPE_MAX_LENGTH",
                                       "message": "Must be 2000 or fewer in length."}]}}},
                                 status=400, headers=rl_headers(ch, 0, 0))
    if not content and not files:
        return web.json_response({"message": "Cannot send an empty message", "code": 50006},
                                 status=400)
    mid = str(next(S.ids))
    ref = payload.get("message_reference")
    S.posts.append({"id": mid, "channel_id": ch, "content": content,
                    "reply_to": ref.get("message_id") if isinstance(ref, dict) else None,
                    "allowed_mentions": payload.get("allowed_mentions"), "files": files,
                    "nonce": nonce, "enforce_nonce": payload.get("enforce_nonce") is True,
                    "t": now})
    remaining = S.cfg["limit"] - b["used"]
    msg = {"id": mid, "channel_id": ch, "type": 19 if ref else 0, "content": content,
           "author": {"id": BOT_ID, "username": "hermes", "bot": True},
           "attachments": [{"id": str(next(S.ids)), "filename": f["filename"]}
                           for f in files],
           "mentions": [], "timestamp": "2026-01-01T00:00:00.000000+00:00"}
    if nonce is not None:
        msg["nonce"] = nonce
        if payload.get("enforce_nonce") is True:
            S.nonces[(BOT_ID, str(nonce))] = (msg, now)
    S.history.setdefault(ch, {})[int(mid)] = msg
    delay = S.cfg.get("slow_posts", {}).get(ch, 0)
    if delay:
        # a slow API: the message is made (above) but the answer comes after delay ms, so a
        # client that gives up waiting and sends again would make a duplicate
        await asyncio.sleep(delay / 1000)
    return web.json_response(msg, headers=rl_headers(ch, remaining, b["reset_at"] - now))


NONCE_WINDOW_S = 120.0


HISTORY_BUCKET = "abcd9012history"


def bad_form(field, message, h):
    return web.json_response({"message": "Invalid Form Body", "code": 50035,
                              "errors": {field: {"_errors": [
                                  {"code": "NUMBER_TYPE_COERCE", "message": message}]}}},
                             status=400, headers=h)


async def get_messages(request):
    """Get Channel Messages (https://discord.com/developers/docs/resources/message)."""
    ch = request.match_info["cid"]
    q = request.query
    S.requests.append({"route": "GET /channels/{id}/messages", "channel": ch,
                       "query": dict(q), "t": time.monotonic()})
    read = {"channel": ch, "query": dict(q), "status": None}
    S.history_reads.append(read)
    if S.cfg.get("history_delay"):
        await asyncio.sleep(S.cfg["history_delay"])
    if not authed(request):
        read["status"] = 401
        return unauthorized()
    f = take_fault("history")
    if f:
        ra = f.get("retry_after", 1.0)
        h = {"Retry-After": str(int(ra + 0.999))}
        h.update(rl_headers(ch, 0, ra, HISTORY_BUCKET))
        read["status"] = 429
        return web.json_response({"message": "You are being rate limited.", "retry_after": ra,
                                  "global": False}, status=429, headers=h)
    ok, remaining, reset_after = take_bucket("history:" + ch, HISTORY_BUCKET)
    h = rl_headers(ch, remaining, reset_after, HISTORY_BUCKET)
    if not ok:
        read["status"] = 429
        return web.json_response({"message": "You are being rate limited.",
                                  "retry_after": round(reset_after, 3), "global": False},
                                 status=429, headers=h)
    if ch in S.cfg.get("forbidden", []):
        read["status"] = 403
        return web.json_response({"message": "Missing Access", "code": 50001}, status=403,
                                 headers=h)
    known = ch in S.history or any(t["id"] == ch for t in S.threads)
    if not known:
        read["status"] = 404
        return web.json_response({"message": "Unknown Channel", "code": 10003}, status=404,
                                 headers=h)
    try:
        limit = int(q.get("limit", "50"))
    except ValueError:
        read["status"] = 400
        return bad_form("limit", "Value \"%s\" is not int." % q.get("limit"), h)
    if not 1 <= limit <= 100:
        read["status"] = 400
        return bad_form("limit", "int value should be between 1 and 100.", h)
    anchors = [k for k in ("around", "before", "after") if k in q]
    if len(anchors) > 1:
        read["status"] = 400
        return bad_form(anchors[1], "around, before and after are mutually exclusive.", h)
    try:
        anchor = int(q[anchors[0]]) if anchors else None
    except ValueError:
        read["status"] = 400
        return bad_form(anchors[0], "Value is not snowflake.", h)
    ids = sorted(S.history.get(ch, {}))  # oldest first
    if not anchors:
        pick = ids[-limit:]
    elif anchors[0] == "before":
        pick = [i for i in ids if i < anchor][-limit:]
    elif anchors[0] == "after":
        pick = [i for i in ids if i > anchor][:limit]
    else:  # around: the message itself and those on either side
        older = [i for i in ids if i < anchor]
        newer = [i for i in ids if i >= anchor]
        half = limit // 2
        pick = (older[-half:] if half else []) + newer[:limit - min(half, len(older))]
    read["status"] = 200
    return web.json_response([S.history[ch][i] for i in reversed(pick)], headers=h)


THREAD_BUCKET = "abcd5678threads"


def take_bucket(key, bucket):
    """One request against key's window: (ok, remaining, reset_after)."""
    now = time.monotonic()
    b = S.buckets.get(key)
    if not b or (now >= b["reset_at"] and not S.cfg.get("manual_reset")):
        b = {"used": 0, "reset_at": now + S.cfg["reset_after"]}
        S.buckets[key] = b
    if b["used"] >= S.cfg["limit"]:
        return False, 0, b["reset_at"] - now
    b["used"] += 1
    return True, S.cfg["limit"] - b["used"], b["reset_at"] - now


async def start_thread(request):
    ch = request.match_info["cid"]
    mid = request.match_info["mid"]
    S.requests.append({"route": "POST /channels/{id}/messages/{id}/threads", "channel": ch,
                       "message": mid, "t": time.monotonic()})
    if not authed(request):
        return unauthorized()
    f = take_fault("threads")
    if f:
        ra = f.get("retry_after", 1.0)
        h = {"Retry-After": str(int(ra + 0.999))}
        h.update(rl_headers(ch, 0, ra, THREAD_BUCKET))
        return web.json_response({"message": "You are being rate limited.", "retry_after": ra,
                                  "global": False}, status=429, headers=h)
    ok, remaining, reset_after = take_bucket("threads:" + ch, THREAD_BUCKET)
    h = rl_headers(ch, remaining, reset_after, THREAD_BUCKET)
    if not ok:
        return web.json_response({"message": "You are being rate limited.",
                                  "retry_after": round(reset_after, 3), "global": False},
                                 status=429, headers=h)
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return web.json_response({"message": "Invalid Form Body", "code": 50035}, status=400,
                                 headers=h)
    name = body.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 100:
        return web.json_response({"message": "Invalid Form Body", "code": 50035,
                                  "errors": {"name": {"_errors": [
                                      {"code": "BASE_TYPE_BAD_LENGTH",
                                       "message": "Must be between 1 and 100 in length."}]}}},
                                 status=400, headers=h)
    aad = body.get("auto_archive_duration", 1440)
    if aad not in (60, 1440, 4320, 10080):
        return web.json_response({"message": "Invalid Form Body", "code": 50035}, status=400,
                                 headers=h)
    msg = S.messages.get(mid)
    if not msg or msg["channel_id"] != ch:
        known = any(m["channel_id"] == ch for m in S.messages.values())
        return web.json_response({"message": "Unknown Message" if known else "Unknown Channel",
                                  "code": 10008 if known else 10003}, status=404, headers=h)
    if not msg.get("guild_id"):
        return web.json_response({"message": "Cannot execute action on a DM channel",
                                  "code": 50003}, status=400, headers=h)
    if not S.cfg["can_create_threads"]:
        return web.json_response({"message": "Missing Permissions", "code": 50013}, status=403,
                                 headers=h)
    if any(t["id"] == mid for t in S.threads):
        return web.json_response({"message": "A thread has already been created for this "
                                  "message", "code": 160004}, status=400, headers=h)
    thread = {"id": mid, "type": 11, "guild_id": msg["guild_id"], "parent_id": ch,
              "owner_id": BOT_ID, "name": name, "last_message_id": None,
              "rate_limit_per_user": body.get("rate_limit_per_user", 0), "message_count": 0,
              "member_count": 1, "total_message_sent": 0, "flags": 0,
              "thread_metadata": {"archived": False, "auto_archive_duration": aad,
                                  "archive_timestamp": "2026-01-01T00:00:00.000000+00:00",
                                  "locked": False, "create_timestamp":
                                  "2026-01-01T00:00:00.000000+00:00"},
              "member": {"id": mid, "user_id": BOT_ID, "flags": 0,
                         "join_timestamp": "2026-01-01T00:00:00.000000+00:00"}}
    S.threads.append(thread)
    await dispatch("THREAD_CREATE", dict(thread, newly_created=True))
    return web.json_response(thread, status=201, headers=h)


async def typing(request):
    ch = request.match_info["cid"]
    if not authed(request):
        return unauthorized()
    S.typing.append({"channel_id": ch, "t": time.monotonic()})
    return web.Response(status=204)


async def cdn(request):
    key = request.match_info["aid"]
    a = S.attachments.get(key)
    if not a:
        return web.Response(status=404)
    return web.Response(body=a["data"], content_type=a["content_type"])


async def send(ws, op, d=None, t=None, s=None):
    await ws.send_json({"op": op, "d": d, "s": s, "t": t})


async def dispatch(t, d):
    """Send a dispatch on the live socket; with none, keep it for the session's Resume."""
    sid = S.current
    if not sid:
        return None
    sess = S.sessions[sid]
    sess["seq"] += 1
    seq = sess["seq"]
    sess["events"].append((seq, t, d))
    if S.sockets and not S.sockets[-1].closed:
        await send(S.sockets[-1], 0, d, t, seq)
    return seq


async def gw(request):
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    S.connections += 1
    S.sockets.append(ws)
    await send(ws, 10, {"heartbeat_interval": S.cfg["heartbeat_interval"]})
    try:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            try:
                p = json.loads(msg.data)
            except ValueError:
                await ws.close(code=4002, message=b"Error while decoding payload.")
                break
            op = p.get("op")
            d = p.get("d")
            if op == 1:
                S.heartbeats.append({"d": d, "t": time.monotonic()})
                if not S.cfg["mute_acks"]:
                    await send(ws, 11)
            elif op == 2:
                S.identifies.append(d)
                if not isinstance(d, dict) or d.get("token") != TOKEN:
                    await ws.close(code=4004, message=b"Authentication failed.")
                    break
                intents = d.get("intents", 0)
                if intents & MESSAGE_CONTENT and not S.cfg["message_content_enabled"]:
                    await ws.close(code=4014, message=b"Disallowed intent(s).")
                    break
                sid = "sess%d" % next(S.ids)
                S.sessions[sid] = {"seq": 0, "events": []}
                S.current = sid
                await dispatch("READY", {
                    "v": 10, "session_id": sid,
                    "resume_gateway_url": f"ws://{host()}/gw",
                    "user": {"id": BOT_ID, "username": "hermes", "bot": True,
                             "discriminator": "0"},
                    "guilds": [{"id": "300", "unavailable": True}],
                    "application": {"id": BOT_ID, "flags": 0}})
            elif op == 6:
                S.resumes.append(d)
                sid = d.get("session_id") if isinstance(d, dict) else None
                if d.get("token") != TOKEN:
                    await ws.close(code=4004, message=b"Authentication failed.")
                    break
                if sid not in S.sessions:
                    await send(ws, 9, False)
                    continue
                S.current = sid
                last = d.get("seq", 0)
                for seq, t, ed in S.sessions[sid]["events"]:
                    if seq > last:
                        await send(ws, 0, ed, t, seq)
                sess = S.sessions[sid]
                sess["seq"] += 1
                sess["events"].append((sess["seq"], "RESUMED", {}))
                await send(ws, 0, {}, "RESUMED", sess["seq"])
    finally:
        # a close asked for by /_test/close: sent from here, or aiohttp would answer the
        # interrupted read with its own 1000 first
        req = S.close_req.pop(id(ws), None)
        if req and not ws.closed:
            await ws.close(code=req[0], message=req[1])
        if ws in S.sockets:
            S.sockets.remove(ws)
    return ws


async def ctl_message(request):
    b = await request.json()
    mid = b.get("id") or str(next(S.ids))
    mentions = [{"id": m, "username": "u" + m, "bot": m == BOT_ID}
                for m in b.get("mentions", [])]
    d = {"id": mid, "channel_id": b["channel_id"], "type": b.get("type", 0),
         "content": b.get("content", ""),
         "author": {"id": b.get("author_id", "400"), "username": b.get("username", "alice"),
                    "global_name": b.get("global_name"), "bot": b.get("bot", False)},
         "mentions": mentions, "attachments": b.get("attachments", []),
         "timestamp": "2026-01-01T00:00:00.000000+00:00", "tts": False,
         "mention_everyone": False, "pinned": False}
    if b.get("guild_id"):
        d["guild_id"] = b["guild_id"]
        d["member"] = {"roles": []}
    if b.get("referenced_author"):
        d["type"] = 19
        d["referenced_message"] = {"id": "1", "author": {"id": b["referenced_author"]}}
    # the history has it as REST returns it: no guild_id or member there
    S.history.setdefault(d["channel_id"], {})[int(mid)] = {
        k: v for k, v in d.items() if k not in ("guild_id", "member")}
    S.messages[mid] = d
    seq = None if b.get("history_only") else await dispatch("MESSAGE_CREATE", d)
    return web.json_response({"id": mid, "seq": seq})


async def ctl_redeliver(request):
    b = await request.json()
    d = S.messages.get(str(b.get("id")))
    if not d:
        return web.json_response({"error": "unknown message"}, status=404)
    seq = await dispatch("MESSAGE_CREATE", d)
    return web.json_response({"id": d["id"], "seq": seq})


async def ctl_dispatch(request):
    b = await request.json()
    seq = await dispatch(b["t"], b.get("d", {}))
    return web.json_response({"seq": seq})


async def ctl_op(request):
    b = await request.json()
    if not S.sockets:
        return web.json_response({"error": "no socket"}, status=409)
    await send(S.sockets[-1], b["op"], b.get("d"))
    return web.json_response({"ok": True})


async def ctl_close(request):
    b = await request.json()
    for ws in list(S.sockets):
        req = (b.get("code", 1000), b.get("reason", "").encode())
        S.close_req[id(ws)] = req
        await ws.close(code=req[0], message=req[1])
    return web.json_response({"ok": True})


async def ctl_config(request):
    S.cfg.update(await request.json())
    return web.json_response(S.cfg)


async def ctl_reset_buckets(request):
    S.buckets.clear()
    return web.json_response({"ok": True})


async def ctl_fault(request):
    S.faults.append(await request.json())
    return web.json_response({"ok": True})


async def ctl_attachment(request):
    b = await request.json()
    aid = str(next(S.ids))
    name = b.get("name", "file.txt")
    S.attachments[aid] = {"data": b.get("data", "").encode(),
                          "content_type": b.get("content_type", "text/plain")}
    return web.json_response({"id": aid, "filename": name,
                              "size": len(S.attachments[aid]["data"]),
                              "content_type": S.attachments[aid]["content_type"],
                              "url": f"http://{host()}/attachments/{aid}/"
                                     f"{urllib.parse.quote(name)}",
                              "proxy_url": f"http://{host()}/attachments/{aid}/x"})


async def ctl_state(request):
    return web.json_response({
        "connections": S.connections, "open": len(S.sockets), "identifies": S.identifies,
        "resumes": S.resumes, "heartbeats": S.heartbeats, "posts": S.posts,
        "nonce_hits": S.nonce_hits,
        "typing": S.typing, "requests": S.requests, "threads": S.threads,
        "rejected": getattr(S, "posts_rejected", 0), "history_reads": S.history_reads,
        "current_open": bool(S.sockets and not S.sockets[-1].closed)})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    a = ap.parse_args()
    app = web.Application(client_max_size=64 << 20)
    app.router.add_get("/api/v10/gateway/bot", gateway_bot)
    app.router.add_post("/api/v10/channels/{cid}/messages", post_message)
    app.router.add_get("/api/v10/channels/{cid}/messages", get_messages)
    app.router.add_post("/api/v10/channels/{cid}/typing", typing)
    app.router.add_post("/api/v10/channels/{cid}/messages/{mid}/threads", start_thread)
    app.router.add_get("/attachments/{aid}/{name}", cdn)
    app.router.add_get("/gw", gw)
    app.router.add_get("/gw/", gw)
    app.router.add_post("/_test/message", ctl_message)
    app.router.add_post("/_test/dispatch", ctl_dispatch)
    app.router.add_post("/_test/redeliver", ctl_redeliver)
    app.router.add_post("/_test/op", ctl_op)
    app.router.add_post("/_test/close", ctl_close)
    app.router.add_post("/_test/config", ctl_config)
    app.router.add_post("/_test/fault", ctl_fault)
    app.router.add_post("/_test/reset_buckets", ctl_reset_buckets)
    app.router.add_post("/_test/attachment", ctl_attachment)
    app.router.add_get("/_test/state", ctl_state)

    async def start():
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", a.port)
        await site.start()
        PORT[0] = site._server.sockets[0].getsockname()[1]
        if a.port_file:
            tmp = a.port_file + ".tmp"
            with open(tmp, "w") as f:
                f.write(str(PORT[0]))
            os.replace(tmp, a.port_file)
        print(f"discord double on 127.0.0.1:{PORT[0]}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(start())


if __name__ == "__main__":
    main()

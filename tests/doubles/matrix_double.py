#!/usr/bin/python3
"""A Matrix homeserver double for the Matrix adapter's tests (client-server API v3).

Speaks the parts of the C-S API the adapter uses, with the spec's status codes and error
bodies ({"errcode", "error"}; 429 M_LIMIT_EXCEEDED with retry_after_ms; 401 M_UNKNOWN_TOKEN /
M_MISSING_TOKEN; 404 M_UNRECOGNIZED for unknown endpoints):

  GET  /_matrix/client/versions                  (v1.11 → authenticated media, or --legacy-media)
  GET  /_matrix/client/v3/account/whoami
  POST /_matrix/client/v3/login                  (m.login.password, identifier m.id.user)
  POST /_matrix/client/v3/user/{u}/filter
  GET  /_matrix/client/v3/sync                   (long-poll: since, timeout, filter)
  POST /_matrix/client/v3/join/{room}
  PUT  /_matrix/client/v3/rooms/{r}/send/{type}/{txn}      (idempotent per txn)
  PUT  /_matrix/client/v3/rooms/{r}/redact/{event}/{txn}
  PUT  /_matrix/client/v3/rooms/{r}/typing/{user}
  POST /_matrix/client/v3/rooms/{r}/read_markers
  POST /_matrix/media/v3/upload
  GET  /_matrix/client/v1/media/download/{server}/{id}   (auth; legacy path 404s when v1.11)
  GET  /_matrix/media/v3/download/{server}/{id}          (only with --legacy-media)
  GET  /_matrix/client/v3/rooms/{r}/joined_members
  POST /_matrix/client/v3/keys/upload            (device_keys, one_time_keys, fallback_keys;
                                                  a one-time key id reused with another key:
                                                  400 "One time key … already exists")
  POST /_matrix/client/v3/keys/query             (device_keys {user: [devices]})
  POST /_matrix/client/v3/keys/claim             (one_time_keys {user: {device: algorithm}};
                                                  a one-time key is handed out once, then the
                                                  fallback key)
  PUT  /_matrix/client/v3/sendToDevice/{type}/{txn}  (messages {user: {device | "*": content}})
  /sync carries to_device.events for the bot's device, device_lists.changed,
  device_one_time_keys_count and device_unused_fallback_key_types (spec shapes).

The bot is @bot:localhost (token "bot-token", password "bot-pass"); other users exist by
being named. A control API under /_double/ (no auth) scripts the world and reads what the bot
did:

  POST /_double/room      {"room_id", "members": [...], "name"?, "direct"?: bool, "invite"?: bool}
                          a room with those members joined; direct: listed in the bot's
                          m.direct; invite: the bot is invited (is_direct when direct) instead
                          of joined
  POST /_double/message   {"room_id", "sender", "body"?, "content"?, "ts"?} → {"event_id"}
  POST /_double/fault     {"label", "status"?, "errcode"?, "error"?, "retry_after_ms"?,
                           "count"? (-1: forever), "delay_ms"?, "room"?, "drop"?: bool}
                          labels: sync whoami login versions filter join send redact typing
                          receipt upload download
  POST /_double/clear_faults
  POST /_double/tokens    {"valid": bool}   every bot token accepted or rejected
  GET  /_double/requests?label=X            [{"label", "method", "path", "query", "status"}]
  GET  /_double/sent?room=R&type=T          events the bot sent (with content, event_id, txn)
  GET  /_double/typing  /_double/receipts   what the bot sent there
  POST /_double/save      write the state to --state (also on SIGTERM)
  POST /_double/keys      {"user", "device", "device_keys"?, "one_time_keys"?, "fallback_keys"?}
                          a person's device uploads keys (its user shows in device_lists.changed)
  POST /_double/claim     {"user", "device"} → {"<algorithm>:<id>": {...}} one key of that device
  POST /_double/to_device {"sender", "type", "messages": {user: {device: content}}} a person
                          sends to-device events (the bot's come in its next /sync)
  GET  /_double/to_device?user=U&device=D  the to-device events sent to that device (taken)
  GET  /_double/media_hex?id=ID            {"content_type", "hex"} of an upload
  GET  /_double/device_keys?user=U         {device: device keys} as uploaded
  POST /_double/message also takes "type" and "state_key" (state events, e.g. m.room.encryption)
  POST /_double/load      closed-loop users for the capacity benchmark (tests/doubles/autopilot.py:
                          {"users": [[room, sender], ...], "text", "seconds", "warmup", "ramp_ms"})
  GET  /_double/load      its progress, and the latencies once it has finished

Usage: matrix_double.py [--port N] [--state FILE] [--legacy-media]; prints "PORT <n>" on
stdout once listening. Loopback only.
"""
import argparse
import asyncio
import json
import os
import signal
import time

from aiohttp import web

from autopilot import Autopilot  # tests/doubles/autopilot.py (closed-loop users, for bench/)

BOT = "@bot:localhost"
BOT_PASSWORD = "bot-pass"
SERVER = "localhost"


def now_ms():
    return int(time.time() * 1000)


def merr(status, errcode, error, **extra):
    body = {"errcode": errcode, "error": error}
    body.update(extra)
    return web.json_response(body, status=status)


class World:
    def __init__(self):
        self.events = []  # the stream: {"room_id", "event"}; position = index + 1
        self.rooms = {}  # id → {"members": {user: membership}, "name", "direct"}
        self.invites = {}  # room → stream position of the invite
        self.tokens = {"bot-token": "BOTDEVICE"}
        self.tokens_valid = True
        self.txns = {}  # (token, txn) → event_id
        self.media = {}  # media id → (content type, bytes)
        self.direct_pos = 0
        self.seq = 0
        self.logins = 0
        # E2EE: user → device → keys; queued to-device events per (user, device)
        self.device_keys = {}
        self.otks = {}
        self.fallback = {}
        self.fallback_used = {}
        self.to_device = {}
        self.key_changes = []  # (stream position, user)

    def dump(self):
        return {
            "events": self.events,
            "rooms": self.rooms,
            "invites": self.invites,
            "tokens": self.tokens,
            "txns": [[k[0], k[1], v] for k, v in self.txns.items()],
            "media": {k: [v[0], v[1].hex()] for k, v in self.media.items()},
            "direct_pos": self.direct_pos,
            "seq": self.seq,
        }

    def load(self, d):
        self.events = d["events"]
        self.rooms = d["rooms"]
        self.invites = d["invites"]
        self.tokens = d["tokens"]
        self.txns = {(a, b): c for a, b, c in d["txns"]}
        self.media = {k: (v[0], bytes.fromhex(v[1])) for k, v in d["media"].items()}
        self.direct_pos = d["direct_pos"]
        self.seq = d["seq"]


class Double:
    def __init__(self, args):
        self.args = args
        self.w = World()
        if args.state and os.path.exists(args.state):
            with open(args.state) as f:
                self.w.load(json.load(f))
        self.cond = asyncio.Condition()
        self.faults = []
        self.requests = []
        self.typing_log = []
        self.receipt_log = []
        self.autopilot = None

    # ------------------------------------------------------------------ helpers

    def save(self):
        if self.args.state:
            tmp = self.args.state + ".tmp"
            with open(tmp, "w") as f:
                json.dump(self.w.dump(), f)
            os.replace(tmp, self.args.state)

    def new_event_id(self):
        self.w.seq += 1
        return "$ev%d_%s" % (self.w.seq, "x" * 4)

    async def append(self, room_id, ev):
        self.w.events.append({"room_id": room_id, "event": ev})
        async with self.cond:
            self.cond.notify_all()

    def member_event(self, room_id, user, membership, direct=False):
        content = {"membership": membership, "displayname": user[1:].split(":")[0].title()}
        if direct:
            content["is_direct"] = True
        return {
            "type": "m.room.member",
            "state_key": user,
            "sender": user,
            "content": content,
            "event_id": self.new_event_id(),
            "origin_server_ts": now_ms(),
        }

    def auth(self, request):
        h = request.headers.get("Authorization", "")
        token = h[7:] if h.startswith("Bearer ") else request.query.get("access_token")
        if not token:
            return None, merr(401, "M_MISSING_TOKEN", "Missing access token")
        if token not in self.w.tokens or not self.w.tokens_valid:
            return None, merr(401, "M_UNKNOWN_TOKEN", "Invalid access token passed.",
                              soft_logout=False)
        return token, None

    async def fault(self, label, room=None):
        for f in self.faults:
            if f["label"] != label or f.get("count", 1) == 0:
                continue
            if f.get("room") and f["room"] != room:
                continue
            if f.get("count", 1) > 0:
                f["count"] = f.get("count", 1) - 1
            if f.get("delay_ms"):
                await asyncio.sleep(f["delay_ms"] / 1000.0)
            if f.get("drop"):
                raise ConnectionResetError("dropped")
            st = f.get("status", 0)
            if not st:
                return None
            if st == 429:
                return merr(429, "M_LIMIT_EXCEEDED", "Too Many Requests",
                            retry_after_ms=f.get("retry_after_ms", 1000))
            return merr(st, f.get("errcode", "M_UNKNOWN"), f.get("error", "Internal server error"))
        return None

    # ---------------------------------------------------------------- endpoints

    async def versions(self, request):
        v = ["r0.6.1", "v1.1", "v1.5", "v1.10"]
        if not self.args.legacy_media:
            v += ["v1.11", "v1.12"]
        return web.json_response({"versions": v, "unstable_features": {}})

    async def whoami(self, request):
        token, bad = self.auth(request)
        if bad is not None:
            return bad
        return web.json_response({"user_id": BOT, "device_id": self.w.tokens[token],
                                  "is_guest": False})

    async def login(self, request):
        try:
            b = await request.json()
        except Exception:
            return merr(400, "M_NOT_JSON", "Content not JSON.")
        if b.get("type") != "m.login.password":
            return merr(400, "M_UNKNOWN", "Unknown login type")
        ident = b.get("identifier") or {}
        user = ident.get("user") or b.get("user")
        if user not in (BOT, "bot") or b.get("password") != BOT_PASSWORD:
            return merr(403, "M_FORBIDDEN", "Invalid username or password")
        self.w.logins += 1
        device = b.get("device_id") or "DEV%d" % self.w.logins
        token = "bot-login-%d" % self.w.logins
        self.w.tokens[token] = device
        return web.json_response({"user_id": BOT, "access_token": token, "device_id": device,
                                  "home_server": SERVER})

    async def filter(self, request):
        token, bad = self.auth(request)
        if bad is not None:
            return bad
        try:
            json.loads(await request.text())
        except Exception:
            return merr(400, "M_NOT_JSON", "Content not JSON.")
        return web.json_response({"filter_id": "1"})

    def room_members(self, room_id):
        return self.w.rooms[room_id]["members"]

    def state_events(self, room_id, room_events=None):
        """The room's current state; room_events: all of the room's events, when at hand."""
        if room_events is None:
            room_events = [e["event"] for e in self.w.events if e["room_id"] == room_id]
        out = [ev for ev in room_events if "state_key" in ev]
        latest = {}
        for ev in out:
            latest[(ev["type"], ev["state_key"])] = ev
        return list(latest.values())

    def build_sync(self, since, token=None):
        pos = len(self.w.events)
        rooms_join, rooms_invite = {}, {}
        new = {}  # room → its events after since, in stream order (one pass: many rooms)
        for e in self.w.events[since:]:
            new.setdefault(e["room_id"], []).append(e["event"])
        for room_id, room in self.w.rooms.items():
            mem = room["members"].get(BOT)
            if mem == "join":
                evs = new.get(room_id, [])
                if since == 0 or evs:
                    state = self.state_events(room_id, evs) if since == 0 else []
                    limited = len(evs) > 100
                    evs = evs[-100:]
                    joined = sum(1 for v in room["members"].values() if v == "join")
                    rooms_join[room_id] = {
                        "timeline": {"events": evs, "limited": limited,
                                     "prev_batch": "p%d" % since},
                        "state": {"events": state},
                        "summary": {"m.joined_member_count": joined},
                        "ephemeral": {"events": []},
                        "account_data": {"events": []},
                        "unread_notifications": {},
                    }
            elif mem == "invite" and (since == 0 or self.w.invites.get(room_id, 0) > since):
                st = [ev for ev in self.state_events(room_id)
                      if ev["type"] in ("m.room.name", "m.room.member")]
                rooms_invite[room_id] = {"invite_state": {"events": st}}
        body = {"next_batch": "s%d" % pos, "rooms": {"join": rooms_join, "invite": rooms_invite,
                                                     "leave": {}}}
        dev = self.w.tokens.get(token) if token else None
        if dev:
            q = self.w.to_device.pop((BOT, dev), [])
            body["to_device"] = {"events": q}
            changed = sorted({u for p, u in self.w.key_changes if p > since or since == 0})
            body["device_lists"] = {"changed": changed, "left": []}
            body["device_one_time_keys_count"] = {
                "signed_curve25519": len(self.w.otks.get(BOT, {}).get(dev, {}))}
            unused = [] if self.w.fallback_used.get((BOT, dev), True) else ["signed_curve25519"]
            body["device_unused_fallback_key_types"] = unused
        if since == 0 or self.w.direct_pos > since:
            direct = {}
            for room_id, room in self.w.rooms.items():
                if room.get("direct"):
                    other = [u for u in room["members"] if u != BOT]
                    direct.setdefault(other[0] if other else BOT, []).append(room_id)
            body["account_data"] = {"events": [{"type": "m.direct", "content": direct}]}
        return body

    def changed_since(self, since):
        if self.w.direct_pos > since:
            return True
        return len(self.w.events) > since

    async def sync(self, request):
        token, bad = self.auth(request)
        if bad is not None:
            return bad
        f = await self.fault("sync")
        if f is not None:
            return f
        since_s = request.query.get("since")
        since = 0
        if since_s:
            if not since_s.startswith("s") or not since_s[1:].isdigit() or \
                    int(since_s[1:]) > len(self.w.events):
                return merr(400, "M_UNKNOWN", "Invalid stream token %s (at s%d)" % (since_s, len(self.w.events)))
            since = int(since_s[1:])
        try:
            timeout = int(request.query.get("timeout", "0"))
        except ValueError:
            return merr(400, "M_INVALID_PARAM", "timeout must be an integer")
        dev = self.w.tokens.get(token)
        if since and not self.relevant_since(since, dev):
            deadline = time.monotonic() + min(timeout, 60000) / 1000.0
            async with self.cond:
                while not self.relevant_since(since, dev):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    try:
                        await asyncio.wait_for(self.cond.wait(), left)
                    except asyncio.TimeoutError:
                        break
        return web.json_response(self.build_sync(since, token))

    def relevant_since(self, since, dev=None):
        if self.w.direct_pos > since:
            return True
        if dev and self.w.to_device.get((BOT, dev)):
            return True
        for e in self.w.events[since:]:
            room = self.w.rooms.get(e["room_id"], {})
            if room.get("members", {}).get(BOT) in ("join", "invite"):
                return True
        return False

    async def join(self, request):
        token, bad = self.auth(request)
        if bad is not None:
            return bad
        room_id = request.match_info["room"]
        f = await self.fault("join", room_id)
        if f is not None:
            return f
        room = self.w.rooms.get(room_id)
        if not room:
            return merr(404, "M_NOT_FOUND", "No known servers")
        if room["members"].get(BOT) not in ("invite", "join"):
            return merr(403, "M_FORBIDDEN", "You are not invited to this room.")
        if room["members"].get(BOT) != "join":
            room["members"][BOT] = "join"
            await self.append(room_id, self.member_event(room_id, BOT, "join"))
        return web.json_response({"room_id": room_id})

    def joined(self, room_id):
        room = self.w.rooms.get(room_id)
        return room and room["members"].get(BOT) == "join"

    async def send(self, request):
        token, bad = self.auth(request)
        if bad is not None:
            return bad
        room_id = request.match_info["room"]
        f = await self.fault("send", room_id)
        if f is not None:
            return f
        if not self.joined(room_id):
            return merr(403, "M_FORBIDDEN", "User %s not in room %s" % (BOT, room_id))
        try:
            content = json.loads(await request.text())
        except Exception:
            return merr(400, "M_NOT_JSON", "Content not JSON.")
        key = (token, request.match_info["txn"])
        if key in self.w.txns:
            return web.json_response({"event_id": self.w.txns[key]})
        eid = self.new_event_id()
        self.w.txns[key] = eid
        ev = {"type": request.match_info["type"], "sender": BOT, "content": content,
              "event_id": eid, "origin_server_ts": now_ms(), "txn": request.match_info["txn"],
              "unsigned": {"transaction_id": request.match_info["txn"]}}
        await self.append(room_id, ev)
        rel = content.get("m.relates_to") if isinstance(content, dict) else None
        if self.autopilot and ev["type"] == "m.room.message" and \
                not (isinstance(rel, dict) and rel.get("rel_type") == "m.replace"):
            refs = []
            if isinstance(rel, dict):
                refs.append(rel.get("event_id"))
                irt = rel.get("m.in_reply_to")
                if isinstance(irt, dict):
                    refs.append(irt.get("event_id"))
            self.autopilot.on_bot_message(room_id, refs)
        return web.json_response({"event_id": eid})

    async def redact(self, request):
        token, bad = self.auth(request)
        if bad is not None:
            return bad
        room_id = request.match_info["room"]
        f = await self.fault("redact", room_id)
        if f is not None:
            return f
        if not self.joined(room_id):
            return merr(403, "M_FORBIDDEN", "not in room")
        key = (token, "redact/" + request.match_info["txn"])
        if key in self.w.txns:
            return web.json_response({"event_id": self.w.txns[key]})
        eid = self.new_event_id()
        self.w.txns[key] = eid
        await self.append(room_id, {"type": "m.room.redaction", "sender": BOT, "content": {},
                                    "redacts": request.match_info["event"], "event_id": eid,
                                    "origin_server_ts": now_ms()})
        return web.json_response({"event_id": eid})

    async def typing(self, request):
        token, bad = self.auth(request)
        if bad is not None:
            return bad
        room_id = request.match_info["room"]
        f = await self.fault("typing", room_id)
        if f is not None:
            return f
        if request.match_info["user"] != BOT:
            return merr(403, "M_FORBIDDEN", "Cannot set another user's typing state")
        b = json.loads(await request.text())
        if "typing" not in b:
            return merr(400, "M_MISSING_PARAM", "Missing typing")
        self.typing_log.append({"room_id": room_id, "typing": b["typing"],
                            "timeout": b.get("timeout")})
        return web.json_response({})

    async def read_markers(self, request):
        token, bad = self.auth(request)
        if bad is not None:
            return bad
        room_id = request.match_info["room"]
        f = await self.fault("receipt", room_id)
        if f is not None:
            return f
        b = json.loads(await request.text())
        self.receipt_log.append({"room_id": room_id, "read": b.get("m.read"),
                              "fully_read": b.get("m.fully_read")})
        return web.json_response({})

    async def upload(self, request):
        token, bad = self.auth(request)
        if bad is not None:
            return bad
        f = await self.fault("upload")
        if f is not None:
            return f
        data = await request.read()
        self.w.seq += 1
        mid = "m%d" % self.w.seq
        self.w.media[mid] = (request.headers.get("Content-Type", "application/octet-stream"),
                             data)
        return web.json_response({"content_uri": "mxc://%s/%s" % (SERVER, mid)})

    async def download(self, request, authed):
        if authed:
            token, bad = self.auth(request)
            if bad is not None:
                return bad
        elif not self.args.legacy_media:
            return merr(404, "M_NOT_FOUND", "Not found")
        f = await self.fault("download")
        if f is not None:
            return f
        mid = request.match_info["id"]
        if request.match_info["server"] != SERVER or mid not in self.w.media:
            return merr(404, "M_NOT_FOUND", "Not found")
        ct, data = self.w.media[mid]
        return web.Response(body=data, content_type=ct.split(";")[0])

    # -------------------------------------------------------------------- E2EE

    async def notify(self):
        async with self.cond:
            self.cond.notify_all()

    def store_keys(self, user, dev, b):
        """Keep uploaded keys; an error response or None."""
        dk = b.get("device_keys")
        if dk is not None:
            if dk.get("user_id") != user or dk.get("device_id") != dev:
                return merr(400, "M_INVALID_PARAM", "User ID or device ID does not match")
            self.w.device_keys.setdefault(user, {})[dev] = dk
            self.w.key_changes.append((len(self.w.events) + 1, user))
        mine = self.w.otks.setdefault(user, {}).setdefault(dev, {})
        for kid, k in (b.get("one_time_keys") or {}).items():
            if kid in mine and mine[kid] != k:
                return merr(400, "M_INVALID_PARAM",
                            "One time key %s already exists. Old key: %s; new key: %s"
                            % (kid, json.dumps(mine[kid]), json.dumps(k)))
            mine[kid] = k
        for kid, k in (b.get("fallback_keys") or {}).items():
            self.w.fallback[(user, dev)] = {kid: k}
            self.w.fallback_used[(user, dev)] = False
        return None

    async def keys_upload(self, request):
        token, bad = self.auth(request)
        if bad is not None:
            return bad
        try:
            b = json.loads(await request.text())
        except Exception:
            return merr(400, "M_NOT_JSON", "Content not JSON.")
        dev = self.w.tokens[token]
        err = self.store_keys(BOT, dev, b)
        if err is not None:
            return err
        return web.json_response({"one_time_key_counts": {
            "signed_curve25519": len(self.w.otks.get(BOT, {}).get(dev, {}))}})

    async def keys_query(self, request):
        token, bad = self.auth(request)
        if bad is not None:
            return bad
        b = await request.json()
        out = {}
        for user, devs in (b.get("device_keys") or {}).items():
            have = self.w.device_keys.get(user, {})
            out[user] = {d: k for d, k in have.items() if not devs or d in devs}
        return web.json_response({"device_keys": out, "failures": {}})

    def claim_one(self, user, dev):
        mine = self.w.otks.get(user, {}).get(dev, {})
        if mine:
            kid = sorted(mine)[0]
            return {kid: mine.pop(kid)}
        fb = self.w.fallback.get((user, dev))
        if fb:
            self.w.fallback_used[(user, dev)] = True
            return dict(fb)
        return None

    async def keys_claim(self, request):
        token, bad = self.auth(request)
        if bad is not None:
            return bad
        b = await request.json()
        out = {}
        for user, devs in (b.get("one_time_keys") or {}).items():
            for dev in devs:
                k = self.claim_one(user, dev)
                if k:
                    out.setdefault(user, {})[dev] = k
        return web.json_response({"one_time_keys": out, "failures": {}})

    async def queue_to_device(self, sender, typ, messages):
        for user, devs in messages.items():
            for dev, content in devs.items():
                targets = list(self.w.device_keys.get(user, {})) if dev == "*" else [dev]
                if dev == "*" and user == BOT:
                    targets = sorted(set(targets) | set(self.w.tokens.values()))
                for t in targets:
                    self.w.to_device.setdefault((user, t), []).append(
                        {"type": typ, "sender": sender, "content": content})
        await self.notify()

    async def send_to_device(self, request):
        token, bad = self.auth(request)
        if bad is not None:
            return bad
        b = await request.json()
        key = (token, "td:" + request.match_info["txn"])
        if key not in self.w.txns:
            self.w.txns[key] = "done"
            await self.queue_to_device(BOT, request.match_info["type"], b.get("messages") or {})
        return web.json_response({})

    async def joined_members(self, request):
        token, bad = self.auth(request)
        if bad is not None:
            return bad
        room = self.w.rooms.get(request.match_info["room"])
        if not room or room["members"].get(BOT) != "join":
            return merr(403, "M_FORBIDDEN", "You aren't a member of the room")
        return web.json_response({"joined": {u: {} for u, m in room["members"].items()
                                             if m == "join"}})

    async def c_keys(self, request):
        b = await request.json()
        err = self.store_keys(b["user"], b["device"], b)
        await self.notify()
        return err if err is not None else web.json_response({})

    async def c_claim(self, request):
        b = await request.json()
        return web.json_response(self.claim_one(b["user"], b["device"]) or {})

    async def c_to_device_send(self, request):
        b = await request.json()
        await self.queue_to_device(b["sender"], b["type"], b["messages"])
        return web.json_response({})

    async def c_to_device_get(self, request):
        key = (request.query["user"], request.query["device"])
        return web.json_response(self.w.to_device.pop(key, []))

    async def c_device_keys(self, request):
        return web.json_response(self.w.device_keys.get(request.query["user"], {}))

    async def c_media_hex(self, request):
        ct, data = self.w.media[request.query["id"]]
        return web.json_response({"content_type": ct, "hex": data.hex()})

    # ------------------------------------------------------------------ control

    async def c_room(self, request):
        b = await request.json()
        room_id = b["room_id"]
        room = self.w.rooms.setdefault(room_id, {"members": {}, "direct": False})
        for u in b.get("members", []):
            if room["members"].get(u) != "join":
                room["members"][u] = "join"
                await self.append(room_id, self.member_event(room_id, u, "join"))
        if b.get("name"):
            await self.append(room_id, {"type": "m.room.name", "state_key": "",
                                        "sender": b.get("members", [BOT])[0],
                                        "content": {"name": b["name"]},
                                        "event_id": self.new_event_id(),
                                        "origin_server_ts": now_ms()})
        if b.get("invite"):
            room["members"][BOT] = "invite"
            await self.append(room_id, self.member_event(room_id, BOT, "invite",
                                                         bool(b.get("direct"))))
            self.w.invites[room_id] = len(self.w.events)
        elif b.get("join_bot", True) and room["members"].get(BOT) != "join":
            room["members"][BOT] = "join"
            await self.append(room_id, self.member_event(room_id, BOT, "join"))
        if b.get("direct"):
            room["direct"] = True
            self.w.direct_pos = len(self.w.events) + 1
            await self.append(room_id, {"type": "m.room.topic", "state_key": "", "sender": BOT,
                                        "content": {"topic": "dm"},
                                        "event_id": self.new_event_id(),
                                        "origin_server_ts": now_ms()})
        return web.json_response({"room_id": room_id})

    async def c_message(self, request):
        b = await request.json()
        content = b.get("content") or {"msgtype": "m.text", "body": b.get("body", "")}
        eid = self.new_event_id()
        ev = {"type": b.get("type", "m.room.message"), "sender": b["sender"], "content": content,
              "event_id": eid, "origin_server_ts": b.get("ts", now_ms())}
        if "state_key" in b:
            ev["state_key"] = b["state_key"]
        await self.append(b["room_id"], ev)
        return web.json_response({"event_id": eid})

    def autopilot_post(self, room_id, sender, body):
        eid = self.new_event_id()
        self.w.events.append({"room_id": room_id, "event": {
            "type": "m.room.message", "sender": sender,
            "content": {"msgtype": "m.text", "body": body}, "event_id": eid,
            "origin_server_ts": now_ms()}})
        asyncio.ensure_future(self.notify())
        return eid

    async def c_load_start(self, request):
        b = await request.json()
        if self.autopilot:
            self.autopilot.stop()
        try:
            self.autopilot = Autopilot(self.autopilot_post, b)
        except (KeyError, TypeError, ValueError) as e:
            return web.json_response({"error": "bad load: %s" % e}, status=400)
        return web.json_response({"started": len(self.autopilot.users)})

    async def c_load_status(self, request):
        if not self.autopilot:
            return web.json_response({"error": "no load started"}, status=404)
        return web.json_response(self.autopilot.status())

    async def c_media(self, request):
        data = await request.read()
        self.w.seq += 1
        mid = "m%d" % self.w.seq
        self.w.media[mid] = (request.headers.get("Content-Type", "application/octet-stream"),
                             data)
        return web.json_response({"content_uri": "mxc://%s/%s" % (SERVER, mid)})

    async def c_fault(self, request):
        self.faults.append(await request.json())
        return web.json_response({"faults": len(self.faults)})

    async def c_clear(self, request):
        self.faults = []
        return web.json_response({})

    async def c_tokens(self, request):
        self.w.tokens_valid = bool((await request.json()).get("valid"))
        return web.json_response({})

    async def c_requests(self, request):
        label = request.query.get("label")
        return web.json_response([r for r in self.requests if not label or r["label"] == label])

    async def c_sent(self, request):
        room = request.query.get("room")
        typ = request.query.get("type")
        out = []
        for e in self.w.events:
            ev = e["event"]
            if ev.get("sender") != BOT or "state_key" in ev:
                continue
            if room and e["room_id"] != room:
                continue
            if typ and ev["type"] != typ:
                continue
            d = dict(ev)
            d["room_id"] = e["room_id"]
            out.append(d)
        return web.json_response(out)

    async def c_typing(self, request):
        return web.json_response(self.typing_log)

    async def c_receipts(self, request):
        return web.json_response(self.receipt_log)

    async def c_save(self, request):
        self.save()
        return web.json_response({})


LABELS = [
    ("/keys/upload", "keys_upload"),  # before "/upload"
    ("/keys/query", "keys_query"),
    ("/keys/claim", "keys_claim"),
    ("/sendToDevice/", "to_device"),
    ("/joined_members", "members"),
    ("/_matrix/client/v3/sync", "sync"),
    ("/_matrix/client/v3/account/whoami", "whoami"),
    ("/_matrix/client/v3/login", "login"),
    ("/_matrix/client/versions", "versions"),
    ("/filter", "filter"),
    ("/_matrix/client/v3/join/", "join"),
    ("/send/", "send"),
    ("/redact/", "redact"),
    ("/typing/", "typing"),
    ("/read_markers", "receipt"),
    ("/upload", "upload"),
    ("/download/", "download"),
]


def label_of(path):
    for frag, label in LABELS:
        if frag in path:
            return label
    return "other"


def make_app(d):
    @web.middleware
    async def log(request, handler):
        if request.path.startswith("/_double/"):
            return await handler(request)
        rec = {"label": label_of(request.path), "method": request.method, "path": request.path,
               "query": request.query_string, "t": now_ms()}
        d.requests.append(rec)
        try:
            resp = await handler(request)
        except web.HTTPException as e:
            if e.status == 404:
                resp = merr(404, "M_UNRECOGNIZED", "Unrecognized request")
            elif e.status == 405:
                resp = merr(405, "M_UNRECOGNIZED", "Unrecognized request")
            else:
                raise
        rec["status"] = resp.status
        return resp

    app = web.Application(middlewares=[log], client_max_size=64 << 20)
    c = "/_matrix/client/v3"
    r = app.router
    r.add_get("/_matrix/client/versions", d.versions)
    r.add_get(c + "/account/whoami", d.whoami)
    r.add_post(c + "/login", d.login)
    r.add_post(c + "/user/{user}/filter", d.filter)
    r.add_get(c + "/sync", d.sync)
    r.add_post(c + "/join/{room}", d.join)
    r.add_put(c + "/rooms/{room}/send/{type}/{txn}", d.send)
    r.add_put(c + "/rooms/{room}/redact/{event}/{txn}", d.redact)
    r.add_put(c + "/rooms/{room}/typing/{user}", d.typing)
    r.add_post(c + "/rooms/{room}/read_markers", d.read_markers)
    r.add_post("/_matrix/media/v3/upload", d.upload)
    r.add_get("/_matrix/client/v1/media/download/{server}/{id}",
              lambda q: d.download(q, True))
    r.add_get("/_matrix/media/v3/download/{server}/{id}", lambda q: d.download(q, False))
    r.add_get(c + "/rooms/{room}/joined_members", d.joined_members)
    r.add_post(c + "/keys/upload", d.keys_upload)
    r.add_post(c + "/keys/query", d.keys_query)
    r.add_post(c + "/keys/claim", d.keys_claim)
    r.add_put(c + "/sendToDevice/{type}/{txn}", d.send_to_device)
    r.add_post("/_double/keys", d.c_keys)
    r.add_post("/_double/claim", d.c_claim)
    r.add_post("/_double/to_device", d.c_to_device_send)
    r.add_get("/_double/to_device", d.c_to_device_get)
    r.add_get("/_double/media_hex", d.c_media_hex)
    r.add_get("/_double/device_keys", d.c_device_keys)
    r.add_post("/_double/room", d.c_room)
    r.add_post("/_double/message", d.c_message)
    r.add_post("/_double/media", d.c_media)
    r.add_post("/_double/load", d.c_load_start)
    r.add_get("/_double/load", d.c_load_status)
    r.add_post("/_double/fault", d.c_fault)
    r.add_post("/_double/clear_faults", d.c_clear)
    r.add_post("/_double/tokens", d.c_tokens)
    r.add_get("/_double/requests", d.c_requests)
    r.add_get("/_double/sent", d.c_sent)
    r.add_get("/_double/typing", d.c_typing)
    r.add_get("/_double/receipts", d.c_receipts)
    r.add_post("/_double/save", d.c_save)
    return app


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--state")
    ap.add_argument("--legacy-media", action="store_true")
    args = ap.parse_args()
    d = Double(args)
    runner = web.AppRunner(make_app(d), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port, reuse_address=True)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    print("PORT %d" % port, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    parent = os.getppid()

    async def orphan_watch():  # the test that started us died: do not linger
        while not stop.is_set():
            if os.getppid() != parent:
                stop.set()
            await asyncio.sleep(0.5)

    watcher = asyncio.ensure_future(orphan_watch())
    await stop.wait()
    watcher.cancel()
    d.save()
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())

#!/usr/bin/env python3
"""A Mattermost server double for tests: REST API v4 and the WebSocket at /api/v4/websocket,
speaking the wire format of a real Mattermost server (9.x), with scripted faults.

Test code only — never shipped. Start it with (Debian's /usr/bin/python3 + python3-aiohttp)

    /usr/bin/python3 tests/doubles/mattermost_double.py --port 0 --control-port 0 \
        [--token TOKEN] [--port-file FILE]

It prints "PORTS <mattermost port> <control port>" on stdout (and writes the same line to
--port-file). The Mattermost port can be taken down and brought back (a server restart); the
control port stays up and drives the test.

What the Mattermost port serves (every route needs "Authorization: Bearer <token>"; errors are
Mattermost's AppError JSON {id, message, detailed_error, request_id, status_code}):

    GET  /api/v4/users/me                       the bot user
    GET  /api/v4/users/{id}                     a user
    GET  /api/v4/users/{id}/teams               [team]
    GET  /api/v4/users/{id}/teams/{tid}/channels  channels of the team + DMs/GMs, member only
    GET  /api/v4/users/{id}/channels            every channel the user is in (server >= 6.1)
    GET  /api/v4/config/client?format=old       {"MaxPostSize": "16383", ...}; 501 without
                                                format=old (as the real server)
    GET  /api/v4/channels/{id}                  a channel (403 when not a member)
    GET  /api/v4/channels/{id}/posts?since=ms   PostList of posts with update_at > since
    GET  /api/v4/posts/{id}                     a post
    POST /api/v4/posts                          {channel_id, message, root_id?, file_ids?,
                                                props?} -> 201; 400 "Invalid RootId parameter."
                                                when root_id is not a root post of the channel,
                                                400 when the message is over the enforced
                                                size, 403 when the poster is not a member
    PUT  /api/v4/posts/{id}/patch               {message}
    POST /api/v4/users/{id}/typing              {channel_id, parent_id?}
    POST /api/v4/files                          multipart: channel_id, files -> 201
                                                {file_infos, client_ids}
    GET  /api/v4/files/{id} and /files/{id}/info
    GET  /api/v4/websocket                      the WebSocket (below)

Every REST answer carries X-RateLimit-Limit / -Remaining / -Reset. A rate-limited request gets
what Mattermost's throttled limiter sends: 429, "limit exceeded", Retry-After and X-RateLimit-*.

The WebSocket: the client may authenticate with the Authorization header of the upgrade or with
{"seq": n, "action": "authentication_challenge", "data": {"token": ...}}; the server then answers
{"status": "OK", "seq_reply": n} and sends the "hello" event. A bad token closes the socket
without a close frame (the real server's conn.WebSocket.Close()). Events carry a per-connection
"seq" starting at 0 (hello). "posted" events carry data.post as a JSON-encoded string,
data.channel_type (D/O/P/G), data.sender_name ("@alice"), data.channel_display_name,
data.channel_name, data.team_id, data.set_online and, when someone is mentioned, data.mentions
(a JSON-encoded list of user ids). The actions "ping" (answered with data.text "pong" and
server_time) and "user_typing" are understood; others get status FAIL.

Control port (no auth):

    GET  /_test/world            ids and names of the seeded users, team and channels, token
    POST /_test/post             {channel, user, message, root_id?, file_ids?, type?}: a user
                                 posts (channel/user: key such as "town"/"alice" or an id)
    POST /_test/file             {user, name, mime, data_b64}: a file uploaded by a user
    GET  /_test/posts            ?user=&channel=  posts in creation order
    GET  /_test/wait             ?what=posts|typing|ws|requests&n=N&timeout_ms=T
                                 [&user=&channel=&path=] waits until at least N match
                                 (200 with the matches) or 408
    GET  /_test/requests         the REST requests seen [{method, path, query, status}]
    GET  /_test/typing           typing calls [{user_id, channel_id, parent_id, via}]
    POST /_test/ws/drop          {mode: "silent" | "close" | "reset"}: every open WebSocket is
                                 black-holed (no FIN, nothing read or sent any more), closed
                                 with 1001, or reset
    POST /_test/down, /_test/up  a server restart: every connection is reset and the port
                                 refuses connections until /_test/up listens again
    POST /_test/ratelimit        {count, reset_s, path?, method?}: the next count matching
                                 requests get 429
    POST /_test/remaining0       {reset_s, path?}: the next matching answer says
                                 X-RateLimit-Remaining: 0
    POST /_test/fail             {count, status, path, method?, body?}: inject a failure
    POST /_test/config           {advertised?, enforced?}: MaxPostSize shown / enforced
    POST /_test/token            {token}: the only valid token from now on
    POST /_test/reject_ws        {status}: answer WebSocket upgrades with this status (0: off)
    POST /_test/slow_posts       {channel, ms}: every POST /api/v4/posts to that channel (key or
                                 id) takes ms before the post is made and answered (a slow
                                 server; the post is made even if the client gave up waiting);
                                 ms 0 turns it off. Other channels are not slowed (default: none)
    GET  /_test/slow_posts       {"slow": {channel id: ms}, "started": n, "finished": n}
    POST /_test/load_world       {users, channels}: users (and DMs or open channels) for a load
    POST /_test/load, GET too    closed-loop users for the capacity benchmark
                                 (tests/doubles/autopilot.py)
    GET  /_test/pending          {"deduplicated": n, "pending_answers": n, "seen": n}: how
                                 often a create with a pending_post_id was answered with the
                                 post already made / with 500 ...deduplicate_create_post.pending

POST /api/v4/posts de-duplicates like the real server (server/channels/app/post.go
deduplicateCreatePost, pendingPostIDsCacheTTL = 30 s, seenPendingPostIdsCache): a create whose
`pending_post_id` (a global key, any string) was seen in the last 30 s is answered 201 with the
post already made, or 500 api.post.deduplicate_create_post.pending while that first create is
still running; a create that fails forgets its id (the deferred Remove); a post the caller may
no longer read is created anew. The entry's 30 s start when the create starts and again when
the post is saved.
    GET  /_health                200
"""
import argparse
import asyncio
import base64
import json
import os
import sys
import time
import uuid

from aiohttp import WSMsgType, web

from autopilot import Autopilot  # tests/doubles/autopilot.py (closed-loop users, for bench/)

SERVER_VERSION = "9.11.0.9.11.0.abc.false"
DEFAULT_MAX_POST = 16383


def new_id():
    """A Mattermost id: 26 lowercase base32 characters."""
    return base64.b32encode(uuid.uuid4().bytes).decode().lower().rstrip("=")


def fixed_id(prefix):
    return (prefix + "0" * 26)[:26]


def now_ms():
    return int(time.time() * 1000)


class World:
    def __init__(self, token):
        self.token = token
        self.users = {}
        self.keys = {}  # key ("alice") -> id, for users and channels
        for key, name, is_bot in (("bot", "hermes", True), ("alice", "alice", False),
                                  ("bob", "bob", False), ("carol", "carol", False)):
            self.add_user(key, name, is_bot)
        self.bot = self.keys["bot"]
        self.team = fixed_id("team")
        self.channels = {}
        a, b, c = self.keys["alice"], self.keys["bob"], self.keys["carol"]
        self._channel("town", "O", "town-square", "Town Square", [self.bot, a, b], self.team)
        self._channel("priv", "P", "private-room", "Private Room", [self.bot, a], self.team)
        self._channel("dm_alice", "D", "__".join(sorted([a, self.bot])), "", [self.bot, a], "")
        self._channel("dm_bob", "D", "__".join(sorted([b, self.bot])), "", [self.bot, b], "")
        self._channel("dm_carol", "D", "__".join(sorted([c, self.bot])), "", [self.bot, c], "")
        self._channel("group", "G", new_id(), "alice, bob, hermes", [self.bot, a, b], "")
        self._channel("nobot", "O", "off-topic", "Off-Topic", [a, b], self.team)
        self.posts = {}
        self.order = []  # post ids in creation order
        self.files = {}
        self.file_data = {}
        self.last_time = 0
        self.max_advertised = DEFAULT_MAX_POST
        self.max_enforced = DEFAULT_MAX_POST
        self.requests = []
        self.typing = []
        self.ws_auth_count = 0
        self.conns = []
        self.ratelimits = []
        self.remaining0 = []
        self.failures = []
        self.reject_ws = 0
        self.slow_posts = {}  # channel id -> ms every POST /api/v4/posts there takes
        self.slow_started = 0
        self.slow_finished = 0
        self.pending_ids = {}  # pending_post_id -> [post id or "" (saving), expiry (monotonic)]
        self.deduplicated = 0
        self.pending_answers = 0
        self.changed = asyncio.Condition()
        self.autopilot = None

    def add_user(self, key, name, is_bot=False):
        uid = fixed_id(key + "user")
        self.keys[key] = uid
        self.users[uid] = {
            "id": uid, "create_at": 1700000000000, "update_at": 1700000000000,
            "delete_at": 0, "username": name, "auth_data": "", "auth_service": "",
            "email": f"{name}@example.com", "nickname": "", "first_name": name.title(),
            "last_name": "", "position": "", "roles": "system_user", "locale": "en",
            "timezone": {}, "is_bot": is_bot, "bot_description": "", "disable_welcome_email":
            False}
        return uid

    def _channel(self, key, ctype, name, display, members, team):
        cid = fixed_id(key + "chan")
        self.keys[key] = cid
        self.channels[cid] = {
            "id": cid, "create_at": 1700000000000, "update_at": 1700000000000, "delete_at": 0,
            "team_id": team, "type": ctype, "display_name": display, "name": name, "header": "",
            "purpose": "", "last_post_at": 1700000000000, "total_msg_count": 0,
            "extra_update_at": 0, "creator_id": "", "scheme_id": None, "props": None,
            "group_constrained": None, "shared": None, "total_msg_count_root": 0,
            "policy_id": None, "last_root_post_at": 1700000000000, "_members": list(members)}

    def resolve(self, ref):
        return self.keys.get(ref, ref)

    def tick(self):
        t = max(now_ms(), self.last_time + 1)
        self.last_time = t
        return t

    async def notify(self):
        async with self.changed:
            self.changed.notify_all()


W = None


def channel_json(ch):
    return {k: v for k, v in ch.items() if not k.startswith("_")}


def app_error(status, eid, message, where=""):
    body = {"id": eid, "message": message, "detailed_error": "", "request_id": new_id(),
            "status_code": status}
    if where:
        body["where"] = where
    return web.json_response(body, status=status)


def is_member(cid, uid):
    ch = W.channels.get(cid)
    return ch is not None and uid in ch["_members"]


def display_for(ch, viewer):
    if ch["type"] == "D":
        other = [m for m in ch["_members"] if m != viewer]
        other = other[0] if other else viewer
        return "@" + W.users[other]["username"]
    return ch["display_name"]


def mentions_in(ch, message):
    out = []
    low = message.lower()
    for uid in ch["_members"]:
        if "@" + W.users[uid]["username"] in low:
            out.append(uid)
    if ch["type"] == "D":
        out = [m for m in ch["_members"]]
    return out


def make_post(cid, uid, message, root_id="", file_ids=None, ptype="", props=None):
    t = W.tick()
    post = {
        "id": new_id(), "create_at": t, "update_at": t, "edit_at": 0, "delete_at": 0,
        "is_pinned": False, "user_id": uid, "channel_id": cid, "root_id": root_id or "",
        "original_id": "", "message": message, "type": ptype, "props": props or {},
        "hashtags": "", "pending_post_id": "", "reply_count": 0, "last_reply_at": 0,
        "participants": None, "metadata": {}}
    if file_ids:
        post["file_ids"] = list(file_ids)
        post["metadata"]["files"] = [W.files[f] for f in file_ids if f in W.files]
        for f in file_ids:
            if f in W.files:
                W.files[f]["post_id"] = post["id"]
    if root_id and root_id in W.posts:
        root = W.posts[root_id]
        root["reply_count"] += 1
        root["last_reply_at"] = t
    W.posts[post["id"]] = post
    W.order.append(post["id"])
    ch = W.channels[cid]
    ch["last_post_at"] = t
    ch["total_msg_count"] += 1
    if not root_id:
        ch["last_root_post_at"] = t
    return post


async def broadcast_post(post):
    ch = W.channels[post["channel_id"]]
    sender = W.users[post["user_id"]]
    for conn in list(W.conns):
        if not conn.authed or conn.blackholed or conn.user_id not in ch["_members"]:
            continue
        data = {"channel_display_name": display_for(ch, conn.user_id),
                "channel_name": ch["name"], "channel_type": ch["type"],
                "post": json.dumps(post, separators=(",", ":")),
                "sender_name": "@" + sender["username"], "set_online": True,
                "team_id": ch["team_id"]}
        ment = mentions_in(ch, post["message"])
        if ment:
            data["mentions"] = json.dumps(ment)
        await conn.event("posted", data, {"omit_users": None, "user_id": "",
                                          "channel_id": ch["id"], "team_id": "",
                                          "connection_id": "", "omit_connection_id": ""})
    await W.notify()


class Conn:
    def __init__(self, ws, transport):
        self.ws = ws
        self.transport = transport
        self.authed = False
        self.user_id = None
        self.seq = 0
        self.blackholed = False
        self.id = new_id()

    async def send(self, obj):
        if self.blackholed or self.ws.closed:
            return
        try:
            await self.ws.send_str(json.dumps(obj, separators=(",", ":")))
        except (ConnectionError, RuntimeError):
            pass

    async def event(self, name, data, broadcast=None):
        ev = {"event": name, "data": data,
              "broadcast": broadcast or {"omit_users": None, "user_id": self.user_id or "",
                                         "channel_id": "", "team_id": "", "connection_id": "",
                                         "omit_connection_id": ""},
              "seq": self.seq}
        self.seq += 1
        await self.send(ev)

    async def authenticate(self, uid):
        self.authed = True
        self.user_id = uid
        W.ws_auth_count += 1
        await self.event("hello", {"connection_id": self.id, "server_version": SERVER_VERSION,
                                   "server_hostname": ""},
                         {"omit_users": None, "user_id": uid, "channel_id": "", "team_id": "",
                          "connection_id": "", "omit_connection_id": ""})
        await W.notify()


def bearer(request):
    h = request.headers.get("Authorization", "")
    if h[:7].lower() == "bearer ":
        return h[7:].strip()
    if h[:6].lower() == "token ":
        return h[6:].strip()
    return request.cookies.get("MMAUTHTOKEN")


def match(rule, request):
    if rule.get("path") and not request.path.startswith(rule["path"]):
        return False
    if rule.get("method") and rule["method"].upper() != request.method:
        return False
    return True


def take_rule(rules, request):
    for r in rules:
        if r["count"] > 0 and match(r, request):
            r["count"] -= 1
            return r
    return None


@web.middleware
async def mm_middleware(request, handler):
    rec = {"method": request.method, "path": request.path, "query": request.query_string,
           "status": 0, "time": now_ms()}
    is_ws = request.path == "/api/v4/websocket"
    if not is_ws:
        W.requests.append(rec)
    rl = None if is_ws else take_rule(W.ratelimits, request)
    if rl:
        reset = str(rl["reset_s"])
        resp = web.Response(status=429, text="limit exceeded\n",
                            headers={"X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "0",
                                     "X-RateLimit-Reset": reset, "Retry-After": reset})
    elif not is_ws and bearer(request) != W.token:
        resp = app_error(401, "api.context.session_expired.app_error",
                         "Invalid or expired session, please login again.")
    else:
        fail = None if is_ws else take_rule(W.failures, request)
        if fail:
            if fail.get("body") is not None:
                resp = web.Response(status=fail["status"], text=fail["body"],
                                    content_type="application/json")
            else:
                resp = app_error(fail["status"], "test.injected.app_error", "Injected failure.")
        else:
            resp = await handler(request)
    if not is_ws:
        zero = take_rule(W.remaining0, request)
        if zero:
            resp.headers["X-RateLimit-Limit"] = "10"
            resp.headers["X-RateLimit-Remaining"] = "0"
            resp.headers["X-RateLimit-Reset"] = str(zero["reset_s"])
        elif "X-RateLimit-Limit" not in resp.headers:
            resp.headers["X-RateLimit-Limit"] = "10"
            resp.headers["X-RateLimit-Remaining"] = "9"
            resp.headers["X-RateLimit-Reset"] = "1"
        rec["status"] = resp.status
        await W.notify()
    return resp


def me(request):
    return W.bot


async def get_user(request):
    uid = request.match_info["uid"]
    uid = me(request) if uid == "me" else uid
    u = W.users.get(uid)
    if not u:
        return app_error(404, "app.user.missing_account.const", "Unable to find the user.")
    return web.json_response(u)


async def get_user_teams(request):
    return web.json_response([{"id": W.team, "create_at": 1700000000000,
                               "update_at": 1700000000000, "delete_at": 0,
                               "display_name": "Team One", "name": "team1", "description": "",
                               "email": "", "type": "O", "company_name": "",
                               "allowed_domains": "", "invite_id": "",
                               "allow_open_invite": True}])


def user_param(request):
    uid = request.match_info["uid"]
    return me(request) if uid == "me" else uid


async def get_team_channels(request):
    uid = user_param(request)
    if uid != me(request):
        return app_error(403, "api.context.permissions.app_error",
                         "You do not have the appropriate permissions.")
    tid = request.match_info["tid"]
    out = [channel_json(c) for c in W.channels.values()
           if uid in c["_members"] and c["team_id"] in (tid, "")]
    return web.json_response(out)


async def get_user_channels(request):
    uid = user_param(request)
    if uid != me(request):
        return app_error(403, "api.context.permissions.app_error",
                         "You do not have the appropriate permissions.")
    out = [channel_json(c) for c in W.channels.values() if uid in c["_members"]]
    return web.json_response(out)


async def get_client_config(request):
    if request.query.get("format") != "old":
        return app_error(501, "api.config.client.old_format.app_error",
                         "New format for the client configuration is not supported yet. "
                         "Please specify format=old in the query string.")
    return web.json_response({"Version": "9.11.0", "BuildNumber": "9.11.0",
                              "SiteName": "Mattermost", "SiteURL": "",
                              "MaxPostSize": str(W.max_advertised),
                              "EnableBotAccountCreation": "true", "DiagnosticsEnabled": "false"})


async def get_channel(request):
    cid = request.match_info["cid"]
    ch = W.channels.get(cid)
    if not ch:
        return app_error(404, "app.channel.get.existing.app_error",
                         "Unable to find the existing channel.")
    if not is_member(cid, me(request)):
        return app_error(403, "api.context.permissions.app_error",
                         "You do not have the appropriate permissions.")
    return web.json_response(channel_json(ch))


async def get_channel_posts(request):
    cid = request.match_info["cid"]
    if cid not in W.channels:
        return app_error(404, "app.channel.get.existing.app_error",
                         "Unable to find the existing channel.")
    if not is_member(cid, me(request)):
        return app_error(403, "api.context.permissions.app_error",
                         "You do not have the appropriate permissions.")
    since = request.query.get("since")
    posts = [W.posts[p] for p in W.order if W.posts[p]["channel_id"] == cid]
    if since is not None:
        try:
            s = int(since)
        except ValueError:
            return app_error(400, "api.context.invalid_url_param.app_error",
                             "Invalid or missing since parameter in request URL.")
        posts = [p for p in posts if p["update_at"] > s]
    else:
        page = int(request.query.get("page", "0"))
        per = min(int(request.query.get("per_page", "60")), 200)
        posts = [p for p in posts if p["delete_at"] == 0]
        posts = list(reversed(posts))[page * per:(page + 1) * per]
        posts = list(reversed(posts))
    posts.sort(key=lambda p: p["create_at"], reverse=True)
    return web.json_response({"order": [p["id"] for p in posts],
                              "posts": {p["id"]: p for p in posts}, "next_post_id": "",
                              "prev_post_id": "", "has_next": False})


async def get_post(request):
    pid = request.match_info["pid"]
    p = W.posts.get(pid)
    if not p:
        return app_error(404, "app.post.get.app_error", "Unable to get the post.")
    if not is_member(p["channel_id"], me(request)):
        return app_error(403, "api.context.permissions.app_error",
                         "You do not have the appropriate permissions.")
    return web.json_response(p)


async def read_json(request):
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


async def create_post(request):
    body = await read_json(request)
    if body is None:
        return app_error(400, "api.context.invalid_body_param.app_error",
                         "Invalid or missing post in request body.")
    cid = body.get("channel_id") or ""
    if cid not in W.channels:
        return app_error(400, "api.context.invalid_param.app_error",
                         "Invalid channel_id parameter.")
    uid = me(request)
    if not is_member(cid, uid):
        return app_error(403, "api.context.permissions.app_error",
                         "You do not have the appropriate permissions.")
    pending = body.get("pending_post_id") or ""
    if not isinstance(pending, str):
        pending = ""
    if pending:
        found = dedupe_create(pending, uid)
        if found is not None:
            return found
    resp = await create_post_checked(body, cid, uid, pending)
    if pending and resp.status != 201:
        W.pending_ids.pop(pending, None)  # deferred Remove: a proper retry may follow
    return resp


def pending_saved(pending, post_id):
    """The create of pending finished: its id now answers with post_id for another 30 s."""
    if pending:
        W.pending_ids[pending] = [post_id, time.monotonic() + PENDING_POST_IDS_TTL]


PENDING_POST_IDS_TTL = 30.0  # pendingPostIDsCacheTTL (server/channels/app/post.go)


def dedupe_create(pending, uid):
    """deduplicateCreatePost: None to go on creating (the id is now recorded as saving), or the
    answer to give."""
    now = time.monotonic()
    for k in [k for k, v in W.pending_ids.items() if v[1] <= now]:
        del W.pending_ids[k]
    ent = W.pending_ids.get(pending)
    if ent is None:
        W.pending_ids[pending] = ["", now + PENDING_POST_IDS_TTL]
        return None
    if ent[0] == "":
        W.pending_answers += 1
        return app_error(500, "api.post.deduplicate_create_post.pending",
                         "Post creation is pending. Please try again.", "deduplicateCreatePost")
    post = W.posts.get(ent[0])
    if post is None:
        return app_error(500, "api.post.deduplicate_create_post.failed_to_get",
                         "Failed to get post.", "deduplicateCreatePost")
    if not is_member(post["channel_id"], uid):
        return None  # GetPostIfAuthorized said 403: a new post is made
    W.deduplicated += 1
    return web.json_response(post, status=201)


async def create_post_checked(body, cid, uid, pending):
    root_id = body.get("root_id") or ""
    if root_id:
        root = W.posts.get(root_id)
        if not root or root["channel_id"] != cid or root["root_id"]:
            return app_error(400, "api.post.create_post.root_id.app_error",
                             "Invalid RootId parameter.", "CreatePost")
    message = body.get("message") or ""
    if len(message) > W.max_enforced:
        # the real server: Post.IsValid → model.post.is_valid.msg.app_error
        return app_error(400, "model.post.is_valid.msg.app_error", "Invalid Message.",
                         "Post.IsValid")
    file_ids = body.get("file_ids") or []
    for f in file_ids:
        if f not in W.files:
            return app_error(400, "api.post.create_post.file_ids.app_error",
                             "Invalid file_ids.")
    delay = W.slow_posts.get(cid, 0)
    if delay:
        # A slow server: the post is made after the delay even when the client has given up
        # (shielded from the handler's cancellation), so a client that retries a slow send
        # makes a duplicate the test can see.
        W.slow_started += 1
        post = await asyncio.shield(slow_make_post(delay, cid, uid, message, root_id, file_ids,
                                                   body.get("props"), pending))
        return web.json_response(post, status=201)
    post = make_post(cid, uid, message, root_id, file_ids, "", body.get("props"))
    pending_saved(pending, post["id"])
    asyncio.ensure_future(broadcast_post(post))
    if W.autopilot and uid == W.bot:
        W.autopilot.on_bot_message(cid, [root_id])
    return web.json_response(post, status=201)


async def slow_make_post(delay_ms, cid, uid, message, root_id, file_ids, props, pending=""):
    await asyncio.sleep(delay_ms / 1000)
    post = make_post(cid, uid, message, root_id, file_ids, "", props)
    pending_saved(pending, post["id"])
    W.slow_finished += 1
    asyncio.ensure_future(broadcast_post(post))
    await W.notify()
    return post


async def patch_post(request):
    pid = request.match_info["pid"]
    p = W.posts.get(pid)
    if not p:
        return app_error(404, "app.post.get.app_error", "Unable to get the post.")
    if p["user_id"] != me(request):
        return app_error(403, "api.context.permissions.app_error",
                         "You do not have the appropriate permissions.")
    body = await read_json(request) or {}
    if "message" in body:
        p["message"] = body["message"]
    t = W.tick()
    p["update_at"] = p["edit_at"] = t
    await W.notify()
    return web.json_response(p)


async def typing(request):
    uid = user_param(request)
    if uid != me(request):
        return app_error(403, "api.context.permissions.app_error",
                         "You do not have the appropriate permissions.")
    body = await read_json(request)
    if body is None or not body.get("channel_id"):
        return app_error(400, "api.context.invalid_body_param.app_error",
                         "Invalid or missing channel_id in request body.")
    if not is_member(body["channel_id"], uid):
        return app_error(403, "api.context.permissions.app_error",
                         "You do not have the appropriate permissions.")
    W.typing.append({"user_id": uid, "channel_id": body["channel_id"],
                     "parent_id": body.get("parent_id", ""), "via": "rest"})
    await W.notify()
    return web.json_response({"status": "OK"})


def store_file(uid, cid, name, mime, data):
    fid = new_id()
    t = W.tick()
    ext = name.rsplit(".", 1)[1].lower() if "." in name else ""
    info = {"id": fid, "user_id": uid, "post_id": "", "channel_id": cid, "create_at": t,
            "update_at": t, "delete_at": 0, "name": name, "extension": ext, "size": len(data),
            "mime_type": mime, "has_preview_image": False, "mini_preview": None,
            "remote_id": "", "archived": False}
    W.files[fid] = info
    W.file_data[fid] = data
    return info


async def upload_file(request):
    if not request.content_type.startswith("multipart/"):
        return app_error(400, "api.file.upload_file.incorrect_content_type.app_error",
                         "Unable to upload file(s). Invalid Content-Type.")
    reader = await request.multipart()
    cid = None
    files = []
    async for part in reader:
        if part.name == "channel_id":
            cid = (await part.read()).decode()
        elif part.name == "files":
            data = await part.read()
            files.append((part.filename or "file", part.headers.get("Content-Type",
                                                                    "application/octet-stream"),
                          data))
        elif part.name == "client_ids":
            await part.read()
    uid = me(request)
    if not cid or cid not in W.channels:
        return app_error(400, "api.file.upload_file.channel_id.app_error",
                         "Invalid channel_id parameter.")
    if not is_member(cid, uid):
        return app_error(403, "api.context.permissions.app_error",
                         "You do not have the appropriate permissions.")
    if not files:
        return app_error(400, "api.file.upload_file.no_files.app_error", "No file to upload.")
    infos = [store_file(uid, cid, n, m, d) for (n, m, d) in files]
    await W.notify()
    return web.json_response({"file_infos": infos, "client_ids": []}, status=201)


async def get_file(request):
    fid = request.match_info["fid"]
    if fid not in W.files:
        return app_error(404, "app.file_info.get.app_error", "Unable to get the file info.")
    info = W.files[fid]
    return web.Response(body=W.file_data[fid], content_type=info["mime_type"].split(";")[0],
                        headers={"Content-Disposition":
                                 f'attachment;filename="{info["name"]}"'})


async def get_file_info(request):
    fid = request.match_info["fid"]
    if fid not in W.files:
        return app_error(404, "app.file_info.get.app_error", "Unable to get the file info.")
    return web.json_response(W.files[fid])


async def websocket(request):
    if W.reject_ws:
        return app_error(W.reject_ws, "api.web_socket.connect.upgrade.app_error",
                         "Failed to upgrade websocket connection.")
    ws = web.WebSocketResponse(autoping=True)
    await ws.prepare(request)
    conn = Conn(ws, request.transport)
    W.conns.append(conn)
    tok = bearer(request)
    try:
        if tok is not None:
            if tok != W.token:
                conn.transport.abort()
                return ws
            await conn.authenticate(W.bot)
        while True:
            try:
                msg = await ws.receive()
            except RuntimeError:  # closed under us (a drop or a restart)
                break
            if conn.blackholed:
                continue
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED,
                            WSMsgType.ERROR):
                break
            if msg.type != WSMsgType.TEXT:
                continue
            try:
                req = json.loads(msg.data)
                seq = int(req.get("seq", 0))
                action = req.get("action", "")
                data = req.get("data") or {}
            except (ValueError, AttributeError, TypeError):
                continue
            if not action:
                await conn.send({"status": "FAIL", "seq_reply": seq, "error": {
                    "id": "api.web_socket_router.no_action.app_error",
                    "message": "No websocket action.", "status_code": 400}})
                continue
            if action == "authentication_challenge":
                if conn.authed:
                    continue
                if data.get("token") != W.token:
                    conn.transport.abort()  # the real server: conn.WebSocket.Close()
                    break
                await conn.send({"status": "OK", "seq_reply": seq})
                await conn.authenticate(W.bot)
                continue
            if not conn.authed:
                await conn.send({"status": "FAIL", "seq_reply": seq, "error": {
                    "id": "api.web_socket_router.not_authenticated.app_error",
                    "message": "Could not authenticate websocket connection.",
                    "status_code": 401}})
                continue
            if action == "ping":
                await conn.send({"status": "OK", "seq_reply": seq, "data": {
                    "node_id": "", "server_time": now_ms(), "text": "pong",
                    "version": SERVER_VERSION}})
            elif action == "user_typing":
                W.typing.append({"user_id": conn.user_id, "channel_id": data.get("channel_id"),
                                 "parent_id": data.get("parent_id", ""), "via": "ws"})
                await conn.send({"status": "OK", "seq_reply": seq})
                await W.notify()
            else:
                await conn.send({"status": "FAIL", "seq_reply": seq, "error": {
                    "id": "api.web_socket_router.bad_action.app_error",
                    "message": "Invalid websocket action.", "status_code": 501}})
    finally:
        if conn in W.conns:
            W.conns.remove(conn)
        await W.notify()
    return ws


def build_app():
    app = web.Application(middlewares=[mm_middleware], client_max_size=64 << 20)
    r = app.router
    r.add_get("/api/v4/websocket", websocket)
    r.add_get("/api/v4/users/{uid}", get_user)
    r.add_get("/api/v4/users/{uid}/teams", get_user_teams)
    r.add_get("/api/v4/users/{uid}/teams/{tid}/channels", get_team_channels)
    r.add_get("/api/v4/users/{uid}/channels", get_user_channels)
    r.add_post("/api/v4/users/{uid}/typing", typing)
    r.add_get("/api/v4/config/client", get_client_config)
    r.add_get("/api/v4/channels/{cid}", get_channel)
    r.add_get("/api/v4/channels/{cid}/posts", get_channel_posts)
    r.add_post("/api/v4/posts", create_post)
    r.add_get("/api/v4/posts/{pid}", get_post)
    r.add_put("/api/v4/posts/{pid}/patch", patch_post)
    r.add_post("/api/v4/files", upload_file)
    r.add_get("/api/v4/files/{fid}", get_file)
    r.add_get("/api/v4/files/{fid}/info", get_file_info)
    return app


class MMServer:
    def __init__(self, port):
        self.port = port
        self.runner = None

    async def up(self):
        if self.runner:
            return
        self.runner = web.AppRunner(build_app(), handle_signals=False, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        if not self.port:
            self.port = site._server.sockets[0].getsockname()[1]

    async def down(self):
        for conn in list(W.conns):
            conn.blackholed = True
            conn.transport.abort()
        if self.runner:
            await self.runner.cleanup()
            self.runner = None


MM = None

# ============================================================================ control port


async def ctl_world(request):
    users = {k: {"id": W.keys[k], "username": W.users[W.keys[k]]["username"]}
             for k in ("bot", "alice", "bob", "carol")}
    chans = {k: {"id": W.keys[k], "type": W.channels[W.keys[k]]["type"],
                 "name": W.channels[W.keys[k]]["name"],
                 "display_name": W.channels[W.keys[k]]["display_name"]}
             for k in ("town", "priv", "dm_alice", "dm_bob", "dm_carol", "group", "nobot")}
    return web.json_response({"bot": users["bot"], "users": users, "team": W.team,
                              "channels": chans, "token": W.token, "port": MM.port})


async def ctl_post(request):
    body = await request.json()
    cid = W.resolve(body["channel"])
    uid = W.resolve(body["user"])
    if cid not in W.channels or uid not in W.users:
        return web.json_response({"error": "unknown channel or user"}, status=400)
    post = make_post(cid, uid, body.get("message", ""), body.get("root_id", ""),
                     body.get("file_ids"), body.get("type", ""))
    await broadcast_post(post)
    return web.json_response(post)


async def ctl_file(request):
    body = await request.json()
    uid = W.resolve(body.get("user", "alice"))
    cid = W.resolve(body.get("channel", "dm_alice"))
    info = store_file(uid, cid, body["name"], body.get("mime", "application/octet-stream"),
                      base64.b64decode(body.get("data_b64", "")))
    return web.json_response(info)


def select_posts(q):
    out = [W.posts[p] for p in W.order]
    if q.get("user"):
        u = W.resolve(q["user"])
        out = [p for p in out if p["user_id"] == u]
    if q.get("channel"):
        c = W.resolve(q["channel"])
        out = [p for p in out if p["channel_id"] == c]
    return out


def select(what, q):
    if what == "posts":
        return select_posts(q)
    if what == "typing":
        return list(W.typing)
    if what == "ws":
        return [{"authenticated": W.ws_auth_count, "open": len(W.conns)}] * W.ws_auth_count
    if what == "requests":
        rs = W.requests
        if q.get("path"):
            rs = [r for r in rs if r["path"].startswith(q["path"]) and r["status"]]
        if q.get("status"):
            rs = [r for r in rs if str(r["status"]) == q["status"]]
        return list(rs)
    return []


async def ctl_posts(request):
    return web.json_response(select_posts(request.query))


async def ctl_wait(request):
    q = request.query
    what = q.get("what", "posts")
    n = int(q.get("n", "1"))
    deadline = time.monotonic() + int(q.get("timeout_ms", "10000")) / 1000.0
    while True:
        items = select(what, q)
        if len(items) >= n:
            return web.json_response(items)
        left = deadline - time.monotonic()
        if left <= 0:
            return web.json_response(items, status=408)
        async with W.changed:
            try:
                await asyncio.wait_for(W.changed.wait(), timeout=left)
            except asyncio.TimeoutError:
                pass


async def ctl_requests(request):
    return web.json_response(W.requests)


async def ctl_typing(request):
    return web.json_response(W.typing)


async def ctl_drop(request):
    body = await request.json()
    mode = body.get("mode", "close")
    n = 0
    for conn in list(W.conns):
        n += 1
        if mode == "silent":
            conn.blackholed = True
            conn.transport.pause_reading()
        elif mode == "reset":
            conn.blackholed = True
            conn.transport.abort()
        else:
            await conn.ws.close(code=1001, message=b"server going away")
    return web.json_response({"dropped": n})


async def ctl_down(request):
    await MM.down()
    return web.json_response({"ok": True})


async def ctl_up(request):
    await MM.up()
    return web.json_response({"ok": True, "port": MM.port})


async def ctl_ratelimit(request):
    body = await request.json()
    W.ratelimits.append({"count": int(body.get("count", 1)), "reset_s": int(body.get("reset_s", 1)),
                         "path": body.get("path"), "method": body.get("method")})
    return web.json_response({"ok": True})


async def ctl_remaining0(request):
    body = await request.json()
    W.remaining0.append({"count": 1, "reset_s": int(body.get("reset_s", 1)),
                         "path": body.get("path"), "method": body.get("method")})
    return web.json_response({"ok": True})


async def ctl_fail(request):
    body = await request.json()
    W.failures.append({"count": int(body.get("count", 1)), "status": int(body["status"]),
                       "path": body.get("path"), "method": body.get("method"),
                       "body": body.get("body")})
    return web.json_response({"ok": True})


async def ctl_config(request):
    body = await request.json()
    if "advertised" in body:
        W.max_advertised = int(body["advertised"])
    if "enforced" in body:
        W.max_enforced = int(body["enforced"])
    return web.json_response({"ok": True})


async def ctl_token(request):
    body = await request.json()
    W.token = body["token"]
    return web.json_response({"ok": True})


async def ctl_reject_ws(request):
    body = await request.json()
    W.reject_ws = int(body.get("status", 0))
    return web.json_response({"ok": True})


async def ctl_slow_posts(request):
    body = await request.json()
    cid = W.resolve(body.get("channel") or "")
    if cid not in W.channels:
        return web.json_response({"error": "unknown channel"}, status=400)
    ms = int(body.get("ms", 0))
    if ms > 0:
        W.slow_posts[cid] = ms
    else:
        W.slow_posts.pop(cid, None)
    return await ctl_slow_posts_get(request)


async def ctl_slow_posts_get(request):
    return web.json_response({"slow": W.slow_posts, "started": W.slow_started,
                              "finished": W.slow_finished})


async def ctl_pending_get(request):
    return web.json_response({"deduplicated": W.deduplicated,
                              "pending_answers": W.pending_answers,
                              "seen": len(W.pending_ids)})


async def ctl_load_world(request):
    """{"users": N, "channels": M}: N more users, each in one of M channels with the bot: M == N
    gives every user a DM with the bot; otherwise open channels (users i, i+M, ... in channel
    i). Answers {"users": [[channel id, user id], ...]} for /_test/load."""
    b = await request.json()
    n, m = int(b.get("users", 0)), int(b.get("channels", 0))
    if not (1 <= n <= 100000 and 1 <= m <= n):
        return web.json_response({"error": "users 1..100000, channels 1..users"}, status=400)
    base = len(W.users)
    uids = [W.add_user(f"loaduser{base + i}", f"user{base + i}") for i in range(n)]
    chans = []
    for j in range(m):
        key = f"loadchan{base + j}"
        if m == n:
            members = [W.bot, uids[j]]
            W._channel(key, "D", "__".join(sorted(members)), "", members, "")
        else:
            members = [W.bot] + uids[j::m]
            W._channel(key, "O", f"load-{base + j}", f"Load {base + j}", members, W.team)
        chans.append(W.keys[key])
    return web.json_response({"users": [[chans[i % m], uids[i]] for i in range(n)]})


def autopilot_post(cid, uid, message):
    post = make_post(cid, uid, message)
    asyncio.ensure_future(broadcast_post(post))
    return post["id"]


async def ctl_load(request):
    b = await request.json()
    if W.autopilot:
        W.autopilot.stop()
    try:
        W.autopilot = Autopilot(autopilot_post, b)
    except (KeyError, TypeError, ValueError) as e:
        return web.json_response({"error": f"bad load: {e}"}, status=400)
    return web.json_response({"started": len(W.autopilot.users)})


async def ctl_load_status(request):
    if not W.autopilot:
        return web.json_response({"error": "no load started"}, status=404)
    return web.json_response(W.autopilot.status())


async def ctl_health(request):
    return web.Response(text="ok")


def build_control():
    app = web.Application()
    r = app.router
    r.add_get("/_health", ctl_health)
    r.add_get("/_test/world", ctl_world)
    r.add_post("/_test/post", ctl_post)
    r.add_post("/_test/file", ctl_file)
    r.add_get("/_test/posts", ctl_posts)
    r.add_get("/_test/wait", ctl_wait)
    r.add_get("/_test/requests", ctl_requests)
    r.add_get("/_test/typing", ctl_typing)
    r.add_post("/_test/ws/drop", ctl_drop)
    r.add_post("/_test/down", ctl_down)
    r.add_post("/_test/up", ctl_up)
    r.add_post("/_test/ratelimit", ctl_ratelimit)
    r.add_post("/_test/remaining0", ctl_remaining0)
    r.add_post("/_test/fail", ctl_fail)
    r.add_post("/_test/config", ctl_config)
    r.add_post("/_test/token", ctl_token)
    r.add_post("/_test/reject_ws", ctl_reject_ws)
    r.add_post("/_test/slow_posts", ctl_slow_posts)
    r.add_get("/_test/slow_posts", ctl_slow_posts_get)
    r.add_get("/_test/pending", ctl_pending_get)
    r.add_post("/_test/load_world", ctl_load_world)
    r.add_post("/_test/load", ctl_load)
    r.add_get("/_test/load", ctl_load_status)
    return app


async def main_async(args):
    global W, MM
    W = World(args.token)
    MM = MMServer(args.port)
    await MM.up()
    crunner = web.AppRunner(build_control(), handle_signals=False, access_log=None)
    await crunner.setup()
    csite = web.TCPSite(crunner, "127.0.0.1", args.control_port)
    await csite.start()
    cport = csite._server.sockets[0].getsockname()[1]
    line = f"PORTS {MM.port} {cport}\n"
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(line)
        os.replace(tmp, args.port_file)
    sys.stdout.write(line)
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    import signal
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    # A parent that goes away closes our stdin: exit with it.
    if args.exit_on_stdin_eof:
        loop.add_reader(sys.stdin.fileno(),
                        lambda: stop.set() if not os.read(sys.stdin.fileno(), 4096) else None)
    await stop.wait()
    await MM.down()
    await crunner.cleanup()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--control-port", type=int, default=0)
    p.add_argument("--token", default="mm-test-token-0123456789")
    p.add_argument("--port-file")
    p.add_argument("--exit-on-stdin-eof", action="store_true")
    args = p.parse_args()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()

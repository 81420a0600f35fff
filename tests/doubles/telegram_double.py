#!/usr/bin/env python3
"""A Telegram Bot API double for tests (test code only — never shipped).

Serves the Bot API the way api.telegram.org does (https://core.telegram.org/bots/api):

    GET|POST /bot<token>/<method>    parameters as JSON, form or query string
    GET      /file/bot<token>/<path> file downloads

Answers are {"ok":true,"result":...} or {"ok":false,"error_code":N,"description":"...",
"parameters":{"retry_after":S}} (429). A wrong token gets 401 "Unauthorized" (and a token
that is not "<digits>:<secret>" 404 "Not Found", as Telegram does). Methods: getMe,
getUpdates (long polling with offset confirmation, timeout, allowed_updates), sendMessage
(MarkdownV2 checked: an unescaped reserved character or an unbalanced entity is the real
400 "Bad Request: can't parse entities: ..."; text over 4096 UTF-16 units is
"Bad Request: message is too long"), sendChatAction, getFile, sendPhoto / sendDocument /
sendVoice / sendAudio / sendVideo (multipart uploads), and 404 "Not Found" for the rest.

Start:  python3 tests/doubles/telegram_double.py --token 123:ABC --port 0 --port-file /tmp/p

Control (for tests, not part of the Bot API):
    POST /_ctl/message   {"chat":{…}, "from":{…}, "text"?, "entities"?, "caption"?, "photo"?,
                          "document"?, "voice"?, "reply_to_message"?, "message_thread_id"?,
                          "is_topic_message"?}  → queue an update; answers {"update_id": n}
    POST /_ctl/file      {"file_id", "file_path", "content" (text)} register a downloadable file
    POST /_ctl/fail      {"method", "count", "error_code", "description", "retry_after"?}
    POST /_ctl/slow      {"chat_id", "ms"}: every sendMessage to that chat waits ms, then is
                         made and answered (made even when the client gave up waiting, so a
                         client that sends it again makes a duplicate); ms 0: off
                         the next count calls of method fail that way
    GET  /_ctl/sent      every successful send* call: [{method, params, message_id}]
    GET  /_ctl/calls     [{method, params, t}] every API call in order
    POST /_ctl/reset     forget sends, calls and failures (not the queued updates)
    GET  /_health        200
"""
import argparse
import asyncio
import json
import os
import re
import time
import urllib.parse

from aiohttp import web

BOT_ID = 7000001
BOT_USERNAME = "hermes_test_bot"


class State:
    def __init__(self, token):
        self.token = token
        self.updates = []  # unconfirmed updates, in order
        self.next_update = 1000
        self.next_message = 1
        self.files = {}  # file_id -> (file_path, bytes)
        self.fails = []  # [{"method", "count", ...}]
        self.slow = {}  # chat id (str) -> ms every sendMessage there takes
        self.sent = []
        self.calls = []
        self.cond = asyncio.Condition()


def ok(result):
    return web.json_response({"ok": True, "result": result})


def err(code, desc, retry_after=None):
    body = {"ok": False, "error_code": code, "description": desc}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return web.json_response(body, status=code, headers=headers)


def utf16_len(s):
    return len(s.encode("utf-16-le")) // 2


RESERVED = set("_*[]()~`>#+-=|{}.!")


def check_markdown_v2(text):
    """None if text is valid MarkdownV2, else the error Telegram gives."""
    i, n = 0, len(text)
    stack = []  # open entity markers
    while i < n:
        c = text[i]
        if c == "\\":
            if i + 1 >= n:
                return "can't parse entities: unexpected end of text"
            i += 2
            continue
        if text.startswith("```", i):
            end = text.find("```", i + 3)
            if end < 0:
                return f"can't parse entities: can't find end of pre entity at byte offset {i}"
            body = text[i + 3:end]
            j = 0
            while j < len(body):
                if body[j] == "\\":
                    j += 2
                    continue
                if body[j] == "`":
                    return "can't parse entities: unexpected ` in pre entity"
                j += 1
            i = end + 3
            continue
        if c == "`":
            j = i + 1
            while j < n and text[j] != "`":
                j += 2 if text[j] == "\\" else 1
            if j >= n:
                return f"can't parse entities: can't find end of code entity at byte offset {i}"
            i = j + 1
            continue
        if c == "[":
            stack.append("[")
            i += 1
            continue
        if c == "]":
            if not stack or stack[-1] != "[":
                return f"can't parse entities: character ']' is reserved and must be escaped"
            stack.pop()
            if i + 1 < n and text[i + 1] == "(":
                j = i + 2
                while j < n and text[j] != ")":
                    j += 2 if text[j] == "\\" else 1
                if j >= n:
                    return "can't parse entities: can't find end of URL"
                i = j + 1
            else:
                i += 1
            continue
        if text.startswith("__", i) or text.startswith("||", i):
            m = text[i:i + 2]
            if stack and stack[-1] == m:
                stack.pop()
            else:
                stack.append(m)
            i += 2
            continue
        if c in "*_~":
            if stack and stack[-1] == c:
                stack.pop()
            else:
                stack.append(c)
            i += 1
            continue
        if c == ">" and (i == 0 or text[i - 1] == "\n"):
            i += 1
            continue
        if c in RESERVED:
            return (f"can't parse entities: character '{c}' is reserved and must be escaped "
                    f"with the preceding '\\'")
        i += 1
    if stack:
        return f"can't parse entities: can't find end of the entity starting at {stack[-1]!r}"
    return None


async def params_of(request):
    p = dict(request.query)
    ct = request.headers.get("Content-Type", "")
    if request.method == "POST":
        if ct.startswith("application/json"):
            body = await request.read()
            if body:
                try:
                    p.update(json.loads(body))
                except ValueError:
                    return None, None
        elif ct.startswith("multipart/form-data"):
            files = {}
            reader = await request.multipart()
            async for part in reader:
                data = await part.read()
                if part.filename is not None:
                    files[part.name] = (part.filename, data)
                else:
                    p[part.name] = data.decode()
            return p, files
        elif ct.startswith("application/x-www-form-urlencoded"):
            p.update(dict(urllib.parse.parse_qsl((await request.read()).decode())))
    return p, {}


def take_fail(st, method):
    for f in st.fails:
        if f["method"] == method and f["count"] > 0:
            f["count"] -= 1
            return err(f.get("error_code", 500), f.get("description", "Internal Server Error"),
                       f.get("retry_after"))
    return None


def as_int(v):
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


async def api(request):
    st = request.app["st"]
    token = request.match_info["token"]
    method = request.match_info["method"]
    if not re.fullmatch(r"\d+:[A-Za-z0-9_-]+", token):
        return err(404, "Not Found")
    if token != st.token:
        return err(401, "Unauthorized")
    params, files = await params_of(request)
    if params is None:
        return err(400, "Bad Request: can't parse JSON")
    st.calls.append({"method": method, "params": {k: v for k, v in params.items()},
                     "t": time.monotonic()})
    f = take_fail(st, method)
    if f is not None:
        return f
    if method == "getMe":
        return ok({"id": BOT_ID, "is_bot": True, "first_name": "Hermes",
                   "username": BOT_USERNAME, "can_join_groups": True,
                   "can_read_all_group_messages": False, "supports_inline_queries": False})
    if method == "getUpdates":
        return await get_updates(st, params)
    if method == "sendMessage":
        delay = st.slow.get(str(params.get("chat_id")), 0)
        if delay:
            # shielded: the message is made after the delay even if the client hung up
            return await asyncio.shield(slow_send(st, params, delay))
        return send_message(st, params)
    if method == "sendChatAction":
        if not params.get("chat_id") or params.get("action") not in (
                "typing", "upload_photo", "record_voice", "upload_document", "upload_voice"):
            return err(400, "Bad Request: wrong parameter action in request")
        return ok(True)
    if method == "getFile":
        fid = params.get("file_id")
        if fid not in st.files:
            return err(400, "Bad Request: invalid file_id")
        path, data = st.files[fid]
        return ok({"file_id": fid, "file_unique_id": "u" + fid, "file_size": len(data),
                   "file_path": path})
    if method in ("sendPhoto", "sendDocument", "sendVoice", "sendAudio", "sendVideo"):
        field = method[4:].lower()
        if not params.get("chat_id"):
            return err(400, "Bad Request: chat_id is empty")
        if field not in files:
            return err(400, f"Bad Request: there is no {field} in the request")
        mid = st.next_message
        st.next_message += 1
        p = dict(params)
        p[field] = {"filename": files[field][0], "size": len(files[field][1])}
        st.sent.append({"method": method, "params": p, "message_id": mid})
        return ok({"message_id": mid, "date": int(time.time()),
                   "chat": {"id": as_int(params["chat_id"]), "type": "private"}})
    return err(404, "Not Found")


def send_message(st, params):
    chat = params.get("chat_id")
    text = params.get("text")
    if chat in (None, ""):
        return err(400, "Bad Request: chat_id is empty")
    if not text:
        return err(400, "Bad Request: message text is empty")
    if utf16_len(text) > 4096:
        return err(400, "Bad Request: message is too long")
    if params.get("parse_mode") == "MarkdownV2":
        e = check_markdown_v2(text)
        if e:
            return err(400, "Bad Request: " + e)
    mid = st.next_message
    st.next_message += 1
    st.sent.append({"method": "sendMessage", "params": params, "message_id": mid})
    return ok({"message_id": mid, "date": int(time.time()),
               "chat": {"id": as_int(chat), "type": "private"}, "text": text})


async def get_updates(st, params):
    offset = as_int(params.get("offset")) or 0
    timeout = as_int(params.get("timeout")) or 0
    limit = as_int(params.get("limit")) or 100
    allowed = params.get("allowed_updates")
    if isinstance(allowed, str):
        try:
            allowed = json.loads(allowed)
        except ValueError:
            allowed = None
    if offset:
        st.updates = [u for u in st.updates if u["update_id"] >= offset]

    def ready():
        return [u for u in st.updates
                if not allowed or any(k in u for k in allowed)][:limit]

    deadline = time.monotonic() + min(timeout, 50)
    async with st.cond:
        while not ready() and time.monotonic() < deadline:
            try:
                await asyncio.wait_for(st.cond.wait(), deadline - time.monotonic())
            except asyncio.TimeoutError:
                break
    return ok(ready())


async def ctl_message(request):
    st = request.app["st"]
    spec = await request.json()
    msg = {"message_id": st.next_message, "date": int(time.time())}
    st.next_message += 1
    msg.update(spec)
    upd = {"update_id": st.next_update, "message": msg}
    st.next_update += 1
    async with st.cond:
        st.updates.append(upd)
        st.cond.notify_all()
    return web.json_response({"update_id": upd["update_id"], "message_id": msg["message_id"]})


async def ctl_file(request):
    st = request.app["st"]
    spec = await request.json()
    st.files[spec["file_id"]] = (spec["file_path"], spec["content"].encode())
    return web.json_response({})


async def slow_send(st, params, delay_ms):
    await asyncio.sleep(delay_ms / 1000)
    return send_message(st, params)


async def ctl_slow(request):
    b = await request.json()
    ms = int(b.get("ms", 0))
    if ms > 0:
        request.app["st"].slow[str(b.get("chat_id"))] = ms
    else:
        request.app["st"].slow.pop(str(b.get("chat_id")), None)
    return web.json_response({"ok": True})


async def ctl_fail(request):
    request.app["st"].fails.append(await request.json())
    return web.json_response({})


async def ctl_sent(request):
    return web.json_response(request.app["st"].sent)


async def ctl_calls(request):
    return web.json_response(request.app["st"].calls)


async def ctl_reset(request):
    st = request.app["st"]
    st.sent.clear()
    st.calls.clear()
    st.fails.clear()
    return web.json_response({})


async def file_download(request):
    st = request.app["st"]
    if request.match_info["token"] != st.token:
        return err(401, "Unauthorized")
    path = request.match_info["path"]
    for fpath, data in st.files.values():
        if fpath == path:
            return web.Response(body=data, content_type="application/octet-stream")
    return err(404, "Not Found")


async def health(request):
    return web.Response(text="ok")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--token", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    a = ap.parse_args()
    app = web.Application(client_max_size=64 << 20)
    app["st"] = State(a.token)
    app.router.add_post("/_ctl/message", ctl_message)
    app.router.add_post("/_ctl/file", ctl_file)
    app.router.add_post("/_ctl/fail", ctl_fail)
    app.router.add_post("/_ctl/slow", ctl_slow)
    app.router.add_get("/_ctl/sent", ctl_sent)
    app.router.add_get("/_ctl/calls", ctl_calls)
    app.router.add_post("/_ctl/reset", ctl_reset)
    app.router.add_get("/_health", health)
    app.router.add_get("/file/bot{token}/{path:.+}", file_download)
    app.router.add_route("*", "/bot{token}/{method}", api)

    async def start():
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", a.port)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        if a.port_file:
            tmp = a.port_file + ".tmp"
            with open(tmp, "w") as f:
                f.write(str(port))
            os.replace(tmp, a.port_file)
        await asyncio.Event().wait()

    try:
        asyncio.run(start())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""A WhatsApp Cloud API (Graph API) double for tests (test code only — never shipped).

Serves the send endpoint the way graph.facebook.com does:

    POST /<version>/<phone-number-id>/messages   Authorization: Bearer <token>, JSON body
        200 {"messaging_product":"whatsapp","contacts":[{"input":to,"wa_id":to}],
             "messages":[{"id":"wamid.…"}]}
        401 {"error":{"message":"Invalid OAuth access token.","type":"OAuthException",
             "code":190,"fbtrace_id":"…"}} for a wrong token
        400 {"error":{…,"code":100}} for a body without messaging_product/to/type/text.body,
             or a text body over 4096 characters

Start:  python3 tests/doubles/whatsapp_double.py --token T --port 0 --port-file /tmp/p

Inbound media, the way the Cloud API hands it out:

    GET /<version>/<media-id>   Authorization: Bearer <token> → {"url", "mime_type",
        "sha256", "file_size", "id", "messaging_product"}; 404 {"error":{…,"code":100}} for
        an unknown id
    GET /_media/<media-id>      Authorization: Bearer <token> → the bytes (401 without it)

Outbound files: POST /<version>/<phone-number-id>/media (multipart: messaging_product,
type, file) → {"id": "up-…"}; a message of type audio / image / video / document then names
that id ({"audio": {"id": …}}); GET /_ctl/uploads lists the uploads.

Control (for tests): POST /_ctl/media {"id", "mime_type", "content"} registers a media
object (content is text; "status" makes the download answer that status instead);
GET /_ctl/media_calls lists the media requests (path, auth); GET /_ctl/sent (the accepted
message bodies, with "phone_id"); GET /_ctl/attempts (every POST .../messages that got past
the token check, failed or not: {"to", "body", "status"}); GET /_health.

Fault injection (POST /_ctl/fail), applied to the next sends (text and media messages) in
order, each answered the way the Cloud API answers it (Meta's "Error codes" reference:
{"error":{"message":"(#<code>) <title>","type","code","error_data":{"messaging_product",
"details"},"fbtrace_id"}}):

    {"count": n, "status": s}          the next n sends fail with status s and its usual code
    {"faults": [f, ...]}               one fault per send, in order; f is
        {"status": 500}                  131000 Something went wrong
        {"status": 503}                  2 Service temporarily unavailable
        {"status": 429, "retry_after": 7}  130429 Rate limit hit, Retry-After: 7 (omitted
                                         when retry_after is null; default 1)
        {"status": 400, "code": 131047}  Re-engagement message (outside the 24-hour window)
        {"status": 400, "code": 131026}  Message undeliverable
        {"status": 400, "code": 131030}  Recipient phone number not in allowed list
        {"status": 400, "code": 130429}  throttling answered 400 (as Meta sometimes does)
        {"status": 200, "no_id": true}   a 200 without messages[] (a broken answer)
        {"status": 0}                    the connection is dropped without an answer (a
                                         client may resend once on a fresh connection, as
                                         curl does after a reused one died: that resend
                                         meets the next fault)
        {"pass": true}                   this send goes through (to fail a later part)
      "code", "message", "details" override the defaults.
"""
import argparse
import asyncio
import os
import uuid

from aiohttp import web


def graph_error(status, code, msg, details=None):
    err = {"message": msg, "type": "OAuthException", "code": code,
           "fbtrace_id": uuid.uuid4().hex}
    if details is not None:
        err["error_data"] = {"messaging_product": "whatsapp", "details": details}
    return web.json_response({"error": err}, status=status)


# status or code → (code, title, details) as Meta documents them
ERRORS = {
    500: (131000, "Something went wrong",
          "Message failed to send due to an unknown error."),
    503: (2, "Service temporarily unavailable",
          "Temporary due to downtime or due to being overloaded."),
    429: (130429, "Rate limit hit",
          "Cloud API message throughput has been reached."),
    131047: (131047, "Re-engagement message",
             "Message failed to send because more than 24 hours have passed since the "
             "customer last replied to this number."),
    131026: (131026, "Message Undeliverable", "Message failed to send."),
    131030: (131030, "Recipient phone number not in allowed list",
              "Recipient phone number not in allowed list: Add recipient phone number to "
              "recipient list and try again."),
    130429: (130429, "Rate limit hit", "Cloud API message throughput has been reached."),
    100: (100, "Invalid parameter", "Invalid parameter"),
}


def fault_response(request, f):
    """The answer for one injected fault f, or None to let the send through."""
    if f.get("pass"):
        return None
    status = int(f.get("status", 500))
    if status == 0:
        request.transport.close()
        raise ConnectionResetError("fault: dropped")
    if status == 200:
        return web.json_response({"messaging_product": "whatsapp", "contacts": []})
    code, title, details = ERRORS.get(f.get("code"), ERRORS.get(status, (1, "API Unknown",
                                                                          "Unknown error")))
    code = f.get("code", code)
    resp = graph_error(status, code, f.get("message", f"(#{code}) {title}"),
                       f.get("details", details))
    ra = f.get("retry_after", 1 if status == 429 else None)
    if ra is not None:
        resp.headers["Retry-After"] = str(ra)
    return resp


async def send(request):
    st = request.app["st"]
    if request.headers.get("Authorization") != "Bearer " + st["token"]:
        return graph_error(401, 190, "Invalid OAuth access token.")
    try:
        body = await request.json()
    except ValueError:
        return graph_error(400, 100, "Invalid parameter")
    attempt = {"to": body.get("to"), "body": body, "status": 200}
    st["attempts"].append(attempt)
    if st["faults"]:
        resp = fault_response(request, st["faults"].pop(0))
        if resp is not None:
            attempt["status"] = resp.status
            return resp
    mtype = body.get("type")
    if mtype in ("audio", "image", "video", "document"):
        mid = (body.get(mtype) or {}).get("id")
        if body.get("messaging_product") != "whatsapp" or not body.get("to") or \
                mid not in st["uploads"]:
            return graph_error(400, 100, "Invalid parameter")
        body["phone_id"] = request.match_info["phone"]
        st["sent"].append(body)
        return web.json_response({"messaging_product": "whatsapp",
                                  "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                                  "messages": [{"id": "wamid." + uuid.uuid4().hex}]})
    text = (body.get("text") or {}).get("body")
    if body.get("messaging_product") != "whatsapp" or not body.get("to") or \
            mtype != "text" or not text:
        return graph_error(400, 100, "Invalid parameter")
    if len(text) > 4096:
        return graph_error(400, 100, "Param text['body'] must be at most 4096 characters long.")
    body["phone_id"] = request.match_info["phone"]
    st["sent"].append(body)
    return web.json_response({"messaging_product": "whatsapp",
                              "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                              "messages": [{"id": "wamid." + uuid.uuid4().hex}]})


async def upload(request):
    st = request.app["st"]
    if request.headers.get("Authorization") != "Bearer " + st["token"]:
        return graph_error(401, 190, "Invalid OAuth access token.")
    fields, data, filename = {}, None, None
    try:
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                break
            if part.name == "file":
                filename = part.filename
                data = await part.read(decode=False)
            else:
                fields[part.name] = await part.text()
    except Exception:
        return graph_error(400, 100, "Invalid parameter")
    if fields.get("messaging_product") != "whatsapp" or not fields.get("type") or data is None:
        return graph_error(400, 100, "Invalid parameter")
    mid = "up-" + uuid.uuid4().hex[:12]
    st["uploads"][mid] = {"type": fields["type"], "filename": filename, "size": len(data),
                          "head": data[:32].decode("latin-1")}
    return web.json_response({"id": mid})


async def ctl_uploads(request):
    return web.json_response(request.app["st"]["uploads"])


def media_authed(request):
    st = request.app["st"]
    st["media_calls"].append({"path": request.path,
                              "auth": request.headers.get("Authorization", "")})
    return request.headers.get("Authorization") == "Bearer " + st["token"]


async def media_info(request):
    st = request.app["st"]
    if not media_authed(request):
        return graph_error(401, 190, "Invalid OAuth access token.")
    mid = request.match_info["media_id"]
    m = st["media"].get(mid)
    if m is None:
        return graph_error(404, 100, "Unsupported get request.")
    host = request.headers.get("Host", "127.0.0.1")
    return web.json_response({"messaging_product": "whatsapp",
                              "url": f"http://{host}/_media/{mid}",
                              "mime_type": m["mime_type"], "sha256": "0" * 64,
                              "file_size": len(m["content"]), "id": mid})


async def media_download(request):
    st = request.app["st"]
    if not media_authed(request):
        return graph_error(401, 190, "Invalid OAuth access token.")
    m = st["media"].get(request.match_info["media_id"])
    if m is None:
        return graph_error(404, 100, "Not found")
    if m.get("status"):
        return graph_error(m["status"], 2, "Service temporarily unavailable")
    return web.Response(body=m["content"], content_type=m["mime_type"].split(";")[0])


async def ctl_media(request):
    spec = await request.json()
    request.app["st"]["media"][spec["id"]] = {"mime_type": spec.get("mime_type", "audio/ogg"),
                                              "content": spec.get("content", "").encode(),
                                              "status": spec.get("status")}
    return web.json_response({})


async def ctl_media_calls(request):
    return web.json_response(request.app["st"]["media_calls"])


async def ctl_sent(request):
    return web.json_response(request.app["st"]["sent"])


async def ctl_fail(request):
    spec = await request.json()
    if "faults" in spec:
        faults = list(spec["faults"])
    else:
        faults = [{k: v for k, v in spec.items() if k != "count"}] * int(spec.get("count", 1))
    request.app["st"]["faults"] = faults
    return web.json_response({})


async def ctl_attempts(request):
    return web.json_response(request.app["st"]["attempts"])


async def health(request):
    return web.Response(text="ok")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--token", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    a = ap.parse_args()
    app = web.Application()
    app["st"] = {"token": a.token, "sent": [], "faults": [], "attempts": [], "media": {},
                 "media_calls": [], "uploads": {}}
    app.router.add_post("/{version}/{phone}/messages", send)
    app.router.add_post("/{version}/{phone}/media", upload)
    app.router.add_get("/_ctl/uploads", ctl_uploads)
    app.router.add_get("/_ctl/sent", ctl_sent)
    app.router.add_post("/_ctl/fail", ctl_fail)
    app.router.add_get("/_ctl/attempts", ctl_attempts)
    app.router.add_post("/_ctl/media", ctl_media)
    app.router.add_get("/_ctl/media_calls", ctl_media_calls)
    app.router.add_get("/_health", health)
    app.router.add_get("/_media/{media_id}", media_download)
    app.router.add_get("/{version}/{media_id}", media_info)

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

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

Control (for tests): GET /_ctl/sent (the accepted message bodies, with "phone_id"),
POST /_ctl/fail {"count", "status"} (the next count sends fail with that status; 429 adds
Retry-After: 1), GET /_health.
"""
import argparse
import asyncio
import json
import os
import uuid

from aiohttp import web


def graph_error(status, code, msg):
    return web.json_response({"error": {"message": msg, "type": "OAuthException",
                                        "code": code, "fbtrace_id": uuid.uuid4().hex}},
                             status=status)


async def send(request):
    st = request.app["st"]
    if request.headers.get("Authorization") != "Bearer " + st["token"]:
        return graph_error(401, 190, "Invalid OAuth access token.")
    if st["fail"] and st["fail"]["count"] > 0:
        st["fail"]["count"] -= 1
        status = st["fail"]["status"]
        if status == 429:
            resp = graph_error(429, 80007, "Rate limit hit")
            resp.headers["Retry-After"] = "1"
            return resp
        return graph_error(status, 2, "Service temporarily unavailable")
    try:
        body = await request.json()
    except ValueError:
        return graph_error(400, 100, "Invalid parameter")
    text = (body.get("text") or {}).get("body")
    if body.get("messaging_product") != "whatsapp" or not body.get("to") or \
            body.get("type") != "text" or not text:
        return graph_error(400, 100, "Invalid parameter")
    if len(text) > 4096:
        return graph_error(400, 100, "Param text['body'] must be at most 4096 characters long.")
    body["phone_id"] = request.match_info["phone"]
    st["sent"].append(body)
    return web.json_response({"messaging_product": "whatsapp",
                              "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                              "messages": [{"id": "wamid." + uuid.uuid4().hex}]})


async def ctl_sent(request):
    return web.json_response(request.app["st"]["sent"])


async def ctl_fail(request):
    request.app["st"]["fail"] = await request.json()
    return web.json_response({})


async def health(request):
    return web.Response(text="ok")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--token", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    a = ap.parse_args()
    app = web.Application()
    app["st"] = {"token": a.token, "sent": [], "fail": None}
    app.router.add_post("/{version}/{phone}/messages", send)
    app.router.add_get("/_ctl/sent", ctl_sent)
    app.router.add_post("/_ctl/fail", ctl_fail)
    app.router.add_get("/_health", health)

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

#!/usr/bin/env python3
"""A scripted LLM server for tests: OpenAI-compatible chat completions and the Anthropic
Messages API, streaming (SSE) and not, with tool calls and scripted faults.

Test code only — never shipped. Start it with

    python3 tests/doubles/fake_llm.py --port 0 --port-file /tmp/p

and script it over HTTP:

    POST /_script   JSON list of response specs, appended to a FIFO queue
    GET  /_requests recorded requests [{path, headers, body}]
    POST /_reset    clear the queue and the recording
    GET  /_health   200

Each incoming completion request consumes the next spec; with an empty queue the server
answers "echo: <last user message>". A spec is a JSON object:

    content        assistant text (default "")
    reasoning      reasoning text (OpenAI: message.reasoning)
    tool_calls     [{"id"?, "name", "arguments": object-or-string}]
    finish_reason  default "tool_calls" when tool_calls else "stop"
    usage          {"prompt_tokens", "completion_tokens"} (defaults are estimates)
    status         HTTP status (default 200); with "body" the raw body is returned as is
    headers        extra response headers (e.g. {"Retry-After": "1"})
    body           raw response body (string) — used for errors and malformed JSON
    delay_ms       wait before the response headers (slow first byte)
    chunk_delay_ms wait between stream chunks
    chunks         split the content into this many stream deltas (default: by word)
    cut_after      in stream mode, drop the connection after this many SSE events
    repeat         use this spec for the next N requests (default 1)

Audio (the OpenAI audio API, for voice notes and text to speech), recorded like the rest:

    POST /v1/audio/transcriptions  multipart (model, response_format, file): the file's bytes
         decide the answer — "SAY:<text>" transcribes to <text>, "FAIL:<status>" answers that
         HTTP status with an OpenAI error body, anything else "(fake transcript of N bytes)";
         response_format "text" gives text/plain, otherwise {"text": …}. No bearer key: 401.
    POST /v1/audio/speech          JSON {model, voice, input, response_format}: an Ogg/MP3-ish
         byte string; an input containing "FAIL_TTS" gets a 500.
"""
import argparse
import asyncio
import json
import os
import sys
import time
import uuid

from aiohttp import web

QUEUE = []
REQUESTS = []


def estimate_tokens(text):
    return max(1, len(text) // 4)


def last_user_text(body):
    for m in reversed(body.get("messages", [])):
        if m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, list):
                return " ".join(p.get("text", "") for p in c if isinstance(p, dict))
            return c or ""
    return ""


def next_spec(body):
    if QUEUE:
        spec = QUEUE[0]
        left = spec.get("repeat", 1) - 1
        if left <= 0:
            QUEUE.pop(0)
        else:
            spec["repeat"] = left
        return dict(spec)
    return {"content": "echo: " + last_user_text(body)}


def norm_tool_calls(spec):
    out = []
    for i, tc in enumerate(spec.get("tool_calls") or []):
        args = tc.get("arguments", {})
        if not isinstance(args, str):
            args = json.dumps(args)
        out.append({"id": tc.get("id") or f"call_{uuid.uuid4().hex[:12]}",
                    "name": tc["name"], "arguments": args, "index": i})
    return out


def split_content(text, n):
    if not text:
        return []
    if n:
        size = max(1, (len(text) + n - 1) // n)
        return [text[i:i + size] for i in range(0, len(text), size)]
    parts, cur = [], ""
    for ch in text:
        cur += ch
        if ch == " ":
            parts.append(cur)
            cur = ""
    if cur:
        parts.append(cur)
    return parts


async def record(request):
    raw = await request.read()
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        body = {"_unparseable": raw.decode("utf-8", "replace")}
    REQUESTS.append({"path": request.path, "headers": dict(request.headers), "body": body,
                     "time": time.time()})
    return body


async def raw_or_error(request, spec):
    if "body" in spec or spec.get("status", 200) != 200:
        return web.Response(status=spec.get("status", 200), text=spec.get("body", ""),
                            headers=spec.get("headers", {}),
                            content_type="application/json")
    return None


# ----------------------------------------------------------------------- OpenAI format

def openai_message(spec):
    msg = {"role": "assistant", "content": spec.get("content", "")}
    if spec.get("reasoning"):
        msg["reasoning"] = spec["reasoning"]
    tcs = norm_tool_calls(spec)
    if tcs:
        msg["tool_calls"] = [{"id": t["id"], "type": "function",
                              "function": {"name": t["name"], "arguments": t["arguments"]}}
                             for t in tcs]
    return msg, tcs


def usage_of(spec, body):
    u = spec.get("usage") or {}
    prompt = u.get("prompt_tokens", estimate_tokens(json.dumps(body.get("messages", []))))
    comp = u.get("completion_tokens", estimate_tokens(spec.get("content", "") or "x"))
    return {"prompt_tokens": prompt, "completion_tokens": comp, "total_tokens": prompt + comp}


async def openai_chat(request):
    body = await record(request)
    spec = next_spec(body)
    if spec.get("delay_ms"):
        await asyncio.sleep(spec["delay_ms"] / 1000)
    err = await raw_or_error(request, spec)
    if err is not None:
        return err
    msg, tcs = openai_message(spec)
    finish = spec.get("finish_reason") or ("tool_calls" if tcs else "stop")
    cid = "chatcmpl-" + uuid.uuid4().hex[:16]
    model = body.get("model", "fake-model")
    if not body.get("stream"):
        return web.json_response({
            "id": cid, "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": msg, "finish_reason": finish}],
            "usage": usage_of(spec, body)}, headers=spec.get("headers", {}))

    resp = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream",
                                                   "Cache-Control": "no-cache",
                                                   **spec.get("headers", {})})
    await resp.prepare(request)
    events = []

    def chunk(delta, fin=None, usage=None):
        c = {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()),
             "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": fin}]}
        if usage:
            c["usage"] = usage
        return c

    events.append(chunk({"role": "assistant", "content": ""}))
    if spec.get("reasoning"):
        events.append(chunk({"reasoning": spec["reasoning"]}))
    for part in split_content(spec.get("content", ""), spec.get("chunks")):
        events.append(chunk({"content": part}))
    for t in tcs:
        # Name first, arguments in two pieces: clients must accumulate by index.
        a = t["arguments"]
        half = len(a) // 2
        events.append(chunk({"tool_calls": [{"index": t["index"], "id": t["id"], "type": "function",
                                             "function": {"name": t["name"], "arguments": a[:half]}}]}))
        events.append(chunk({"tool_calls": [{"index": t["index"],
                                             "function": {"arguments": a[half:]}}]}))
    events.append(chunk({}, finish, usage_of(spec, body)))
    cut = spec.get("cut_after")
    for i, ev in enumerate(events):
        if cut is not None and i >= cut:
            request.transport.close()  # abrupt: no terminating chunk, no [DONE]
            return resp
        await resp.write(("data: " + json.dumps(ev) + "\n\n").encode())
        if spec.get("chunk_delay_ms"):
            await asyncio.sleep(spec["chunk_delay_ms"] / 1000)
    await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp


async def openai_models(request):
    await record(request)
    return web.json_response({"object": "list", "data": [
        {"id": "fake-model", "object": "model", "owned_by": "tests", "context_length": 128000}]})


# -------------------------------------------------------------------- Anthropic format

async def anthropic_messages(request):
    body = await record(request)
    spec = next_spec(body)
    if spec.get("delay_ms"):
        await asyncio.sleep(spec["delay_ms"] / 1000)
    err = await raw_or_error(request, spec)
    if err is not None:
        return err
    tcs = norm_tool_calls(spec)
    content = []
    if spec.get("content"):
        content.append({"type": "text", "text": spec["content"]})
    for t in tcs:
        content.append({"type": "tool_use", "id": t["id"].replace("call_", "toolu_"),
                        "name": t["name"], "input": json.loads(t["arguments"] or "{}")})
    stop = spec.get("finish_reason") or ("tool_use" if tcs else "end_turn")
    u = usage_of(spec, body)
    usage = {"input_tokens": u["prompt_tokens"], "output_tokens": u["completion_tokens"]}
    mid = "msg_" + uuid.uuid4().hex[:16]
    model = body.get("model", "fake-model")
    if not body.get("stream"):
        return web.json_response({"id": mid, "type": "message", "role": "assistant",
                                  "model": model, "content": content, "stop_reason": stop,
                                  "usage": usage}, headers=spec.get("headers", {}))
    resp = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    events = [("message_start", {"type": "message_start", "message": {
        "id": mid, "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "usage": {"input_tokens": usage["input_tokens"], "output_tokens": 0}}})]
    idx = 0
    if spec.get("content"):
        events.append(("content_block_start", {"type": "content_block_start", "index": idx,
                                               "content_block": {"type": "text", "text": ""}}))
        for part in split_content(spec["content"], spec.get("chunks")):
            events.append(("content_block_delta", {"type": "content_block_delta", "index": idx,
                                                   "delta": {"type": "text_delta", "text": part}}))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": idx}))
        idx += 1
    for t in tcs:
        events.append(("content_block_start", {"type": "content_block_start", "index": idx,
                                               "content_block": {"type": "tool_use",
                                                                 "id": t["id"].replace("call_", "toolu_"),
                                                                 "name": t["name"], "input": {}}}))
        a = t["arguments"]
        half = len(a) // 2
        for piece in (a[:half], a[half:]):
            events.append(("content_block_delta", {"type": "content_block_delta", "index": idx,
                                                   "delta": {"type": "input_json_delta",
                                                             "partial_json": piece}}))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": idx}))
        idx += 1
    events.append(("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop},
                                     "usage": {"output_tokens": usage["output_tokens"]}}))
    events.append(("message_stop", {"type": "message_stop"}))
    cut = spec.get("cut_after")
    for i, (name, data) in enumerate(events):
        if cut is not None and i >= cut:
            request.transport.close()
            return resp
        await resp.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
        if spec.get("chunk_delay_ms"):
            await asyncio.sleep(spec["chunk_delay_ms"] / 1000)
    await resp.write_eof()
    return resp


# ------------------------------------------------------------------------------ audio

def audio_error(status, message):
    return web.json_response({"error": {"message": message, "type": "invalid_request_error"}},
                             status=status)


async def audio_transcriptions(request):
    fields = {}
    data = b""
    filename = None
    ctype = None
    try:
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                break
            if part.name == "file":
                filename = part.filename
                ctype = part.headers.get("Content-Type")
                data = await part.read(decode=False)
            else:
                fields[part.name] = (await part.text())
    except Exception as e:  # not multipart
        REQUESTS.append({"path": request.path, "headers": dict(request.headers),
                         "body": {"_error": str(e)}, "time": time.time()})
        return audio_error(400, "expected multipart/form-data")
    REQUESTS.append({"path": request.path, "headers": dict(request.headers),
                     "body": dict(fields, filename=filename, size=len(data),
                                  content_type=ctype), "time": time.time()})
    if not request.headers.get("Authorization", "").startswith("Bearer ") or \
            len(request.headers.get("Authorization", "")) <= len("Bearer "):
        return audio_error(401, "Incorrect API key provided")
    if "model" not in fields or not filename:
        return audio_error(400, "model and file are required")
    if data.startswith(b"FAIL:"):
        try:
            status = int(data[5:].split()[0])
        except (ValueError, IndexError):
            status = 500
        return audio_error(status, "scripted transcription failure")
    if data.startswith(b"SAY:"):
        transcript = data[4:].decode("utf-8", "replace").strip()
    else:
        transcript = f"(fake transcript of {len(data)} bytes)"
    if fields.get("response_format") == "text":
        return web.Response(text=transcript + "\n", content_type="text/plain")
    return web.json_response({"text": transcript})


async def audio_speech(request):
    body = await record(request)
    if not request.headers.get("Authorization", "").startswith("Bearer "):
        return audio_error(401, "Incorrect API key provided")
    text = body.get("input", "") if isinstance(body, dict) else ""
    if not text or not body.get("model") or not body.get("voice"):
        return audio_error(400, "model, voice and input are required")
    if "FAIL_TTS" in text:
        return audio_error(500, "scripted speech failure")
    fmt = body.get("response_format", "mp3")
    if fmt == "opus":
        return web.Response(body=b"OggS\x00\x02fake-opus:" + text.encode()[:200],
                            content_type="audio/ogg")
    return web.Response(body=b"ID3fake-mp3:" + text.encode()[:200], content_type="audio/mpeg")


# ----------------------------------------------------------------------------- control

async def ctl_script(request):
    specs = await request.json()
    if isinstance(specs, dict):
        specs = [specs]
    QUEUE.extend(specs)
    return web.json_response({"queued": len(QUEUE)})


async def ctl_requests(request):
    return web.json_response(REQUESTS)


async def ctl_reset(request):
    QUEUE.clear()
    REQUESTS.clear()
    return web.json_response({"ok": True})


async def ctl_health(request):
    return web.json_response({"ok": True, "queued": len(QUEUE)})


def make_app():
    app = web.Application(client_max_size=64 * 1024 * 1024)
    for prefix in ("", "/v1", "/api/v1"):
        app.router.add_post(prefix + "/chat/completions", openai_chat)
        app.router.add_get(prefix + "/models", openai_models)
    app.router.add_post("/v1/messages", anthropic_messages)
    for prefix in ("", "/v1"):
        app.router.add_post(prefix + "/audio/transcriptions", audio_transcriptions)
        app.router.add_post(prefix + "/audio/speech", audio_speech)
    app.router.add_post("/_script", ctl_script)
    app.router.add_get("/_requests", ctl_requests)
    app.router.add_post("/_reset", ctl_reset)
    app.router.add_get("/_health", ctl_health)
    return app


async def main_async(args):
    runner = web.AppRunner(make_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(port))
        os.rename(tmp, args.port_file)
    print(f"fake_llm listening on 127.0.0.1:{port}", file=sys.stderr, flush=True)
    while True:
        await asyncio.sleep(3600)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    args = ap.parse_args()
    try:
        asyncio.run(main_async(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

"""End-to-end: the real `hermes gateway run` with the Telegram adapter against the Bot API
double (tests/doubles/telegram_double.py) and the scripted LLM.

    HERMES_BIN=build/hermes python3 -m pytest -q tests/e2e/test_telegram.py
"""
import json
import os
import signal
import subprocess
import sys
import urllib.request

import pytest

from conftest import DOUBLES, _wait_for, hermes_env
from harness import stop_process

TOKEN = "123456:ABC-test-token"
USER = 424242
OTHER = 515151
BOT = 7000001


class Double:
    def __init__(self, tmp):
        port_file = os.path.join(tmp, "tg.port")
        self.log = open(os.path.join(tmp, "tg.log"), "w")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(DOUBLES, "telegram_double.py"), "--token", TOKEN,
             "--port", "0", "--port-file", port_file],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.port = int(_wait_for(
            lambda: os.path.exists(port_file) and open(port_file).read().strip(),
            what="telegram double port file"))
        self.url = f"http://127.0.0.1:{self.port}"

    def _post(self, path, body):
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"},
                                     method="POST")
        return json.loads(urllib.request.urlopen(req, timeout=5).read())

    def _get(self, path):
        return json.loads(urllib.request.urlopen(self.url + path, timeout=5).read())

    def dm(self, text, user=USER, **extra):
        m = {"chat": {"id": user, "type": "private", "first_name": "Ann"},
             "from": {"id": user, "is_bot": False, "first_name": "Ann", "username": "ann"}}
        if text is not None:
            m["text"] = text
        m.update(extra)
        return self._post("/_ctl/message", m)

    def group(self, text, user=USER, entities=None, **extra):
        m = {"chat": {"id": -100777, "type": "supergroup", "title": "Team"},
             "from": {"id": user, "is_bot": False, "first_name": "Ann"}, "text": text}
        if entities:
            m["entities"] = entities
        m.update(extra)
        return self._post("/_ctl/message", m)

    def fail(self, method, count, code, desc, retry_after=None):
        spec = {"method": method, "count": count, "error_code": code, "description": desc}
        if retry_after is not None:
            spec["retry_after"] = retry_after
        self._post("/_ctl/fail", spec)

    def file(self, file_id, path, content):
        self._post("/_ctl/file", {"file_id": file_id, "file_path": path, "content": content})

    def sent(self):
        return self._get("/_ctl/sent")

    def calls(self, method=None):
        c = self._get("/_ctl/calls")
        return [x for x in c if method is None or x["method"] == method]

    def texts(self, chat=USER):
        return [s["params"]["text"] for s in self.sent()
                if s["method"] == "sendMessage" and int(s["params"]["chat_id"]) == chat]

    def stop(self):
        stop_process(self.proc, self.log)


@pytest.fixture
def tg(tmp_path):
    d = Double(str(tmp_path))
    yield d
    d.stop()


class Gateway:
    def __init__(self, hermes_bin, home, env):
        self.log_path = home / "gateway.out"
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen([hermes_bin, "gateway", "run"], env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def output(self):
        return self.log_path.read_text()

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def tg_env(home, llm, tg, **extra):
    env = dict(TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_API_BASE=tg.url,
               TELEGRAM_ALLOWED_USERS=f"{USER},{OTHER}", TELEGRAM_HOME_CHANNEL=str(USER))
    env.update(extra)
    return hermes_env(home, llm, **env)


def start(hermes_bin, home, llm, tg, **extra):
    g = Gateway(hermes_bin, home, tg_env(home, llm, tg, **extra))
    _wait_for(lambda: tg.calls("getUpdates") or g.proc.poll() is not None, timeout=20,
              what="the first getUpdates")
    assert g.proc.poll() is None, g.output()[-3000:]
    return g


def reply_to(tg, text, chat=USER, timeout=20):
    # MarkdownV2 escapes are removed before comparing
    return _wait_for(lambda: [t for t in tg.texts(chat) if text in t.replace("\\", "")],
                     timeout=timeout,
                     what=f"a reply containing {text!r}: {tg.texts(chat)}")


def test_dm_answered_with_markdown_and_typing(hermes_bin, llm, home, tg):
    g = start(hermes_bin, home, llm, tg)
    try:
        llm.script([{"content": "**Done.** See `x_y` (v1.2) - ok!"}])
        up = tg.dm("hello bot")
        reply_to(tg, "Done")
        s = [x for x in tg.sent() if x["method"] == "sendMessage"][0]
        assert s["params"]["parse_mode"] == "MarkdownV2"
        assert s["params"]["text"] == "*Done\\.* See `x_y` \\(v1\\.2\\) \\- ok\\!"
        assert int(s["params"]["reply_to_message_id"]) == up["message_id"]
        assert tg.calls("sendChatAction"), "typing was never shown"
        # the LLM saw the user's text
        body = json.loads(llm.requests()[-1]["body"]) if isinstance(
            llm.requests()[-1]["body"], str) else llm.requests()[-1]["body"]
        assert "hello bot" in json.dumps(body)
    finally:
        g.stop()


def test_group_needs_a_mention_or_a_reply(hermes_bin, llm, home, tg):
    g = start(hermes_bin, home, llm, tg)
    try:
        tg.group("just chatting")
        tg.group("@hermes_test_bot what time is it",
                 entities=[{"type": "mention", "offset": 0, "length": 16}])
        reply_to(tg, "echo: @hermes_test_bot what time is it", chat=-100777)
        tg.group("and this?", reply_to_message={
            "message_id": 1, "date": 0, "chat": {"id": -100777, "type": "supergroup"},
            "from": {"id": BOT, "is_bot": True, "first_name": "Hermes"}, "text": "hi"})
        reply_to(tg, "echo: and this?", chat=-100777)
        # updates are handed over in order and the same user's turns run in order, so had
        # "just chatting" been accepted, the model would have seen it by now
        assert "just chatting" not in json.dumps(llm.requests())
        assert not [t for t in tg.texts(-100777) if "just chatting" in t]
    finally:
        g.stop()


def test_updates_sent_while_down_are_answered_once(hermes_bin, llm, home, tg):
    g = start(hermes_bin, home, llm, tg)
    tg.dm("first")
    reply_to(tg, "echo: first")
    g.stop()
    state = home / "platforms" / "telegram" / "state.json"
    assert state.exists()
    assert oct(state.stat().st_mode & 0o777) == "0o600"
    tg.dm("while you were away")
    g = start(hermes_bin, home, llm, tg)
    try:
        reply_to(tg, "echo: while you were away")
        tg.dm("after")
        reply_to(tg, "echo: after")
        texts = tg.texts()
        assert sum("echo: first" in t for t in texts) == 1, texts
        assert sum("while you were away" in t for t in texts) == 1, texts
    finally:
        g.stop()


def test_429_retry_after_is_honoured(hermes_bin, llm, home, tg):
    g = start(hermes_bin, home, llm, tg)
    try:
        tg.fail("sendMessage", 1, 429, "Too Many Requests: retry after 2", retry_after=2)
        tg.dm("rate me")
        reply_to(tg, "echo: rate me")
        sends = tg.calls("sendMessage")
        assert len(sends) == 2, sends  # the refused one and one retry: no storm
        assert sends[1]["t"] - sends[0]["t"] >= 1.9
    finally:
        g.stop()


def test_markdown_refused_falls_back_to_plain_text(hermes_bin, llm, home, tg):
    g = start(hermes_bin, home, llm, tg)
    try:
        tg.fail("sendMessage", 1, 400, "Bad Request: can't parse entities: boom")
        llm.script([{"content": "plain *please*"}])
        tg.dm("fmt")
        reply_to(tg, "plain *please*")
        last = tg.calls("sendMessage")[-1]["params"]
        assert "parse_mode" not in last
    finally:
        g.stop()


def test_long_reply_is_split(hermes_bin, llm, home, tg):
    g = start(hermes_bin, home, llm, tg)
    try:
        long = " ".join(f"word{i}." for i in range(1500))  # ~11000 chars, escaping grows it
        llm.script([{"content": long}])
        tg.dm("long please")
        _wait_for(lambda: "word1499." in "".join(tg.texts()).replace("\\", ""),
                  what="the last part")
        parts = tg.texts()
        assert len(parts) >= 3
        assert all(len(p.encode("utf-16-le")) // 2 <= 4096 for p in parts)
        joined = "".join(parts).replace("\\", "")
        assert "word0." in joined and "word1499." in joined
    finally:
        g.stop()


def test_photo_is_downloaded_into_the_cache(hermes_bin, llm, home, tg):
    g = start(hermes_bin, home, llm, tg)
    try:
        tg.file("PHOTO1", "photos/file_1.jpg", "JPEGDATA")
        tg.dm(None, caption="look", photo=[
            {"file_id": "PHOTO0", "file_unique_id": "a", "width": 90, "height": 90},
            {"file_id": "PHOTO1", "file_unique_id": "b", "width": 800, "height": 800}])
        # the gateway describes the photo for the model (gw_media.c): the original's note
        # naming the cached file, then the caption
        r = reply_to(tg, "look")[0].replace("\\", "")
        assert r.startswith("echo: [The user sent an image but I couldn't quite see it"), r
        files = list((home / "cache" / "telegram").iterdir())
        assert str(files[0]) in r and r.endswith("\n\nlook"), r
        assert len(files) == 1 and files[0].read_bytes() == b"JPEGDATA"
        assert [c for c in tg.calls("getFile") if c["params"]["file_id"] == "PHOTO1"]
    finally:
        g.stop()


def test_bad_token_is_reported(hermes_bin, llm, home, tg):
    env = tg_env(home, llm, tg, TELEGRAM_BOT_TOKEN="999:WRONG-token")
    g = Gateway(hermes_bin, home, env)
    try:
        _wait_for(lambda: "Telegram rejected the bot token" in g.output(), timeout=20,
                  what="the bad token message")
        assert "TELEGRAM_BOT_TOKEN" in g.output()
        assert not tg.calls("getUpdates")
        assert "WRONG-token" not in g.output()
    finally:
        g.stop()


def test_shutdown_notice_is_delivered_before_the_adapter_stops(hermes_bin, llm, home, tg):
    # the turn outlasts the drain, so the gateway interrupts it with a notice just before the
    # adapters are stopped: the notice must still go out
    g = start(hermes_bin, home, llm, tg, HERMES_RESTART_DRAIN_TIMEOUT="1")
    try:
        llm.script([{"content": "slow answer", "delay_ms": 8000}])
        tg.dm("take your time")
        _wait_for(lambda: llm.requests(), what="the model to be asked")
        g.proc.send_signal(signal.SIGTERM)
        g.proc.wait(30)
        texts = [t.replace("\\", "") for t in tg.texts()]
        assert any("shutting down" in t for t in texts), texts
    finally:
        g.stop()


def test_tricky_markdown_is_sent_as_valid_markdown_v2(hermes_bin, llm, home, tg):
    g = start(hermes_bin, home, llm, tg)
    try:
        md = ("# Plan (v2.0)\n- step_one: *quick* **bold _mix_** ~~old~~ `a_b*c` 50% off!\n"
              "> note: [docs](https://example.com/a_b?x=1) *a*_b_\n```python\nx = {'k': 1}\n```")
        llm.script([{"content": md}])
        tg.dm("format me")
        reply_to(tg, "Plan")
        calls = tg.calls("sendMessage")
        assert len(calls) == 1, calls  # accepted at once: no 400, no plain-text fallback
        assert calls[0]["params"]["parse_mode"] == "MarkdownV2"
    finally:
        g.stop()

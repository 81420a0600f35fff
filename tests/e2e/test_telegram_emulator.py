"""End-to-end, second opinion: the real `hermes gateway run` with the Telegram adapter against
telegram-test-api (https://github.com/jehy/telegram-test-api, a third-party Bot API emulator
on npm) instead of our own double (tests/doubles/telegram_double.py), and the scripted LLM.

The emulator is installed on first use into a cache outside the repository
($HERMES_TEST_CACHE, default ~/.cache/hermes-tests) with `npm install telegram-test-api@4.2.1`
(pinned; nothing else is fetched) and started on 127.0.0.1. Without node/npm, or when the
install fails (no registry), the tests are skipped LOUDLY (a "*** ... SKIPPED" line on stderr
and pytest's skip reason), never passed silently.

What the emulator offers and what it does not (its README and lib/): the bot side has getMe
(username TestNameBot), getUpdates (returns at once: no long poll, no offset — every update
is handed out once), sendMessage, editMessageText, deleteMessage and webhooks; any other
method (sendChatAction, getFile, …) answers HTTP 500 {"message": "API method … is not
supported"}. The client side is a plain HTTP API: POST /sendMessage (a message with its
botToken), POST /getUpdates {token, chatId} (the bot's unread messages to that chat), POST
/getUpdatesHistory {token}. Chats may be private or groups.

    HERMES_BIN=build/hermes python3 -m pytest -q tests/e2e/test_telegram_emulator.py
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import _wait_for, hermes_env
from harness import stop_process

PKG = "telegram-test-api"
VERSION = "4.2.1"
TOKEN = "123456:ABC-emulator-token"
USER = 424242
GROUP = -100555
BOT_USERNAME = "TestNameBot"  # the emulator's getMe

SERVER_JS = r"""
const TelegramServer = require(process.argv[1]);
const server = new TelegramServer({port: Number(process.argv[2]), host: '127.0.0.1',
                                   storeTimeout: 600});
server.start().then(() => { console.log('listening ' + server.config.apiURL); });
process.on('SIGTERM', () => { server.stop().then(() => process.exit(0)); });
"""


_config = None  # pytest's config, for writing past its output capture
_skip_reason = None  # the first test's reason, for the others without trying again


def loud_skip(reason):
    global _skip_reason
    _skip_reason = reason
    line = f"\n*** test_telegram_emulator SKIPPED: {reason}\n"
    capman = _config.pluginmanager.getplugin("capturemanager") if _config else None
    if capman is not None:
        with capman.global_and_fixture_disabled():  # to the terminal, not the capture
            sys.stderr.write(line)
            sys.stderr.flush()
    else:
        sys.stderr.write(line)
        sys.stderr.flush()
    pytest.skip(reason)


def cache_dir():
    base = os.environ.get("HERMES_TEST_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "hermes-tests")
    return os.path.join(base, f"{PKG}-{VERSION}")


def installed(prefix):
    try:
        with open(os.path.join(prefix, "node_modules", PKG, "package.json")) as f:
            return json.load(f).get("version") == VERSION
    except (OSError, ValueError):
        return False


def ensure_emulator():
    """The package's directory, installing it into the cache if missing; skips loudly."""
    if _skip_reason:
        loud_skip(_skip_reason)
    node, npm = shutil.which("node") or shutil.which("nodejs"), shutil.which("npm")
    if not node or not npm:
        loud_skip("node and npm are needed for the telegram-test-api emulator "
                  "(apt-get install nodejs npm)")
    prefix = cache_dir()
    if not installed(prefix):
        os.makedirs(prefix, exist_ok=True)
        try:
            r = subprocess.run([npm, "install", "--prefix", prefix, "--no-audit", "--no-fund",
                                "--ignore-scripts", "--no-save", f"{PKG}@{VERSION}"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300,
                               text=True)
            out = r.stdout
            ok = r.returncode == 0
        except subprocess.TimeoutExpired:
            out, ok = "timed out after 300 s", False
        if not ok or not installed(prefix):
            loud_skip(f"npm install {PKG}@{VERSION} into {prefix} failed: "
                      f"{out.strip()[-500:]}")
    return node, os.path.join(prefix, "node_modules", PKG)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Emulator:
    def __init__(self, tmp):
        node, pkg = ensure_emulator()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = os.path.join(tmp, "emulator.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([node, "-e", SERVER_JS, pkg, str(self.port)],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        _wait_for(lambda: self.proc.poll() is not None or "listening" in self.output(),
                  timeout=30, what="the emulator to listen")
        assert self.proc.poll() is None, self.output()
        self.seen = {}  # chat id → the bot's messages fetched so far

    def output(self):
        with open(self.log_path) as f:
            return f.read()

    def post(self, path, body):
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"},
                                     method="POST")
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read())

    def user_says(self, text, chat_id=USER, chat_type="private", entities=None):
        """What the emulator's TelegramClient.makeMessage + sendMessage do."""
        m = {"botToken": TOKEN, "date": int(time.time()), "text": text,
             "from": {"id": USER, "first_name": "Ann", "username": "ann", "is_bot": False},
             "chat": {"id": chat_id, "type": chat_type, "first_name": "Ann",
                      "title": "Team" if chat_type != "private" else "Ann"}}
        if entities:
            m["entities"] = entities
        return self.post("/sendMessage", m)

    def bot_messages(self, chat_id=USER):
        """The bot's messages to chat_id (the client's getUpdates hands each out once)."""
        got = self.post("/getUpdates", {"token": TOKEN, "chatId": chat_id}).get("result") or []
        self.seen.setdefault(chat_id, []).extend(got)
        return self.seen[chat_id]

    def texts(self, chat_id=USER):
        return [u["message"].get("text", "") for u in self.bot_messages(chat_id)]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        stop_process(self.proc, self.log)


@pytest.fixture
def emulator(tmp_path, pytestconfig):
    global _config
    _config = pytestconfig
    e = Emulator(str(tmp_path))
    yield e
    e.stop()


class Gateway:
    def __init__(self, hermes_bin, home, env):
        self.log_path = home / "gateway.out"
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen([hermes_bin, "gateway", "run"], env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def output(self):
        return self.log_path.read_text()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def start_gateway(hermes_bin, llm, home, emulator):
    env = hermes_env(home, llm, TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_API_BASE=emulator.url,
                     TELEGRAM_ALLOWED_USERS=str(USER), TELEGRAM_HOME_CHANNEL=str(USER))
    return Gateway(hermes_bin, home, env)


def echoed(texts, said):
    # the reply is MarkdownV2-escaped: compare without the backslashes
    return [t for t in texts if t.replace("\\", "") == f"echo: {said}"]


def test_a_message_through_the_emulator_is_answered(hermes_bin, llm, home, emulator):
    g = start_gateway(hermes_bin, llm, home, emulator)
    try:
        emulator.user_says("hello emulator")
        _wait_for(lambda: g.proc.poll() is not None or
                  echoed(emulator.texts(), "hello emulator"),
                  timeout=30, what=f"the bot's answer in the emulator: {emulator.seen}")
        assert g.proc.poll() is None, g.output()[-3000:]
        assert len(echoed(emulator.texts(), "hello emulator")) == 1
        assert "hello emulator" in json.dumps(llm.requests())
        reply = echoed_update(emulator, "hello emulator")
        assert int(reply["message"]["chat_id"]) == USER
    finally:
        g.stop()


def echoed_update(emulator, said):
    for u in emulator.bot_messages(USER):
        if u["message"].get("text", "").replace("\\", "") == f"echo: {said}":
            return u
    raise AssertionError(f"no answer to {said!r}")


def test_a_group_message_needs_a_mention(hermes_bin, llm, home, emulator):
    g = start_gateway(hermes_bin, llm, home, emulator)
    try:
        emulator.user_says("nobody asked the bot", chat_id=GROUP, chat_type="group")
        said = f"@{BOT_USERNAME} what now"
        emulator.user_says(said, chat_id=GROUP, chat_type="group",
                           entities=[{"type": "mention", "offset": 0,
                                      "length": len(BOT_USERNAME) + 1}])
        # updates are handled in order: once the mention is answered, the message before it
        # was seen and ignored
        _wait_for(lambda: g.proc.poll() is not None or
                  [t for t in emulator.texts(GROUP) if "what now" in t],
                  timeout=30, what=f"the answer to the mention: {emulator.seen}")
        assert g.proc.poll() is None, g.output()[-3000:]
        asked = json.dumps(llm.requests())
        assert "what now" in asked
        assert "nobody asked the bot" not in asked
        assert not [t for t in emulator.texts(GROUP) if "nobody asked" in t]
    finally:
        g.stop()

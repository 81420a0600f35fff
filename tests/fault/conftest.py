"""Fixtures of the fault suite (label "fault"): the built hermes binary, a private
HERMES_HOME, the scripted LLM with per-chat faults (fault_llm.py, built on
tests/doubles/fake_llm.py), the Mattermost server double, and `hermes gateway run` as users
run it.

Every scenario counts answers the same way: each message a person sends carries a unique
token, the LLM's default answer repeats every user message of the turn (fault_llm.py), so
"answered exactly once" means the token is in exactly one of the bot's posts.

Run through ctest (which sets HERMES_BIN), or by hand:
    HERMES_BIN=build/hermes /usr/bin/python3 -m pytest -q tests/fault
"""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
DOUBLES = os.path.join(HERE, "..", "doubles")
sys.path.insert(0, DOUBLES)
import harness  # noqa: E402  (tests/doubles/harness.py, shared with tests/e2e)
from harness import stop_process, wait_for  # noqa: E402
MM_TOKEN = "mm-fault-token-0123456789abc"


def skip_loudly(who, reason):
    sys.stderr.write(f"\n*** {who} SKIPPED: {reason}\n")
    pytest.skip(f"{who}: {reason}")


@pytest.fixture(scope="session")
def hermes_bin():
    b = os.environ.get("HERMES_BIN")
    if not b or not os.access(b, os.X_OK):
        pytest.fail("HERMES_BIN must name the built hermes binary")
    return b


class FaultLLM:
    def __init__(self, tmp):
        port_file = os.path.join(tmp, "fault_llm.port")
        self.log = open(os.path.join(tmp, "fault_llm.log"), "w")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "fault_llm.py"), "--port", "0",
             "--port-file", port_file], stdout=self.log, stderr=subprocess.STDOUT)
        self.port = int(wait_for(
            lambda: os.path.exists(port_file) and open(port_file).read().strip(),
            what="fault_llm port file"))
        self.url = f"http://127.0.0.1:{self.port}"

    def _post(self, path, body):
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                     method="POST")
        return json.loads(urllib.request.urlopen(req, timeout=5).read())

    def rule(self, match, specs):
        self._post("/_rules", {"match": match, "specs": specs})

    def rules(self):
        return json.loads(urllib.request.urlopen(self.url + "/_rules", timeout=5).read())

    def script(self, specs):
        self._post("/_script", specs)

    def requests(self):
        return json.loads(urllib.request.urlopen(self.url + "/_requests", timeout=5).read())

    def stt_delay(self, ms):
        """Every transcription request waits ms first (fault_llm.py /_stt_delay)."""
        self._post("/_stt_delay", {"ms": ms})

    def stt_started(self):
        return json.loads(urllib.request.urlopen(self.url + "/_stt_delay",
                                                 timeout=5).read())["started"]

    def reset(self):
        self._post("/_reset", {})

    def stop(self):
        stop_process(self.proc, self.log)


@pytest.fixture(scope="session")
def fault_llm(tmp_path_factory):
    f = FaultLLM(str(tmp_path_factory.mktemp("llm")))
    yield f
    f.stop()


@pytest.fixture
def llm(fault_llm):
    fault_llm.reset()
    return fault_llm


@pytest.fixture
def home(tmp_path):
    h = tmp_path / "hermes-home"
    h.mkdir()
    return h


SANITIZER_REPORTS = ("WARNING: ThreadSanitizer", "ERROR: AddressSanitizer",
                     "ERROR: LeakSanitizer", "runtime error:")


def hermes_env(home, llm=None, **extra):
    """harness.hermes_env, without bundled skills and with the gateway lock beside home."""
    base = {"HERMES_BUNDLED_SKILLS": "", "HERMES_GATEWAY_LOCK_DIR": str(home.parent / "locks")}
    base.update(extra)
    return harness.hermes_env(home, llm, **base)


class MMDouble(harness.MMDouble):
    def __init__(self, tmp):
        super().__init__(tmp, MM_TOKEN)


@pytest.fixture
def mm(tmp_path):
    d = MMDouble(str(tmp_path))
    yield d
    d.stop()


# The chats a Mattermost scenario keeps busy: three DMs and a channel with a mention.
MM_CHATS = [("dm_alice", "alice", ""), ("dm_bob", "bob", ""), ("dm_carol", "carol", ""),
            ("town", "bob", "@hermes ")]


def mm_env(home, llm, mm, **extra):
    return hermes_env(home, llm, MATTERMOST_URL=mm.url + "/", MATTERMOST_TOKEN=MM_TOKEN,
                      MATTERMOST_ALLOWED_USERS=mm.user_ids("alice", "bob", "carol"),
                      MATTERMOST_HOME_CHANNEL=mm.world["channels"]["town"]["id"], **extra)


class Gateway:
    """`hermes gateway run` with its output in a file outside HERMES_HOME."""

    def __init__(self, hermes_bin, home, env, log_path=None):
        self.log_path = log_path or (home.parent / "gateway.out")
        self.log = open(self.log_path, "a")
        self.log.write(f"===== gateway start {time.strftime('%H:%M:%S')}\n")
        self.log.flush()
        self.proc = subprocess.Popen([hermes_bin, "gateway", "run"], env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def output(self):
        return self.log_path.read_text(errors="replace")

    def alive(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"gateway exited ({self.proc.returncode}): " +
                                 self.output()[-3000:])
        return True

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.log.closed:
            self.log.close()
        out = self.output()
        bad = [r for r in SANITIZER_REPORTS if r in out]
        assert not bad, f"sanitizer report in {self.log_path}: " + out[out.index(bad[0]):][:3000]


def mm_gateway(hermes_bin, home, llm, mm, n_ws=1, log_path=None, **extra):
    g = Gateway(hermes_bin, home, mm_env(home, llm, mm, **extra), log_path=log_path)
    wait_for(lambda: g.alive() and mm.ws_authenticated() >= n_ws, timeout=30,
             what="the gateway's Mattermost WebSocket")
    return g


class Ledger:
    """Tokens sent per chat, and the check that each is answered exactly once."""

    def __init__(self, prefix):
        self.prefix = prefix
        self.n = 0
        self.sent = {}  # chat -> [token]

    def token(self, chat):
        self.n += 1
        t = f"{self.prefix}{self.n:03d}x"
        self.sent.setdefault(chat, []).append(t)
        return t

    def tokens(self):
        return [t for ts in self.sent.values() for t in ts]

    def missing(self, replies_of):
        """Tokens not yet in any reply of their chat; replies_of(chat) -> [text]."""
        out = []
        for chat, toks in self.sent.items():
            texts = replies_of(chat)
            out += [t for t in toks if not any(t in x for x in texts)]
        return out

    def check_once(self, replies_of):
        """Every token in exactly one reply of its own chat, and in no other chat."""
        problems = []
        all_replies = {c: replies_of(c) for c in self.sent}
        for chat, toks in self.sent.items():
            for t in toks:
                n = sum(x.count(t) for x in all_replies[chat])
                if n != 1:
                    problems.append(f"{t} in {chat}: answered {n} times")
                for other, texts in all_replies.items():
                    if other != chat and any(t in x for x in texts):
                        problems.append(f"{t} of {chat} answered in {other}")
        assert not problems, "\n".join(problems) + "\n" + json.dumps(all_replies, indent=1)

"""`hermes gateway run` with Mattermost as users run it: the real binary against the Mattermost
server double (tests/doubles/mattermost_double.py) and the scripted LLM. A DM is answered, a
channel message without a mention is not, one with a mention is answered in its thread
(MATTERMOST_REPLY_MODE=thread), and a server restart in the middle loses nothing and answers
nothing twice."""
import json
import signal
import subprocess
import time

import pytest

import harness  # tests/doubles/harness.py (conftest puts it on the path)
from conftest import _wait_for, hermes_env

TOKEN = "mm-e2e-token-0123456789abcd"


class MMDouble(harness.MMDouble):
    def __init__(self, tmp):
        super().__init__(tmp, TOKEN)


@pytest.fixture
def mm(tmp_path):
    d = MMDouble(str(tmp_path))
    yield d
    d.stop()


class MMGateway:
    def __init__(self, hermes_bin, home, env, mm):
        self.log_path = home / "gateway.out"
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen([hermes_bin, "gateway", "run"], env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.mm = mm
        _wait_for(self.connected, timeout=30, what="the gateway's Mattermost WebSocket")

    def alive(self):
        if self.proc.poll() is not None:
            raise AssertionError("gateway exited: " + self.log_path.read_text()[-3000:])
        return True

    def connected(self, n=1):
        return self.alive() and self.mm.ws_authenticated() >= n

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


@pytest.fixture
def gateway(hermes_bin, llm, home, mm):
    alice = mm.world["users"]["alice"]["id"]
    bob = mm.world["users"]["bob"]["id"]
    env = hermes_env(home, llm, MATTERMOST_URL=mm.url + "/", MATTERMOST_TOKEN=TOKEN,
                     MATTERMOST_ALLOWED_USERS=f"{alice},{bob}",
                     MATTERMOST_REPLY_MODE="thread",
                     MATTERMOST_HOME_CHANNEL=mm.world["channels"]["town"]["id"])
    g = MMGateway(hermes_bin, home, env, mm)
    yield g
    g.stop()


def test_dm_mention_thread_and_an_outage(gateway, mm, llm):
    # a DM is answered, in a thread under the message (reply mode thread)
    dm = mm.say("dm_alice", "alice", "hello hermes")
    posts = mm.wait_bot_posts("dm_alice", 1)
    assert "hello hermes" in posts[0]["message"]
    assert posts[0]["root_id"] == dm["id"]

    # a channel message without a mention gets nothing; with one, an answer in its thread
    mm.say("town", "alice", "just chatting, no bot here")
    asked = mm.say("town", "bob", "@hermes what do you think?")
    posts = mm.wait_bot_posts("town", 1)
    assert "what do you think?" in posts[0]["message"]
    assert "just chatting" not in posts[0]["message"]
    assert posts[0]["root_id"] == asked["id"]

    # a reply inside that thread is answered in the same thread (root, not the reply)
    follow = mm.say("town", "bob", "@hermes and then?", root_id=asked["id"])
    posts = mm.wait_bot_posts("town", 2)
    assert posts[1]["root_id"] == asked["id"] != follow["id"]

    # the server restarts; what is written meanwhile is answered once it is back
    mm.post("/_test/down", {})
    mm.say("dm_alice", "alice", "written during the outage")
    mm.say("town", "bob", "@hermes also during the outage")
    time.sleep(0.5)  # the outage itself (real time: the gateway's clock)
    mm.post("/_test/up", {})
    _wait_for(lambda: gateway.connected(2), timeout=30, what="the reconnect")
    dm_posts = mm.wait_bot_posts("dm_alice", 2, timeout=60)
    town_posts = mm.wait_bot_posts("town", 3, timeout=60)
    assert "written during the outage" in dm_posts[1]["message"]
    assert "also during the outage" in town_posts[2]["message"]

    # nothing twice: a message after the reconnect in each chat is the only new answer (a
    # chat's replies leave in order, so a duplicate would have come before it)
    mm.say("dm_alice", "alice", "and now?")
    mm.say("town", "bob", "@hermes and now?")
    dm_posts = mm.wait_bot_posts("dm_alice", 3)
    town_posts = mm.wait_bot_posts("town", 4)
    assert "and now?" in dm_posts[2]["message"] and "and now?" in town_posts[3]["message"]
    assert len(mm.bot_posts("dm_alice")) == 3
    assert len(mm.bot_posts("town")) == 4
    # the unmentioned message was never sent to the model
    assert not any("just chatting" in json.dumps(r.get("body", ""))
                   for r in llm.requests())
    assert "Failed to authenticate" not in gateway.output()


def test_a_bad_token_is_reported(hermes_bin, llm, home, mm):
    env = hermes_env(home, llm, MATTERMOST_URL=mm.url, MATTERMOST_TOKEN="not-the-token",
                     MATTERMOST_ALLOWED_USERS=mm.world["users"]["alice"]["id"])
    log_path = home / "gateway.out"
    with open(log_path, "a") as log:
        proc = subprocess.Popen([hermes_bin, "gateway", "run"], env=env, stdout=log,
                                stderr=subprocess.STDOUT)
        try:
            _wait_for(lambda: "Failed to authenticate" in log_path.read_text(), timeout=20,
                      what="the authentication error")
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    text = log_path.read_text()
    assert "check MATTERMOST_TOKEN and MATTERMOST_URL" in text
    assert "not-the-token" not in text

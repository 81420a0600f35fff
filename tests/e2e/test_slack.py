"""`hermes gateway run` with the Slack adapter against the Slack double
(tests/doubles/slack_double.py: Web API + Socket Mode) and the scripted LLM."""
import json
import signal
import subprocess

import pytest

from conftest import _wait_for, hermes_env
import harness

BOT = "xoxb-test-bot-token"
APP = "xapp-test-app-token"


class SlackDouble(harness.Double):
    def __init__(self, tmp):
        super().__init__(tmp, "slack_double.py")

    def event(self, **ev):
        return self.call("/_test/event", {"event": ev})

    def posts(self, needle):
        return [p for p in self.state()["posts"] if needle in p["text"]]


@pytest.fixture
def slack(tmp_path):
    d = SlackDouble(str(tmp_path))
    yield d
    d.stop()


class Gateway:
    def __init__(self, hermes_bin, home, env):
        self.log_path = home / "gateway.out"
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen([hermes_bin, "gateway", "run"], env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def output(self):
        return self.log_path.read_text(errors="replace")

    def alive(self):
        if self.proc.poll() is not None:
            raise AssertionError("gateway exited: " + self.output()[-2000:])
        return True

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def slack_env(home, llm, slack, **extra):
    base = {"SLACK_BOT_TOKEN": BOT, "SLACK_APP_TOKEN": APP,
            "SLACK_API_BASE": slack.url + "/api", "SLACK_ALLOWED_USERS": "UALICE"}
    base.update(extra)
    return hermes_env(home, llm, **base)


@pytest.fixture
def gateway(hermes_bin, llm, home, slack):
    g = Gateway(hermes_bin, home, slack_env(home, llm, slack, SLACK_HOME_CHANNEL="C0HOME"))
    _wait_for(lambda: g.alive() and slack.state()["open"] == 1, timeout=20,
              what="the Socket Mode connection")
    yield g
    g.stop()


def test_dm_is_answered_by_the_agent(gateway, slack, llm):
    r = slack.event(type="message", channel="D1", channel_type="im", user="UALICE",
                    text="hello from slack")
    p = _wait_for(lambda: slack.posts("echo: hello from slack"), timeout=30,
                  what="the agent's reply")[0]
    assert p["channel"] == "D1"
    st = slack.state()
    acks = [a for a in st["acks"] if a["envelope_id"] == r["envelope_id"]]
    assert acks and acks[0]["delay_ms"] < 3000
    assert any(c["method"] == "reactions.add" and c["args"].get("name") == "eyes"
               for c in st["calls"])


def test_channel_mention_is_answered_in_a_thread(gateway, slack):
    slack.event(type="message", channel="C1", channel_type="channel", user="UALICE",
                ts="1700000100.000001", text="just chatting")
    slack.event(type="app_mention", channel="C1", user="UALICE", ts="1700000100.000002",
                text="<@UBOT> **what** is up")
    # shared channel sessions name the speaker (users.info's display name):
    # "echo: [alice] *what* is up" (mrkdwn bold)
    p = _wait_for(lambda: slack.posts("*what* is up"), timeout=30,
                  what="the reply to the mention")[0]
    assert p["text"].startswith("echo: [alice] ")
    assert p["thread_ts"] == "1700000100.000002"
    assert not slack.posts("just chatting")


def test_a_redelivered_event_is_answered_once(gateway, slack):
    r = slack.event(type="message", channel="D1", channel_type="im", user="UALICE",
                    ts="1700000200.000001", text="only once please")
    slack.call("/_test/resend", {"envelope_id": r["envelope_id"]})
    slack.call("/_test/event", {"event": {"type": "message", "channel": "D1",
                                          "channel_type": "im", "user": "UALICE",
                                          "ts": "1700000200.000001",
                                          "text": "only once please"},
                                "retry_attempt": 1})
    _wait_for(lambda: slack.posts("echo: only once please"), timeout=30, what="the reply")
    slack.event(type="message", channel="D1", channel_type="im", user="UALICE",
                text="marker")
    _wait_for(lambda: slack.posts("echo: marker"), timeout=30, what="the marker reply")
    assert len(slack.posts("echo: only once please")) == 1


def test_disconnect_reconnects(gateway, slack):
    slack.call("/_test/disconnect", {"reason": "refresh_requested"})
    _wait_for(lambda: slack.state()["connections"] == 2 and slack.state()["open"] == 1,
              timeout=20, what="the new connection")
    slack.event(type="message", channel="D1", channel_type="im", user="UALICE",
                text="after the refresh")
    _wait_for(lambda: slack.posts("echo: after the refresh"), timeout=30, what="the reply")


def test_a_stranger_is_not_given_to_the_agent(gateway, slack, llm):
    slack.event(type="message", channel="D9", channel_type="im", user="UMALLORY",
                text="let me in")
    slack.event(type="message", channel="D1", channel_type="im", user="UALICE",
                text="marker two")
    _wait_for(lambda: slack.posts("echo: marker two"), timeout=30, what="the marker reply")
    assert not slack.posts("echo: let me in")
    assert all("let me in" not in json.dumps(r["body"]) for r in llm.requests())


def test_a_bad_bot_token_is_reported(hermes_bin, llm, home, slack):
    env = slack_env(home, llm, slack, SLACK_BOT_TOKEN="xoxb-wrong")
    g = Gateway(hermes_bin, home, env)
    try:
        _wait_for(lambda: "authentication failed (invalid_auth)" in g.output(), timeout=20,
                  what="the error")
        assert "check SLACK_BOT_TOKEN" in g.output()
        assert slack.state()["connections"] == 0
    finally:
        g.stop()


def test_a_missing_app_token_is_reported(hermes_bin, llm, home, slack):
    env = slack_env(home, llm, slack, SLACK_APP_TOKEN=None)
    g = Gateway(hermes_bin, home, env)
    try:
        _wait_for(lambda: "SLACK_APP_TOKEN not set" in g.output(), timeout=20,
                  what="the error")
    finally:
        g.stop()


def post(slack, **ev):
    """A message posted in Slack: into the history, live only when Socket Mode is up."""
    return slack.call("/_test/post", {"event": ev})


def start_gateway(hermes_bin, home, llm, slack):
    g = Gateway(hermes_bin, home, slack_env(home, llm, slack))
    conns = slack.state()["connections"]
    _wait_for(lambda: g.alive() and slack.state()["open"] == 1
              and slack.state()["connections"] > conns, timeout=20,
              what="the Socket Mode connection")
    return g


def test_a_restart_loses_nothing_and_answers_nothing_twice(hermes_bin, llm, home, slack):
    # two DMs (two sessions: a second message to a busy session would interrupt the first)
    g = start_gateway(hermes_bin, home, llm, slack)
    try:
        for ch in ("D1", "D2"):
            assert post(slack, channel=ch, channel_type="im", user="UALICE",
                        text="before the restart in " + ch)["delivered"]
            _wait_for(lambda: slack.posts("echo: before the restart in " + ch), timeout=30,
                      what="the first reply")
    finally:
        g.stop()
    state = home / "platforms" / "slack" / "state.json"
    assert state.exists()
    assert (state.stat().st_mode & 0o777) == 0o600
    for ch in ("D1", "D2"):
        assert not post(slack, channel=ch, channel_type="im", user="UALICE",
                        text="while down in " + ch)["delivered"]
    g = start_gateway(hermes_bin, home, llm, slack)
    try:
        for ch in ("D1", "D2"):
            _wait_for(lambda: slack.posts("echo: while down in " + ch), timeout=30,
                      what="the message sent while down")
        _wait_for(lambda: "Slack: caught up" in g.output(), timeout=30, what="the catch-up")
    finally:
        g.stop()
    # the positions lost: history hands every message again; the gateway's durable seen set
    # still answers each once
    saved = json.loads(state.read_text())
    for c in saved["conversations"]:
        c["last_ts"] = "1.000000"
    state.write_text(json.dumps(saved))
    g = start_gateway(hermes_bin, home, llm, slack)
    try:
        _wait_for(lambda: g.output().count("Slack: caught up") >= 2, timeout=30,
                  what="the second catch-up")
        assert post(slack, channel="D1", channel_type="im", user="UALICE",
                    text="marker")["delivered"]
        _wait_for(lambda: slack.posts("echo: marker"), timeout=30, what="the marker reply")
        for ch in ("D1", "D2"):
            for text in ("before the restart in ", "while down in "):
                assert len(slack.posts("echo: " + text + ch)) == 1, text + ch
    finally:
        g.stop()


def test_a_socket_mode_outage_is_caught_up(gateway, slack):
    assert post(slack, channel="D1", channel_type="im", user="UALICE",
                text="before the drop")["delivered"]
    _wait_for(lambda: slack.posts("echo: before the drop"), timeout=30, what="the reply")
    slack.call("/_test/drop", {})
    _wait_for(lambda: slack.state()["open"] == 0, timeout=10, what="the drop")
    assert not post(slack, channel="D1", channel_type="im", user="UALICE",
                    text="during the drop")["delivered"]
    _wait_for(lambda: slack.state()["connections"] >= 2 and slack.state()["open"] == 1,
              timeout=30, what="the reconnection")
    _wait_for(lambda: slack.posts("echo: during the drop"), timeout=30,
              what="the message sent during the drop")
    assert len(slack.posts("echo: before the drop")) == 1
    assert any(c["method"] == "conversations.history" for c in slack.state()["calls"])

"""`hermes gateway run` with the Discord adapter against the Discord double
(tests/doubles/discord_double.py: Gateway WebSocket + REST v10) and the scripted LLM."""
import json
import signal
import subprocess

import pytest

from conftest import _wait_for, hermes_env
import harness

TOKEN = "test-discord-token"
BOT_ID = "100000000000000001"


class DiscordDouble(harness.Double):
    def __init__(self, tmp):
        super().__init__(tmp, "discord_double.py")

    def message(self, **m):
        return self.call("/_test/message", m)

    def posts(self, needle):
        return [p for p in self.state()["posts"] if needle in p["content"]]


@pytest.fixture
def discord(tmp_path):
    d = DiscordDouble(str(tmp_path))
    d.call("/_test/config", {"heartbeat_interval": 400})
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


def discord_env(home, llm, d, **extra):
    base = {"DISCORD_BOT_TOKEN": TOKEN, "DISCORD_API_BASE": d.url + "/api/v10",
            "DISCORD_ALLOWED_USERS": "400"}
    base.update(extra)
    return hermes_env(home, llm, **base)


@pytest.fixture
def gateway(hermes_bin, llm, home, discord):
    g = Gateway(hermes_bin, home, discord_env(home, llm, discord))
    _wait_for(lambda: g.alive() and len(discord.state()["identifies"]) == 1
              and "connected to the gateway" in g.output(), timeout=20,
              what="the Discord session")
    yield g
    g.stop()


def test_dm_is_answered_with_typing(gateway, discord):
    discord.message(channel_id="500", author_id="400", content="hello from discord")
    p = _wait_for(lambda: discord.posts("echo: hello from discord"), timeout=30,
                  what="the agent's reply")[0]
    assert p["channel_id"] == "500"
    assert discord.state()["typing"], "the typing indicator was never shown"


def test_guild_mention_starts_a_thread_and_the_thread_keeps_its_session(gateway, discord, llm):
    discord.message(channel_id="600", guild_id="300", author_id="400", content="no mention")
    r = discord.message(channel_id="600", guild_id="300", author_id="400",
                        content=f"<@{BOT_ID}> with mention", mentions=[BOT_ID])
    p = _wait_for(lambda: discord.posts("with mention"), timeout=30, what="the reply")[0]
    st = discord.state()
    assert [t["id"] for t in st["threads"]] == [r["id"]]  # started from the message
    assert st["threads"][0]["parent_id"] == "600"
    assert st["threads"][0]["name"] == "with mention"
    assert p["channel_id"] == r["id"]  # answered in the thread
    assert not discord.posts("no mention")
    # a follow-up in the thread: no mention needed, the same session (the agent sees the
    # first exchange in its history)
    discord.message(channel_id=r["id"], guild_id="300", author_id="400",
                    content="second in the thread")
    p2 = _wait_for(lambda: discord.posts("second in the thread"), timeout=30,
                   what="the follow-up's reply")[0]
    assert p2["channel_id"] == r["id"]
    assert len(discord.state()["threads"]) == 1
    last = llm.requests()[-1]["body"]
    assert "with mention" in json.dumps(last["messages"])


def test_guild_mention_is_a_reply_without_auto_thread(hermes_bin, llm, home, discord):
    g = Gateway(hermes_bin, home, discord_env(home, llm, discord, DISCORD_AUTO_THREAD="false"))
    try:
        _wait_for(lambda: g.alive() and "connected to the gateway" in g.output(), timeout=20,
                  what="the session")
        r = discord.message(channel_id="600", guild_id="300", author_id="400",
                            content=f"<@{BOT_ID}> with mention", mentions=[BOT_ID])
        p = _wait_for(lambda: discord.posts("with mention"), timeout=30, what="the reply")[0]
        assert p["reply_to"] == r["id"]
        assert p["channel_id"] == "600"
        assert not discord.state()["threads"]
    finally:
        g.stop()


def test_a_zombie_connection_is_resumed_without_losing_messages(gateway, discord):
    discord.call("/_test/config", {"mute_acks": True})
    _wait_for(lambda: len(discord.state()["resumes"]) >= 1, timeout=20, what="the resume")
    discord.call("/_test/config", {"mute_acks": False})
    st = discord.state()
    assert len(st["identifies"]) == 1
    discord.message(channel_id="500", author_id="400", content="after the resume")
    _wait_for(lambda: discord.posts("echo: after the resume"), timeout=30, what="the reply")
    assert "no heartbeat ACK" in gateway.output()


def test_long_answers_are_split_and_buckets_respected(hermes_bin, llm, home, discord):
    discord.call("/_test/config", {"limit": 2, "reset_after": 1.0})
    long = " ".join(["word%04d" % i for i in range(600)])  # ~5400 characters
    llm.script([{"content": long}])
    g = Gateway(hermes_bin, home, discord_env(home, llm, discord))
    try:
        _wait_for(lambda: g.alive() and "connected to the gateway" in g.output(), timeout=20,
                  what="the session")
        discord.message(channel_id="500", author_id="400", content="tell me a lot")
        _wait_for(lambda: len(discord.posts("word")) >= 3, timeout=30, what="all the parts")
        st = discord.state()
        parts = [p for p in st["posts"] if "word" in p["content"]]
        assert all(len(p["content"]) <= 2000 for p in parts)
        assert "word0599" in parts[-1]["content"]
        assert st["rejected"] == 0, "a request was sent into an empty bucket"
    finally:
        g.stop()


def test_a_bad_token_is_reported(hermes_bin, llm, home, discord):
    g = Gateway(hermes_bin, home, discord_env(home, llm, discord, DISCORD_BOT_TOKEN="nope"))
    try:
        _wait_for(lambda: "the bot token was refused (401 Unauthorized)" in g.output(),
                  timeout=20, what="the error")
        assert discord.state()["connections"] == 0
    finally:
        g.stop()


def test_the_message_content_intent_missing_is_reported(hermes_bin, llm, home, discord):
    discord.call("/_test/config", {"message_content_enabled": False})
    g = Gateway(hermes_bin, home, discord_env(home, llm, discord))
    try:
        _wait_for(lambda: "Message Content Intent" in g.output(), timeout=20, what="the error")
        assert "4014" in g.output()
    finally:
        g.stop()


def test_a_gateway_restart_catches_up_what_was_posted_meanwhile(hermes_bin, llm, home, discord):
    env = discord_env(home, llm, discord)
    g = Gateway(hermes_bin, home, env)
    try:
        _wait_for(lambda: g.alive() and "connected to the gateway" in g.output(), timeout=20,
                  what="the first session")
        discord.message(channel_id="500", author_id="400", content="before the restart")
        r = discord.message(channel_id="600", guild_id="300", author_id="400",
                            content=f"<@{BOT_ID}> first mention", mentions=[BOT_ID])
        _wait_for(lambda: discord.posts("echo: before the restart")
                  and discord.posts("first mention"), timeout=30, what="the first replies")
    finally:
        g.stop()
    state = home / "platforms" / "discord" / "state.json"
    assert state.exists(), "the positions were not written"
    assert oct(state.stat().st_mode & 0o777) == "0o600"
    _wait_for(lambda: discord.state()["open"] == 0, timeout=10, what="the socket closed")
    # posted while no gateway runs: Discord will not replay them to a new session
    dm = discord.message(channel_id="500", author_id="400", content="sent while down")
    mention = discord.message(channel_id="600", guild_id="300", author_id="400",
                              content=f"<@{BOT_ID}> mention while down", mentions=[BOT_ID])
    follow = discord.message(channel_id=r["id"], guild_id="300", author_id="400",
                             content="thread reply while down")
    g2 = Gateway(hermes_bin, home, env)
    try:
        _wait_for(lambda: g2.alive() and len(discord.state()["identifies"]) == 2,
                  timeout=20, what="the second session")
        _wait_for(lambda: discord.posts("echo: sent while down")
                  and discord.posts("mention while down")
                  and discord.posts("thread reply while down"), timeout=30,
                  what="the caught-up replies")
        _wait_for(lambda: all(x["status"] is not None for x in discord.state()["history_reads"]),
                  timeout=10, what="catching up to finish")
        st = discord.state()
        assert len(st["resumes"]) == 0  # a new session: only the history had them
        assert len(discord.posts("echo: sent while down")) == 1
        assert len(discord.posts("mention while down")) == 1
        assert len(discord.posts("thread reply while down")) == 1
        assert len(discord.posts("echo: before the restart")) == 1  # not answered again
        assert len(discord.posts("first mention")) == 1
        assert discord.posts("echo: sent while down")[0]["channel_id"] == "500"
        assert discord.posts("thread reply while down")[0]["channel_id"] == r["id"]
        # the mention got its own thread, started from the caught-up message
        assert any(t["id"] == mention["id"] for t in st["threads"])
        assert "catching up on" in g2.output()
        assert dm["id"] and follow["id"]
    finally:
        g2.stop()

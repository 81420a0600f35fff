"""`hermes gateway run` on Matrix against the real Synapse (../shared/peers/synapse), with
Debian's matrix-nio playing the person and the scripted LLM (tests/doubles/fake_llm.py)
behind the bot:

  * a user DMs the bot and gets the answer (👀 then ✅ on the message);
  * in a room, a message that mentions the bot is answered in a thread rooted at it, a
    follow-up in that thread needs no mention; a message without a mention gets no answer;
  * messages sent while the gateway is down are answered exactly once after a restart (the
    persisted since token).

Synapse is started by the peers' start.sh when it is not running (and stopped again at the
end if this module started it). When it cannot be installed or started the tests are
skipped with the reason, loudly: they never pass silently.
"""
import asyncio
import json
import secrets
import signal
import subprocess

import pytest

from conftest import _wait_for, hermes_env
from synapse_peer import HS, http, need_nio, register, running

@pytest.fixture(scope="module")
def synapse():
    need_nio("test_matrix_synapse")
    yield from running("test_matrix_synapse")


class Person:
    """A Matrix user driven through matrix-nio's AsyncClient on a private event loop."""

    def __init__(self, user_id, token):
        import nio
        self.nio = nio
        self.loop = asyncio.new_event_loop()
        self.user_id = user_id
        self.c = nio.AsyncClient(HS, user_id)
        self.c.access_token = token
        self.c.user_id = user_id
        self.c.device_id = "PERSON"
        self.run(self.c.sync(timeout=0))

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def dm(self, bot):
        r = self.run(self.c.room_create(is_direct=True, invite=[bot],
                                        preset=self.nio.RoomPreset.trusted_private_chat))
        assert isinstance(r, self.nio.RoomCreateResponse), r
        return r.room_id

    def room(self, bot, name):
        r = self.run(self.c.room_create(name=name, invite=[bot]))
        assert isinstance(r, self.nio.RoomCreateResponse), r
        return r.room_id

    def say(self, room, content):
        if isinstance(content, str):
            content = {"msgtype": "m.text", "body": content}
        r = self.run(self.c.room_send(room, "m.room.message", content))
        assert isinstance(r, self.nio.RoomSendResponse), r
        return r.event_id

    def events(self, room):
        """Every event of the room, oldest first (raw dicts from /messages)."""
        r = self.run(self.c.room_messages(room, start="", limit=200,
                                          direction=self.nio.MessageDirection.back))
        assert isinstance(r, self.nio.RoomMessagesResponse), r
        return [e.source for e in reversed(r.chunk)]

    def bot_messages(self, room, bot):
        return [e for e in self.events(room)
                if e.get("sender") == bot and e.get("type") == "m.room.message"]

    def wait_joined(self, room, bot, timeout=20):
        def joined():
            r = self.run(self.c.joined_members(room))
            return isinstance(r, self.nio.JoinedMembersResponse) and \
                any(m.user_id == bot for m in r.members)
        _wait_for(joined, timeout=timeout, what=f"{bot} to join {room}")

    def close(self):
        self.run(self.c.close())
        self.loop.close()


class Gateway:
    def __init__(self, hermes_bin, home, env):
        self.log_path = home / "gateway.out"
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen([hermes_bin, "gateway", "run"], env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.connected = 0

    def text(self):
        return self.log_path.read_text(errors="replace")

    def wait_connected(self, n=1):
        def ok():
            if self.proc.poll() is not None:
                raise AssertionError("gateway exited: " + self.text()[-3000:])
            return self.text().count("Matrix: connected as") >= n
        _wait_for(ok, timeout=30, what="the Matrix adapter to connect")

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
def world(synapse):
    tag = secrets.token_hex(4)
    bot, bot_token, _ = register(f"hermes{tag}")
    alice_id, alice_token, _ = register(f"alice{tag}")
    alice = Person(alice_id, alice_token)
    yield {"bot": bot, "bot_token": bot_token, "alice": alice}
    alice.close()


def matrix_env(home, llm, w, **extra):
    return hermes_env(home, llm, MATRIX_HOMESERVER=HS, MATRIX_ACCESS_TOKEN=w["bot_token"],
                      MATRIX_ALLOWED_USERS=w["alice"].user_id, HERMES_LOG_LEVEL="debug",
                      HERMES_LOG_DEBUG="matrix", **extra)


@pytest.fixture
def gateway(hermes_bin, llm, home, world):
    g = Gateway(hermes_bin, home, matrix_env(home, llm, world))
    g.wait_connected()
    yield g
    g.stop()


def bodies(msgs):
    return [m["content"].get("body") for m in msgs]


def test_dm_is_answered(gateway, world, llm):
    alice, bot = world["alice"], world["bot"]
    room = alice.dm(bot)
    alice.wait_joined(room, bot)
    ev = alice.say(room, "hello from a DM")
    msgs = _wait_for(lambda: [m for m in alice.bot_messages(room, bot)
                              if m["content"].get("body") == "echo: hello from a DM"],
                     timeout=30, what="the bot's answer in the DM")
    assert msgs[0]["content"]["msgtype"] == "m.text"
    assert "m.relates_to" not in msgs[0]["content"] or \
        msgs[0]["content"]["m.relates_to"].get("rel_type") != "m.thread"  # DMs: no thread
    # 👀 was redacted, ✅ stays on the message, after the answer
    def done():
        evs = alice.events(room)
        keys = [(i, e["content"]["m.relates_to"]["key"]) for i, e in enumerate(evs)
                if e.get("type") == "m.reaction" and e.get("sender") == bot
                and e["content"].get("m.relates_to", {}).get("event_id") == ev]
        ok = [i for i, k in keys if k == "\u2705"]
        answer = [i for i, e in enumerate(evs) if e["event_id"] == msgs[0]["event_id"]]
        return ok and answer and (ok[0], answer[0])
    ok_at, answer_at = _wait_for(done, timeout=15, what="the ✅ reaction")
    assert ok_at > answer_at, "✅ came before the answer"
    assert not any(e.get("type") == "m.reaction" and e["content"].get("m.relates_to", {})
                   .get("key") == "\U0001f440" for e in alice.events(room)), "👀 left behind"


def test_room_mention_answered_in_thread_and_no_mention_ignored(gateway, world, llm):
    alice, bot = world["alice"], world["bot"]
    room = alice.room(bot, "e2e town")
    alice.wait_joined(room, bot)
    # a third member so the room is not taken for a DM (2 members)
    third_id, third_token, _ = register(f"carol{secrets.token_hex(3)}")
    http("POST", f"/_matrix/client/v3/rooms/{room}/invite", {"user_id": third_id},
         token=alice.c.access_token)
    http("POST", f"/_matrix/client/v3/join/{room}", {}, token=third_token)
    alice.say(room, "just chatting among humans")
    ev = alice.say(room, {"msgtype": "m.text", "body": f"{bot} what is up?",
                          "m.mentions": {"user_ids": [bot]}})
    # (in shared rooms the gateway prefixes the sender's name: "[alice…] what is up?")
    msgs = _wait_for(lambda: [m for m in alice.bot_messages(room, bot)
                              if m["content"].get("body", "").startswith("echo: ")],
                     timeout=30, what="the bot's answer in the room")
    assert len(msgs) == 1, bodies(alice.bot_messages(room, bot))
    assert msgs[0]["content"]["body"].endswith("] what is up?"), msgs[0]["content"]["body"]
    rel = msgs[0]["content"]["m.relates_to"]
    assert rel["rel_type"] == "m.thread" and rel["event_id"] == ev
    # in the thread the bot answered in, no mention is needed
    alice.say(room, {"msgtype": "m.text", "body": "and in the thread?",
                     "m.relates_to": {"rel_type": "m.thread", "event_id": ev,
                                      "is_falling_back": True,
                                      "m.in_reply_to": {"event_id": msgs[0]["event_id"]}}})
    more = _wait_for(lambda: [m for m in alice.bot_messages(room, bot)
                              if m["content"].get("body", "").endswith("] and in the thread?")],
                     timeout=30, what="the bot's answer in the thread")
    assert more[0]["content"]["m.relates_to"]["event_id"] == ev
    # the unmentioned message never reached the LLM
    prompts = json.dumps(llm.requests())
    assert "just chatting among humans" not in prompts
    assert "what is up?" in prompts


def test_messages_sent_while_down_are_answered_once(hermes_bin, llm, home, world):
    alice, bot = world["alice"], world["bot"]
    g = Gateway(hermes_bin, home, matrix_env(home, llm, world))
    try:
        g.wait_connected()
        room = alice.dm(bot)
        alice.wait_joined(room, bot)
        alice.say(room, "first")
        _wait_for(lambda: "echo: first" in bodies(alice.bot_messages(room, bot)), timeout=30,
                  what="the first answer")
    finally:
        g.stop()
    alice.say(room, "sent while you were away")
    g = Gateway(hermes_bin, home, matrix_env(home, llm, world))
    try:
        g.wait_connected(2)
        _wait_for(lambda: "echo: sent while you were away" in
                  bodies(alice.bot_messages(room, bot)), timeout=30,
                  what="the answer to the message sent while the gateway was down")
        alice.say(room, "and now")
        _wait_for(lambda: "echo: and now" in bodies(alice.bot_messages(room, bot)),
                  timeout=30, what="the next answer")
        b = bodies(alice.bot_messages(room, bot))
        assert b.count("echo: first") == 1 and b.count("echo: sent while you were away") == 1, b
    finally:
        g.stop()

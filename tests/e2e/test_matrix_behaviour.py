"""Every row of the seed's Matrix behaviour tables (../shared/seeds/000_*, 001_*: "How Hermes
Behaves", the session model, the mention/threading settings, reactions, auto-join, the home
room, MSC3245 voice messages, MATRIX_ALLOWED_USERS), end to end: `hermes gateway run`
against the real Synapse of ../shared/peers (started by synapse_peer.running when needed,
skipped loudly when it cannot run), people played by Debian's matrix-nio, the scripted LLM
(tests/doubles/fake_llm.py) behind the bot.

One gateway per group of settings (module fixtures), several people and rooms per gateway:

  * `default_gw`  the defaults, plus MATRIX_FREE_RESPONSE_ROOMS (one room), MATRIX_HOME_ROOM,
                  speech to text and OpenAI TTS pointed at the scripted LLM;
  * `custom_gw`   MATRIX_REQUIRE_MENTION=false, MATRIX_AUTO_THREAD=false,
                  MATRIX_DM_MENTION_THREADS=true, MATRIX_REACTIONS=false;
  * `shared_gw`   config.yaml only: group_sessions_per_user: false, and the matrix:
                  section's require_mention: false, auto_thread: false;
  * and, inside their tests, one with no MATRIX_ALLOWED_USERS at all and one with a bad
    access token.

Every person and room is fresh (random user names: other tests may share this Synapse).
The people's Synapse rate limits are lifted (synapse_peer.no_ratelimit): Synapse 1.160's
rc_room_creation, which the peer's homeserver.yaml does not raise, would otherwise make
every room after the tenth one person creates wait a minute.

The quick-follow-up batching is turned off (HERMES_MATRIX_TEXT_BATCH_DELAY_SECONDS=0) so
each message is one turn; a message that must NOT be answered is always followed by one that
must, from the same room, and the test waits for that answer (the adapter keeps a room's
order) before asserting that the first never reached the LLM: no fixed sleeps.

Rows the product does not honour yet are xfail(strict=True) with the diagnosis.
"""
import json
import os
import secrets
import signal
import struct
import subprocess

import pytest

from conftest import _wait_for, hermes_env
from synapse_peer import HS, http, need_nio, no_ratelimit, register, running

EYES, CHECK, CROSS = "\U0001f440", "\u2705", "\u274c"


def wait(pred, what, timeout=30):
    """Poll pred (which talks to Synapse or the LLM double) every 0.15 s up to timeout."""
    return _wait_for(pred, timeout=timeout, what=what, every=0.15)


# ------------------------------------------------------------------ people and bots

@pytest.fixture(scope="module")
def synapse():
    need_nio("test_matrix_behaviour")
    yield from running("test_matrix_behaviour")


class Person:
    """A Matrix user driven through matrix-nio's AsyncClient on a private event loop."""

    def __init__(self, name):
        import asyncio
        import nio
        self.nio = nio
        self.user_id, self.token, _ = register(f"{name}{secrets.token_hex(4)}")
        no_ratelimit(self.user_id)  # Synapse's rc_room_creation: these people make many rooms
        self.loop = asyncio.new_event_loop()
        self.c = nio.AsyncClient(HS, self.user_id)
        self.c.access_token = self.token
        self.c.user_id = self.user_id
        self.c.device_id = "PERSON"

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def dm(self, bot):
        r = self.run(self.c.room_create(is_direct=True, invite=[bot],
                                        preset=self.nio.RoomPreset.trusted_private_chat))
        assert isinstance(r, self.nio.RoomCreateResponse), r
        return r.room_id

    def group(self, name, bot=None, others=()):
        """A room with others joined (so it is never taken for a DM) and bot invited."""
        r = self.run(self.c.room_create(name=name, invite=[p.user_id for p in others]))
        assert isinstance(r, self.nio.RoomCreateResponse), r
        for p in others:
            http("POST", f"/_matrix/client/v3/join/{r.room_id}", {}, token=p.token)
        if bot:
            self.invite(r.room_id, bot)
        return r.room_id

    def invite(self, room, user):
        http("POST", f"/_matrix/client/v3/rooms/{room}/invite", {"user_id": user},
             token=self.token)

    def say(self, room, body, mention=None, thread=None, **extra):
        """Send text (or a full content dict); mention: the bot to name in m.mentions and
        the body; thread: the root event id of the thread to post in."""
        content = body if isinstance(body, dict) else {"msgtype": "m.text", "body": body}
        if mention:
            content["body"] = f"{mention} {content['body']}"
            content["m.mentions"] = {"user_ids": [mention]}
        if thread:
            content["m.relates_to"] = {"rel_type": "m.thread", "event_id": thread,
                                       "is_falling_back": True,
                                       "m.in_reply_to": {"event_id": thread}}
        content.update(extra)
        r = self.run(self.c.room_send(room, "m.room.message", content))
        assert isinstance(r, self.nio.RoomSendResponse), r
        return r.event_id

    def upload(self, data, mime, filename):
        up, _ = self.run(self.c.upload(lambda *_: data, content_type=mime, filename=filename,
                                       filesize=len(data)))
        assert isinstance(up, self.nio.UploadResponse), up
        return up.content_uri

    def events(self, room):
        """Every event of the room, oldest first (raw dicts from /messages)."""
        r = self.run(self.c.room_messages(room, start="", limit=300,
                                          direction=self.nio.MessageDirection.back))
        assert isinstance(r, self.nio.RoomMessagesResponse), r
        return [e.source for e in reversed(r.chunk)]

    def from_bot(self, room, bot, type_="m.room.message"):
        return [e for e in self.events(room) if e.get("sender") == bot and e.get("type") == type_]

    def reply(self, room, bot, token, timeout=30):
        """The bot's (first) message in room whose body contains token."""
        def got():
            m = [e for e in self.from_bot(room, bot) if token in e["content"].get("body", "")]
            return m and m[0]
        return wait(got, f"the bot's answer carrying {token!r} in {room}", timeout)

    def wait_joined(self, room, user, timeout=30):
        def joined():
            r = self.run(self.c.joined_members(room))
            return isinstance(r, self.nio.JoinedMembersResponse) and \
                any(m.user_id == user for m in r.members)
        wait(joined, f"{user} to join {room}", timeout)

    def close(self):
        self.run(self.c.close())
        self.loop.close()


@pytest.fixture(scope="module")
def people(synapse):
    ps = {n: Person(n) for n in ("alice", "bob", "carol")}
    yield ps
    for p in ps.values():
        p.close()


class Gateway:
    """`hermes gateway run` for a fresh bot user, in its own HERMES_HOME."""

    def __init__(self, hermes_bin, llm, root, allowed, config_yaml=None, **env):
        self.bot, token, _ = register(f"hermes{secrets.token_hex(4)}")
        self.token = token
        self.home = root / "hermes-home"
        self.home.mkdir()
        if config_yaml:
            (self.home / "config.yaml").write_text(config_yaml)
        e = dict(MATRIX_HOMESERVER=HS, MATRIX_ACCESS_TOKEN=token, HERMES_LOG_LEVEL="debug",
                 HERMES_LOG_DEBUG="matrix", HERMES_MATRIX_TEXT_BATCH_DELAY_SECONDS="0")
        if allowed:
            e["MATRIX_ALLOWED_USERS"] = ",".join(p.user_id for p in allowed)
        e.update(env)
        self.env = hermes_env(self.home, llm, **e)
        self.hermes_bin = hermes_bin
        self.proc = None

    def start(self):
        self.log_path = self.home / "gateway.out"
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen([self.hermes_bin, "gateway", "run"], env=self.env,
                                     stdout=self.log, stderr=subprocess.STDOUT)

        def ok():
            if self.proc.poll() is not None:
                raise AssertionError("gateway exited: " + self.text()[-3000:])
            return "Matrix: connected as" in self.text()
        _wait_for(ok, timeout=30, what="the Matrix adapter to connect")
        return self

    def text(self):
        return self.log_path.read_text(errors="replace")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log.close()


@pytest.fixture(scope="module")
def default_gw(hermes_bin, fake_llm, people, tmp_path_factory):
    """Defaults, plus one free-response room and a home room (both must exist before the
    gateway reads its settings), speech to text and OpenAI TTS on the scripted LLM."""
    alice, bob = people["alice"], people["bob"]
    g = Gateway(hermes_bin, fake_llm, tmp_path_factory.mktemp("gw-default"), [alice, bob],
                config_yaml="tts:\n  provider: openai\n",
                STT_OPENAI_BASE_URL=fake_llm.url + "/v1", VOICE_TOOLS_OPENAI_KEY="sk-voice-123",
                TTS_OPENAI_BASE_URL=fake_llm.url + "/v1")
    g.room = alice.group("behaviour room", g.bot, [bob])
    g.free = alice.group("free room", g.bot, [bob])
    g.homeroom = alice.group("home room", g.bot, [bob])
    g.env["MATRIX_FREE_RESPONSE_ROOMS"] = g.free
    g.env["MATRIX_HOME_ROOM"] = g.homeroom
    g.start()
    for room in (g.room, g.free, g.homeroom):
        alice.wait_joined(room, g.bot)
    yield g
    g.stop()


@pytest.fixture(scope="module")
def custom_gw(hermes_bin, fake_llm, people, tmp_path_factory):
    alice, bob = people["alice"], people["bob"]
    g = Gateway(hermes_bin, fake_llm, tmp_path_factory.mktemp("gw-custom"), [alice, bob],
                MATRIX_REQUIRE_MENTION="false", MATRIX_AUTO_THREAD="false",
                MATRIX_DM_MENTION_THREADS="true", MATRIX_REACTIONS="false").start()
    g.room = alice.group("custom room", g.bot, [bob])
    alice.wait_joined(g.room, g.bot)
    yield g
    g.stop()


@pytest.fixture(scope="module")
def shared_gw(hermes_bin, fake_llm, people, tmp_path_factory):
    alice, bob = people["alice"], people["bob"]
    g = Gateway(hermes_bin, fake_llm, tmp_path_factory.mktemp("gw-shared"), [alice, bob],
                config_yaml="group_sessions_per_user: false\n"
                            "matrix:\n  require_mention: false\n  auto_thread: false\n").start()
    g.room = alice.group("shared room", g.bot, [bob])
    alice.wait_joined(g.room, g.bot)
    yield g
    g.stop()


# ------------------------------------------------------------------------ helpers

def text_of(m):
    c = m.get("content")
    if isinstance(c, list):
        return " ".join(p.get("text", "") for p in c if isinstance(p, dict))
    return c or ""


def chats(llm):
    return [r["body"] for r in llm.requests()
            if r["path"].endswith("/chat/completions") and isinstance(r["body"], dict)]


def convo(llm, token):
    """The whole message list (as JSON text) of the chat request whose last user message
    carries token; None when no request did."""
    for b in chats(llm):
        users = [m for m in b.get("messages", []) if m.get("role") == "user"]
        if users and token in text_of(users[-1]):
            return json.dumps(b["messages"], ensure_ascii=False)
    return None


def reached_llm(llm, token):
    return any(token in json.dumps(b.get("messages", []), ensure_ascii=False)
               for b in chats(llm))


def thread_of(ev):
    rel = ev["content"].get("m.relates_to") or {}
    return rel.get("event_id") if rel.get("rel_type") == "m.thread" else None


def reactions(person, room, bot, event_id):
    """The keys of the bot's live (unredacted) reactions on event_id."""
    return [e["content"]["m.relates_to"]["key"] for e in person.events(room)
            if e.get("type") == "m.reaction" and e.get("sender") == bot
            and e["content"].get("m.relates_to", {}).get("event_id") == event_id]


def tok():
    return "t" + secrets.token_hex(4)


# =============================================================== DMs

def test_dm_responds_to_every_message_without_mention(default_gw, people, llm):
    """DMs: Hermes responds to every message. No @mention needed."""
    alice, bot = people["alice"], default_gw.bot
    room = alice.dm(bot)
    alice.wait_joined(room, bot)
    for _ in range(2):
        t = tok()
        alice.say(room, f"plain dm message {t}")
        ans = alice.reply(room, bot, t)
        assert ans["content"]["body"] == f"echo: plain dm message {t}"
        assert ans["content"]["msgtype"] == "m.text"
        assert thread_of(ans) is None, "a DM answer went into a thread"


def test_dm_each_dm_has_its_own_session(default_gw, people, llm):
    """DMs: Each DM has its own session."""
    alice, bob, bot = people["alice"], people["bob"], default_gw.bot
    ra, rb = alice.dm(bot), bob.dm(bot)
    alice.wait_joined(ra, bot)
    bob.wait_joined(rb, bot)
    a1, b1, a2 = tok(), tok(), tok()
    alice.say(ra, f"alice first {a1}")
    alice.reply(ra, bot, a1)
    bob.say(rb, f"bob first {b1}")
    bob.reply(rb, bot, b1)
    alice.say(ra, f"alice again {a2}")
    alice.reply(ra, bot, a2)
    assert a1 not in convo(llm, b1), "bob's DM carried alice's DM history"
    assert a1 in convo(llm, a2), "alice's DM lost its own history"
    assert b1 not in convo(llm, a2), "alice's DM carried bob's DM history"


def test_dm_mention_does_not_start_thread_by_default(default_gw, people, llm):
    """DMs: Set MATRIX_DM_MENTION_THREADS=true to start a thread when the bot is @mentioned
    in a DM (default false: a mention in a DM is answered in the DM itself)."""
    alice, bot = people["alice"], default_gw.bot
    room = alice.dm(bot)
    alice.wait_joined(room, bot)
    t = tok()
    alice.say(room, f"mentioning you {t}", mention=bot)
    assert thread_of(alice.reply(room, bot, t)) is None


def test_dm_mention_threads_true_starts_thread_on_mention(custom_gw, people, llm):
    """DMs: Set MATRIX_DM_MENTION_THREADS=true to start a thread when the bot is @mentioned
    in a DM."""
    alice, bot = people["alice"], custom_gw.bot
    room = alice.dm(bot)
    alice.wait_joined(room, bot)
    t1, t2 = tok(), tok()
    ev = alice.say(room, f"thread please {t1}", mention=bot)
    assert thread_of(alice.reply(room, bot, t1)) == ev
    alice.say(room, f"no mention here {t2}")
    assert thread_of(alice.reply(room, bot, t2)) is None, "an unmentioned DM message threaded"


# =============================================================== rooms

def test_room_requires_mention_by_default(default_gw, people, llm):
    """Rooms: By default, Hermes requires an @mention to respond."""
    alice, bot, room = people["alice"], default_gw.bot, default_gw.room
    quiet, loud = tok(), tok()
    alice.say(room, f"humans only {quiet}")
    alice.say(room, f"over to you {loud}", mention=bot)
    alice.reply(room, bot, loud)
    assert not reached_llm(llm, quiet), "an unmentioned room message reached the LLM"
    assert not [e for e in alice.from_bot(room, bot) if quiet in e["content"].get("body", "")]


@pytest.mark.parametrize("form", ["m.mentions", "pill", "full user id", "localpart"])
def test_room_mention_forms_are_recognised(default_gw, people, llm, form):
    """Rooms: By default, Hermes requires an @mention to respond (gateway.md §8.5: an
    m.mentions entry, a matrix.to pill, the full user id, or the localpart as a word)."""
    alice, bot, room = people["alice"], default_gw.bot, default_gw.room
    t = tok()
    local = bot[1:].split(":")[0]
    content = {
        "m.mentions": {"msgtype": "m.text", "body": f"Hermes please {t}",
                       "m.mentions": {"user_ids": [bot]}},
        "pill": {"msgtype": "m.text", "body": f"Hermes: please {t}",
                 "format": "org.matrix.custom.html",
                 "formatted_body": f'<a href="https://matrix.to/#/{bot}">Hermes</a>: please {t}'},
        "full user id": {"msgtype": "m.text", "body": f"{bot} please {t}"},
        "localpart": {"msgtype": "m.text", "body": f"hey {local.upper()}, please {t}"},
    }[form]
    alice.say(room, content)
    alice.reply(room, bot, t)


def test_room_require_mention_false_answers_without_mention(custom_gw, people, llm):
    """Rooms: Set MATRIX_REQUIRE_MENTION=false … for free-response rooms."""
    alice, bot, room = people["alice"], custom_gw.bot, custom_gw.room
    t = tok()
    alice.say(room, f"no mention at all {t}")
    alice.reply(room, bot, t)


def test_room_free_response_rooms_answer_without_mention(default_gw, people, llm):
    """Rooms: … or add room IDs to MATRIX_FREE_RESPONSE_ROOMS for free-response rooms."""
    alice, bot = people["alice"], default_gw.bot
    free, gated = tok(), tok()
    alice.say(default_gw.free, f"free talk {free}")
    alice.reply(default_gw.free, bot, free)
    # the other rooms stay gated
    alice.say(default_gw.room, f"not free here {gated}")
    barrier = tok()
    alice.say(default_gw.room, f"barrier {barrier}", mention=bot)
    alice.reply(default_gw.room, bot, barrier)
    assert not reached_llm(llm, gated)


def test_room_invites_are_auto_accepted(default_gw, people, llm):
    """Rooms: Room invites are auto-accepted. (Tip: Just invite the bot's Matrix user to any
    room and it will join and start responding.)"""
    bob, alice, bot = people["bob"], people["alice"], default_gw.bot
    room = bob.group("invited later", None, [alice])
    bob.invite(room, bot)  # the gateway is already running
    bob.wait_joined(room, bot)
    t = tok()
    bob.say(room, f"welcome {t}", mention=bot)
    bob.reply(room, bot, t)
    assert "Matrix: joined " + room in default_gw.text()


def test_dm_invite_is_auto_accepted(default_gw, people, llm):
    """Auto-join: The bot automatically accepts room invites and joins. It starts responding
    immediately after joining (a DM invite, as Element sends it)."""
    bob = people["bob"]
    bot = default_gw.bot
    room = bob.dm(bot)
    bob.wait_joined(room, bot)
    t = tok()
    bob.say(room, f"first words {t}")
    bob.reply(room, bot, t)


# =============================================================== threads

def test_thread_context_isolated_from_main_timeline(custom_gw, people, llm):
    """Threads: Hermes supports Matrix threads (MSC3440). If you reply in a thread, Hermes
    keeps the thread context isolated from the main room timeline."""
    alice, bot, room = people["alice"], custom_gw.bot, custom_gw.room  # auto-thread off
    main1, root, inthread, main2 = tok(), tok(), tok(), tok()
    alice.say(room, f"main timeline secret {main1}")
    alice.reply(room, bot, main1)
    root_ev = alice.say(room, f"thread root {root}")
    alice.reply(room, bot, root)
    alice.say(room, f"inside the thread {inthread}", thread=root_ev)
    ans = alice.reply(room, bot, inthread)
    assert thread_of(ans) == root_ev, "the answer left the thread"
    alice.say(room, f"back in the main timeline {main2}")
    alice.reply(room, bot, main2)
    assert main1 not in convo(llm, inthread), "the thread saw the main timeline's history"
    assert main1 in convo(llm, main2), "the main timeline lost its history"
    assert inthread not in convo(llm, main2), "the main timeline saw the thread's history"


def test_thread_bot_participated_needs_no_mention(default_gw, people, llm):
    """Threads: Threads where the bot has already participated do not require a mention."""
    alice, bot, room = people["alice"], default_gw.bot, default_gw.room
    t1, t2 = tok(), tok()
    ev = alice.say(room, f"start {t1}", mention=bot)
    assert thread_of(alice.reply(room, bot, t1)) == ev
    alice.say(room, f"follow-up without mention {t2}", thread=ev)
    assert thread_of(alice.reply(room, bot, t2)) == ev


def test_thread_bot_not_in_still_needs_mention(default_gw, people, llm):
    """Threads: (only) threads where the bot has already participated do not require a
    mention — a thread among humans stays gated."""
    alice, bob, bot, room = people["alice"], people["bob"], default_gw.bot, default_gw.room
    root, quiet, loud = tok(), tok(), tok()
    root_ev = bob.say(room, f"humans thread root {root}")
    alice.say(room, f"human reply {quiet}", thread=root_ev)
    alice.say(room, f"now you {loud}", mention=bot, thread=root_ev)
    assert thread_of(alice.reply(room, bot, loud)) == root_ev
    assert not reached_llm(llm, quiet)
    assert not reached_llm(llm, root), "the ungated root reached the LLM as a message"


# =============================================================== auto-threading

def test_auto_thread_default_replies_in_thread_per_message(default_gw, people, llm):
    """Auto-threading: By default, Hermes auto-creates a thread for each message it responds
    to in a room. This keeps conversations isolated."""
    alice, bot, room = people["alice"], default_gw.bot, default_gw.room
    t1, t2 = tok(), tok()
    e1 = alice.say(room, f"topic one {t1}", mention=bot)
    assert thread_of(alice.reply(room, bot, t1)) == e1
    e2 = alice.say(room, f"topic two {t2}", mention=bot)
    assert thread_of(alice.reply(room, bot, t2)) == e2
    assert t1 not in convo(llm, t2), "two auto-threads shared one conversation"


def test_auto_thread_false_replies_in_main_timeline(custom_gw, people, llm):
    """Auto-threading: Set MATRIX_AUTO_THREAD=false to disable."""
    alice, bot, room = people["alice"], custom_gw.bot, custom_gw.room
    t = tok()
    alice.say(room, f"no thread please {t}", mention=bot)
    assert thread_of(alice.reply(room, bot, t)) is None


# =============================================================== shared rooms

def test_shared_room_sessions_isolated_per_user(custom_gw, people, llm):
    """Shared rooms with multiple users: By default, Hermes isolates session history per user
    inside the room. Two people talking in the same room do not share one transcript."""
    alice, bob, bot, room = people["alice"], people["bob"], custom_gw.bot, custom_gw.room
    a1, b1, a2 = tok(), tok(), tok()
    alice.say(room, f"alice says {a1}")
    alice.reply(room, bot, a1)
    bob.say(room, f"bob says {b1}")
    bob.reply(room, bot, b1)
    alice.say(room, f"alice again {a2}")
    alice.reply(room, bot, a2)
    assert a1 not in convo(llm, b1), "bob's turn carried alice's transcript"
    assert a1 in convo(llm, a2), "alice's own history is lost"
    assert b1 not in convo(llm, a2), "alice's turn carried bob's transcript"


def test_shared_room_one_transcript_when_disabled(shared_gw, people, llm):
    """Shared rooms with multiple users: … do not share one transcript unless you explicitly
    disable that (group_sessions_per_user: false)."""
    alice, bob, bot, room = people["alice"], people["bob"], shared_gw.bot, shared_gw.room
    a1, b1 = tok(), tok()
    alice.say(room, f"alice says {a1}", mention=bot)
    alice.reply(room, bot, a1)
    bob.say(room, f"bob says {b1}", mention=bot)
    bob.reply(room, bot, b1)
    assert a1 in convo(llm, b1), "group_sessions_per_user: false did not share the room"


# =============================================================== reactions

def test_reactions_eyes_while_working_then_check(default_gw, people, llm):
    """MATRIX_REACTIONS=true (default): emoji reactions during processing — 👀 on the message
    while the bot works, replaced by ✅ when the answer is done."""
    alice, bot = people["alice"], default_gw.bot
    room = alice.dm(bot)
    alice.wait_joined(room, bot)
    llm.script([{"content": "slow answer RX", "delay_ms": 4000}])
    ev = alice.say(room, "take your time")
    wait(lambda: EYES in reactions(alice, room, bot, ev), "the 👀 reaction while working")
    assert not alice.from_bot(room, bot), "answered before 👀 was observed"
    alice.reply(room, bot, "slow answer RX")
    wait(lambda: reactions(alice, room, bot, ev) == [CHECK], "👀 replaced by ✅")


def test_reactions_cross_on_failure(default_gw, people, llm):
    """MATRIX_REACTIONS: the processing-lifecycle emoji reactions (👀/✅/❌) — ❌ when the
    turn failed."""
    alice, bot = people["alice"], default_gw.bot
    room = alice.dm(bot)
    alice.wait_joined(room, bot)
    llm.script([{"status": 400, "body": json.dumps({"error": {"message": "scripted failure",
                                                             "type": "invalid_request_error"}}),
                 "repeat": 5}])
    ev = alice.say(room, "this will fail")
    wait(lambda: reactions(alice, room, bot, ev) == [CROSS], "👀 replaced by ❌", timeout=45)


def test_reactions_false_posts_none(custom_gw, people, llm):
    """Tip: MATRIX_REACTIONS=false turns off the processing-lifecycle emoji reactions
    (👀/✅/❌) the bot posts on inbound messages."""
    alice, bot = people["alice"], custom_gw.bot
    room = alice.dm(bot)
    alice.wait_joined(room, bot)
    t = tok()
    alice.say(room, f"no emoji please {t}")
    alice.reply(room, bot, t)
    t2 = tok()  # a second turn: the first one's reactions, if any, are surely sent by now
    alice.say(room, f"again {t2}")
    alice.reply(room, bot, t2)
    assert not alice.from_bot(room, bot, "m.reaction"), "reactions with MATRIX_REACTIONS=false"


# =============================================================== home room

def send_home_spec(text):
    return [{"tool_calls": [{"name": "send_message",
                             "arguments": {"action": "send", "target": "matrix",
                                           "message": text}}]},
            {"content": "sent it"}]


def test_home_room_from_env_receives_proactive_messages(default_gw, people, llm):
    """Home Room: a "home room" where the bot sends proactive messages (cron job output,
    reminders, notifications) — MATRIX_HOME_ROOM=!abc123def456:matrix.example.org."""
    alice, bot = people["alice"], default_gw.bot
    room = alice.dm(bot)
    alice.wait_joined(room, bot)
    t = tok()
    llm.script(send_home_spec(f"proactive note {t}"))
    alice.say(room, "tell the home room")
    alice.reply(room, bot, "sent it")
    alice.reply(default_gw.homeroom, bot, t)


def test_home_room_sethome_command(default_gw, people, llm):
    """Home Room: Type /sethome in any Matrix room where the bot is present. That room
    becomes the home room."""
    alice, bob, bot = people["alice"], people["bob"], default_gw.bot
    room = alice.group("new home", bot, [bob])
    alice.wait_joined(room, bot)
    alice.say(room, "/sethome", mention=bot)
    ans = alice.reply(room, bot, "Home channel set")
    assert room in ans["content"]["body"]
    env = (default_gw.home / ".env").read_text()
    assert f"MATRIX_HOME_ROOM={room}" in env, env  # gateway.md §6.1 C: persisted to .env
    t = tok()
    llm.script(send_home_spec(f"to the new home {t}"))
    dm = alice.dm(bot)
    alice.wait_joined(dm, bot)
    alice.say(dm, "tell the home room")
    alice.reply(dm, bot, "sent it")
    alice.reply(room, bot, t)
    assert not [e for e in alice.from_bot(default_gw.homeroom, bot)
                if t in e["content"].get("body", "")]


# =============================================================== voice (MSC3245)

def small_ogg():
    """One Ogg page (capture pattern, BOS, an OpusHead packet): a tiny .ogg file."""
    payload = b"OpusHead" + bytes([1, 1]) + struct.pack("<HIhB", 312, 48000, 0, 0)
    header = b"OggS" + bytes([0, 2]) + struct.pack("<qIII", 0, 0x4D58, 0, 0)
    return header + bytes([1, len(payload)]) + payload


def send_voice(person, room, data):
    mxc = person.upload(data, "audio/ogg", "voice-message.ogg")
    return person.say(room, {"msgtype": "m.audio", "body": "Voice message", "url": mxc,
                             "info": {"mimetype": "audio/ogg", "size": len(data),
                                      "duration": 1200},
                             "org.matrix.msc3245": {"duration": 1200, "waveform": [0, 512]},
                             "org.matrix.msc3245.voice": {}})


def test_voice_message_incoming_is_transcribed(default_gw, people, llm):
    """Native voice messages (MSC3245): Incoming voice messages with the MSC3245 flag are
    also correctly identified and routed to speech-to-text transcription."""
    alice, bot = people["alice"], default_gw.bot
    room = alice.dm(bot)
    alice.wait_joined(room, bot)
    data = small_ogg()
    llm.script([{"content": "heard you VOICE-OK"}])
    send_voice(alice, room, data)
    alice.reply(room, bot, "VOICE-OK", timeout=45)
    stt = [r for r in llm.requests() if r["path"].endswith("/audio/transcriptions")]
    assert stt and stt[0]["body"]["size"] == len(data), stt
    assert stt[0]["headers"].get("Authorization") == "Bearer sk-voice-123"
    said = f"(fake transcript of {len(data)} bytes)"
    c = convo(llm, said)
    assert c and f"[The user sent a voice message~ Here's what they said: \\\"{said}\\\"]" in c, \
        [json.dumps(b.get("messages", [])[-1:]) for b in chats(llm)]


def test_voice_message_outgoing_is_tagged_msc3245(default_gw, people, llm):
    """Native voice messages (MSC3245): The Matrix adapter automatically tags outgoing voice
    messages with the org.matrix.msc3245.voice flag. This means TTS responses and voice
    audio are rendered as native voice bubbles."""
    alice, bot = people["alice"], default_gw.bot
    room = alice.dm(bot)
    alice.wait_joined(room, bot)
    llm.script([{"content": "a spoken answer VOICE-OUT"}])
    send_voice(alice, room, small_ogg())
    alice.reply(room, bot, "VOICE-OUT", timeout=45)

    def audio():
        return [e for e in alice.from_bot(room, bot)
                if e["content"].get("msgtype") == "m.audio"]
    a = wait(audio, "the bot's voice reply (m.audio)", timeout=20)
    assert "org.matrix.msc3245.voice" in a[0]["content"]
    assert a[0]["content"]["url"].startswith("mxc://")


# =============================================================== who may talk

def test_not_in_allowed_users_is_not_answered(default_gw, people, llm):
    """Troubleshooting: Bot is not responding to messages — Cause: MATRIX_ALLOWED_USERS
    doesn't include your User ID (in rooms the message is ignored silently)."""
    alice, carol, bot = people["alice"], people["carol"], default_gw.bot
    carol_in = alice.group("with carol", bot, [carol])
    alice.wait_joined(carol_in, bot)
    quiet, loud = tok(), tok()
    carol.say(carol_in, f"carol asks {quiet}", mention=bot)
    alice.say(carol_in, f"alice asks {loud}", mention=bot)
    alice.reply(carol_in, bot, loud)
    assert not reached_llm(llm, quiet), "a user outside MATRIX_ALLOWED_USERS reached the LLM"
    assert not [e for e in alice.from_bot(carol_in, bot) if quiet in e["content"].get("body", "")]


def test_no_allowed_users_denies_everyone(hermes_bin, fake_llm, people, tmp_path, llm):
    """Warning: Always set MATRIX_ALLOWED_USERS … Without it, the gateway denies all users by
    default as a safety measure (a DM gets the pairing code instead of the agent)."""
    alice = people["alice"]
    g = Gateway(hermes_bin, fake_llm, tmp_path, None).start()
    try:
        room = alice.dm(g.bot)
        alice.wait_joined(room, g.bot)
        t = tok()
        alice.say(room, f"let me in {t}")
        ans = alice.reply(room, g.bot, "pairing code")
        assert "hermes pairing approve matrix" in ans["content"]["body"]
        assert not reached_llm(llm, t)
    finally:
        g.stop()


def test_config_yaml_matrix_section(shared_gw, people, llm):
    """Mention and Threading Configuration: You can configure mention and auto-threading
    behavior via environment variables or config.yaml (matrix: require_mention: false,
    auto_thread: false)."""
    alice, bot, room = people["alice"], shared_gw.bot, shared_gw.room
    t = tok()
    alice.say(room, f"no mention, no thread {t}")
    assert thread_of(alice.reply(room, bot, t)) is None


# =============================================================== media in, replies out

def small_png():
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + \
            struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + b"\xff\x00\x00" * 4 for _ in range(4))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0)) + \
        chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("kind", ["m.file", "m.image", "m.video"])
def test_media_attachments_are_received(default_gw, people, llm, kind):
    """Media support: Hermes can send and receive images, audio, video, and file
    attachments. Media is uploaded to your homeserver using the Matrix content repository
    API (here: received, downloaded from it and handed to the agent)."""
    alice, bot = people["alice"], default_gw.bot
    room = alice.dm(bot)
    alice.wait_joined(room, bot)
    t = tok()
    data, mime, name, cache, note = {
        "m.file": (f"file content {t}\n".encode(), "text/plain", f"notes-{t}.txt", "documents",
                   f"[The user sent a text document: 'notes-{t}.txt'"),
        "m.image": (small_png(), "image/png", f"pic-{t}.png", "images", "[The user sent an image"),
        "m.video": (b"\x00\x00\x00\x18ftypmp42" + os.urandom(64), "video/mp4", f"clip-{t}.mp4",
                    "documents", None),
    }[kind]
    mxc = alice.upload(data, mime, name)
    llm.script([{"content": f"got the attachment {t}"}])
    alice.say(room, {"msgtype": kind, "body": name, "url": mxc,
                     "info": {"mimetype": mime, "size": len(data)}})
    alice.reply(room, bot, f"got the attachment {t}")
    last = json.dumps([b["messages"][-1] for b in chats(llm)], ensure_ascii=False)
    assert name in last, last
    if note:
        assert note in last, last
    if kind == "m.file":
        assert f"file content {t}" in last, last
    cached = [f for f in (default_gw.home / "cache").rglob("*") if f.is_file()
              and f.read_bytes() == data]
    assert cached, f"the {kind} was not downloaded into ~/.hermes/cache"


def test_reply_is_m_text_with_markdown_as_html(default_gw, people, llm):
    """Replies as m.text (gateway.md §8.6: not m.notice) with the Markdown rendered to an
    HTML formatted_body."""
    alice, bot = people["alice"], default_gw.bot
    room = alice.dm(bot)
    alice.wait_joined(room, bot)
    t = tok()
    llm.script([{"content": f"**bold {t}** and `code`"}])
    alice.say(room, "format something")
    c = alice.reply(room, bot, t)["content"]
    assert c["msgtype"] == "m.text" and c["body"] == f"**bold {t}** and `code`"
    assert c.get("format") == "org.matrix.custom.html"
    assert f"<strong>bold {t}</strong>" in c["formatted_body"]
    assert "<code>code</code>" in c["formatted_body"]


def test_long_reply_is_split_at_4000_chars(default_gw, people, llm):
    """Replies longer than 4,000 characters are split into several messages (gateway.md
    §8.6, docs/matrix.md)."""
    alice, bot = people["alice"], default_gw.bot
    room = alice.dm(bot)
    alice.wait_joined(room, bot)
    t = tok()
    words = " ".join(f"w{i:05d}" for i in range(1400))  # 9,799 characters
    llm.script([{"content": f"{t} {words} END{t}"}])
    alice.say(room, "say a lot")
    alice.reply(room, bot, f"END{t}")
    parts = [e["content"]["body"] for e in alice.from_bot(room, bot)]
    assert len(parts) >= 3 and all(len(p) <= 4000 for p in parts), [len(p) for p in parts]
    joined = " ".join(parts)
    assert "w00000" in joined and "w01399" in joined


def test_message_marked_as_read(default_gw, people, llm):
    """It also marks your message as read (docs/matrix.md; gateway.md §8.5: read markers
    m.fully_read and m.read on the newest accepted message)."""
    alice, bot = people["alice"], default_gw.bot
    room = alice.dm(bot)
    alice.wait_joined(room, bot)
    t = tok()
    ev = alice.say(room, f"read me {t}")
    alice.reply(room, bot, t)

    def marker():
        j = http("GET", f"/_matrix/client/v3/user/{bot}/rooms/{room}/account_data/m.fully_read",
                 token=default_gw.token, ok=(200, 404))
        return j.get("event_id") == ev
    wait(marker, "the bot's m.fully_read marker on the message")


def test_bad_access_token_says_whoami_failed(hermes_bin, fake_llm, synapse, tmp_path):
    """Troubleshooting: "Failed to authenticate" / "whoami failed" on startup — Cause: The
    access token or homeserver URL is incorrect."""
    home = tmp_path / "hermes-home"
    home.mkdir()
    env = hermes_env(home, fake_llm, MATRIX_HOMESERVER=HS,
                     MATRIX_ACCESS_TOKEN="syt_" + secrets.token_hex(16),
                     MATRIX_ALLOWED_USERS="@nobody:localhost")
    log_path = home / "gateway.out"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([hermes_bin, "gateway", "run"], env=env, stdout=log,
                                stderr=subprocess.STDOUT)
        try:
            wait(lambda: "Matrix: whoami failed" in log_path.read_text(errors="replace"),
                 "the whoami failure", timeout=20)
            text = log_path.read_text(errors="replace")
            assert "check MATRIX_ACCESS_TOKEN and MATRIX_HOMESERVER" in text, text[-2000:]
            assert "Matrix: connected as" not in text
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

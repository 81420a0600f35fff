"""WebSocket connections that die under the gateway without telling it.

Mattermost (tests/doubles/mattermost_double.py /_test/ws/drop): the connection is
black-holed — no close frame, no FIN, nothing read or sent any more, the TCP connection
stays open — while people keep writing. The adapter's heartbeat (a "ping" action every
HERMES_MATTERMOST_HEARTBEAT seconds; an unanswered one at the next beat means dead) notices
within two beats, reconnects with backoff, and the catch-up answers what was written
meanwhile, each message once. Then the same with a TCP reset.

Discord (tests/doubles/discord_double.py): the gateway stops acknowledging heartbeats (a
zombie connection); the adapter resumes the session and the messages of the dead period are
answered once.
"""
import time

import pytest

from conftest import Gateway, Ledger, hermes_env, mm_gateway, wait_for
import harness

CHATS = [("dm_alice", "alice", ""), ("dm_bob", "bob", ""), ("town", "bob", "@hermes ")]
HEARTBEAT_S = 1


def texts(mm):
    return lambda chat: [p["message"] for p in mm.bot_posts(chat)]


def round_of(mm, led, chats=CHATS):
    for chat, user, pre in chats:
        mm.say(chat, user, pre + led.token(chat))


@pytest.mark.parametrize("mode", ["silent", "reset"])
def test_mattermost_websocket_dropped_without_a_word(hermes_bin, llm, home, mm, mode):
    led = Ledger("ws" + mode[0])
    g = mm_gateway(hermes_bin, home, llm, mm, HERMES_MATTERMOST_HEARTBEAT=HEARTBEAT_S)
    try:
        round_of(mm, led)
        wait_for(lambda: not led.missing(texts(mm)), timeout=20, what="the first round")
        before = mm.ws_authenticated()
        t0 = time.monotonic()
        assert mm.post("/_test/ws/drop", {"mode": mode})["dropped"] == 1
        round_of(mm, led)  # written while the bot's connection is dead
        wait_for(lambda: g.alive() and mm.ws_authenticated() > before, timeout=15,
                 what="a new WebSocket after the drop")
        took = time.monotonic() - t0
        # two beats to notice a silent drop, then the first backoff (2 s, up to +1 s jitter)
        assert took < 2 * HEARTBEAT_S + 3 + 2, f"reconnected only after {took:.1f}s"
        wait_for(lambda: not led.missing(texts(mm)), timeout=20,
                 what=lambda: "answers to what was written while the connection was dead: "
                 + str(led.missing(texts(mm))))
        round_of(mm, led)  # and after: served as usual, and a barrier for late duplicates
        wait_for(lambda: not led.missing(texts(mm)), timeout=20, what="the last round")
        led.check_once(texts(mm))
        out = g.output()
        if mode == "silent":
            assert "no answer to the WebSocket ping" in out, out[-2000:]
        print(f"\n{mode} drop: reconnected after {took:.2f}s")
    finally:
        g.stop()


# ------------------------------------------------------------------------------ Discord

DC_TOKEN = "test-discord-token"


class DiscordDouble(harness.Double):
    def __init__(self, tmp):
        super().__init__(tmp, "discord_double.py")

    def replies(self, channel):
        return [p["content"] for p in self.state()["posts"] if p["channel_id"] == channel]


def test_discord_zombie_connection_is_replaced_and_nothing_is_lost(hermes_bin, llm, home,
                                                                   tmp_path):
    d = DiscordDouble(str(tmp_path))
    d.call("/_test/config", {"heartbeat_interval": 400})
    env = hermes_env(home, llm, DISCORD_BOT_TOKEN=DC_TOKEN,
                     DISCORD_API_BASE=d.url + "/api/v10", DISCORD_ALLOWED_USERS="400")
    g = Gateway(hermes_bin, home, env)
    led = Ledger("dz")
    chats = ["500", "501"]  # DM channels of user 400 (the double treats unknown ids as DMs)

    def say(ch):
        d.call("/_test/message", {"channel_id": ch, "author_id": "400",
                                  "content": led.token(ch)})
    try:
        wait_for(lambda: g.alive() and len(d.state()["identifies"]) == 1
                 and "connected to the gateway" in g.output(), timeout=20,
                 what="the Discord session")
        for ch in chats:
            say(ch)
        wait_for(lambda: not led.missing(d.replies), timeout=20, what="the first round")
        d.call("/_test/config", {"mute_acks": True})
        for ch in chats:
            say(ch)  # the connection is a zombie: these must come back through the resume
        wait_for(lambda: len(d.state()["resumes"]) >= 1, timeout=15, what="the resume")
        d.call("/_test/config", {"mute_acks": False})
        wait_for(lambda: not led.missing(d.replies), timeout=20,
                 what=lambda: "answers to the zombie period: " + str(led.missing(d.replies)))
        for ch in chats:
            say(ch)
        wait_for(lambda: not led.missing(d.replies), timeout=20, what="the last round")
        g.alive()
        led.check_once(d.replies)
        assert len(d.state()["identifies"]) == 1, "a new session instead of a resume"
    finally:
        g.stop()
        d.stop()

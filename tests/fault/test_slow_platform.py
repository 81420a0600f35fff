"""A slow platform API must not delay the other chats (issue 13, "never wedge").

The Mattermost double takes 10 s for every POST /api/v4/posts to one channel
(/_test/slow_posts); two chats talk at once. The fast chat's reply must come without waiting
for the slow chat's send, and the slow chat's reply must still arrive exactly once: no
duplicate from a retry (the adapter's or the gateway outbox's) racing the slow send — the
double makes the post even when a client gives up waiting, so a retry would show.

Discord likewise (the double's "slow_posts": the message is made at once, its answer comes
10 s later): the other DM is answered meanwhile, and every message carries a nonce with
enforce_nonce, so a retry could never post it twice.

The adapter sends posts in per-channel lanes (adapters/kit/ak_lanes.c): one channel's slow
send holds only that channel. A post whose request timed out is retried with the same
pending_post_id, which the server (and the double, like the real one) answers with the post it
already made, so it is in the chat once.
"""
import time

from conftest import Gateway, Ledger, harness, hermes_env, mm_gateway, wait_for

SLOW_MS = 10000
NOTICES = ("Waiting for the provider", "\u23f3")


def answers(mm, chat):
    return [p["message"] for p in mm.bot_posts(chat) if not p["message"].startswith(NOTICES)]


def slow_state(mm):
    return mm.get("/_test/slow_posts")


def run_two_chats(hermes_bin, llm, home, mm, slow_chat, fast_chat):
    """Both chats write at once while slow_chat's sends take SLOW_MS; returns
    (fast reply seconds, slow reply seconds, ledger)."""
    mm.post("/_test/slow_posts", {"channel": slow_chat, "ms": SLOW_MS})
    g = mm_gateway(hermes_bin, home, llm, mm)
    led = Ledger("sp")
    try:
        slow_tok, fast_tok = led.token(slow_chat), led.token(fast_chat)
        # the fast chat's answer comes a second later, so the slow chat's post is already
        # on its way when the fast chat's reply is ready to go
        llm.rule(fast_tok, [{"delay_ms": 1000, "content": "echo: " + fast_tok}])
        t0 = time.monotonic()
        mm.say(slow_chat, "alice", slow_tok)
        mm.say(fast_chat, "bob", fast_tok)
        got = {}

        def arrived():
            for c in (slow_chat, fast_chat):
                if c not in got and answers(mm, c):
                    got[c] = time.monotonic() - t0
            return len(got) == 2

        wait_for(arrived, timeout=SLOW_MS / 1000 + 30, what=lambda: f"both replies ({got})")
        # the slow send is over and nothing else is on its way (the barrier: the double has
        # finished every slow post it started, and a later message in the slow chat is
        # answered after it — a duplicate of the first reply would be posted before that)
        wait_for(lambda: (lambda s: s["started"] == s["finished"])(slow_state(mm)), timeout=30,
                 what="the double's slow posts to finish")
        mm.post("/_test/slow_posts", {"channel": slow_chat, "ms": 0})
        last = led.token(slow_chat)
        mm.say(slow_chat, "alice", last)
        wait_for(lambda: any(last in x for x in answers(mm, slow_chat)), timeout=30,
                 what="the slow chat's next reply")
        g.alive()
        led.check_once(lambda c: answers(mm, c))
        print(f"\nfast chat answered after {got[fast_chat]:.1f}s, slow chat after "
              f"{got[slow_chat]:.1f}s; slow posts {slow_state(mm)}")
        return got[fast_chat], got[slow_chat], led
    finally:
        g.stop()


def test_a_slow_send_is_answered_exactly_once(hermes_bin, llm, home, mm):
    """The slow chat's reply arrives once, after the 10 s the server takes, with no duplicate
    from a retry of the slow send."""
    fast_s, slow_s, _ = run_two_chats(hermes_bin, llm, home, mm, "dm_alice", "dm_bob")
    assert slow_s >= SLOW_MS / 1000 - 0.5, f"the slow chat answered after {slow_s:.1f}s"
    posts = [r for r in mm.get("/_test/requests")
             if r["method"] == "POST" and r["path"] == "/api/v4/posts"]
    assert len(posts) == len(mm.bot_posts("dm_alice")) + len(mm.bot_posts("dm_bob")), posts


def test_a_slow_chat_does_not_delay_another_chat(hermes_bin, llm, home, mm):
    """The fast chat's reply is not held behind the slow chat's 10 s send."""
    fast_s, slow_s, _ = run_two_chats(hermes_bin, llm, home, mm, "dm_alice", "dm_bob")
    assert slow_s >= SLOW_MS / 1000 - 0.5, f"the slow chat answered after {slow_s:.1f}s"
    assert fast_s < 3, (f"the fast chat waited {fast_s:.1f}s for its reply, behind the "
                        f"slow chat's send ({slow_s:.1f}s)")


def test_a_send_slower_than_the_client_timeout_is_not_posted_twice(hermes_bin, llm, home, mm):
    """The server takes longer than the adapter waits (HERMES_MATTERMOST_HTTP_TIMEOUT=4 against
    a 10 s send): the post is made anyway, so sending it again makes a duplicate. The reply
    must be in the chat once."""
    mm.post("/_test/slow_posts", {"channel": "dm_alice", "ms": SLOW_MS})
    g = mm_gateway(hermes_bin, home, llm, mm, HERMES_MATTERMOST_HTTP_TIMEOUT="4")
    led = Ledger("st")
    try:
        tok = led.token("dm_alice")
        mm.say("dm_alice", "alice", tok)
        # the first send is made by the server after 10 s (the client gave up at 4 s)
        wait_for(lambda: slow_state(mm)["finished"] >= 1, timeout=30,
                 what="the first slow post")
        mm.post("/_test/slow_posts", {"channel": "dm_alice", "ms": 0})
        wait_for(lambda: (lambda s: s["started"] == s["finished"])(slow_state(mm)), timeout=30,
                 what="the double's slow posts to finish")
        # barrier: the chat's next reply comes after anything still queued for it
        last = led.token("dm_alice")
        mm.say("dm_alice", "alice", last)
        wait_for(lambda: any(last in x for x in answers(mm, "dm_alice")), timeout=60,
                 what="the next reply")
        g.alive()
        pend = mm.get("/_test/pending")
        print(f"\nslow posts {slow_state(mm)}; pending ids {pend}; replies "
              f"{answers(mm, 'dm_alice')}")
        led.check_once(lambda c: answers(mm, c))
        # the timed-out post was asked again with the same pending_post_id (answered "still
        # saving" and/or with the post made), not given up unasked
        assert pend["deduplicated"] + pend["pending_answers"] >= 1, pend
    finally:
        g.stop()


# ------------------------------------------------------------------------------ Discord

DC_TOKEN = "test-discord-token"


class DiscordDouble(harness.Double):
    def __init__(self, tmp):
        super().__init__(tmp, "discord_double.py")

    def replies(self, channel):
        return [p["content"] for p in self.state()["posts"] if p["channel_id"] == channel]


def test_a_slow_discord_channel_does_not_delay_another(hermes_bin, llm, home, tmp_path):
    """Discord: DM 600's sends take 10 s to be answered; DM 601 is answered meanwhile, each
    reply is in its chat once, and every create carried a nonce with enforce_nonce."""
    d = DiscordDouble(str(tmp_path))
    d.call("/_test/config", {"heartbeat_interval": 400, "slow_posts": {"600": SLOW_MS}})
    env = hermes_env(home, llm, DISCORD_BOT_TOKEN=DC_TOKEN,
                     DISCORD_API_BASE=d.url + "/api/v10", DISCORD_ALLOWED_USERS="400")
    g = Gateway(hermes_bin, home, env)
    led = Ledger("ds")
    try:
        wait_for(lambda: g.alive() and len(d.state()["identifies"]) == 1
                 and "connected to the gateway" in g.output(), timeout=20,
                 what="the Discord session")
        slow_tok, fast_tok = led.token("600"), led.token("601")
        llm.rule(fast_tok, [{"delay_ms": 1000, "content": "echo: " + fast_tok}])
        t0 = time.monotonic()
        d.call("/_test/message", {"channel_id": "600", "author_id": "400", "content": slow_tok})
        d.call("/_test/message", {"channel_id": "601", "author_id": "400", "content": fast_tok})
        wait_for(lambda: any(fast_tok in x for x in d.replies("601")), timeout=30,
                 what="the fast DM's reply")
        fast_s = time.monotonic() - t0
        # the slow DM's reply was made at once, its answer is still on its way: the DM's next
        # reply goes after it (its lane), so it is the barrier for any retry of the first
        d.call("/_test/config", {"slow_posts": {}})
        last = led.token("600")
        d.call("/_test/message", {"channel_id": "600", "author_id": "400", "content": last})
        wait_for(lambda: any(last in x for x in d.replies("600")), timeout=30,
                 what="the slow DM's next reply")
        g.alive()
        led.check_once(d.replies)
        slow_s = time.monotonic() - t0
        assert fast_s < 3, f"the fast DM waited {fast_s:.1f}s behind the slow one's send"
        assert slow_s >= SLOW_MS / 1000 - 0.5, f"the slow DM's next reply after {slow_s:.1f}s"
        posts = d.state()["posts"]
        assert posts and all(p.get("nonce") and p.get("enforce_nonce") for p in posts), posts
        reqs = [r for r in d.state()["requests"] if r["route"] == "POST /channels/{id}/messages"]
        assert len(reqs) == len(posts), reqs
    finally:
        g.stop()
        d.stop()

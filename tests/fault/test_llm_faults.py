"""The LLM endpoint failing mid-turn while five Mattermost chats are busy at once: a
connection reset (twice), a 500, a 429 with Retry-After, a 500 that never stops, a model
that hangs for seconds, an answer cut in the middle of its JSON. Each chat gets the answer after
the retries or the reference's failure text ("Sorry, I encountered an error …" or the
provider's error), exactly once, never silence; the chats with a working model are not held
up by the hanging one, and the gateway serves a new round afterwards."""
import json
import re
import time

from conftest import Ledger, mm_gateway, wait_for

CHATS = [("dm_alice", "alice", ""), ("dm_bob", "bob", ""), ("dm_carol", "carol", ""),
         ("town", "bob", "@hermes "), ("priv", "alice", "@hermes ")]


# Status notices a session may get while its provider pauses; they are not answers.
NOTICES = ("Waiting for the provider", "\u23f3")


def texts(mm):
    return lambda chat: [p["message"] for p in mm.bot_posts(chat)]


def test_provider_faults_under_concurrent_chats(hermes_bin, llm, home, mm):
    (home / "config.yaml").write_text("agent:\n  api_max_retries: 2\n")
    led = Ledger("lf")
    g = mm_gateway(hermes_bin, home, llm, mm)
    try:
        faults = {
            "dm_alice": [{"reset": True}, {"reset": True}],
            "dm_bob": [{"status": 500, "body": '{"error":{"message":"upstream exploded"}}'}],
            "dm_carol": [{"status": 429, "headers": {"Retry-After": "1"},
                          "body": '{"error":{"message":"slow down"}}'}],
            "town": [{"status": 500, "body": '{"error":{"message":"always broken"}}',
                      "repeat": 1}] * 3,
            "priv": [{"delay_ms": 12000}],
        }
        tok = {}
        for chat, user, pre in CHATS:
            t = tok[chat] = led.token(chat)
            llm.rule(t, faults[chat])
        t0 = time.monotonic()
        for chat, user, pre in CHATS:
            mm.say(chat, user, pre + tok[chat])

        def answered(chat):
            """The chat's replies: answers and failures, not the "waiting" notices."""
            return [x for x in texts(mm)(chat) if not x.startswith(NOTICES)]

        # the chats whose model recovers are answered (after their retries), while the hung
        # one is still waiting for its model
        wait_for(lambda: all(answered(c) for c in ("dm_alice", "dm_bob", "dm_carol", "town")),
                 timeout=40, what=lambda: "answers in every chat but the hung one: "
                 + str({c: answered(c) for c, _, _ in CHATS}))
        fast_done = time.monotonic() - t0
        assert not answered("priv"), f"the hung turn answered too early ({fast_done:.1f}s)"
        g.alive()
        # the hung model answers in the end
        wait_for(lambda: answered("priv"), timeout=30, what="the hung chat's answer")

        for chat in ("dm_alice", "dm_bob", "dm_carol", "priv"):
            a = answered(chat)
            assert len(a) == 1 and a[0] == "echo: " + tok[chat], (chat, a)
        failed = answered("town")
        assert len(failed) == 1, failed
        assert tok["town"] not in failed[0]
        assert re.search(r"error|failed", failed[0], re.I), failed[0]
        used = {r["match"]: r["used"] for r in llm.rules()}
        assert used[tok["dm_alice"]] == 2 and used[tok["dm_bob"]] == 1
        assert used[tok["dm_carol"]] == 1 and used[tok["town"]] == 3, used

        # an answer cut in the middle of its JSON (the gateway does not stream to Mattermost):
        # one reply, never silence
        cut = led.token("dm_bob")
        llm.rule(cut, [{"status": 200, "body": '{"id":"chatcmpl-1","object":"chat.comp'}])
        mm.say("dm_bob", "bob", cut)
        wait_for(lambda: len(answered("dm_bob")) >= 2, timeout=30, what="the cut turn's reply")

        # the gateway keeps serving: one more message per chat, answered once
        for chat, user, pre in CHATS:
            mm.say(chat, user, pre + led.token(chat))
        wait_for(lambda: all(any(led.sent[c][-1] in x for x in answered(c)) for c, _, _ in CHATS),
                 timeout=30, what="the last round")
        g.alive()
        # the failed turn's and the cut turn's messages are answered by the failure text
        # (the next turn's prompt still carries them, so their tokens show up there again)
        for chat, _, _ in CHATS:
            last = led.sent[chat][-1]
            assert sum(x.count(last) for x in answered(chat)) == 1, (chat, answered(chat))
        print("\nevery post:", {c: texts(mm)(c) for c, _, _ in CHATS})
        print("\nfailure text seen by the user:", repr(failed[0]))
        print("cut answer's reply:", repr(answered("dm_bob")[1]))
    finally:
        g.stop()


def test_a_429_storm_pauses_the_provider_and_every_chat_is_answered(hermes_bin, llm, home, mm):
    """Eight 429s with Retry-After: 1 in a row, shared by four chats writing at once: the
    provider pauses instead of hammering (requests come in waves a second apart), every chat
    is answered once, never silence."""
    led = Ledger("st")
    g = mm_gateway(hermes_bin, home, llm, mm)
    chats = CHATS[:4]
    try:
        llm.rule("storm", [{"status": 429, "headers": {"Retry-After": "1"},
                            "body": '{"error":{"message":"rate limited"}}'}] * 8)
        for chat, user, pre in chats:
            mm.say(chat, user, pre + "storm " + led.token(chat))
        wait_for(lambda: not led.missing(lambda c: [x for x in texts(mm)(c)
                                                    if not x.startswith(NOTICES)]),
                 timeout=40, what=lambda: "every chat's answer through the storm: "
                 + str({c: texts(mm)(c) for c, _, _ in chats}))
        g.alive()
        led.check_once(lambda c: [x for x in texts(mm)(c) if not x.startswith(NOTICES)])
        times = sorted(r["time"] for r in llm.requests() if "storm" in json.dumps(r["body"]))
        assert len(times) == 12, f"{len(times)} requests for 8 refusals and 4 answers"
        waves = 1 + sum(1 for a, b in zip(times, times[1:]) if b - a > 0.8)
        assert waves >= 2 and times[-1] - times[0] >= 1.8, (waves, times)
    finally:
        g.stop()

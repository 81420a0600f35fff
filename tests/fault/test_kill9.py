"""kill -9 of `hermes gateway run` while several Mattermost chats are mid-turn, then a restart:
every message is answered exactly once — the turns the kill cut (the message is in state.db
before the model sees it; crash recovery answers it), a message that interrupted a running
turn, and messages written while the gateway was down (the adapter's catch-up; hc_inbound
keeps recovery and redelivery from both answering)."""
import sqlite3

from conftest import MM_CHATS, Ledger, mm_gateway, wait_for


def replies(mm):
    return lambda chat: [p["message"] for p in mm.bot_posts(chat)]


def test_kill_9_mid_turn_with_busy_chats_then_restart(hermes_bin, llm, home, mm):
    led = Ledger("k9")
    g = mm_gateway(hermes_bin, home, llm, mm)
    try:
        # one answered round first, so every chat has a session and a history
        for chat, user, pre in MM_CHATS:
            mm.say(chat, user, pre + led.token(chat))
        wait_for(lambda: not led.missing(replies(mm)), timeout=30, what="the first round")

        # every chat busy: the model hangs on each of these turns
        busy = []
        for chat, user, pre in MM_CHATS:
            t = led.token(chat)
            busy.append(t)
            llm.rule(t, [{"content": "never delivered " + t, "delay_ms": 60000}])
            mm.say(chat, user, pre + t)
        # and one more message into a chat whose turn is running (it interrupts the turn)
        extra = led.token("dm_alice")
        llm.rule(extra, [{"content": "never delivered " + extra, "delay_ms": 60000}])
        wait_for(lambda: all(r["used"] for r in llm.rules()[:len(busy)]), timeout=20,
                 what="every busy turn at the model")
        mm.say("dm_alice", "alice", extra)
        wait_for(lambda: llm.rules()[-1]["used"], timeout=20,
                 what="the interrupting message at the model")
        g.kill()

        # written while the gateway is down
        down = [(c, u, p + led.token(c)) for c, u, p in MM_CHATS[:2]]
        for chat, user, text in down:
            mm.say(chat, user, text)
    finally:
        g.stop()

    g = mm_gateway(hermes_bin, home, llm, mm, n_ws=2)
    try:
        wait_for(lambda: not led.missing(replies(mm)), timeout=60,
                 what=lambda: "answers to the cut turns and to what was written while down: "
                 + str(led.missing(replies(mm))))
        # a last message in every chat: served normally, and a barrier for late duplicates
        # (a chat's replies leave the outbox in order)
        for chat, user, pre in MM_CHATS:
            mm.say(chat, user, pre + led.token(chat))
        wait_for(lambda: not led.missing(replies(mm)), timeout=30, what="the last round")
        g.alive()
        led.check_once(replies(mm))
        assert not any("never delivered" in x for c, _, _ in MM_CHATS for x in replies(mm)(c))
    finally:
        g.stop()
    db = sqlite3.connect(home / "state.db")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        db.close()


def outbox_pending(home):
    """Rows of hc_outbox still waiting for their platform (read-only, next to the writer)."""
    db = sqlite3.connect(f"file:{home / 'state.db'}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute("SELECT count(*) FROM hc_outbox WHERE state = 'pending'").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()


def test_kill_9_with_replies_waiting_in_the_outbox(hermes_bin, llm, home, mm):
    """The answers are written, the platform is away, the gateway is killed: after the
    restart the replies in hc_outbox go out once, and the model is not asked again."""
    led = Ledger("ob")
    g = mm_gateway(hermes_bin, home, llm, mm)
    try:
        for chat, user, pre in MM_CHATS:
            mm.say(chat, user, pre + led.token(chat))
        wait_for(lambda: not led.missing(replies(mm)), timeout=30, what="the first round")
        held = []
        for chat, user, pre in MM_CHATS:
            t = led.token(chat)
            held.append(t)
            llm.rule(t, [{"content": "echo: " + t, "delay_ms": 1000}])
            mm.say(chat, user, pre + t)
        wait_for(lambda: all(r["used"] for r in llm.rules()), timeout=20,
                 what="every turn at the model")
        mm.post("/_test/down", {})  # the server goes away before the answers are ready
        wait_for(lambda: g.alive() and outbox_pending(home) >= len(held), timeout=20,
                 what=lambda: f"the answers waiting in hc_outbox ({outbox_pending(home)})")
        g.kill()
    finally:
        g.stop()
    mm.post("/_test/up", {})
    asked = len(llm.requests())
    g = mm_gateway(hermes_bin, home, llm, mm, n_ws=2)
    try:
        wait_for(lambda: not led.missing(replies(mm)), timeout=60,
                 what=lambda: "the replies left in the outbox: " + str(led.missing(replies(mm))))
        assert len(llm.requests()) == asked, "the model was asked again for a stored answer"
        for chat, user, pre in MM_CHATS:
            mm.say(chat, user, pre + led.token(chat))
        wait_for(lambda: not led.missing(replies(mm)), timeout=30, what="the last round")
        g.alive()
        led.check_once(replies(mm))
        wait_for(lambda: outbox_pending(home) == 0, timeout=10, what="an empty outbox")
    finally:
        g.stop()

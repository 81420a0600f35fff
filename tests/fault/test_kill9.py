"""kill -9 of `hermes gateway run` while several Mattermost chats are mid-turn, then a restart:
every message is answered exactly once — the turns the kill cut (the message is in state.db
before the model sees it; crash recovery answers it), a message that interrupted a running
turn, and messages written while the gateway was down (the adapter's catch-up; hc_inbound
keeps recovery and redelivery from both answering)."""
import json
import os
import sqlite3
import subprocess
import sys
import urllib.request

from conftest import (DOUBLES, MM_CHATS, Gateway, Ledger, hermes_env, mm_gateway, stop_process,
                      wait_for)


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


# ---------------------------------------------------------------- a voice note cut by kill -9

TG_TOKEN = "123456:ABC-fault-token"
TG_USER = 424242


class TGDouble:
    """tests/doubles/telegram_double.py: a private chat with one person, and what the bot sent."""

    def __init__(self, tmp):
        port_file = os.path.join(tmp, "tg.port")
        self.log = open(os.path.join(tmp, "tg.log"), "w")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(DOUBLES, "telegram_double.py"), "--token", TG_TOKEN,
             "--port", "0", "--port-file", port_file],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.port = int(wait_for(
            lambda: os.path.exists(port_file) and open(port_file).read().strip(),
            what="telegram double port file"))
        self.url = f"http://127.0.0.1:{self.port}"

    def _call(self, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data,
                                     headers={"Content-Type": "application/json"},
                                     method="POST" if body is not None else "GET")
        return json.loads(urllib.request.urlopen(req, timeout=5).read())

    def dm(self, text=None, **extra):
        m = {"chat": {"id": TG_USER, "type": "private", "first_name": "Ann"},
             "from": {"id": TG_USER, "is_bot": False, "first_name": "Ann", "username": "ann"}}
        if text is not None:
            m["text"] = text
        m.update(extra)
        return self._call("/_ctl/message", m)

    def voice(self, file_id, content):
        self._call("/_ctl/file", {"file_id": file_id, "file_path": f"voice/{file_id}.oga",
                                  "content": content})
        return self.dm(voice={"file_id": file_id, "file_unique_id": "u" + file_id,
                              "duration": 2, "mime_type": "audio/ogg",
                              "file_size": len(content)})

    def getupdates_calls(self):
        return [c for c in self._call("/_ctl/calls") if c["method"] == "getUpdates"]

    def texts(self):
        return [s["params"]["text"].replace("\\", "") for s in self._call("/_ctl/sent")
                if s["method"] == "sendMessage" and int(s["params"]["chat_id"]) == TG_USER]

    def stop(self):
        stop_process(self.proc, self.log)


def tg_gateway(hermes_bin, home, llm, tg):
    env = hermes_env(home, llm, TELEGRAM_BOT_TOKEN=TG_TOKEN, TELEGRAM_API_BASE=tg.url,
                     TELEGRAM_ALLOWED_USERS=str(TG_USER), TELEGRAM_HOME_CHANNEL=str(TG_USER),
                     STT_OPENAI_BASE_URL=llm.url + "/v1", TTS_OPENAI_BASE_URL=llm.url + "/v1",
                     VOICE_TOOLS_OPENAI_KEY="sk-voice-fault")
    g = Gateway(hermes_bin, home, env)
    n = len(tg.getupdates_calls())
    wait_for(lambda: g.alive() and len(tg.getupdates_calls()) > n, timeout=30,
             what="the gateway polling Telegram")
    return g


def test_kill_9_while_a_voice_note_is_transcribed_then_restart(hermes_bin, llm, home, tmp_path):
    """The update of a voice note is accepted (its key in hc_inbound) seconds before the agent
    sees its transcript. A kill -9 in between used to lose it: the platform's redelivery was a
    duplicate and state.db had no message to recover. The inbox journal (hc_inbox) keeps the
    event until the conversation has it; the restart replays it: answered once."""
    tg = TGDouble(str(tmp_path))
    led = Ledger("tv")
    texts = lambda chat: tg.texts()  # noqa: E731  (one chat)
    g = tg_gateway(hermes_bin, home, llm, tg)
    try:
        tg.dm("hello " + led.token("dm"))
        wait_for(lambda: not led.missing(texts), timeout=30, what="the first answer")
        llm.stt_delay(60000)  # Whisper is slow today
        voice_tok = led.token("dm")
        tg.voice("vk9", "SAY:voice note " + voice_tok)
        wait_for(lambda: llm.stt_started() >= 1, timeout=20,
                 what="the voice note at the transcription API")
        g.kill()
    finally:
        g.stop()
    llm.stt_delay(0)

    g = tg_gateway(hermes_bin, home, llm, tg)
    try:
        wait_for(lambda: not led.missing(texts), timeout=60,
                 what=lambda: "the voice note's answer after the restart: " + str(tg.texts()))
        tg.dm("marker " + led.token("dm"))  # served normally, and a barrier for late duplicates
        wait_for(lambda: not led.missing(texts), timeout=30, what="the last answer")
        g.alive()
        led.check_once(texts)
        assert "passing it on now" in g.output()
    finally:
        g.stop()
        tg.stop()
    db = sqlite3.connect(home / "state.db")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT count(*) FROM hc_inbox").fetchone()[0] == 0
    finally:
        db.close()

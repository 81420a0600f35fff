"""End-to-end: voice notes and voice replies through the real `hermes gateway run` with the
Telegram adapter (tests/doubles/telegram_double.py) and the scripted LLM, whose OpenAI audio
endpoints (/v1/audio/transcriptions, /v1/audio/speech) stand in for Whisper and TTS.

    HERMES_BIN=build/hermes python3 -m pytest -q tests/e2e/test_voice.py
"""
import json

import pytest

from conftest import _wait_for
from test_telegram import USER, Double, reply_to, start

TRANSCRIPT_NOTE = "[The user sent a voice message~ Here's what they said: \"{}\"]"


@pytest.fixture
def tg(tmp_path):
    d = Double(str(tmp_path))
    yield d
    d.stop()


def audio_env(llm):
    return dict(STT_OPENAI_BASE_URL=llm.url + "/v1", TTS_OPENAI_BASE_URL=llm.url + "/v1",
                VOICE_TOOLS_OPENAI_KEY="sk-voice-e2e")


def voice_dm(tg, file_id, content):
    tg.file(file_id, f"voice/{file_id}.oga", content)
    return tg.dm(None, voice={"file_id": file_id, "file_unique_id": "u" + file_id,
                              "duration": 2, "mime_type": "audio/ogg",
                              "file_size": len(content)})


def user_texts(req):
    out = []
    for m in req["body"].get("messages", []):
        if m.get("role") == "user":
            c = m.get("content")
            out.append(c if isinstance(c, str) else json.dumps(c))
    return out


def chat_requests(llm):
    return [r for r in llm.requests() if r["path"].endswith("/chat/completions")]


def test_voice_note_is_transcribed_for_the_model(hermes_bin, home, llm, tg):
    g = start(hermes_bin, home, llm, tg, **audio_env(llm))
    try:
        llm.script([{"content": "It is sunny."}, {"content": "And sunny in Paris."}])
        voice_dm(tg, "v1", "SAY:what is the weather")
        tg.dm("and in Paris?")  # right behind the voice note: waits for its transcript
        # one answer for both, or the first turn superseded by the second: either way a reply
        reply_to(tg, "sunny", timeout=30)
        reqs = llm.requests()
        stt = [r for r in reqs if r["path"] == "/v1/audio/transcriptions"]
        assert len(stt) == 1, reqs
        assert stt[0]["body"]["model"] == "whisper-1"
        assert stt[0]["body"]["response_format"] == "text"
        assert stt[0]["body"]["filename"].endswith(".ogg")
        assert stt[0]["headers"]["Authorization"] == "Bearer sk-voice-e2e"
        note = TRANSCRIPT_NOTE.format("what is the weather")
        # the text came in while the voice note's turn began: one answer for both, the
        # transcript first (or two turns in that order)
        chats = chat_requests(llm)
        first = "\n".join(user_texts(chats[0]))
        assert note in first, first
        assert "and in Paris?" not in first or first.index(note) < first.index("and in Paris?")
        with_text = _wait_for(lambda: [r for r in chat_requests(llm)
                                       if "and in Paris?" in "\n".join(user_texts(r))],
                              what="the text")
        last = "\n".join(user_texts(with_text[-1]))
        assert last.index(note) < last.index("and in Paris?"), last
        # the default TTS provider (edge) is not available: text replies only
        assert not [s for s in tg.sent() if s["method"] == "sendVoice"]
    finally:
        g.stop()


def test_transcription_failure_reaches_the_model_as_the_note(hermes_bin, home, llm, tg):
    g = start(hermes_bin, home, llm, tg, **audio_env(llm))
    try:
        llm.script([{"content": "Sorry, I could not hear that."}])
        voice_dm(tg, "v2", "FAIL:500")
        reply_to(tg, "Sorry, I could not hear that.", timeout=30)
        last = "\n".join(user_texts(chat_requests(llm)[-1]))
        assert ("[The user sent a voice message but I had trouble transcribing it~ "
                "(API error: Error code: 500 - ") in last, last
    finally:
        g.stop()


def test_voice_tts_replies_as_a_voice_bubble(hermes_bin, home, llm, tg):
    (home / "config.yaml").write_text("tts:\n  provider: openai\n")
    g = start(hermes_bin, home, llm, tg, **audio_env(llm))
    try:
        tg.dm("/voice tts")
        reply_to(tg, "Auto-TTS enabled.")
        assert json.loads((home / "gateway_voice_mode.json").read_text()) == {str(USER): "all"}
        llm.script([{"content": "Hello **there**"}])
        tg.dm("say hi")
        reply_to(tg, "Hello")
        voices = _wait_for(lambda: [s for s in tg.sent() if s["method"] == "sendVoice"],
                           timeout=30, what="a sendVoice")
        assert voices[0]["params"]["voice"]["filename"].endswith(".ogg")
        assert voices[0]["params"]["voice"]["size"] > 0
        speech = [r for r in llm.requests() if r["path"] == "/v1/audio/speech"]
        assert len(speech) == 1
        assert speech[0]["body"]["input"] == "Hello there"
        assert speech[0]["body"]["model"] == "gpt-4o-mini-tts"
        assert speech[0]["body"]["voice"] == "alloy"
        assert speech[0]["body"]["response_format"] == "opus"
        tg.dm("/voice status")
        reply_to(tg, "Voice mode: TTS (voice reply to all messages)")
    finally:
        g.stop()


# ------------------------------------------------------------------------------ WhatsApp

def wa_notification(messages):
    from test_whatsapp import PHONE, USER as WA_USER
    return json.dumps({"object": "whatsapp_business_account", "entry": [{
        "id": "123", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550000000", "phone_number_id": PHONE},
            "contacts": [{"profile": {"name": "Ann"}, "wa_id": WA_USER}],
            "messages": [dict(m, **{"from": WA_USER, "timestamp": "1700000000"})
                         for m in messages]}}]}]}).encode()


def test_whatsapp_voice_note_is_fetched_and_transcribed(hermes_bin, llm, home, tmp_path):
    import urllib.request
    from test_whatsapp import (PHONE, SECRET, TOKEN, VERIFY, USER as WA_USER, Gateway, Graph,
                               call, free_port, signed)
    from conftest import hermes_env
    graph = Graph(str(tmp_path))
    port = free_port()
    env = hermes_env(home, llm, WHATSAPP_ENABLED="true", WHATSAPP_ACCESS_TOKEN=TOKEN,
                     WHATSAPP_PHONE_NUMBER_ID=PHONE, WHATSAPP_APP_SECRET=SECRET,
                     WHATSAPP_VERIFY_TOKEN=VERIFY, WHATSAPP_WEBHOOK_PORT=str(port),
                     WHATSAPP_GRAPH_API_BASE=graph.url, WHATSAPP_ALLOWED_USERS=WA_USER,
                     **audio_env(llm))
    g = Gateway(hermes_bin, home, env)
    try:
        path = "/whatsapp/webhook"
        _wait_for(lambda: g.proc.poll() is not None or
                  call(port, "GET", path + "?hub.mode=subscribe&hub.verify_token=" + VERIFY +
                       "&hub.challenge=1")[0] == 200, timeout=20, what="the webhook")
        assert g.proc.poll() is None, g.output()[-3000:]
        req = urllib.request.Request(
            f"http://127.0.0.1:{graph.port}/_ctl/media",
            data=json.dumps({"id": "MEDIA1", "mime_type": "audio/ogg; codecs=opus",
                             "content": "SAY:hello from whatsapp"}).encode(), method="POST")
        urllib.request.urlopen(req, timeout=5).read()
        llm.script([{"content": "Got your voice note."}, {"content": "And the text."}])
        note = wa_notification([
            {"id": "wamid.V1", "type": "audio",
             "audio": {"id": "MEDIA1", "mime_type": "audio/ogg; codecs=opus", "voice": True}},
            {"id": "wamid.T1", "type": "text", "text": {"body": "did you hear me?"}},
            {"id": "wamid.V2", "type": "audio",
             "audio": {"id": "NO-SUCH-MEDIA", "mime_type": "audio/ogg", "voice": True}}])
        assert call(port, "POST", path, note, signed(note))[0] == 200
        # one answer for all three, or a first turn superseded by the follow-up
        _wait_for(lambda: [m for m in graph.sent()
                           if m.get("text", {}).get("body") in ("Got your voice note.",
                                                                "And the text.")],
                  timeout=30, what="the reply")
        chats = _wait_for(lambda: [r for r in chat_requests(llm)
                                   if "could not be fetched" in "\n".join(user_texts(r))],
                          timeout=30, what="the third message")
        first = "\n".join(user_texts(chat_requests(llm)[0]))
        assert TRANSCRIPT_NOTE.format("hello from whatsapp") in first, first
        last = "\n".join(user_texts(chats[-1]))
        heard = last.index(TRANSCRIPT_NOTE.format("hello from whatsapp"))
        assert heard < last.index("did you hear me?") < last.index("could not be fetched"), last
        assert "[The user sent a WhatsApp voice message, but it could not be fetched: " in last
        calls = json.loads(urllib.request.urlopen(
            f"http://127.0.0.1:{graph.port}/_ctl/media_calls", timeout=5).read())
        assert [c["path"] for c in calls if "MEDIA1" in c["path"]] == \
            ["/v20.0/MEDIA1", "/_media/MEDIA1"]
        assert all(c["auth"] == "Bearer " + TOKEN for c in calls)
        files = list((home / "cache" / "whatsapp").iterdir())
        assert len(files) == 1 and files[0].name.endswith(".ogg")
        assert files[0].read_bytes() == b"SAY:hello from whatsapp"
    finally:
        g.stop()
        graph.stop()


def test_whatsapp_voice_tts_replies_with_an_audio_message(hermes_bin, llm, home, tmp_path):
    import urllib.request
    from test_whatsapp import (PHONE, SECRET, TOKEN, VERIFY, USER as WA_USER, Gateway, Graph,
                               call, free_port, signed)
    from conftest import hermes_env
    (home / "config.yaml").write_text("tts:\n  provider: openai\n")
    graph = Graph(str(tmp_path))
    port = free_port()
    env = hermes_env(home, llm, WHATSAPP_ENABLED="true", WHATSAPP_ACCESS_TOKEN=TOKEN,
                     WHATSAPP_PHONE_NUMBER_ID=PHONE, WHATSAPP_APP_SECRET=SECRET,
                     WHATSAPP_VERIFY_TOKEN=VERIFY, WHATSAPP_WEBHOOK_PORT=str(port),
                     WHATSAPP_GRAPH_API_BASE=graph.url, WHATSAPP_ALLOWED_USERS=WA_USER,
                     **audio_env(llm))
    g = Gateway(hermes_bin, home, env)
    try:
        path = "/whatsapp/webhook"
        _wait_for(lambda: g.proc.poll() is not None or
                  call(port, "GET", path + "?hub.mode=subscribe&hub.verify_token=" + VERIFY +
                       "&hub.challenge=1")[0] == 200, timeout=20, what="the webhook")
        assert g.proc.poll() is None, g.output()[-3000:]

        def texts():
            return [m.get("text", {}).get("body", "") for m in graph.sent()]
        note = wa_notification([{"id": "wamid.C1", "type": "text",
                                 "text": {"body": "/voice tts"}}])
        assert call(port, "POST", path, note, signed(note))[0] == 200
        _wait_for(lambda: [t for t in texts() if t.startswith("Auto-TTS enabled.")],
                  timeout=20, what="the /voice answer")
        llm.script([{"content": "Hello from Hermes"}])
        note = wa_notification([{"id": "wamid.C2", "type": "text", "text": {"body": "hi"}}])
        assert call(port, "POST", path, note, signed(note))[0] == 200
        audio = _wait_for(lambda: [m for m in graph.sent() if m.get("type") == "audio"],
                          timeout=30, what=f"an audio message: {graph.sent()}")
        assert "Hello from Hermes" in texts()
        assert audio[0]["to"] == WA_USER
        ups = json.loads(urllib.request.urlopen(
            f"http://127.0.0.1:{graph.port}/_ctl/uploads", timeout=5).read())
        up = ups[audio[0]["audio"]["id"]]
        assert up["type"] == "audio/ogg" and up["filename"].endswith(".ogg")
        assert up["head"].startswith("OggS")
    finally:
        g.stop()
        graph.stop()

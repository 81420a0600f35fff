"""The LLM provider down for a minute, and a model that hangs past the request timeout, while
several chats talk at once (issue 13, "never wedge").

test_a_minute_long_provider_outage_wedges_nothing: for 60 s every completion request gets a
429 with Retry-After (the first 15 s) and then a 500 (fault_llm.py /_outage), while five
Mattermost chats and one API-server client are waiting for answers. During the outage the
gateway answers /health at once and /status in another chat (commands need no LLM), every
chat is told "Waiting for the provider" exactly once for its turn (not once per retry), and
after the provider recovers every message gets exactly one real answer, none lost.

test_a_model_hanging_past_the_timeout_is_retried_or_fails_clearly: agent.api_timeout: 3, and
the model hangs for 30 s: a turn whose next attempt works is answered after one timeout, a
turn whose every attempt hangs gets a clear "did not answer in time" failure, and both
chats are served again right afterwards.

Wall time: about 60 s of outage plus the retry the backoff (full jitter, capped at 60 s) has
scheduled when the outage ends; the chats run in parallel.
"""
import json
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

from conftest import Ledger, mm_gateway, skip_loudly, wait_for

CHATS = [("dm_alice", "alice", ""), ("dm_bob", "bob", ""), ("dm_carol", "carol", ""),
         ("town", "bob", "@hermes "), ("priv", "alice", "@hermes ")]
NOTICE = "Waiting for the provider"
NOTICES = (NOTICE, "\u23f3")
API_KEY = "outage-api-key-0123456789"
OUTAGE_429_S = 15
OUTAGE_500_S = 45
STATUS_REPLIES = []


def outage(llm):
    """fault_llm.py's /_outage state."""
    with urllib.request.urlopen(llm.url + "/_outage", timeout=5) as r:
        return json.loads(r.read())


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def texts(mm, chat):
    return [p["message"] for p in mm.bot_posts(chat)]


def answers(mm, chat):
    """The chat's replies without the waiting notices."""
    return [x for x in texts(mm, chat) if NOTICE not in x]


def notices(mm, chat):
    return [x for x in texts(mm, chat) if NOTICE in x]


def health_ms(port):
    t = time.monotonic()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
        assert r.status == 200
    return (time.monotonic() - t) * 1000


def api_chat(port, text, out):
    """One API-server conversation turn (blocking); its answer text or error goes to out."""
    body = {"model": "hermes-agent", "messages": [{"role": "user", "content": text}]}
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions",
                                 data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json",
                                          "Authorization": f"Bearer {API_KEY}"})
    t = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=200) as r:
            out["status"] = r.status
            out["text"] = json.loads(r.read())["choices"][0]["message"]["content"]
    except urllib.error.HTTPError as e:
        out["status"] = e.code
        out["text"] = e.read().decode(errors="replace")
    except Exception as e:  # noqa: BLE001 - reported by the assertion below
        out["status"] = 0
        out["text"] = repr(e)
    out["secs"] = time.monotonic() - t


def status_reply_s(mm, chat, user):
    """Send /status in chat; seconds until the bot's answer is posted."""
    before = len(mm.bot_posts(chat))
    t = time.monotonic()
    mm.say(chat, user, "/status")
    wait_for(lambda: len(mm.bot_posts(chat)) > before, timeout=10,
             what=f"the /status answer in {chat}")
    took = time.monotonic() - t
    reply = mm.bot_posts(chat)[before]["message"]
    # the command's own answer: not a model's answer, not a provider notice
    assert "echo:" not in reply and NOTICE not in reply and "failed" not in reply, reply
    STATUS_REPLIES.append(reply)
    return took


def test_a_minute_long_provider_outage_wedges_nothing(hermes_bin, llm, home, mm):
    # 20 retries (the most the config allows): with backoff capped at 60 s a turn outlasts a
    # one-minute outage; the default 6 would give up after ~30 s on average.
    (home / "config.yaml").write_text("agent:\n  api_max_retries: 20\n")
    port = free_port()
    g = mm_gateway(hermes_bin, home, llm, mm, API_SERVER_ENABLED="true",
                   API_SERVER_PORT=port, API_SERVER_KEY=API_KEY,
                   MATTERMOST_REQUIRE_MENTION="false")
    led = Ledger("po")
    try:
        wait_for(lambda: health_ms(port) < 5000, timeout=20, what="the API server's /health")
        st = llm._post("/_outage", {"phases": [
            {"seconds": OUTAGE_429_S,
             "spec": {"status": 429, "headers": {"Retry-After": "5"},
                      "body": '{"error":{"message":"rate limited, slow down"}}'}},
            {"seconds": OUTAGE_500_S,
             "spec": {"status": 500, "body": '{"error":{"message":"upstream is down"}}'}}]})
        assert st["active"], st
        t0 = time.monotonic()
        for chat, user, pre in CHATS:
            mm.say(chat, user, pre + led.token(chat))
        api_tok = "poapi000x"
        api_out = {}
        api = threading.Thread(target=api_chat, args=(port, api_tok, api_out), daemon=True)
        api.start()

        # During the outage: /health stays fast, /status in a chat outside the storm is
        # answered at once, no chat gets an answer (every LLM call fails), and each chat
        # gets its one notice.
        # (each snapshot of the chats counts as "during" only if the outage was still on
        # after it was taken: an answer posted right after the end is not one)
        worst_health, status_s, n_probe = 0.0, [], 0
        during, told = None, None
        while n_probe < 400:
            snap = {c: texts(mm, c) for c, _, _ in CHATS}
            if not outage(llm)["active"]:
                break
            during = {c: [x for x in t if NOTICE not in x] for c, t in snap.items()}
            told = {c: sum(NOTICE in x for x in t) for c, t in snap.items()}
            n_probe += 1
            worst_health = max(worst_health, health_ms(port))
            if n_probe % 40 == 1:
                status_s.append(status_reply_s(mm, "group", "alice"))
            time.sleep(0.25)  # pacing of the probes, not synchronisation
            g.alive()
        outage_s = time.monotonic() - t0
        assert during is not None, "the outage was over before the first probe"
        assert outage_s >= OUTAGE_429_S + OUTAGE_500_S - 2, outage_s
        assert not any(during.values()), f"answers during the outage: {during}"
        assert all(n == 1 for n in told.values()), \
            f"'waiting for the provider' notices per chat during the outage: {told}"
        served = outage(llm)["served"]
        assert served[0] >= len(CHATS) + 1 and served[1] >= len(CHATS) + 1, served

        # The provider is back: every message gets its one real answer.
        wait_for(lambda: not led.missing(lambda c: answers(mm, c)) and "text" in api_out,
                 timeout=90, what=lambda: "every answer after the outage: "
                 + str({c: texts(mm, c) for c, _, _ in CHATS}) + f" api={api_out}")
        recovered_s = time.monotonic() - t0
        g.alive()
        led.check_once(lambda c: answers(mm, c))
        for chat, _, _ in CHATS:
            a = answers(mm, chat)
            assert a == ["echo: " + led.sent[chat][0]], (chat, a)
            assert len(notices(mm, chat)) == 1, (chat, texts(mm, chat))
        assert api_out["status"] == 200 and api_out["text"] == "echo: " + api_tok, api_out
        assert worst_health < 1000, f"/health took {worst_health:.0f} ms during the outage"
        assert status_s and max(status_s) < 5, f"/status answers took {status_s} s"
        print(f"\noutage {outage_s:.1f}s, all answered at {recovered_s:.1f}s; worst /health "
              f"{worst_health:.0f} ms over {n_probe} probes; /status in {status_s} s; "
              f"outage responses {served}; notices {told}")
        print("a notice:", repr(notices(mm, "dm_alice")[0]))
        print("a /status answer:", repr(STATUS_REPLIES[0][:300]))
    finally:
        g.stop()


def needs_api_timeout_key(hermes_bin, home):
    """agent.api_timeout comes with actors/config/hm_schema.c and actors/host/hm_host.c; a
    build without it would hang for the full 30 s and fail for the wrong reason."""
    keys = subprocess.run([hermes_bin, "config", "schema", "keys"], capture_output=True,
                          text=True, timeout=30, env={"HERMES_HOME": str(home),
                                                      "PATH": "/usr/bin:/bin"}).stdout
    if "`agent.api_timeout`" not in keys:
        skip_loudly("test_a_model_hanging_past_the_timeout",
                    "this build has no agent.api_timeout config key (hm_schema.c/hm_host.c)")


def test_a_model_hanging_past_the_timeout_is_retried_or_fails_clearly(hermes_bin, llm, home,
                                                                       mm):
    needs_api_timeout_key(hermes_bin, home)
    (home / "config.yaml").write_text("agent:\n  api_timeout: 3\n  api_max_retries: 1\n")
    g = mm_gateway(hermes_bin, home, llm, mm)
    led = Ledger("ht")
    try:
        retried, failed = led.token("dm_alice"), led.token("dm_bob")
        hang = {"delay_ms": 30000, "content": "too late"}
        llm.rule(retried, [hang])        # the retry works
        llm.rule(failed, [hang, hang])   # both attempts hang
        t0 = time.monotonic()
        mm.say("dm_alice", "alice", retried)
        mm.say("dm_bob", "bob", failed)
        wait_for(lambda: answers(mm, "dm_alice") and answers(mm, "dm_bob"), timeout=25,
                 what=lambda: "both chats' replies: "
                 + str({c: texts(mm, c) for c in ("dm_alice", "dm_bob")}))
        took = time.monotonic() - t0
        assert took < 20, f"replies after {took:.1f}s: the 3 s timeout was not applied"
        assert answers(mm, "dm_alice") == ["echo: " + retried], texts(mm, "dm_alice")
        fail = answers(mm, "dm_bob")
        assert len(fail) == 1 and "did not answer in time" in fail[0], fail
        assert retried not in fail[0]
        used = {r["match"]: r["used"] for r in llm.rules()}
        assert used[retried] == 1 and used[failed] == 2, used
        # not wedged: both chats are served at once afterwards
        again = {c: led.token(c) for c in ("dm_alice", "dm_bob")}
        mm.say("dm_alice", "alice", again["dm_alice"])
        mm.say("dm_bob", "bob", again["dm_bob"])
        wait_for(lambda: all(any(t in x for x in answers(mm, c)) for c, t in again.items()),
                 timeout=15, what="the next round")
        g.alive()
        for c, t in again.items():
            assert sum(x.count(t) for x in answers(mm, c)) == 1, (c, texts(mm, c))
        print(f"\nreplies after {took:.1f}s; failure text: {fail[0]!r}")
    finally:
        g.stop()

"""`hermes gateway run` as users run it: the API server in front, the scripted LLM behind,
state.db on disk. Covers answers and streaming, session continuity, serialized turns on one
session, bad requests, the one-gateway lock, a kill -9 mid-turn answered after a restart,
and a proxy chain of two gateway processes."""
import json
import signal
import socket
import sqlite3
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

from conftest import _wait_for, hermes_env

KEY = "test-api-key-0123456789"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Gateway:
    def __init__(self, hermes_bin, home, env):
        self.home = home
        self.port = int(env["API_SERVER_PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = home / "gateway.out"
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen([hermes_bin, "gateway", "run"], env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        _wait_for(self.healthy, timeout=20, what="the gateway's /health")

    def healthy(self):
        if self.proc.poll() is not None:
            raise AssertionError("gateway exited: " + self.log_path.read_text()[-2000:])
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def request(self, body, headers=None, path="/v1/chat/completions", raw=None, timeout=30):
        data = raw if raw is not None else json.dumps(body).encode()
        h = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}
        h.update(headers or {})
        req = urllib.request.Request(self.url + path, data=data, headers=h, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, dict(r.headers), r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read().decode()


def gw_env(home, llm, port, **extra):
    return hermes_env(home, llm, API_SERVER_ENABLED="true", API_SERVER_PORT=port,
                      API_SERVER_KEY=KEY, **extra)


@pytest.fixture
def gateway(hermes_bin, llm, home):
    g = Gateway(hermes_bin, home, gw_env(home, llm, free_port()))
    yield g
    g.stop()


def user_says(text):
    return {"model": "hermes-agent", "messages": [{"role": "user", "content": text}]}


def rows(home, session_id):
    db = sqlite3.connect(home / "state.db")
    try:
        return db.execute("SELECT role, content FROM messages WHERE session_id = ? ORDER BY id",
                          (session_id,)).fetchall()
    finally:
        db.close()


def test_answer_streaming_and_persistence(gateway, llm, home):
    code, headers, body = gateway.request(user_says("hello gateway"))
    assert code == 200, body
    reply = json.loads(body)
    assert reply["choices"][0]["message"]["content"] == "echo: hello gateway"
    sid = headers["X-Hermes-Session-Id"]
    assert sid.startswith("api-")
    # the answer's row is committed in the store's next group commit, right after the reply
    _wait_for(lambda: len(rows(home, sid)) == 2, what="the answer in state.db")
    assert rows(home, sid) == [("user", "hello gateway"), ("assistant", "echo: hello gateway")]

    body = dict(user_says("stream this"), stream=True)
    code, headers, text = gateway.request(body)
    assert code == 200
    assert headers["Content-Type"].startswith("text/event-stream")
    frames = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
    assert frames[-1] == "[DONE]"
    content = "".join(json.loads(f)["choices"][0]["delta"].get("content", "")
                      for f in frames[:-1])
    assert content == "echo: stream this"


def test_session_header_continues_the_conversation(gateway, llm, home):
    h = {"X-Hermes-Session-Id": "my-session-1"}
    assert gateway.request(user_says("my name is Ada"), h)[0] == 200
    code, headers, body = gateway.request(user_says("what is my name?"), h)
    assert code == 200
    assert headers["X-Hermes-Session-Id"] == "my-session-1"
    sent = [m["content"] for m in llm.requests()[-1]["body"]["messages"] if m["role"] == "user"]
    assert sent == ["my name is Ada", "what is my name?"]
    _wait_for(lambda: len(rows(home, "my-session-1")) == 4, what="the answers in state.db")


def test_a_rested_agent_comes_back_with_its_transcript_and_prompt(hermes_bin, llm, home):
    """gateway.agent_idle_s: an idle conversation's agent leaves memory and the next message
    reloads it from state.db -- the whole transcript, and the system prompt of its first turn
    (the frozen memory snapshot), even though MEMORY.md changed meanwhile."""
    g = Gateway(hermes_bin, home, gw_env(home, llm, free_port(), GATEWAY_AGENT_IDLE="1",
                                         HERMES_LOG_LEVEL="debug", HERMES_LOG_DEBUG="gateway"))
    try:
        h = {"X-Hermes-Session-Id": "resting-1"}
        assert g.request(user_says("my name is Ada"), h)[0] == 200
        first_system = llm.requests()[-1]["body"]["messages"][0]
        assert first_system["role"] == "system"
        (home / "memories").mkdir(exist_ok=True)
        (home / "memories" / "MEMORY.md").write_text("The user drinks green tea.\n")
        _wait_for(lambda: "the agent of resting-1 rests" in g.log_path.read_text(),
                  timeout=15, what="the idle agent to leave memory")
        code, _, body = g.request(user_says("what is my name?"), h)
        assert code == 200, body
        msgs = llm.requests()[-1]["body"]["messages"]
        assert msgs[0] == first_system  # the snapshot of the first turn, not today's memory
        said = [(m["role"], m["content"]) for m in msgs[1:]]
        assert said == [("user", "my name is Ada"), ("assistant", "echo: my name is Ada"),
                        ("user", "what is my name?")]
        # a new conversation does see the new memory: the check above could fail
        assert g.request(user_says("hello"), {"X-Hermes-Session-Id": "fresh-1"})[0] == 200
        assert "green tea" in llm.requests()[-1]["body"]["messages"][0]["content"]
        _wait_for(lambda: len(rows(home, "resting-1")) == 4, what="both turns in state.db")
    finally:
        g.stop()


def test_model_context_length_from_config_drives_compression(hermes_bin, llm, home):
    """model.context_length is the window a local model's sessions compress against (at 85 %):
    a reply reporting 900 prompt tokens of a 1,000-token window makes the next turn summarize
    the conversation first."""
    (home / "config.yaml").write_text("model:\n  context_length: 1000\n")
    g = Gateway(hermes_bin, home, gw_env(home, llm, free_port()))
    try:
        h = {"X-Hermes-Session-Id": "small-window"}
        llm.script([{"content": f"answer {i}"} for i in range(1, 6)]
                   + [{"content": "answer 6", "usage": {"prompt_tokens": 900,
                                                        "completion_tokens": 5}},
                      {"content": "[CONTEXT SUMMARY]: six questions were asked"},
                      {"content": "answer 7"}])
        for i in range(1, 7):
            code, _, body = g.request(user_says(f"question {i}"), h)
            assert code == 200, body
        assert not any("Summarize the conversation" in str(r["body"]["messages"][-1]["content"])
                       for r in llm.requests())
        code, _, body = g.request(user_says("question 7"), h)
        assert code == 200, body
        assert any("Summarize the conversation" in str(r["body"]["messages"][-1]["content"])
                   for r in llm.requests()), "the 7th turn compressed the conversation first"
    finally:
        g.stop()


def test_two_requests_on_one_session_are_served_in_order(gateway, llm, home):
    llm.script([{"content": "first answer", "delay_ms": 700}, {"content": "second answer"}])
    h = {"X-Hermes-Session-Id": "busy-session"}
    results = {}

    def ask(name, text):
        results[name] = gateway.request(user_says(text), h)

    t1 = threading.Thread(target=ask, args=("a", "one"))
    t1.start()
    _wait_for(lambda: len(llm.requests()) >= 1, what="the first request at the model")
    t2 = threading.Thread(target=ask, args=("b", "two"))
    t2.start()
    t1.join(30)
    t2.join(30)
    assert json.loads(results["a"][2])["choices"][0]["message"]["content"] == "first answer"
    assert json.loads(results["b"][2])["choices"][0]["message"]["content"] == "second answer"
    # the second turn ran after the first and saw it (never interrupted it)
    second = llm.requests()[1]["body"]["messages"]
    assert [m["content"] for m in second if m["role"] != "system"] == \
        ["one", "first answer", "two"]


def test_the_in_flight_cap_from_config_holds_requests_back(hermes_bin, llm, home):
    """agent.api_max_inflight: 1 — a second user's request waits in the provider until the
    first answer is in; both are answered."""
    (home / "config.yaml").write_text("agent:\n  api_max_inflight: 1\n")
    llm.script([{"content": "slow one", "delay_ms": 1500}, {"content": "slow two",
                                                            "delay_ms": 1500}])
    g = Gateway(hermes_bin, home, gw_env(home, llm, free_port()))
    try:
        results = {}

        def ask(name):
            results[name] = g.request(user_says("hello " + name), {"X-Hermes-Session-Id": name})

        threads = [threading.Thread(target=ask, args=(n,)) for n in ("cap-a", "cap-b")]
        for t in threads:
            t.start()
        _wait_for(lambda: len(llm.requests()) >= 1, what="the first request at the model")
        time.sleep(0.8)  # both users have asked by now; the cap lets one through
        assert len(llm.requests()) == 1, "a second request passed the in-flight cap of 1"
        for t in threads:
            t.join(30)
        assert [results[n][0] for n in ("cap-a", "cap-b")] == [200, 200]
        assert len(llm.requests()) >= 2
    finally:
        g.stop()


def test_bad_requests_get_clear_errors(gateway):
    code, _, body = gateway.request(None, raw=b"{not json")
    assert code == 400
    assert "error" in json.loads(body)
    code, _, body = gateway.request({"model": "x", "messages": []})
    assert code == 400
    assert "Missing or invalid 'messages' field" in body
    code, _, body = gateway.request({"model": "x", "messages": [{"role": "system",
                                                                  "content": "be brief"}]})
    assert code == 400
    assert "No user message found in messages" in body
    code, _, body = gateway.request(user_says("x"), {"Authorization": "Bearer wrong-key"})
    assert code == 401
    assert json.loads(body)["error"]["code"] == "invalid_api_key"
    code, _, body = gateway.request(None, raw=b"x" * 1_100_000)
    assert code == 413
    code, _, _ = gateway.request(user_says("x"), {"X-Hermes-Session-Id": "bad\u0001id"})
    assert code == 400


def test_a_second_gateway_on_the_same_home_is_refused(gateway, hermes_bin, llm, home):
    r = subprocess.run([hermes_bin, "gateway", "run"],
                       env=gw_env(home, llm, free_port()), capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 1
    assert "Gateway already running (PID" in r.stderr
    st = subprocess.run([hermes_bin, "gateway", "status"], env=hermes_env(home), text=True,
                        capture_output=True, timeout=30)
    assert st.returncode == 0
    assert "api_server (connected)" in st.stdout


def test_a_turn_cut_by_kill_9_is_answered_after_restart(hermes_bin, llm, home):
    port = free_port()
    g = Gateway(hermes_bin, home, gw_env(home, llm, port))
    llm.script([{"content": "never delivered", "delay_ms": 30000}])
    h = {"X-Hermes-Session-Id": "crash-session"}
    def doomed():
        try:
            g.request(user_says("survive this"), h, timeout=60)
        except OSError:
            pass  # the gateway is killed under it

    t = threading.Thread(target=doomed)
    t.daemon = True
    t.start()
    _wait_for(lambda: len(llm.requests()) >= 1, what="the turn at the model")
    # the message is in state.db before the model saw it
    assert rows(home, "crash-session") == [("user", "survive this")]
    _wait_for(lambda: (home / "sessions" / "sessions.json").exists(), what="sessions.json")
    g.stop(signal.SIGKILL)
    llm.reset()
    g2 = Gateway(hermes_bin, home, gw_env(home, llm, port))
    try:
        _wait_for(lambda: len(rows(home, "crash-session")) == 2, timeout=20,
                  what="the restarted gateway's answer")
        assert rows(home, "crash-session")[1] == ("assistant", "echo: survive this")
        assert len(llm.requests()) == 1
    finally:
        g2.stop()


def test_a_proxy_chain_of_two_gateways(hermes_bin, llm, tmp_path):
    host_home = tmp_path / "host"
    host_home.mkdir()
    thin_home = tmp_path / "thin"
    thin_home.mkdir()
    host = Gateway(hermes_bin, host_home, gw_env(host_home, llm, free_port()))
    thin_port = free_port()
    thin = Gateway(hermes_bin, thin_home,
                   gw_env(thin_home, None, thin_port, GATEWAY_PROXY_URL=host.url + "/",
                          GATEWAY_PROXY_KEY=KEY))
    try:
        h = {"X-Hermes-Session-Id": "chain-1"}
        code, _, body = thin.request(user_says("through the chain"), h)
        assert code == 200, body
        assert json.loads(body)["choices"][0]["message"]["content"] == "echo: through the chain"
        # the host ran the agent (its model saw the text); the thin side called no model
        assert llm.requests()[-1]["body"]["messages"][-1]["content"] == "through the chain"
        _wait_for(lambda: rows(host_home, "chain-1")[-1:] ==
                  [("assistant", "echo: through the chain")], what="the host's state.db")
        code, _, body = thin.request(dict(user_says("and streamed"), stream=True), h)
        assert code == 200
        assert "echo: " in body and "data: [DONE]" in body
    finally:
        thin.stop()
        host.stop()

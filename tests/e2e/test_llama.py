"""The real OpenAI-compatible server from ../shared/peers/llm (llama.cpp's llama-server with a
tiny random-weight model: the words are gibberish, the protocol, SSE framing and usage are
real) behind `hermes chat -q` and behind the gateway's API server.

When the peer is not installed here the tests are skipped and say why; they never pass
without it.
"""
import json
import os
import socket
import sqlite3
import subprocess
import time
import urllib.request

import pytest

from conftest import _wait_for, hermes_env

HERE = os.path.dirname(os.path.abspath(__file__))
PORT = 18081  # not the peer's default, which the provider unit test uses at the same time


def _peers_dir():
    for d in (os.environ.get("HERMES_PEERS_LLM"),
              os.path.join(HERE, "..", "..", "..", "shared", "peers", "llm"),
              "/work/shared/peers/llm"):
        if d and os.path.exists(os.path.join(d, "start.sh")):
            return os.path.abspath(d)
    return None


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    peers = _peers_dir()
    sid = os.environ.get("SID_ROOT", "/opt/peers/sid-root")
    if os.geteuid() != 0:
        pytest.skip("LLAMA PEER NOT TESTED: its start.sh needs root (chroot)")
    if not peers:
        pytest.skip("LLAMA PEER NOT TESTED: ../shared/peers/llm is not on this machine")
    if not os.path.exists(os.path.join(sid, "opt/llm/tiny-random-llama.gguf")):
        pytest.skip(f"LLAMA PEER NOT TESTED: not installed under {sid} "
                    f"(run {peers}/install.sh)")
    run = str(tmp_path_factory.mktemp("llama-run"))
    env = dict(os.environ, LLM_PORT=str(PORT), LLM_RUN=run, SID_ROOT=sid)
    r = subprocess.run([os.path.join(peers, "start.sh")], env=env, capture_output=True,
                       text=True, timeout=60)
    if r.returncode != 0:
        pytest.fail(f"llama-server did not start: {r.stdout}{r.stderr}")
    yield f"http://127.0.0.1:{PORT}/v1"
    subprocess.run([os.path.join(peers, "stop.sh")], env=env, capture_output=True, timeout=30)


def _env(home, url, **extra):
    (home / "config.yaml").write_text("model:\n  default: tiny-random\n  provider: custom\n"
                                      f"  base_url: {url}\n")
    return hermes_env(home, None, OPENAI_API_KEY="none", OPENAI_BASE_URL=url, **extra)


def test_chat_answers_through_llama_server(hermes_bin, llama, home):
    r = subprocess.run([hermes_bin, "chat", "-q", "Say hello."], env=_env(home, llama),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip(), "the model's answer is printed"
    db = sqlite3.connect(home / "state.db")
    roles = [row[0] for row in db.execute("SELECT role FROM messages ORDER BY id")]
    assert roles == ["user", "assistant"]
    (answer,) = db.execute("SELECT content FROM messages WHERE role = 'assistant'").fetchone()
    assert answer.strip() == r.stdout.strip()
    tokens_in, tokens_out = db.execute("SELECT input_tokens, output_tokens FROM sessions").fetchone()
    assert tokens_in > 0 and tokens_out > 0, "llama-server's usage is recorded"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_api_server_streams_llama_server_answer(hermes_bin, llama, home):
    port = _free_port()
    env = _env(home, llama, API_SERVER_ENABLED="true", API_SERVER_PORT=port)
    log = open(home / "gateway.log", "w")
    gw = subprocess.Popen([hermes_bin, "gateway", "run"], env=env, stdout=log,
                          stderr=subprocess.STDOUT)
    try:
        def up():
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).read()
                return True
            except OSError:
                return False
        _wait_for(up, timeout=20, what="the API server")
        body = json.dumps({"model": "hermes-agent", "stream": True,
                           "messages": [{"role": "user", "content": "Say hello."}]}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=body,
                                     headers={"Content-Type": "application/json"})
        t0 = time.monotonic()
        with urllib.request.urlopen(req, timeout=120) as resp:
            assert resp.headers["Content-Type"].startswith("text/event-stream")
            events = [line[6:] for line in resp.read().decode().splitlines()
                      if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        text = "".join(json.loads(e)["choices"][0]["delta"].get("content") or ""
                       for e in events[:-1] if json.loads(e).get("choices"))
        assert text.strip(), "streamed content arrived"
        assert time.monotonic() - t0 < 120
    finally:
        gw.terminate()
        try:
            gw.wait(15)
        except subprocess.TimeoutExpired:
            gw.kill()
        log.close()

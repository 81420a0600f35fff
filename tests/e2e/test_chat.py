"""`hermes chat -q`: one turn against the scripted LLM, end to end through the built binary."""
import os
import signal
import socket
import sqlite3
import subprocess
import time

from conftest import hermes_env


def run(hermes_bin, env, *args, timeout=30, input=None):
    return subprocess.run([hermes_bin, "chat", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, input=input)


def test_answer_is_printed_and_persisted(hermes_bin, llm, home):
    llm.script([{"content": "The answer is 42.", "chunks": 4}])
    r = run(hermes_bin, hermes_env(home, llm), "-q", "what is the answer?")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "The answer is 42."
    req = llm.requests()[-1]
    assert req["path"] == "/v1/chat/completions"
    assert req["headers"].get("Authorization") == "Bearer sk-test-key-123456"
    msgs = req["body"]["messages"]
    assert msgs[0]["role"] == "system"
    assert msgs[-1] == {"role": "user", "content": "what is the answer?"}
    db = sqlite3.connect(home / "state.db")
    rows = db.execute("SELECT role, content FROM messages ORDER BY id").fetchall()
    assert rows == [("user", "what is the answer?"), ("assistant", "The answer is 42.")]
    src = db.execute("SELECT source FROM sessions").fetchall()
    assert src == [("cli",)]


def test_no_provider_is_a_clear_error(hermes_bin, home):
    r = run(hermes_bin, hermes_env(home), "-q", "hello")
    assert r.returncode == 1
    assert "No LLM provider is configured" in r.stderr
    assert r.stdout == ""


def test_unreachable_provider_is_a_clear_error(hermes_bin, home):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    env = hermes_env(home, OPENAI_BASE_URL=f"http://127.0.0.1:{port}/v1",
                     OPENAI_API_KEY="sk-test-key-123456")
    (home / "config.yaml").write_text("agent:\n  api_max_retries: 1\n")
    r = run(hermes_bin, env, "-q", "hello", timeout=120)
    assert r.returncode == 1
    assert "The request failed" in r.stderr
    assert "sk-test-key-123456" not in r.stderr + r.stdout


def test_bad_key_is_reported_without_the_key(hermes_bin, llm, home):
    body = '{"error": {"message": "Incorrect API key provided: sk-test-key-123456", ' \
           '"type": "invalid_request_error", "code": "invalid_api_key"}}'
    llm.script([{"status": 401, "body": body}])
    r = run(hermes_bin, hermes_env(home, llm), "-q", "hello")
    assert r.returncode == 1
    assert "401" in r.stderr
    assert "sk-test-key-123456" not in r.stderr + r.stdout


def test_retry_after_429_then_success(hermes_bin, llm, home):
    llm.script([{"status": 429, "headers": {"Retry-After": "0"},
                 "body": '{"error": {"message": "slow down"}}'},
                {"content": "made it"}])
    r = run(hermes_bin, hermes_env(home, llm), "-q", "hello")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "made it"
    assert len(llm.requests()) == 2


def test_ctrl_c_interrupts_the_turn(hermes_bin, llm, home):
    llm.script([{"content": "too late", "delay_ms": 20000}])
    p = subprocess.Popen([hermes_bin, "chat", "-q", "take your time"],
                         env=hermes_env(home, llm), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 15
    while not llm.requests() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert llm.requests(), "the request never reached the LLM"
    t0 = time.monotonic()
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=10)
    assert p.returncode == 130, err
    assert time.monotonic() - t0 < 5
    assert "too late" not in out


def test_usage_errors(hermes_bin, home):
    r = subprocess.run([hermes_bin, "chat", "--no-such-flag"], env=hermes_env(home),
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 2
    assert "usage" in (r.stderr + r.stdout).lower()


def test_status_and_doctor(hermes_bin, llm, home):
    r = subprocess.run([hermes_bin, "doctor"], env=hermes_env(home), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1, r.stdout
    assert "no provider is configured" in r.stdout
    r = subprocess.run([hermes_bin, "doctor"], env=hermes_env(home, llm), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout
    assert "reachable (HTTP 200)" in r.stdout
    (home / "config.yaml").write_text("agent:\n  max_turns: [not, a, number]\n")
    r = subprocess.run([hermes_bin, "doctor"], env=hermes_env(home, llm), capture_output=True,
                       text=True, timeout=60)
    assert "config.yaml:2" in r.stdout
    r = subprocess.run([hermes_bin, "status"], env=hermes_env(home, llm), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0
    assert "Provider:      custom" in r.stdout
    assert "sk-test-key-123456" not in r.stdout
    assert "sk-t...3456" in r.stdout


def test_bundled_skills_are_copied_once_and_indexed(hermes_bin, llm, home):
    llm.script([{"content": "ok"}, {"content": "ok"}])
    r = run(hermes_bin, hermes_env(home, llm), "-q", "hello")
    assert r.returncode == 0, r.stderr
    skill = home / "skills" / "hermes" / "gateway-operations" / "SKILL.md"
    assert skill.exists()
    assert "gateway-operations" in (home / "skills" / ".bundled_manifest").read_text()
    system = llm.requests()[-1]["body"]["messages"][0]["content"]
    assert "gateway-operations" in system, "the skill is in the system prompt's index"
    # a skill the user deleted stays deleted
    skill.unlink()
    skill.parent.rmdir()
    r = run(hermes_bin, hermes_env(home, llm), "-q", "hello again")
    assert r.returncode == 0, r.stderr
    assert not skill.exists()

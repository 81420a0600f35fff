"""The interactive `hermes` driven through a pseudo-terminal (repl_pty.py), against the
scripted LLM; and the tool-selection commands (`hermes --list-tools`, `hermes tools`,
`--toolsets`) and their usage errors."""
import json
import os
import sqlite3
import subprocess
import time

import pytest

from conftest import hermes_env
from repl_pty import Repl

IDLE = r"\n❯ "  # the idle prompt at the start of a row (the busy one is "⚕ ❯ ")
# A sanitizer build's options (suppressions, halt_on_error) reach the binary.
SAN = {k: os.environ[k] for k in ("ASAN_OPTIONS", "TSAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS")
       if k in os.environ}


@pytest.fixture
def start(hermes_bin, llm, home):
    """start(*args, **env) → a Repl running `hermes *args` on a pty; closed at the end."""
    running = []

    def _start(*args, **extra):
        r = Repl([hermes_bin, *args], hermes_env(home, llm, **SAN, **extra),
                 cwd=str(home.parent))
        running.append(r)
        r.expect("Welcome to Hermes Agent", 20)
        r.expect(IDLE, 10)
        return r

    yield _start
    for r in running:
        r.close()


def wait_for(pred, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def turn_done(r, timeout=20):
    """The answer box closed and the idle prompt is back."""
    r.expect("╰─", timeout)
    r.expect(IDLE, 10)


def tool_messages(llm):
    out = []
    for req in llm.requests():
        for m in req["body"].get("messages", []):
            if m.get("role") == "tool":
                out.append(m.get("content") or "")
    return out


def leave(r):
    r.line("/quit")
    r.expect("Goodbye!", 10)
    assert r.wait_exit(10) == 0


# ------------------------------------------------------------------ chatting


def test_question_gets_a_streamed_answer(start, llm, home):
    llm.script([{"content": "alpha beta gamma", "chunks": 3, "chunk_delay_ms": 1500}])
    r = start()
    r.line("what comes first?")
    r.expect("alpha", 15)
    # Streamed: the first words are on screen while the rest is still on its way.
    assert "gamma" not in r.text(r.mark)
    r.expect("gamma", 15)
    turn_done(r)
    body = llm.requests()[-1]["body"]
    assert body.get("stream") is True
    assert body["messages"][-1] == {"role": "user", "content": "what comes first?"}
    leave(r)
    out = r.text()
    assert "hermes --resume " in out
    # The history file has the original's (prompt_toolkit FileHistory) format.
    hist = (home / ".hermes_history").read_text()
    assert "\n+what comes first?\n" in hist
    assert (os.stat(home / ".hermes_history").st_mode & 0o777) == 0o600
    db = sqlite3.connect(home / "state.db")
    rows = db.execute("SELECT role, content FROM messages ORDER BY id").fetchall()
    assert rows == [("user", "what comes first?"), ("assistant", "alpha beta gamma")]
    ended = db.execute("SELECT end_reason FROM sessions").fetchall()
    assert ended == [("cli_close",)]


def test_new_starts_a_fresh_session(start, llm, home):
    llm.script([{"content": "first answer"}, {"content": "second answer"}])
    r = start()
    r.line("one")
    r.expect("first answer", 15)
    turn_done(r)
    r.line("/new")
    r.expect(r"New session started", 10)
    r.line("two")
    r.expect("second answer", 15)
    turn_done(r)
    msgs = llm.requests()[-1]["body"]["messages"]
    assert [m["role"] for m in msgs] == ["system", "user"]
    assert msgs[-1]["content"] == "two"
    leave(r)
    db = sqlite3.connect(home / "state.db")
    assert db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 2


def test_continue_resumes_the_last_session(start, llm, home):
    llm.script([{"content": "noted: blue"}, {"content": "it was blue"}])
    r = start()
    r.line("my colour is blue")
    r.expect("noted: blue", 15)
    turn_done(r)
    leave(r)
    r2 = start("--continue")
    r2.expect_screen("Resumed session", 5)
    r2.send("\x1b[A")  # Up: the history file of the last run is loaded
    r2.expect_screen(r"❯ /quit$", 5)
    r2.send("\x1b[A")
    r2.expect_screen(r"❯ my colour is blue$", 5)
    r2.ctrl_c()  # Ctrl+C with text in the line clears it (and does not leave)
    r2.expect_screen(r"❯$", 5)
    r2.line("what was my colour?")
    r2.expect("it was blue", 15)
    turn_done(r2)
    contents = [m.get("content") for m in llm.requests()[-1]["body"]["messages"]]
    assert "my colour is blue" in contents and "noted: blue" in contents
    leave(r2)


def test_slash_commands(start, llm):
    r = start()
    r.line("/help")
    r.expect(r"Available Commands.*?/toolsets.*?/quit", 10)
    r.line("/tools")
    r.expect(r"Available Tools.*?\* terminal.*?Total: \d+ tools", 10)
    r.line("/nonsense")
    r.expect("Unknown command: /nonsense", 10)
    r.line("/undo")
    r.expect("No messages to undo", 10)
    leave(r)


def test_skill_command_sends_the_skill(start, llm, home):
    """/<skill-name> [text]: the installed skill's instructions become the message (agent-core
    §8.3); the REPL needs no restart to see a new skill."""
    d = home / "skills" / "devops" / "deploy_k8s"
    d.mkdir(parents=True)
    (d / "SKILL.md").write_text("---\nname: deploy_k8s\ndescription: Deploy\n---\n"
                                "1. kubectl apply\n")
    llm.script([{"content": "deploying now"}])
    r = start()
    r.line("/help")  # the installed skills are listed as commands, after the built-in ones
    r.expect(r"/quit.*?Skill Commands \(\d+ installed\):.*?/deploy-k8s +- Deploy", 10)
    r.line("/deploy-k8s to staging")
    r.expect("deploying now", 15)
    turn_done(r)
    sent = llm.requests()[-1]["body"]["messages"][-1]["content"]
    assert sent.startswith('[SYSTEM: The user has invoked the "deploy_k8s" skill')
    assert "1. kubectl apply" in sent and sent.endswith("skill invocation: to staging")
    leave(r)


def test_compress(start, llm, home):
    llm.script([{"content": f"answer {i}"} for i in range(1, 6)]
               + [{"content": "[CONTEXT SUMMARY]: five questions were asked"}])
    r = start()
    r.line("/compress")
    r.expect(r"Not enough conversation to compress", 10)
    for i in range(1, 6):
        r.line(f"question {i}")
        r.expect(f"answer {i}", 15)
        turn_done(r)
        if i == 3:  # six messages: all of them in the kept head and tail
            r.line("/compress")
            r.expect("Nothing to compress yet", 10)
    r.line("/compress")
    r.expect(r"Compressed: 10 → \d+ messages", 20)
    summary_req = llm.requests()[-1]["body"]["messages"]
    assert "Summarize the conversation" in summary_req[-1]["content"]
    leave(r)
    db = sqlite3.connect(home / "state.db")
    reasons = [row[0] for row in db.execute("SELECT end_reason FROM sessions")]
    assert "compression" in reasons, "the old session ended; a child continues it"


def test_cron_slash_command(start, llm, home):
    r = start()
    r.line("/cron add 30m check the backups")
    r.expect(r"Created job", 10)
    r.line("/cron list")
    r.expect(r"check the backups", 10)
    leave(r)
    jobs = json.loads((home / "cron" / "jobs.json").read_text())
    assert [j["prompt"] for j in jobs["jobs"]] == ["check the backups"]


def test_multiline_input_and_completion(start, llm):
    llm.script([{"content": "got both lines"}])
    r = start()
    r.send("line one")
    r.send("\n")  # Ctrl+J: a newline in the input, not a send
    r.line("line two")
    r.expect("got both lines", 15)
    turn_done(r)
    assert llm.requests()[-1]["body"]["messages"][-1]["content"] == "line one\nline two"
    r.send("/hel")
    r.send("\t")  # Tab completes the slash command
    r.expect_screen(r"❯ /help ?$", 5)
    r.send("\r")
    r.expect("Available Commands", 10)
    leave(r)


def test_clarify_question_is_asked_inline(start, llm):
    llm.script([{"tool_calls": [{"name": "clarify", "arguments": {
        "question": "Which colour do you like?", "choices": ["red", "blue"]}}]},
        {"content": "blue it is"}])
    r = start()
    r.line("pick a colour for me")
    r.expect(r"Which colour do you like\?.*?1\. red.*?2\. blue", 20)
    r.line("2")
    r.expect("blue it is", 20)
    turn_done(r)
    assert any("blue" in t for t in tool_messages(llm))
    leave(r)


def test_message_while_busy_redirects_the_turn(start, llm):
    llm.script([{"content": "too slow", "delay_ms": 20000}, {"content": "redirected"}])
    r = start()
    r.line("take your time")
    wait_for(lambda: llm.requests(), 15, "the first request")
    r.line("actually, never mind")
    r.expect("interrupting", 10)
    r.expect("redirected", 20)
    turn_done(r)
    contents = [m.get("content") for m in llm.requests()[-1]["body"]["messages"]]
    assert any("actually, never mind" in (c or "") for c in contents)
    assert "too slow" not in r.text()
    leave(r)


def test_second_ctrl_c_while_busy_exits(start, llm):
    llm.script([{"content": "too slow", "delay_ms": 20000}])
    r = start()
    r.line("take your time")
    wait_for(lambda: llm.requests(), 15, "the request")
    r.ctrl_c()
    r.expect("Interrupting agent", 5)
    r.ctrl_c()
    assert r.wait_exit(10) == 0


# ------------------------------------------------------------------ approvals


def dangerous_turn(llm, victim):
    llm.script([{"tool_calls": [{"name": "terminal",
                                 "arguments": {"command": f"rm -rf {victim}"}}]},
                {"content": "done with that"}])


def test_dangerous_command_denied(start, llm, home):
    victim = home.parent / "victim"
    victim.mkdir()
    dangerous_turn(llm, victim)
    r = start()
    r.line("clean up please")
    r.expect(r"DANGEROUS COMMAND: .*?rm -rf .*?Choice \[o/s/a/D\]:", 20)
    r.line("d")
    r.expect("done with that", 20)
    turn_done(r)
    assert victim.is_dir(), "the denied command ran"
    assert "┊ terminal" in r.text()  # the tool progress line
    assert any("BLOCKED: User denied" in t for t in tool_messages(llm))
    leave(r)
    cfg = home / "config.yaml"
    assert not cfg.exists() or "command_allowlist" not in cfg.read_text()


@pytest.mark.parametrize("before", [
    "# my settings\nmodel: test/model  # keep me\n",
    "# my settings\nmodel: test/model  # keep me\ncommand_allowlist:\n  - chmod\n# end\n",
    "# my settings\nmodel: test/model  # keep me\ncommand_allowlist: [chmod]\n",
])
def test_dangerous_command_always_is_persisted(start, llm, home, before):
    victim = home.parent / "victim"
    victim.mkdir()
    (home / "config.yaml").write_text(before)
    dangerous_turn(llm, victim)
    r = start()
    r.line("clean up please")
    r.expect(r"Choice \[o/s/a/D\]:", 20)
    r.line("a")
    r.expect(r"permanently approved", 10)
    r.expect("done with that", 20)
    turn_done(r)
    assert not victim.exists(), "the approved command did not run"
    leave(r)
    text = (home / "config.yaml").read_text()
    assert text.startswith("# my settings\nmodel: test/model  # keep me\n")
    assert "command_allowlist:" in text
    if "chmod" in before:
        assert "chmod" in text  # the entries already there stay
    # A new process loads the allowlist: the same kind of command runs without a question.
    victim.mkdir()
    dangerous_turn(llm, victim)
    r2 = start()
    r2.line("again please")
    r2.expect("done with that", 20)
    turn_done(r2)
    assert "DANGEROUS COMMAND" not in r2.text()
    assert not victim.exists()
    leave(r2)


def test_ctrl_c_at_the_approval_prompt_denies(start, llm, home):
    victim = home.parent / "victim"
    victim.mkdir()
    dangerous_turn(llm, victim)
    r = start()
    r.line("clean up please")
    r.expect(r"Choice \[o/s/a/D\]:", 20)
    r.ctrl_c()
    r.expect("Cancelled", 5)
    r.expect("done with that", 20)
    turn_done(r)
    assert victim.is_dir()
    assert any("BLOCKED" in t for t in tool_messages(llm))
    leave(r)


# ------------------------------------------------------------------ interrupting


def test_ctrl_c_interrupts_a_long_tool_call(start, llm, home):
    pidfile = home.parent / "tool.pid"
    llm.script([{"tool_calls": [{"name": "terminal", "arguments": {
        "command": f"echo $$ > {pidfile}; sleep 60; echo finished"}}]},
        {"content": "should not be needed"}])
    r = start()
    r.line("run the slow thing")
    pid = int(wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 20,
                       "the tool's shell"))
    t0 = time.monotonic()
    r.ctrl_c()
    r.expect("Interrupt", 5)
    r.expect(IDLE, 10)
    assert time.monotonic() - t0 < 10

    def gone():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_for(gone, 10, "the tool's process to end")
    # The chat goes on.
    llm.reset()
    llm.script([{"content": "back again"}])
    r.line("still there?")
    r.expect("back again", 15)
    turn_done(r)
    leave(r)


def test_idle_ctrl_c_and_ctrl_d_leave(start):
    r = start()
    r.ctrl_d()
    r.expect("Goodbye!", 10)
    assert r.wait_exit(10) == 0
    r2 = start()
    r2.ctrl_c()
    r2.expect("Goodbye!", 10)
    assert r2.wait_exit(10) == 0


# ------------------------------------------------------------------ tool selection


def run(hermes_bin, home, *args, llm=None):
    return subprocess.run([hermes_bin, *args], env=hermes_env(home, llm, **SAN),
                          capture_output=True, text=True, timeout=30)


def test_list_tools(hermes_bin, home):
    r = run(hermes_bin, home, "--list-tools")
    assert r.returncode == 0, r.stderr
    assert "(^_^)/ Available Tools" in r.stdout
    assert "  [terminal]\n" in r.stdout
    assert "    * terminal" in r.stdout and "    * read_file" in r.stdout
    assert "Total: " in r.stdout
    r = run(hermes_bin, home, "--toolsets", "terminal", "--list-tools")
    assert r.returncode == 0, r.stderr
    assert "* terminal" in r.stdout and "* process" in r.stdout
    assert "read_file" not in r.stdout
    assert "Total: 2 tools" in r.stdout
    r = run(hermes_bin, home, "--list-toolsets")
    assert r.returncode == 0, r.stderr
    assert "(^_^)b Available Toolsets" in r.stdout
    assert "(*) hermes-cli" in r.stdout


def test_tools_command(hermes_bin, home):
    r = run(hermes_bin, home, "tools")
    assert r.returncode == 0, r.stderr
    assert "Tools for cli" in r.stdout
    assert "[✓] terminal" in r.stdout
    assert "✓ read_file" in r.stdout
    (home / "config.yaml").write_text("platform_toolsets:\n  cli: [terminal]\n")
    r = run(hermes_bin, home, "tools")
    assert r.returncode == 0, r.stderr
    assert "toolsets: terminal   (platform_toolsets.cli)" in r.stdout
    assert "[✓] terminal" in r.stdout and "[ ] file" in r.stdout
    assert "2 tools loaded for cli." in r.stdout


def test_toolsets_restrict_the_session(start, llm):
    llm.script([{"content": "ok"}])
    r = start("--toolsets", "terminal")
    r.expect_screen("2 tools", 5)
    r.line("hi")
    r.expect("ok", 15)
    turn_done(r)
    names = sorted(t["function"]["name"] for t in llm.requests()[-1]["body"]["tools"])
    assert names == ["process", "terminal"]
    leave(r)


@pytest.mark.parametrize("args,needle", [
    (["--bogus"], "unknown option '--bogus'"),
    (["chat", "--bogus"], "unknown option '--bogus'"),
    (["--toolsets", "nope"], "unknown toolset 'nope'"),
    (["--toolsets", ","], "--toolsets needs at least one toolset"),
    (["--model"], "option '--model' needs a value"),
    (["chat", "-q", "x", "extra"], "unexpected argument 'extra'"),
    (["tools", "--platform", "nowhere"], "unknown platform 'nowhere'"),
    (["tools", "--frobnicate"], "unknown option '--frobnicate'"),
    (["chat"], "needs a terminal"),
    ([], "usage: hermes"),
])
def test_usage_errors(hermes_bin, home, args, needle):
    r = run(hermes_bin, home, *args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert needle in r.stderr


def test_resume_unknown_session(hermes_bin, llm, home):
    r = Repl([hermes_bin, "--resume", "20990101_000000_abcdef"], hermes_env(home, llm, **SAN))
    try:
        r.expect("Session not found: 20990101_000000_abcdef", 15)
        assert r.wait_exit(10) == 1
    finally:
        r.close()

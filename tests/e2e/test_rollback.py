"""Filesystem checkpoints through the real binary: `hermes gateway run` against the Mattermost
server double and the scripted LLM. The model overwrites a file with write_file; the gateway's
checkpoint (taken before the write) shows in `/rollback`, and `/rollback 1` brings the old
content back. With checkpoints off, `/rollback` answers the original's hint. The same in the
interactive CLI, on a pseudo-terminal."""
import os

import pytest

from conftest import _wait_for, hermes_env
from repl_pty import Repl
from test_mattermost import TOKEN, MMDouble, MMGateway

SAN = {k: os.environ[k] for k in ("ASAN_OPTIONS", "TSAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS")
       if k in os.environ}


@pytest.fixture
def mm(tmp_path):
    d = MMDouble(str(tmp_path))
    yield d
    d.stop()


def _texts(mm, channel):
    return [p["message"] for p in mm.bot_posts(channel)]


def _wait_text(mm, channel, needle, timeout=30):
    return _wait_for(lambda: next((t for t in _texts(mm, channel) if needle in t), None),
                     timeout=timeout, what=f"a bot post containing {needle!r}")


def test_write_file_then_rollback_lists_and_restores(hermes_bin, llm, home, mm, tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    notes = proj / "notes.txt"
    notes.write_text("old\n")
    (home / "config.yaml").write_text("checkpoints:\n  enabled: true\n")
    alice = mm.world["users"]["alice"]["id"]
    env = hermes_env(home, llm, MATTERMOST_URL=mm.url + "/", MATTERMOST_TOKEN=TOKEN,
                     MATTERMOST_ALLOWED_USERS=alice, MESSAGING_CWD=str(proj))
    llm.script([
        {"tool_calls": [{"name": "write_file",
                         "arguments": {"path": str(notes), "content": "new\n"}}]},
        {"content": "Rewrote the notes."},
    ])
    g = MMGateway(hermes_bin, home, env, mm)
    try:
        mm.say("dm_alice", "alice", "please rewrite my notes")
        _wait_text(mm, "dm_alice", "Rewrote the notes.")
        assert notes.read_text() == "new\n"

        mm.say("dm_alice", "alice", "/rollback")
        listing = _wait_text(mm, "dm_alice", "Checkpoints for")
        assert listing.startswith("\U0001f4f8 Checkpoints for %s:\n" % proj.resolve())
        assert "  1. " in listing and "before write_file" in listing
        assert "  2. " not in listing
        assert "/rollback <N>" in listing

        mm.say("dm_alice", "alice", "/rollback 1")
        done = _wait_text(mm, "dm_alice", "Restored to checkpoint")
        assert done.startswith("\u2705 Restored to checkpoint ")
        assert done.endswith(": before write_file\nA pre-rollback snapshot was saved "
                             "automatically.")
        assert notes.read_text() == "old\n"

        # the rollback itself is undoable: its snapshot is checkpoint 1 now
        mm.say("dm_alice", "alice", "/rollback --patch")
        refused = _wait_text(mm, "dm_alice", "Invalid commit hash")
        assert refused == "\u274c Invalid commit hash (must not start with '-'): '--patch'"
        mm.say("dm_alice", "alice", "/rollback 1")
        _wait_for(lambda: notes.read_text() == "new\n", timeout=30, what="the undo")
        # nothing of git in the user's directory
        assert sorted(p.name for p in proj.iterdir()) == ["notes.txt"]
    finally:
        g.stop()


def test_rollback_when_disabled(hermes_bin, llm, home, mm):
    alice = mm.world["users"]["alice"]["id"]
    env = hermes_env(home, llm, MATTERMOST_URL=mm.url + "/", MATTERMOST_TOKEN=TOKEN,
                     MATTERMOST_ALLOWED_USERS=alice)
    g = MMGateway(hermes_bin, home, env, mm)
    try:
        mm.say("dm_alice", "alice", "/rollback")
        assert _wait_text(mm, "dm_alice", "Checkpoints are not enabled") == (
            "Checkpoints are not enabled.\nEnable in config.yaml:\n```\ncheckpoints:\n"
            "  enabled: true\n```")
    finally:
        g.stop()


def test_repl_rollback(hermes_bin, llm, home, tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    notes = proj / "notes.txt"
    notes.write_text("old\n")
    (home / "config.yaml").write_text("checkpoints:\n  enabled: true\n")
    llm.script([
        {"tool_calls": [{"name": "write_file",
                         "arguments": {"path": "notes.txt", "content": "new\n"}}]},
        {"content": "Rewrote the notes."},
    ])
    r = Repl([hermes_bin], hermes_env(home, llm, **SAN), cwd=str(proj))
    try:
        r.expect("Welcome to Hermes Agent", 20)
        r.line("please rewrite my notes")
        r.expect("Rewrote the notes.", 30)
        r.expect("\n❯ ", 10)
        assert notes.read_text() == "new\n"
        r.line("/rollback")
        r.expect(r"Checkpoints for .*?1\. \w+ .*?before write_file", 30)
        r.line("/rollback 1")
        r.expect("Restored to checkpoint", 30)
        assert notes.read_text() == "old\n"
        r.line("/quit")
        r.expect("Goodbye!", 10)
        assert r.wait_exit(10) == 0
    finally:
        r.close()

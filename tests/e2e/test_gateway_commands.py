"""Chat commands through the real binary: `hermes gateway run` against the Mattermost server
double (tests/doubles/mattermost_double.py) and the scripted LLM. A session is named with
/title, /restart drains and re-executes the same process (not under systemd), which connects
again, and the title is still there afterwards; /resume and /branch work on the restarted
gateway."""
import os

import pytest

from conftest import _wait_for, hermes_env
from test_mattermost import TOKEN, MMDouble, MMGateway


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


def test_title_restart_resume_branch(hermes_bin, llm, home, mm):
    alice = mm.world["users"]["alice"]["id"]
    env = hermes_env(home, llm, MATTERMOST_URL=mm.url + "/", MATTERMOST_TOKEN=TOKEN,
                     MATTERMOST_ALLOWED_USERS=alice, INVOCATION_ID=None)
    g = MMGateway(hermes_bin, home, env, mm)
    try:
        mm.say("dm_alice", "alice", "hello hermes")
        _wait_text(mm, "dm_alice", "echo: hello hermes")  # the answer, not the /sethome hint
        mm.say("dm_alice", "alice", "/title E2E Plan")
        assert _wait_text(mm, "dm_alice", "Session title set") == \
            "\u270f\ufe0f Session title set: **E2E Plan**"

        pid = g.proc.pid
        mm.say("dm_alice", "alice", "/restart")
        assert _wait_text(mm, "dm_alice", "Restarting gateway") == (
            "\u267b Restarting gateway. If you aren't notified within 60 seconds, restart "
            "from the console with `hermes gateway restart`.")
        # the same process replaces itself and connects again
        _wait_for(lambda: g.output().count("running (PID") >= 2, timeout=60,
                  what="the re-executed gateway running")
        _wait_for(lambda: g.connected(2), timeout=60, what="the reconnect after the restart")
        assert g.proc.poll() is None and g.proc.pid == pid
        # the restarted gateway tells the chat that asked, once, and forgets the request
        assert _wait_text(mm, "dm_alice", "restarted successfully") == \
            "\u267b Gateway restarted successfully. Your session continues."
        _wait_for(lambda: not (home / ".restart_notify.json").exists(), timeout=10,
                  what="the restart notice file removed")

        mm.say("dm_alice", "alice", "/title")
        assert "\nTitle: **E2E Plan**" in _wait_text(mm, "dm_alice", "Title: **")

        # a branch, then back to the original by name
        mm.say("dm_alice", "alice", "/branch")
        b = _wait_text(mm, "dm_alice", "Branched to")
        assert b.startswith("\u2442 Branched to **E2E Plan #2** (1 message copied)\nOriginal: `")
        mm.say("dm_alice", "alice", "/resume E2E Plan #2")
        assert _wait_text(mm, "dm_alice", "Already on session") == \
            "\U0001f4cc Already on session **E2E Plan #2**."
        mm.say("dm_alice", "alice", "/resume e2e plan")
        # the exact title wins over its numbered branch: back to the original
        assert _wait_text(mm, "dm_alice", "Resumed session") == (
            "\u21bb Resumed session **E2E Plan** (1 message). Conversation restored.")
        mm.say("dm_alice", "alice", "/resume")
        listing = _wait_text(mm, "dm_alice", "Named Sessions")
        assert "**E2E Plan #2** (1 message)" in listing
        assert "**E2E Plan** (1 message)" in listing
        assert os.path.exists(home / "state.db")
    finally:
        g.stop()


def test_btw_is_answered_without_tools_and_leaves_nothing_behind(hermes_bin, llm, home, mm):
    """/btw through the real host: the side agent sees the conversation so far, gets no tool
    schemas, and nothing of it is written to state.db."""
    import sqlite3
    alice = mm.world["users"]["alice"]["id"]
    env = hermes_env(home, llm, MATTERMOST_URL=mm.url + "/", MATTERMOST_TOKEN=TOKEN,
                     MATTERMOST_ALLOWED_USERS=alice)
    g = MMGateway(hermes_bin, home, env, mm)
    try:
        mm.say("dm_alice", "alice", "my cat is called Tiberius")
        # the answer; the first bot post may be the /sethome hint, sent before the model is asked
        _wait_text(mm, "dm_alice", "echo: my cat is called Tiberius")
        first = len(llm.requests())
        mm.say("dm_alice", "alice", "/btw what is my cat called?")
        answer = _wait_text(mm, "dm_alice", "\U0001f4ac /btw: \"what is my cat called?\"\n\n")
        assert answer.startswith("\U0001f4ac /btw: \"what is my cat called?\"\n\n")
        side = llm.requests()[first:]
        assert side, "the side question never reached the model"
        for r in side:
            body = r["body"]
            assert not body.get("tools"), (
                "the /btw agent was offered tools; requests after the first reply: "
                + repr([json_texts(x["body"].get("messages", []))[-300:] for x in side]))
            texts = json_texts(body["messages"])
            assert "Tiberius" in texts  # the snapshot of the conversation
    finally:
        g.stop()
    db = sqlite3.connect(str(home / "state.db"))
    try:
        rows = db.execute("SELECT id FROM sessions WHERE id LIKE 'btw_%'").fetchall()
        msgs = db.execute("SELECT count(*) FROM messages WHERE content LIKE '%what is my cat%'"
                          ).fetchone()[0]
    finally:
        db.close()
    assert rows == [] and msgs == 0, (rows, msgs)


def json_texts(messages):
    out = []
    for m in messages:
        c = m.get("content")
        if isinstance(c, str):
            out.append(c)
        elif isinstance(c, list):
            out.extend(p.get("text", "") for p in c if isinstance(p, dict))
    return "\n".join(out)


def test_status_title_and_help_skill_commands(hermes_bin, llm, home, mm):
    """/status shows the session's title (from state.db) under its id; /help ends with the
    installed skills as `/<skill-name>` commands."""
    skill = home / "skills" / "ops" / "deploy_k8s"
    skill.mkdir(parents=True)
    (skill / "SKILL.md").write_text(
        "---\nname: deploy_k8s\ndescription: Deploy to Kubernetes\n---\n1. kubectl apply\n")
    alice = mm.world["users"]["alice"]["id"]
    env = hermes_env(home, llm, MATTERMOST_URL=mm.url + "/", MATTERMOST_TOKEN=TOKEN,
                     MATTERMOST_ALLOWED_USERS=alice)
    g = MMGateway(hermes_bin, home, env, mm)
    try:
        mm.say("dm_alice", "alice", "hello hermes")
        _wait_text(mm, "dm_alice", "echo: hello hermes")  # the answer, not the /sethome hint
        mm.say("dm_alice", "alice", "/status")
        first = _wait_text(mm, "dm_alice", "Hermes Gateway Status")
        assert first.startswith("\U0001f4ca **Hermes Gateway Status**\n\n**Session ID:** `")
        assert "**Title:**" not in first
        sid = first.split("`")[1]
        mm.say("dm_alice", "alice", "/title Ops Day")
        _wait_text(mm, "dm_alice", "Session title set")
        mm.say("dm_alice", "alice", "/status")
        _wait_for(lambda: sum("Hermes Gateway Status" in t for t in _texts(mm, "dm_alice")) >= 2,
                  timeout=30, what="the second /status")
        second = [t for t in _texts(mm, "dm_alice") if "Hermes Gateway Status" in t][1]
        assert f"**Session ID:** `{sid}`\n**Title:** Ops Day\n**Created:** " in second
        assert "\n\n**Connected Platforms:** mattermost" in second

        mm.say("dm_alice", "alice", "/help")
        helptext = _wait_text(mm, "dm_alice", "Hermes Commands")
        # the bundled skills are installed too: the section counts them all
        sec = helptext[helptext.index("\n\n\u26a1 **Skill Commands** ("):]
        assert sec.split("\n")[2].endswith(" active):"), sec
        assert "\n`/deploy-k8s` \u2014 Deploy to Kubernetes" in sec, sec
        assert "`/update` -- " not in sec  # the commands come first
    finally:
        g.stop()

"""A full disk under the whole gateway: HERMES_HOME (state.db, sessions.json, logs of the
sessions) on a small tmpfs that fills up while people write on Mattermost. The gateway must
say so clearly in its log, stay up, keep state.db intact, and once space is freed answer the
messages that were pending, each exactly once.

Needs root for mount(8); skipped loudly when mounting a tmpfs is not permitted."""
import errno
import os
import sqlite3
import subprocess

import pytest

from conftest import Ledger, mm_gateway, skip_loudly, wait_for

CHATS = [("dm_alice", "alice", ""), ("dm_bob", "bob", ""), ("town", "bob", "@hermes ")]
SIZE_MB = 16


def texts(mm):
    return lambda chat: [p["message"] for p in mm.bot_posts(chat)]


@pytest.fixture
def small_home(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0:
        skip_loudly("test_disk_full", "mounting a tmpfs needs root")
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE_MB}m,mode=0700", "tmpfs",
                            str(mnt)], capture_output=True, text=True, timeout=20)
    except OSError as e:
        skip_loudly("test_disk_full", f"mount -t tmpfs is not permitted here: {e}")
    if r.returncode != 0:
        skip_loudly("test_disk_full", f"mount -t tmpfs is not permitted here: {r.stderr.strip()}")
    home = mnt / "hermes-home"
    home.mkdir()
    yield home
    r = subprocess.run(["umount", str(mnt)], capture_output=True, text=True, timeout=20)
    if r.returncode != 0:  # something still holds it: detach it, it goes when released
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=20)


def fill(path):
    """Write path until the filesystem says ENOSPC; returns the bytes written."""
    chunk = b"\0" * (64 << 10)
    n = 0
    with open(path, "wb", buffering=0) as f:  # unbuffered: ENOSPC surfaces in write()
        for _ in range((SIZE_MB << 20) // len(chunk) + 16):  # bounded: the mount's size
            try:
                n += f.write(chunk)
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
                break
        else:
            raise AssertionError("the tmpfs never filled up")
    # and the last crumbs, so not even a page is left
    with open(str(path) + ".2", "wb", buffering=0) as f:
        for _ in range(64 << 10):
            try:
                f.write(b"\0" * 512)
            except OSError:
                break
    return n


def texts_of(mm):
    return {c: texts(mm)(c) for c, _, _ in CHATS}


class DiskFull:
    """The gateway on the small home; .full() fills it and sends a message per chat,
    .free() gives the space back."""

    def __init__(self, hermes_bin, llm, home, mm, led):
        self.home, self.mm, self.led = home, mm, led
        self.filler = home.parent / "filler"
        self.g = mm_gateway(hermes_bin, home, llm, mm,
                            log_path=home.parent.parent / "gateway.out")
        for chat, user, pre in CHATS:
            mm.say(chat, user, pre + led.token(chat))
        wait_for(lambda: not led.missing(texts(mm)), timeout=20, what="the first round")

    def full(self):
        fill(self.filler)
        self.during = {}
        for chat, user, pre in CHATS:
            self.during[chat] = self.led.token(chat)
            self.mm.say(chat, user, pre + self.during[chat])
        # the gateway says why, and stays up
        wait_for(lambda: self.g.alive() and any(w in self.g.output().lower() for w in (
            "disk is full", "no space left")), timeout=20,
            what=lambda: "a clear disk-full error in the log: " + self.g.output()[-2000:])

    def free(self):
        for p in (self.filler, str(self.filler) + ".2"):
            if os.path.exists(p):
                os.unlink(p)

    def stop(self):
        self.g.stop()
        self.free()
        db = sqlite3.connect(self.home / "state.db")
        try:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        finally:
            db.close()


def test_disk_full_under_the_gateway(hermes_bin, llm, small_home, mm):
    """Each message written while the disk is full gets exactly one reply — a clear error
    that nothing was saved or sent to the model — the gateway stays up, state.db stays
    intact, and once space is back the same chats are served again."""
    led = Ledger("df")
    d = DiskFull(hermes_bin, llm, small_home, mm, led)
    try:
        d.full()
        wait_for(lambda: all(len(t) >= 2 for t in texts_of(mm).values()), timeout=20,
                 what=lambda: "a reply to each message written while the disk was full: "
                 + str(texts_of(mm)))
        d.g.alive()
        d.free()
        # the person tries again, as the error asks: answered
        for chat, user, pre in CHATS:
            mm.say(chat, user, pre + led.token(chat))
        last = {c: led.sent[c][-1] for c in led.sent}
        wait_for(lambda: all(any(last[c] in x for x in t) for c, t in texts_of(mm).items()),
                 timeout=20, what=lambda: "answers after the space came back: "
                 + str(texts_of(mm)))
        d.g.alive()
        for chat, t in texts_of(mm).items():
            # first answer, one reply to the message written while full, the retry's answer
            assert len(t) == 3, (chat, t)
            assert t[1].startswith("Could not save your message") or d.during[chat] in t[1], t
            if t[1].startswith("Could not save your message"):
                assert "disk" in t[1] and "try again" in t[1], t[1]
            assert t[2].count(last[chat]) == 1, t
    finally:
        d.stop()


class NotAnsweredAfterSpaceReturned(AssertionError):
    """The one failure the xfail below expects; anything else fails the test for real."""


@pytest.mark.xfail(strict=True, raises=NotAnsweredAfterSpaceReturned, reason=(
    "design gap, actors/agent/ag_session.c on_persisted: a message that cannot be made "
    "durable is refused ('Could not save your message … please try again') instead of being "
    "kept pending and answered when space returns, as issue 13 asks"))
def test_messages_written_while_the_disk_is_full_are_answered_when_space_returns(
        hermes_bin, llm, small_home, mm):
    led = Ledger("dp")
    d = DiskFull(hermes_bin, llm, small_home, mm, led)
    try:
        d.full()
        d.free()
        try:
            wait_for(lambda: not led.missing(texts(mm)), timeout=15,
                     what=lambda: "answers to the messages written while the disk was full: "
                     + str(led.missing(texts(mm))) + " posts: " + str(texts_of(mm)))
        except AssertionError as e:
            raise NotAnsweredAfterSpaceReturned(str(e)) from None
        led.check_once(texts(mm))
    finally:
        d.stop()

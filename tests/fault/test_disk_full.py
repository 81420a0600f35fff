"""A full disk under the whole gateway: HERMES_HOME (state.db, sessions.json, logs of the
sessions) on a small tmpfs that fills up while people write on Mattermost. The gateway must
say so clearly in its log, stay up, keep state.db intact, tell each person once that the
answer waits for space, and once space is freed answer the messages that were pending, each
exactly once, without anyone sending them again.

Needs root for mount(8); skipped loudly when mounting a tmpfs is not permitted."""
import errno
import os
import sqlite3
import subprocess
import time

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

    def __init__(self, hermes_bin, llm, home, mm, led, **extra):
        self.home, self.mm, self.led = home, mm, led
        self.hermes_bin, self.llm, self.extra = hermes_bin, llm, extra
        self.filler = home.parent / "filler"
        self.g = self.start()
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

    def start(self):
        return mm_gateway(self.hermes_bin, self.home, self.llm, self.mm,
                          log_path=self.home.parent.parent / "gateway.out", **self.extra)

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


NOTICE = "\u26a0\ufe0f The disk holding Hermes' data is full"  # actors/agent/ag_save.c


def test_disk_full_under_the_gateway(hermes_bin, llm, small_home, mm):
    """While the disk is full the gateway says so in its log, stays up, and tells each person
    whose message could not be saved — once — that the answer waits for space: nothing is
    refused, nothing has to be sent again. What they write meanwhile joins the wait. Once
    space is back every message is answered exactly once, state.db is intact, and the chats
    go on."""
    led = Ledger("df")
    d = DiskFull(hermes_bin, llm, small_home, mm, led)
    try:
        d.full()
        # each chat: told that the answer waits (or answered, where state.db still had room)
        wait_for(lambda: all(len(t) >= 2 for t in texts_of(mm).values()), timeout=20,
                 what=lambda: "a notice or an answer in each chat: " + str(texts_of(mm)))
        posts = texts_of(mm)
        waiting = [c for c, t in posts.items() if t[1].startswith(NOTICE)]
        for chat, t in posts.items():
            assert chat in waiting or d.during[chat] in t[1], (chat, t)
        assert waiting, "no message met the full disk: " + str(posts)
        for chat in waiting:  # not answered while nothing can be saved
            assert not any(d.during[chat] in x for x in posts[chat]), posts[chat]
            assert "no need to send it again" in posts[chat][1], posts[chat][1]
        assert d.g.alive()
        # written while the disk is still full: joins the waiting turn
        for chat, user, pre in CHATS:
            if chat in waiting:
                mm.say(chat, user, pre + led.token(chat))
        d.free()
        wait_for(lambda: not led.missing(texts(mm)), timeout=30,
                 what=lambda: "answers once space came back: " + str(led.missing(texts(mm)))
                 + " posts: " + str(texts_of(mm)))
        assert d.g.alive()
        # and the chats go on
        for chat, user, pre in CHATS:
            mm.say(chat, user, pre + led.token(chat))
        wait_for(lambda: not led.missing(texts(mm)), timeout=20,
                 what=lambda: "answers after the space came back: " + str(texts_of(mm)))
        led.check_once(texts(mm))
        for chat, t in texts_of(mm).items():
            assert sum(x.startswith(NOTICE) for x in t) == (chat in waiting), (chat, t)
            assert not any("Could not save" in x for x in t), (chat, t)
    finally:
        d.stop()


def test_messages_written_while_the_disk_is_full_are_answered_when_space_returns(
        hermes_bin, llm, small_home, mm):
    """Issue 13: a message the disk had no room for is kept and answered once space returns,
    without the person sending it again, and exactly once."""
    led = Ledger("dp")
    d = DiskFull(hermes_bin, llm, small_home, mm, led)
    try:
        d.full()
        d.free()
        wait_for(lambda: not led.missing(texts(mm)), timeout=15,
                 what=lambda: "answers to the messages written while the disk was full: "
                 + str(led.missing(texts(mm))) + " posts: " + str(texts_of(mm)))
        led.check_once(texts(mm))
    finally:
        d.stop()


def test_a_message_waiting_for_space_at_shutdown_is_answered_after_the_restart(
        hermes_bin, llm, small_home, mm):
    """The gateway stops while messages wait for disk space: it stops without waiting for
    them (a turn that only waits for space does not hold the drain up), nothing is refused,
    the messages are left to the restart (the inbox journal, saved in the space reserve, or
    the platform's redelivery), and after a restart with space again each is answered
    exactly once."""
    led = Ledger("ds")
    d = DiskFull(hermes_bin, llm, small_home, mm, led, HERMES_RESTART_DRAIN_TIMEOUT="2")
    try:
        d.full()
        wait_for(lambda: all(len(t) >= 2 for t in texts_of(mm).values()), timeout=20,
                 what=lambda: "a notice or an answer in each chat: " + str(texts_of(mm)))
        t0 = time.monotonic()
        d.g.stop()
        assert time.monotonic() - t0 < 15, "the gateway did not stop after its drain timeout"
        d.free()
        d.g = d.start()
        wait_for(lambda: not led.missing(texts(mm)), timeout=30,
                 what=lambda: "answers after the restart: " + str(led.missing(texts(mm)))
                 + " posts: " + str(texts_of(mm)))
        led.check_once(texts(mm))
        assert not any("Could not save" in x for t in texts_of(mm).values() for x in t)
    finally:
        d.stop()


def test_keys_written_while_the_disk_was_full_survive_a_stop_right_after_the_answers(
        hermes_bin, llm, small_home, mm):
    """Issue 13, "never lose, never duplicate": the records that make a message exactly-once
    (its hc_inbound key, its inbox journal row, the outbox's "sent" mark) could not be written
    while the disk was full. The store keeps them and writes them once there is room, before
    anything written after them, so a gateway stopped (SIGTERM) right after answering, and
    started again, recognises Mattermost's catch-up redelivery of those posts (the adapter's
    own position could not be saved either) and answers nothing twice."""
    led = Ledger("dk")
    d = DiskFull(hermes_bin, llm, small_home, mm, led)
    try:
        d.full()
        wait_for(lambda: all(len(t) >= 2 for t in texts_of(mm).values()), timeout=20,
                 what=lambda: "a notice or an answer in each chat: " + str(texts_of(mm)))
        d.free()
        wait_for(lambda: not led.missing(texts(mm)), timeout=30,
                 what=lambda: "answers once space came back: " + str(led.missing(texts(mm))))
        d.g.stop()  # right after the answers
        out = d.g.output()
        assert "stopping with state.db still full" not in out, out[-3000:]
        d.g = d.start()
        # the chats go on: each new message is answered after whatever the catch-up redelivered
        for chat, user, pre in CHATS:
            mm.say(chat, user, pre + led.token(chat))
        wait_for(lambda: not led.missing(texts(mm)), timeout=30,
                 what=lambda: "answers after the restart: " + str(texts_of(mm)))
        led.check_once(texts(mm))
        assert not any("Could not save" in x for t in texts_of(mm).values() for x in t)
    finally:
        d.stop()


def test_a_stop_while_messages_wait_for_space_does_not_wait_out_the_drain(
        hermes_bin, llm, small_home, mm):
    """Item 2 of the fix: SIGTERM drains running turns for up to agent.restart_drain_timeout
    (60 s by default here), but a turn that only waits for disk space is not waited for: the
    gateway stops within seconds, nothing is refused, and after a restart with space each
    message (also one written while it waited) is answered exactly once."""
    led = Ledger("dw")
    d = DiskFull(hermes_bin, llm, small_home, mm, led)
    try:
        d.full()
        wait_for(lambda: all(len(t) >= 2 for t in texts_of(mm).values()), timeout=20,
                 what=lambda: "a notice or an answer in each chat: " + str(texts_of(mm)))
        waiting = [c for c, t in texts_of(mm).items() if t[1].startswith(NOTICE)]
        assert waiting, "no message met the full disk: " + str(texts_of(mm))
        for chat, user, pre in CHATS:  # joins the waiting turn
            if chat in waiting:
                mm.say(chat, user, pre + led.token(chat))
        t0 = time.monotonic()
        d.g.stop()
        took = time.monotonic() - t0
        out = d.g.output()
        assert took < 10, f"the stop took {took:.1f} s: " + out[-3000:]
        assert "waits for disk space: not holding up the shutdown" in out, out[-3000:]
        # the keys and journal rows the disk refused are saved in the space reserve (st_store.h)
        assert "releasing the space reserve" in out, out[-3000:]
        assert "stopping with state.db still full" not in out, out[-3000:]
        d.free()
        d.g = d.start()
        wait_for(lambda: not led.missing(texts(mm)), timeout=30,
                 what=lambda: "answers after the restart: " + str(led.missing(texts(mm)))
                 + " posts: " + str(texts_of(mm)))
        assert "inbox journal: " in d.g.output(), d.g.output()[-3000:]  # answered from it
        for chat, user, pre in CHATS:  # and the chats go on
            mm.say(chat, user, pre + led.token(chat))
        wait_for(lambda: not led.missing(texts(mm)), timeout=20,
                 what=lambda: "answers after the restart: " + str(texts_of(mm)))
        led.check_once(texts(mm))
        assert not any("Could not save" in x for t in texts_of(mm).values() for x in t)
    finally:
        d.stop()

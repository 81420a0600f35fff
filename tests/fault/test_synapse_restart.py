"""The real Synapse (../shared/peers/synapse, Debian sid's matrix-synapse) stopped and
restarted under `hermes gateway run` while a person (Debian's matrix-nio) keeps writing in
two DMs (issue 7: "the homeserver stopped and restarted under the bot"; issue 13):

  * before: a message whose answer is still being written when the server goes away (the
    reply must get out after the restart);
  * during: messages the person's client queued while the server was down, sent the moment
    it is back (possibly before the bot's own sync has recovered);
  * after: a message once the bot has reconnected.

Each is answered exactly once, in its own room; the bot retries its sync with a pause (no
retry storm) and logs that it recovered.

This module runs a private Synapse (its own data directory inside the peers' chroot and
its own port), started and stopped the way the peers' start.sh/stop.sh do it: the shared
instance on 8018 may be in use by the e2e label at the same time (ctest -j), and stopping
it under them would break their run. When Synapse cannot be installed or started, or
matrix-nio is missing, the test is skipped with the reason, loudly: it never passes
silently."""
import asyncio
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from conftest import Gateway, Ledger, hermes_env, skip_loudly, wait_for

PEERS = os.environ.get("HERMES_PEERS", os.path.join(os.path.dirname(__file__), "..", "..", "..",
                                                    "shared", "peers"))
SYNAPSE_DIR = os.path.join(PEERS, "synapse")
SID_ROOT = os.environ.get("SID_ROOT", "/opt/peers/sid-root")
PW = "pw-" + secrets.token_hex(6)


def _skip(reason):
    skip_loudly("test_synapse_restart", f"Synapse peer unavailable: {reason}")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Synapse:
    """A private homeserver in the peers' chroot: data in /var/lib/peers-synapse-fault-<pid>."""

    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.d = f"/var/lib/peers-synapse-fault-{os.getpid()}"  # inside the chroot
        self.h = SID_ROOT + self.d
        self.proc = None
        self.log = None

    def setup(self):
        shutil.rmtree(self.h, ignore_errors=True)
        os.makedirs(self.h + "/media_store")
        self.secret = secrets.token_hex(24)
        subst = {"@DATA_DIR@": self.d, "@PORT@": str(self.port), "@SERVER_NAME@": "localhost",
                 "@REG_SECRET@": self.secret, "@MACAROON_SECRET@": secrets.token_hex(24),
                 "@FORM_SECRET@": secrets.token_hex(24), "@LOG_LEVEL@": "WARNING"}
        for src, dst in (("homeserver.yaml.template", "homeserver.yaml"),
                         ("log.config.template", "log.config")):
            text = open(os.path.join(SYNAPSE_DIR, src)).read()
            for k, v in subst.items():
                text = text.replace(k, v)
            open(os.path.join(self.h, dst), "w").write(text)
        if subprocess.run(["mountpoint", "-q", SID_ROOT + "/proc"]).returncode != 0:
            subprocess.run(["mount", "-t", "proc", "proc", SID_ROOT + "/proc"], check=False)
        r = subprocess.run(["chroot", SID_ROOT, "sh", "-c",
                            f"cd {self.d} && python3 -m synapse.app.homeserver -c "
                            f"{self.d}/homeserver.yaml --generate-keys"],
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            _skip(f"synapse --generate-keys failed: {(r.stdout + r.stderr)[-800:]}")
        self.log = open(os.path.join(self.h, "stdout.log"), "a")

    def up(self):
        try:
            with urllib.request.urlopen(self.url + "/_matrix/client/versions", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def start(self, timeout=60):
        # as start.sh: chroot execs sh which execs python, so the PID is the homeserver's
        self.proc = subprocess.Popen(
            ["chroot", SID_ROOT, "sh", "-c",
             f"cd {self.d} && exec python3 -m synapse.app.homeserver -c {self.d}/homeserver.yaml"],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        t0 = time.monotonic()
        while not self.up():
            if self.proc.poll() is not None:
                return f"Synapse exited ({self.proc.returncode}); see {self.h}/stdout.log"
            if time.monotonic() - t0 > timeout:
                return f"Synapse not up after {timeout}s"
            time.sleep(0.1)
        return None

    def stop(self):
        """As stop.sh: SIGTERM, up to 10 s, then SIGKILL."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def cleanup(self):
        self.stop()
        if self.log:
            self.log.close()
        shutil.rmtree(self.h, ignore_errors=True)


@pytest.fixture(scope="module")
def synapse():
    if os.geteuid() != 0:
        _skip("the peers' chroot needs root")
    for f in ("homeserver.yaml.template", "log.config.template", "install.sh"):
        if not os.path.exists(os.path.join(SYNAPSE_DIR, f)):
            _skip(f"{os.path.join(SYNAPSE_DIR, f)} not found (set HERMES_PEERS)")
    if not os.path.isdir(SID_ROOT + "/usr/lib/python3/dist-packages/synapse"):
        path = os.path.join(SYNAPSE_DIR, "install.sh")
        if not os.access(path, os.X_OK):
            _skip(f"{path} not found")
        try:
            r = subprocess.run([path], capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            _skip("install.sh took more than 600s")
        if r.returncode != 0:
            _skip(f"install.sh failed: {(r.stdout + r.stderr)[-800:]}")
    try:
        import nio  # noqa: F401  (Debian python3-matrix-nio)
    except ImportError as e:
        _skip(f"matrix-nio is not installed ({e}); run {PEERS}/matrix-client/install.sh")
    s = Synapse()
    try:
        s.setup()
        err = s.start()
        if err:
            _skip(err)
        yield s
    finally:
        s.cleanup()


def http(hs, method, path, body=None, token=None, ok=(200,)):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(hs.url + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            st, out = r.status, r.read()
    except urllib.error.HTTPError as e:
        st, out = e.code, e.read()
    j = json.loads(out or b"{}")
    assert st in ok, f"{method} {path}: HTTP {st} {j}"
    return j


def register(hs, name):
    nonce = http(hs, "GET", "/_synapse/admin/v1/register")["nonce"]
    mac = hmac.new(hs.secret.encode(), digestmod=hashlib.sha1)
    mac.update(b"\x00".join([nonce.encode(), name.encode(), PW.encode(), b"notadmin"]))
    r = http(hs, "POST", "/_synapse/admin/v1/register",
             {"nonce": nonce, "username": name, "password": PW, "admin": False,
              "mac": mac.hexdigest()})
    return r["user_id"], r["access_token"]


class Person:
    """A Matrix user driven through matrix-nio's AsyncClient on a private event loop."""

    def __init__(self, hs, user_id, token):
        import nio
        self.nio = nio
        self.loop = asyncio.new_event_loop()
        self.user_id = user_id
        self.c = nio.AsyncClient(hs.url, user_id)
        self.c.access_token = token
        self.c.user_id = user_id
        self.c.device_id = "PERSON"

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def dm(self, bot):
        r = self.run(self.c.room_create(is_direct=True, invite=[bot],
                                        preset=self.nio.RoomPreset.trusted_private_chat))
        assert isinstance(r, self.nio.RoomCreateResponse), r
        return r.room_id

    def say(self, room, text):
        r = self.run(self.c.room_send(room, "m.room.message",
                                      {"msgtype": "m.text", "body": text}))
        assert isinstance(r, self.nio.RoomSendResponse), r
        return r.event_id

    def bot_bodies(self, room, bot):
        r = self.run(self.c.room_messages(room, start="", limit=200,
                                          direction=self.nio.MessageDirection.back))
        if not isinstance(r, self.nio.RoomMessagesResponse):
            return []
        return [e.source["content"].get("body", "") for e in reversed(r.chunk)
                if e.source.get("sender") == bot and e.source.get("type") == "m.room.message"]

    def wait_joined(self, room, bot, timeout=30):
        def joined():
            r = self.run(self.c.joined_members(room))
            return isinstance(r, self.nio.JoinedMembersResponse) and \
                any(m.user_id == bot for m in r.members)
        wait_for(joined, timeout=timeout, what=f"{bot} to join {room}")

    def close(self):
        self.run(self.c.close())
        self.loop.close()


def test_synapse_stopped_and_restarted_under_the_bot(synapse, hermes_bin, llm, home):
    tag = secrets.token_hex(3)
    bot, bot_token = register(synapse, f"hermes{tag}")
    alice_id, alice_token = register(synapse, f"alice{tag}")
    alice = Person(synapse, alice_id, alice_token)
    env = hermes_env(home, llm, MATRIX_HOMESERVER=synapse.url, MATRIX_ACCESS_TOKEN=bot_token,
                     MATRIX_ALLOWED_USERS=alice_id, MATRIX_REACTIONS="false")
    g = Gateway(hermes_bin, home, env)
    led = Ledger("sy")
    try:
        wait_for(lambda: g.alive() and "Matrix: connected as" in g.output(), timeout=40,
                 what="the Matrix adapter to connect")
        rooms = [alice.dm(bot), alice.dm(bot)]
        for r in rooms:
            alice.wait_joined(r, bot)

        def replies(room):
            return alice.bot_bodies(room, bot)

        for r in rooms:
            alice.say(r, led.token(r))
        wait_for(lambda: not led.missing(replies), timeout=30, what="the first round")

        # before: the model is still writing this answer when the server goes away
        slow = led.token(rooms[0])
        llm.rule(slow, [{"content": "echo: " + slow, "delay_ms": 1500}])
        alice.say(rooms[0], slow)
        wait_for(lambda: any(r["used"] for r in llm.rules()), timeout=20,
                 what="the slow turn at the model")
        t_down = time.monotonic()
        synapse.stop()
        queued = [(r, led.token(r)) for r in rooms for _ in range(2)]  # the client's queue
        # two failed syncs: the bot noticed, and waited its pause before trying again
        wait_for(lambda: g.alive() and g.output().count("Matrix: sync error") >= 2, timeout=60,
                 what="the bot to notice the homeserver is gone, twice")
        err = synapse.start()
        assert err is None, err
        outage = time.monotonic() - t_down
        for r, t in queued:  # the client flushes its queue as soon as the server answers
            alice.say(r, t)
        wait_for(lambda: "sync recovered after" in g.output(), timeout=60,
                 what="the bot's sync to recover")
        for r in rooms:  # after
            alice.say(r, led.token(r))
        wait_for(lambda: not led.missing(replies), timeout=60,
                 what=lambda: "answers to everything sent before, during and after: "
                 + str(led.missing(replies)))
        for r in rooms:  # a barrier for late duplicates
            alice.say(r, led.token(r))
        wait_for(lambda: not led.missing(replies), timeout=30, what="the last round")
        g.alive()
        led.check_once(replies)
        # no retry storm: one sync attempt per pause (5 s) while the server was away
        n = max(int(x) for x in re.findall(r"sync recovered after (\d+) error", g.output()))
        assert n <= outage / 5 + 3, f"{n} sync errors in a {outage:.1f}s outage"
        print(f"\nSynapse outage {outage:.1f}s, {n} sync error(s) before the bot recovered")
    finally:
        g.stop()
        alice.close()

"""`hermes gateway run` with MATRIX_ENCRYPTION=true against the real Synapse
(../shared/peers/synapse), with Debian's matrix-nio + python3-olm playing the person (a real
libolm client with its own SQLite crypto store) and the scripted LLM (tests/doubles/fake_llm.py):

  * the person DMs the bot in an encrypted room: the bot decrypts the message and the person
    decrypts the bot's encrypted answer; the homeserver only ever sees m.room.encrypted, and
    the crypto store is <HERMES_HOME>/platforms/matrix/store/crypto.db, mode 0600;
  * an encrypted thread reply is answered in the thread (relation kept in cleartext);
  * a restart keeps the identity (same ed25519/curve25519 keys on the server) and the
    conversation goes on;
  * a room whose m.room.encryption says rotation_period_msgs=1 gets a new Megolm session for
    each bot message, and the person reads them all;
  * a second device of the person that logs in later can read the bot's next answer (the
    room key is re-shared to new devices).

Synapse is started by the peers' start.sh when it is not running (and stopped again at the
end if this module started it). When it, matrix-nio or python3-olm is unavailable the tests
are skipped with the reason, loudly: they never pass silently.
"""
import asyncio
import json
import os
import secrets
import signal
import stat
import subprocess
import urllib.error
import urllib.parse
import urllib.request

import pytest

from conftest import _wait_for, hermes_env
from synapse_peer import HS, PW, http, need_nio, register, running

MEGOLM = "m.megolm.v1.aes-sha2"


@pytest.fixture(scope="module")
def synapse():
    need_nio("test_matrix_e2ee", e2ee=True)
    yield from running("test_matrix_e2ee")


class Person:
    """A Matrix user with E2EE: matrix-nio's AsyncClient with its own crypto store, on a
    private event loop. Decrypted and undecryptable room events collect in self.inbox."""

    def __init__(self, user_id, store, device_name="person-device"):
        import nio
        self.nio = nio
        self.loop = asyncio.new_event_loop()
        self.user_id = user_id
        cfg = nio.AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True,
                                    max_limit_exceeded=0, max_timeouts=0)
        os.makedirs(store, exist_ok=True)
        self.c = nio.AsyncClient(HS, user_id, store_path=store, config=cfg)
        r = self.run(self.c.login(PW, device_name=device_name))
        assert isinstance(r, nio.LoginResponse), r
        if self.c.should_upload_keys:
            self.run(self.c.keys_upload())
        self.inbox = []
        self.c.add_event_callback(self._on_event, (nio.RoomMessageText, nio.MegolmEvent,
                                                   nio.RoomEncryptedFile))
        self.run(self.c.sync(timeout=0, full_state=True))

    async def _on_event(self, room, event):
        self.inbox.append((room.room_id, event))

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def sync(self):
        self.run(self.c.sync(timeout=500))
        if self.c.should_query_keys:
            self.run(self.c.keys_query())

    def encrypted_room(self, bot, direct=True, extra=None, name=None):
        content = {"algorithm": MEGOLM}
        content.update(extra or {})
        kw = {"is_direct": direct, "invite": [bot],
              "initial_state": [{"type": "m.room.encryption", "state_key": "",
                                 "content": content}]}
        if name:
            kw["name"] = name
        r = self.run(self.c.room_create(**kw))
        assert isinstance(r, self.nio.RoomCreateResponse), r
        return r.room_id

    def wait_joined(self, room, bot, timeout=30):
        def joined():
            self.sync()
            return room in self.c.rooms and bot in self.c.rooms[room].users
        _wait_for(joined, timeout=timeout, what=f"{bot} to join {room}")

    def say(self, room, content):
        if isinstance(content, str):
            content = {"msgtype": "m.text", "body": content}
        r = self.run(self.c.room_send(room, "m.room.message", content,
                                      ignore_unverified_devices=True))
        assert isinstance(r, self.nio.RoomSendResponse), r
        return r.event_id

    def from_bot(self, room, bot):
        return [e for rid, e in self.inbox if rid == room and e.sender == bot]

    def wait_reply(self, room, bot, body, timeout=45):
        def got():
            self.sync()
            for e in self.from_bot(room, bot):
                if isinstance(e, self.nio.RoomMessageText) and e.body == body:
                    return e
            return None
        try:
            return _wait_for(got, timeout=timeout, what=f"the bot's decrypted answer {body!r}")
        except AssertionError:
            undecryptable = [e for e in self.from_bot(room, bot)
                             if isinstance(e, self.nio.MegolmEvent)]
            raw = [(e["event_id"], e["type"]) for e in self.raw(room) if e["sender"] == bot]
            raise AssertionError(
                f"no decrypted {body!r}: server has {raw}; "
                f"{len(undecryptable)} undecryptable bot event(s) "
                f"(sessions {[e.session_id for e in undecryptable]}); bot texts: "
                f"{[getattr(e, 'body', None) for e in self.from_bot(room, bot)]}")

    def raw(self, room):
        q = urllib.parse.quote(room)
        return http("GET", f"/_matrix/client/v3/rooms/{q}/messages?dir=b&limit=100",
                    token=self.c.access_token)["chunk"]

    def close(self):
        self.run(self.c.close())
        self.loop.close()


class Gateway:
    def __init__(self, hermes_bin, home, env):
        self.log_path = home / "gateway.out"
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen([hermes_bin, "gateway", "run"], env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def text(self):
        return self.log_path.read_text(errors="replace")

    def wait_connected(self, n=1):
        def ok():
            if self.proc.poll() is not None:
                raise AssertionError("gateway exited: " + self.text()[-3000:])
            return self.text().count("Matrix: connected as") >= n
        _wait_for(ok, timeout=45, what="the Matrix adapter to connect")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture
def world(synapse, tmp_path):
    tag = secrets.token_hex(4)
    bot, bot_token, bot_device = register(f"hermes{tag}")
    alice_id, _, _ = register(f"alice{tag}")
    alice = Person(alice_id, str(tmp_path / "alice-store"))
    yield {"bot": bot, "bot_token": bot_token, "bot_device": bot_device, "alice": alice,
           "tmp": tmp_path}
    alice.close()


def matrix_env(home, llm, w, **extra):
    return hermes_env(home, llm, MATRIX_HOMESERVER=HS, MATRIX_ACCESS_TOKEN=w["bot_token"],
                      MATRIX_ALLOWED_USERS=w["alice"].user_id, MATRIX_ENCRYPTION="true",
                      HERMES_LOG_LEVEL="debug", HERMES_LOG_DEBUG="matrix", **extra)


@pytest.fixture
def gateway(hermes_bin, llm, home, world):
    g = Gateway(hermes_bin, home, matrix_env(home, llm, world))
    g.wait_connected()
    yield g
    g.stop()


def bot_keys(w):
    j = http("POST", "/_matrix/client/v3/keys/query", {"device_keys": {w["bot"]: []}},
             token=w["bot_token"])
    devs = j["device_keys"].get(w["bot"], {})
    return {d: v["keys"] for d, v in devs.items()}


def test_encrypted_dm_both_ways(gateway, world, home):
    alice, bot = world["alice"], world["bot"]
    assert "Matrix: E2EE enabled (store: " in gateway.text()
    db = home / "platforms" / "matrix" / "store" / "crypto.db"
    assert db.exists(), "no crypto store"
    assert stat.S_IMODE(db.stat().st_mode) == 0o600, oct(db.stat().st_mode)
    keys = bot_keys(world)
    assert keys, "the bot uploaded no device keys"
    room = alice.encrypted_room(bot)
    alice.wait_joined(room, bot)
    ev = alice.say(room, "hello, encrypted bot")
    reply = alice.wait_reply(room, bot, "echo: hello, encrypted bot")
    # the homeserver saw ciphertext only, both ways
    raw = {e["event_id"]: e for e in alice.raw(room)}
    assert raw[ev]["type"] == "m.room.encrypted"
    assert raw[reply.event_id]["type"] == "m.room.encrypted"
    assert raw[reply.event_id]["content"]["algorithm"] == MEGOLM
    assert not any(e["type"] == "m.room.message" and e["sender"] == bot for e in raw.values())
    # the ✅ reaction is on the person's message (reactions are not encrypted)
    def rel(e):
        return e.get("content", {}).get("m.relates_to", {})
    _wait_for(lambda: any(e["type"] == "m.reaction" and e["sender"] == bot and
                          rel(e).get("event_id") == ev and rel(e).get("key") == "\u2705"
                          for e in alice.raw(room)), timeout=20, what="the ✅ reaction")
    # the pickle key and the pickles never reach the log
    log = gateway.text()
    assert f"{bot}:default" not in log


def test_encrypted_thread_reply(gateway, world):
    alice, bot = world["alice"], world["bot"]
    room = alice.encrypted_room(bot)
    alice.wait_joined(room, bot)
    root = alice.say(room, "a thread root")
    alice.wait_reply(room, bot, "echo: a thread root")
    alice.say(room, {"msgtype": "m.text", "body": "inside the thread",
                     "m.relates_to": {"rel_type": "m.thread", "event_id": root,
                                      "is_falling_back": True,
                                      "m.in_reply_to": {"event_id": root}}})
    reply = alice.wait_reply(room, bot, "echo: inside the thread")
    rel = reply.source["content"].get("m.relates_to", {})
    assert rel.get("rel_type") == "m.thread" and rel.get("event_id") == root, rel
    raw = {e["event_id"]: e for e in alice.raw(room)}
    clear = raw[reply.event_id]["content"].get("m.relates_to", {})
    assert clear.get("rel_type") == "m.thread" and clear.get("event_id") == root, clear


def test_restart_keeps_identity(hermes_bin, llm, home, world):
    alice, bot = world["alice"], world["bot"]
    g = Gateway(hermes_bin, home, matrix_env(home, llm, world))
    try:
        g.wait_connected()
        before = bot_keys(world)
        room = alice.encrypted_room(bot)
        alice.wait_joined(room, bot)
        alice.say(room, "before the restart")
        alice.wait_reply(room, bot, "echo: before the restart")
    finally:
        g.stop()
    g = Gateway(hermes_bin, home, matrix_env(home, llm, world))
    try:
        g.wait_connected(2)
        assert g.text().count("created a new E2EE identity") == 1, "a new identity on restart"
        assert bot_keys(world) == before
        alice.say(room, "after the restart")
        alice.wait_reply(room, bot, "echo: after the restart")
    finally:
        g.stop()


def test_rotation_by_message_count(gateway, world):
    alice, bot = world["alice"], world["bot"]
    room = alice.encrypted_room(bot, extra={"rotation_period_msgs": 1})
    alice.wait_joined(room, bot)
    alice.say(room, "one")
    r1 = alice.wait_reply(room, bot, "echo: one")
    alice.say(room, "two")
    r2 = alice.wait_reply(room, bot, "echo: two")
    raw = {e["event_id"]: e for e in alice.raw(room)}
    s1 = raw[r1.event_id]["content"]["session_id"]
    s2 = raw[r2.event_id]["content"]["session_id"]
    assert s1 != s2, "the session was not rotated after rotation_period_msgs=1"
    assert "rotating the Megolm session of" in gateway.text()


def test_second_device_joining_later_reads_the_answer(gateway, world):
    alice, bot = world["alice"], world["bot"]
    room = alice.encrypted_room(bot)
    alice.wait_joined(room, bot)
    alice.say(room, "from the first device")
    alice.wait_reply(room, bot, "echo: from the first device")
    phone = Person(alice.user_id, str(world["tmp"] / "alice-phone"), device_name="phone")
    try:
        # the first device learns about the phone, so its next message reaches it too
        def sees_phone():
            alice.sync()
            return any(d.id == phone.c.device_id
                       for d in alice.c.device_store.active_user_devices(alice.user_id))
        _wait_for(sees_phone, timeout=20, what="the first device to see the phone")
        alice.say(room, "now with a phone")
        alice.wait_reply(room, bot, "echo: now with a phone")
        phone.wait_reply(room, bot, "echo: now with a phone")
    finally:
        phone.close()


def test_deleted_crypto_store_is_detected(hermes_bin, llm, home, world):
    """crypto.db deleted while the device id stays: the server still holds one-time keys of
    the old identity, and the bot refuses E2EE with the seed's message (no silent plaintext)."""
    g = Gateway(hermes_bin, home, matrix_env(home, llm, world))
    try:
        g.wait_connected()
    finally:
        g.stop()
    store = home / "platforms" / "matrix" / "store"
    for f in store.glob("crypto.db*"):
        f.unlink()
    g = Gateway(hermes_bin, home, matrix_env(home, llm, world))
    try:
        def refused():
            t = g.text()
            return ("has stale one-time keys on the server signed with a previous identity key"
                    in t or "has immutable identity keys that don't match this installation"
                    in t)
        _wait_for(refused, timeout=30, what="the stale identity to be detected")
        t = g.text()
        assert "Matrix: failed to create E2EE client:" in t, t[-2000:]
        assert t.count("Matrix: connected as") == 1, "connected without E2EE"
    finally:
        g.stop()


def test_encrypted_attachment_is_decrypted_and_checked(gateway, world, home):
    """An AES-CTR encrypted m.file from the person (nio's attachment encryption): the bot
    downloads the ciphertext, checks its SHA-256, decrypts it and caches the plain bytes."""
    alice, bot = world["alice"], world["bot"]
    room = alice.encrypted_room(bot)
    alice.wait_joined(room, bot)
    blob = os.urandom(5000)
    up, keys = alice.run(alice.c.upload(lambda *_: blob, content_type="application/octet-stream",
                                        filename="secret.bin", encrypt=True,
                                        filesize=len(blob)))
    keys["url"] = up.content_uri
    alice.say(room, {"msgtype": "m.file", "body": "secret.bin", "file": keys,
                     "info": {"size": len(blob), "mimetype": "application/octet-stream"}})
    docs = home / "cache" / "documents"

    def cached():
        return [f for f in docs.glob("doc_*_secret.bin")] if docs.exists() else []
    files = _wait_for(cached, timeout=30, what="the decrypted attachment in the cache")
    assert files[0].read_bytes() == blob
    # a tampered hash is refused with a warning, nothing cached
    bad = dict(keys, hashes={"sha256": "A" * 43})
    alice.say(room, {"msgtype": "m.file", "body": "tampered.bin", "file": bad,
                     "info": {"size": len(blob), "mimetype": "application/octet-stream"}})
    _wait_for(lambda: "the encrypted attachment's SHA-256 does not match" in gateway.text(),
              timeout=30, what="the hash mismatch warning")
    assert not list(docs.glob("doc_*_tampered.bin"))


# ----------------------------------------------------------- cross-signing (SSSS)

B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def _b64(b):
    import base64
    return base64.b64encode(b).decode().rstrip("=")


def _recovery_key(key):
    raw = bytes([0x8B, 0x01]) + key
    par = 0
    for x in raw:
        par ^= x
    raw += bytes([par])
    n = int.from_bytes(raw, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = B58[r] + out
    return " ".join(out[i:i + 4] for i in range(0, len(out), 4))


def _ssss_encrypt(key, name, plain):
    """m.secret_storage.v1.aes-hmac-sha2 with Python's cryptography (an independent
    implementation of the spec's HKDF / AES-CTR / HMAC)."""
    from cryptography.hazmat.primitives import hashes, hmac as chmac
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    k = HKDF(algorithm=hashes.SHA256(), length=64, salt=bytes(32), info=name.encode()).derive(key)
    iv = bytearray(os.urandom(16))
    iv[8] &= 0x7F
    enc = Cipher(algorithms.AES(k[:32]), modes.CTR(bytes(iv))).encryptor()
    ct = enc.update(plain) + enc.finalize()
    h = chmac.HMAC(k[32:], hashes.SHA256())
    h.update(ct)
    return {"iv": _b64(bytes(iv)), "ciphertext": _b64(ct), "mac": _b64(h.finalize())}


def _signed(obj, user, signer_pub, signer):
    import olm
    canon = json.dumps({k: v for k, v in obj.items() if k not in ("signatures", "unsigned")},
                       sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    obj.setdefault("signatures", {}).setdefault(user, {})["ed25519:" + signer_pub] = \
        signer.sign(canon)
    return obj


def test_recovery_key_cross_signs_the_device(hermes_bin, llm, home, world):
    import olm
    bot, token = world["bot"], world["bot_token"]
    # the account's cross-signing keys, as Element would create them
    master = olm.PkSigning(olm.PkSigning.generate_seed())
    ss_seed = olm.PkSigning.generate_seed()
    ssk = olm.PkSigning(ss_seed)
    usk = olm.PkSigning(olm.PkSigning.generate_seed())

    def key(usage, pk, signer=True):
        k = {"user_id": bot, "usage": [usage], "keys": {"ed25519:" + pk.public_key: pk.public_key}}
        return _signed(k, bot, master.public_key, master) if signer else k
    body = {"master_key": key("master", master, False),
            "self_signing_key": key("self_signing", ssk),
            "user_signing_key": key("user_signing", usk)}
    r = http("POST", "/_matrix/client/v3/keys/device_signing/upload", body, token=token,
             ok=(200, 401))
    if "session" in r:  # user-interactive auth: the password
        body["auth"] = {"type": "m.login.password", "session": r["session"],
                        "identifier": {"type": "m.id.user", "user": bot}, "password": PW}
        http("POST", "/_matrix/client/v3/keys/device_signing/upload", body, token=token)
    # secret storage: default key K1 holding the self-signing seed
    skey = os.urandom(32)
    check = _ssss_encrypt(skey, "", bytes(32))
    u = urllib.parse.quote(bot)
    http("PUT", f"/_matrix/client/v3/user/{u}/account_data/m.secret_storage.key.K1",
         {"algorithm": "m.secret_storage.v1.aes-hmac-sha2", "iv": check["iv"],
          "mac": check["mac"]}, token=token)
    http("PUT", f"/_matrix/client/v3/user/{u}/account_data/m.secret_storage.default_key",
         {"key": "K1"}, token=token)
    seed_b64 = _b64(ss_seed).encode()
    http("PUT", f"/_matrix/client/v3/user/{u}/account_data/m.cross_signing.self_signing",
         {"encrypted": {"K1": _ssss_encrypt(skey, "m.cross_signing.self_signing", seed_b64)}},
         token=token)
    rkey = _recovery_key(skey)
    for restart in (1, 2):  # idempotent: every start signs again, without error
        g = Gateway(hermes_bin, home, matrix_env(home, llm, world, MATRIX_RECOVERY_KEY=rkey))
        try:
            g.wait_connected(restart)
            assert g.text().count("Matrix: cross-signing verified via recovery key") == restart
            assert rkey not in g.text() and rkey.replace(" ", "") not in g.text()
        finally:
            g.stop()
    # the person checks: the bot's device carries a valid signature by the self-signing key
    j = http("POST", "/_matrix/client/v3/keys/query", {"device_keys": {bot: []}},
             token=world["alice"].c.access_token)
    (dev, dk), = j["device_keys"][bot].items()
    sig = dk["signatures"][bot]["ed25519:" + ssk.public_key]
    canon = json.dumps({k: v for k, v in dk.items() if k not in ("signatures", "unsigned")},
                       sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    olm.ed25519_verify(ssk.public_key, canon, sig)  # raises on a bad signature
    assert j["self_signing_keys"][bot]["keys"]["ed25519:" + ssk.public_key] == ssk.public_key

"""The real Synapse of ../shared/peers for end-to-end tests: where it is, how to reach it,
how to register users, and a module fixture body that starts it when needed and skips LOUDLY
(never passes silently) when it cannot run here."""
import hashlib
import hmac
import json
import os
import secrets
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

PEERS = os.environ.get("HERMES_PEERS", os.path.join(os.path.dirname(__file__), "..", "..", "..",
                                                    "shared", "peers"))
SYNAPSE_DIR = os.path.join(PEERS, "synapse")
SID_ROOT = os.environ.get("SID_ROOT", "/opt/peers/sid-root")
PORT = int(os.environ.get("SYNAPSE_PORT", "8018"))
HS = f"http://127.0.0.1:{PORT}"
SECRET = os.path.join(SID_ROOT, "var/lib/peers-synapse/registration_shared_secret")
PW = "pw-" + secrets.token_hex(6)  # every user registered here has this password


def skip(test, reason, what="Synapse peer unavailable"):
    sys.stderr.write(f"\n*** {test} SKIPPED: {reason}\n")
    pytest.skip(f"{what}: {reason}")


def up():
    try:
        with urllib.request.urlopen(HS + "/_matrix/client/versions", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def http(method, path, body=None, token=None, ok=(200,)):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(HS + path, data=data, method=method)
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


def register(name):
    """A new user through the shared-secret admin API: (user_id, access_token, device_id)."""
    secret = open(SECRET).read().strip()
    nonce = http("GET", "/_synapse/admin/v1/register")["nonce"]
    mac = hmac.new(secret.encode(), digestmod=hashlib.sha1)
    mac.update(b"\x00".join([nonce.encode(), name.encode(), PW.encode(), b"notadmin"]))
    r = http("POST", "/_synapse/admin/v1/register",
             {"nonce": nonce, "username": name, "password": PW, "admin": False,
              "mac": mac.hexdigest()})
    return r["user_id"], r["access_token"], r.get("device_id")


def need_nio(test, e2ee=False):
    try:
        import nio  # noqa: F401  (Debian python3-matrix-nio)
        from nio.crypto import ENCRYPTION_ENABLED
    except ImportError as e:
        skip(test, f"matrix-nio is not installed ({e}); run {PEERS}/matrix-client/install.sh")
    if e2ee and not ENCRYPTION_ENABLED:
        skip(test, f"python3-olm is missing; run {PEERS}/matrix-client/install.sh")


def running(test):
    """Generator for a module fixture: Synapse up (installed and started by the peers'
    scripts if it is not running, stopped again afterwards), or the test skipped."""
    if os.geteuid() != 0:
        skip(test, "the peers' scripts need root (chroot)")
    started = False
    if not up():
        for script, t in (("install.sh", 600), ("start.sh", 120)):
            path = os.path.join(SYNAPSE_DIR, script)
            if not os.access(path, os.X_OK):
                skip(test, f"{path} not found")
            try:
                r = subprocess.run([path], capture_output=True, text=True, timeout=t)
            except subprocess.TimeoutExpired:
                skip(test, f"{script} took more than {t}s")
            if r.returncode != 0:
                skip(test, f"{script} failed: {(r.stdout + r.stderr)[-800:]}")
        started = True
        if not up():
            skip(test, f"Synapse does not answer on {HS} after start.sh")
    if not os.path.exists(SECRET):
        skip(test, f"no registration secret at {SECRET}")
    yield HS
    if started:
        subprocess.run([os.path.join(SYNAPSE_DIR, "stop.sh")], capture_output=True, timeout=60)


_ADMIN = {}


def no_ratelimit(user_id):
    """Lift every Synapse rate limit for user_id (the admin override_ratelimit API, through
    an admin user registered once per process). Synapse's rc_room_creation (1 room a minute
    after a burst of 10) is not raised by the peer's homeserver.yaml, and a test that
    creates many rooms for one person would otherwise wait a minute per room."""
    if "token" not in _ADMIN:
        name = "admin" + secrets.token_hex(4)
        secret = open(SECRET).read().strip()
        nonce = http("GET", "/_synapse/admin/v1/register")["nonce"]
        mac = hmac.new(secret.encode(), digestmod=hashlib.sha1)
        mac.update(b"\x00".join([nonce.encode(), name.encode(), PW.encode(), b"admin"]))
        r = http("POST", "/_synapse/admin/v1/register",
                 {"nonce": nonce, "username": name, "password": PW, "admin": True,
                  "mac": mac.hexdigest()})
        _ADMIN["token"] = r["access_token"]
    uid = urllib.request.quote(user_id, safe="")
    http("POST", f"/_synapse/admin/v1/users/{uid}/override_ratelimit",
         {"messages_per_second": 0, "burst_count": 0}, token=_ADMIN["token"])

"""What the end-to-end (tests/e2e) and fault (tests/fault) suites share: waiting with a
deadline, stopping a double's process, the clean environment `hermes` runs in, and the
Mattermost server double with its control port. Imported by both suites' conftest.py (which
put tests/doubles on sys.path)."""
import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request

DOUBLES = os.path.dirname(os.path.abspath(__file__))

SANITIZER_ENV = ("TSAN_OPTIONS", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS")


def wait_for(pred, timeout=15.0, what="condition", every=0.02):
    """Poll pred until it returns something true, at most timeout seconds; what may be a
    string or a function giving one (for a message that shows the state at the time)."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for "
                                 f"{what() if callable(what) else what}")
        time.sleep(every)


def stop_process(proc, log=None):
    """SIGTERM, at most 5 s, then SIGKILL; close its log file."""
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if log is not None and not log.closed:
        log.close()


def hermes_env(home, llm=None, **extra):
    """A clean environment: nothing from the caller's shell leaks into the test, except a
    sanitizer build's settings, which must reach the gateway it runs. extra: more variables
    (None removes one)."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home.parent),
           "HERMES_HOME": str(home), "LANG": "C.UTF-8"}
    for k in SANITIZER_ENV:
        if k in os.environ:
            env[k] = os.environ[k]
    if llm is not None:
        env["OPENAI_BASE_URL"] = llm.url + "/v1"
        env["OPENAI_API_KEY"] = "sk-test-key-123456"
    for k, v in extra.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


class MMDouble:
    """tests/doubles/mattermost_double.py (bot token `token`) and its control port."""

    def __init__(self, tmp, token):
        port_file = os.path.join(tmp, "mm.port")
        self.log = open(os.path.join(tmp, "mm_double.log"), "w")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(DOUBLES, "mattermost_double.py"), "--port", "0",
             "--control-port", "0", "--token", token, "--port-file", port_file],
            stdout=self.log, stderr=subprocess.STDOUT)
        line = wait_for(lambda: os.path.exists(port_file) and open(port_file).read().strip(),
                        what="the Mattermost double's port file")
        _, port, ctl = line.split()
        self.url = f"http://127.0.0.1:{port}"
        self.ctl = f"http://127.0.0.1:{ctl}"
        self.world = self.get("/_test/world")

    def get(self, path, timeout=15):
        with urllib.request.urlopen(self.ctl + path, timeout=timeout) as r:
            return json.loads(r.read())

    def post(self, path, body):
        req = urllib.request.Request(self.ctl + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"},
                                     method="POST")
        with urllib.request.urlopen(req, timeout=15) as r:
            return json.loads(r.read())

    def say(self, channel, user, message, root_id=None):
        body = {"channel": channel, "user": user, "message": message}
        if root_id:
            body["root_id"] = root_id
        return self.post("/_test/post", body)

    def bot_posts(self, channel):
        q = urllib.parse.urlencode({"user": "bot", "channel": channel})
        return self.get("/_test/posts?" + q)

    def wait_bot_posts(self, channel, n, timeout=30):
        return wait_for(lambda: (lambda p: p if len(p) >= n else None)(self.bot_posts(channel)),
                        timeout=timeout, what=f"{n} bot post(s) in {channel}")

    def ws_authenticated(self):
        return len(self.get("/_test/wait?what=ws&n=0&timeout_ms=0"))

    def user_ids(self, *keys):
        return ",".join(self.world["users"][k]["id"] for k in keys)

    def stop(self):
        stop_process(self.proc, self.log)


class Double:
    """A platform double from tests/doubles (script) on 127.0.0.1, with its control API at
    self.url: started with --port 0 --port-file, stopped by stop()."""

    def __init__(self, tmp, script, *args):
        name = os.path.splitext(script)[0]
        port_file = os.path.join(tmp, f"{name}.port")
        self.log = open(os.path.join(tmp, f"{name}.log"), "w")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(DOUBLES, script), "--port", "0",
             "--port-file", port_file, *args], stdout=self.log, stderr=subprocess.STDOUT)
        self.port = int(wait_for(
            lambda: os.path.exists(port_file) and open(port_file).read().strip(),
            what=f"the {name} port file"))
        self.url = f"http://127.0.0.1:{self.port}"

    def call(self, path, body=None):
        """GET path, or POST body as JSON; the JSON answer."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data,
                                     method="POST" if data is not None else "GET",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read())

    def state(self):
        return self.call("/_test/state")

    def stop(self):
        stop_process(self.proc, self.log)

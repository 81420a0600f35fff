"""A dead adapter restarts only itself, never the gateway (issue 13, "Liveness").

The real condition: the Matrix adapter, configured with an access token, gives up when the
homeserver rejects that token on /sync (401 M_UNKNOWN_TOKEN: "The Matrix adapter stops"), and
its actor ends abnormally (RT_EXIT_ERROR). Before supervision Matrix then stayed dead until the
gateway restarted. Now its supervisor (adapters/kit/ak_supervise.c) starts a fresh adapter
after about a second: it logs in again (whoami), re-reads the since token from its store and
syncs on. The homeserver double (tests/doubles/matrix_double.py) rejects exactly one /sync.

Asserted: the supervisor's restart line; the platform comes back and answers, every message
around the restart exactly once in its own room; `hermes gateway status` says "restarted 1
time"; the gateway process never restarted, and its other platform (Mattermost) was answered
while Matrix was down."""
import json
import os
import signal
import subprocess
import sys
import urllib.parse
import urllib.request

from conftest import DOUBLES, Gateway, Ledger, mm_env, wait_for

ROOMS = 3


class MatrixDouble:
    def __init__(self, tmp):
        self.log = open(os.path.join(tmp, "matrix_double.log"), "a")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(DOUBLES, "matrix_double.py"), "--port", "0",
             "--state", os.path.join(tmp, "matrix_state.json")],
            stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline()  # "PORT <n>", printed once listening
        assert line.startswith("PORT "), f"matrix double: {line!r}"
        self.url = f"http://127.0.0.1:{int(line.split()[1])}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.log.close()

    def call(self, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data,
                                     method="POST" if data is not None else "GET",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def replies(self, room):
        q = urllib.parse.urlencode({"room": room, "type": "m.room.message"})
        return [e["content"].get("body", "") for e in self.call("/_double/sent?" + q)]

    def syncs(self):
        return self.call("/_double/requests?label=sync")


def gateway_status(hermes_bin, env):
    r = subprocess.run([hermes_bin, "gateway", "status"], env=env, capture_output=True,
                       text=True, timeout=30)
    return r.stdout + r.stderr


def test_matrix_adapter_restarts_after_giving_up(hermes_bin, llm, home, tmp_path, mm):
    hs = MatrixDouble(str(tmp_path))
    rooms = [f"!sup{i}:localhost" for i in range(ROOMS)]
    people = {r: f"@person{i}:localhost" for i, r in enumerate(rooms)}
    for r in rooms:
        hs.call("/_double/room", {"room_id": r, "members": ["@bot:localhost", people[r]],
                                  "direct": True})
    env = mm_env(home, llm, mm, MATRIX_HOMESERVER=hs.url, MATRIX_ACCESS_TOKEN="bot-token",
                 MATRIX_USER_ID="@bot:localhost", GATEWAY_ALLOW_ALL_USERS="true",
                 MATRIX_REACTIONS="false", MATRIX_HOME_ROOM=rooms[0],
                 # one message, one turn (the ledger counts an answer per message): quick
                 # follow-ups sent within the batching window would rightly be joined
                 HERMES_MATRIX_TEXT_BATCH_DELAY_SECONDS="0")
    g = Gateway(hermes_bin, home, env)
    led = Ledger("sv")
    other = Ledger("so")  # Mattermost, on the same gateway

    def say_all():
        for r in rooms:
            hs.call("/_double/message", {"room_id": r, "sender": people[r],
                                         "body": led.token(r)})

    def mm_replies(chat):
        return [p["message"] for p in mm.bot_posts(chat)]

    try:
        wait_for(lambda: g.alive() and "Matrix: connected as" in g.output()
                 and mm.ws_authenticated() >= 1, timeout=30,
                 what="the Matrix and Mattermost adapters to connect")
        pid = g.proc.pid
        say_all()
        wait_for(lambda: not led.missing(hs.replies), timeout=30, what="the first round")
        assert "restarted" not in gateway_status(hermes_bin, env)

        # the homeserver rejects the token on the next /sync, once: the adapter gives up
        hs.call("/_double/fault", {"label": "sync", "status": 401, "errcode": "M_UNKNOWN_TOKEN",
                                   "error": "Invalid access token passed.", "count": 1})
        say_all()  # wakes the long-poll; the next /sync is the rejected one
        wait_for(lambda: g.alive() and "The Matrix adapter stops" in g.output(), timeout=30,
                 what="the Matrix adapter to give up on the rejected token")
        wait_for(lambda: "matrix: the adapter ended (error); restart 1 (attempt 1)"
                 in g.output(), timeout=10, what="the supervisor's restart line")
        mm.say("dm_alice", "alice", other.token("dm_alice"))  # the rest of the gateway runs
        wait_for(lambda: g.output().count("Matrix: connected as") >= 2, timeout=30,
                 what="the restarted Matrix adapter to connect")
        say_all()  # after the restart
        wait_for(lambda: not led.missing(hs.replies), timeout=60,
                 what=lambda: "answers around the restart: " + str(led.missing(hs.replies)))
        wait_for(lambda: not other.missing(mm_replies), timeout=30,
                 what="the Mattermost answer")
        say_all()  # a barrier for late duplicates
        wait_for(lambda: not led.missing(hs.replies), timeout=30, what="the last round")
        led.check_once(hs.replies)
        other.check_once(mm_replies)

        st = wait_for(lambda: (lambda s: "restarted 1 time" in s and s)(
            gateway_status(hermes_bin, env)), timeout=15, every=0.5,
            what="`hermes gateway status` to show the restart")
        assert "matrix (connected, restarted 1 time" in st, st
        assert "mattermost (connected)" in st, st
        state = json.loads((home / "gateway_state.json").read_text())
        assert state["platforms"]["matrix"]["restarts"] == 1, state["platforms"]
        assert state["platforms"]["matrix"]["state"] == "connected", state["platforms"]
        assert g.alive() and g.proc.pid == pid  # the gateway itself never restarted
        assert g.output().count("running (PID") == 1
    finally:
        g.stop()
        hs.stop()

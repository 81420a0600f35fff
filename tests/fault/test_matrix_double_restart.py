"""The Matrix homeserver double (tests/doubles/matrix_double.py) stopped and restarted under
load (issue 13): twelve DM rooms busy, the server goes away (SIGTERM; it keeps its world in
--state and comes back on the same port) right after a burst of messages, people's clients
send what they queued the moment it is back, then more. Every message is answered exactly
once in its own room; the bot's sync retries with a pause; the gateway stays up, and its
other platform (Mattermost, on the same gateway) is answered while the homeserver is away."""
import json
import os
import signal
import subprocess
import sys
import urllib.parse
import urllib.request

from conftest import DOUBLES, Gateway, Ledger, mm_env, wait_for

ROOMS = 12


class MatrixDouble:
    def __init__(self, tmp):
        self.state = os.path.join(tmp, "matrix_state.json")
        self.log_path = os.path.join(tmp, "matrix_double.log")
        self.port = 0
        self.proc = None
        self.start()

    def start(self):
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(DOUBLES, "matrix_double.py"), "--port", str(self.port),
             "--state", self.state], stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline()  # "PORT <n>", printed once listening
        assert line.startswith("PORT "), f"matrix double: {line!r}"
        self.port = int(line.split()[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # saves its world to --state
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
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


def test_homeserver_double_restarted_under_load(hermes_bin, llm, home, tmp_path, mm):
    hs = MatrixDouble(str(tmp_path))
    rooms = [f"!fault{i:02d}:localhost" for i in range(ROOMS)]
    people = {r: f"@person{i:02d}:localhost" for i, r in enumerate(rooms)}
    for r in rooms:
        hs.call("/_double/room", {"room_id": r, "members": ["@bot:localhost", people[r]],
                                  "direct": True})
    env = mm_env(home, llm, mm, MATRIX_HOMESERVER=hs.url, MATRIX_ACCESS_TOKEN="bot-token",
                     MATRIX_USER_ID="@bot:localhost", GATEWAY_ALLOW_ALL_USERS="true",
                     MATRIX_REACTIONS="false", MATRIX_HOME_ROOM=rooms[0])
    g = Gateway(hermes_bin, home, env)
    led = Ledger("mx")
    other = Ledger("mo")  # Mattermost, the same gateway

    def mm_replies(chat):
        return [p["message"] for p in mm.bot_posts(chat)]

    def say_all():
        for r in rooms:
            hs.call("/_double/message", {"room_id": r, "sender": people[r],
                                         "body": led.token(r)})

    def replies(room):
        return hs.replies(room) if hs.proc.poll() is None else []

    try:
        wait_for(lambda: g.alive() and "Matrix: connected as" in g.output()
                 and mm.ws_authenticated() >= 1, timeout=30,
                 what="the Matrix and Mattermost adapters to connect")
        say_all()
        wait_for(lambda: not led.missing(replies), timeout=30, what="the first round")
        say_all()  # a burst, and the server goes away under it
        hs.stop()
        wait_for(lambda: g.alive() and "Matrix: sync error" in g.output(), timeout=30,
                 what="the bot to notice the homeserver is gone")
        mm.say("dm_alice", "alice", other.token("dm_alice"))  # the other platform is served
        wait_for(lambda: not other.missing(mm_replies), timeout=15,
                 what="a Mattermost answer while the homeserver is away")
        assert hs.proc.poll() is not None
        hs.start()
        say_all()  # what the clients queued while it was away
        wait_for(lambda: "sync recovered after" in g.output(), timeout=30,
                 what="the bot's sync to recover")
        say_all()  # after
        wait_for(lambda: not led.missing(replies), timeout=60,
                 what=lambda: "answers to everything around the restart: "
                 + str(led.missing(replies)))
        say_all()  # a barrier for late duplicates
        wait_for(lambda: not led.missing(replies), timeout=30, what="the last round")
        g.alive()
        led.check_once(replies)
        other.check_once(mm_replies)
    finally:
        g.stop()
        hs.stop()

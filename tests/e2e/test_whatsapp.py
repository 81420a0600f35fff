"""End-to-end: the real `hermes gateway run` with the WhatsApp Cloud API adapter — Meta's
webhook calls played by the test, the Graph API by tests/doubles/whatsapp_double.py, the model
by the scripted LLM.

    HERMES_BIN=build/hermes python3 -m pytest -q tests/e2e/test_whatsapp.py
"""
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from conftest import DOUBLES, _wait_for, hermes_env
from harness import stop_process

SECRET = "app-secret-e2e-0123"
VERIFY = "verify-e2e"
TOKEN = "EAAG-e2e-token-456"
PHONE = "1098765432"
USER = "15551234567"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Graph:
    def __init__(self, tmp):
        port_file = os.path.join(tmp, "wa.port")
        self.log = open(os.path.join(tmp, "wa.log"), "w")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(DOUBLES, "whatsapp_double.py"), "--token", TOKEN,
             "--port", "0", "--port-file", port_file],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.port = int(_wait_for(
            lambda: os.path.exists(port_file) and open(port_file).read().strip(),
            what="whatsapp double port file"))
        self.url = f"http://127.0.0.1:{self.port}/v20.0"

    def sent(self):
        return json.loads(urllib.request.urlopen(
            f"http://127.0.0.1:{self.port}/_ctl/sent", timeout=5).read())

    def attempts(self):
        return json.loads(urllib.request.urlopen(
            f"http://127.0.0.1:{self.port}/_ctl/attempts", timeout=5).read())

    def fail(self, faults):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/_ctl/fail",
                                     data=json.dumps({"faults": faults}).encode(),
                                     headers={"Content-Type": "application/json"},
                                     method="POST")
        urllib.request.urlopen(req, timeout=5).read()

    def stop(self):
        stop_process(self.proc, self.log)


@pytest.fixture
def graph(tmp_path):
    g = Graph(str(tmp_path))
    yield g
    g.stop()


class Gateway:
    def __init__(self, hermes_bin, home, env):
        self.log_path = home / "gateway.out"
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen([hermes_bin, "gateway", "run"], env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def output(self):
        return self.log_path.read_text()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def call(port, method, path, body=None, headers=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body,
                                 headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:  # not listening yet
        return 0, ""


def notification(text, wamid):
    return json.dumps({"object": "whatsapp_business_account", "entry": [{
        "id": "123", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550000000", "phone_number_id": PHONE},
            "contacts": [{"profile": {"name": "Ann"}, "wa_id": USER}],
            "messages": [{"from": USER, "id": wamid, "timestamp": "1700000000",
                          "type": "text", "text": {"body": text}}]}}]}]}).encode()


def signed(body, secret=SECRET):
    return {"Content-Type": "application/json",
            "X-Hub-Signature-256": "sha256=" + hmac.new(secret.encode(), body,
                                                        hashlib.sha256).hexdigest()}


def test_webhook_to_reply(hermes_bin, llm, home, graph):
    port = free_port()
    env = hermes_env(home, llm, WHATSAPP_ENABLED="true", WHATSAPP_ACCESS_TOKEN=TOKEN,
                     WHATSAPP_PHONE_NUMBER_ID=PHONE, WHATSAPP_APP_SECRET=SECRET,
                     WHATSAPP_VERIFY_TOKEN=VERIFY, WHATSAPP_WEBHOOK_PORT=str(port),
                     WHATSAPP_GRAPH_API_BASE=graph.url, WHATSAPP_ALLOWED_USERS=USER,
                     WHATSAPP_HOME_CHANNEL=USER)
    g = Gateway(hermes_bin, home, env)
    try:
        path = "/whatsapp/webhook"
        _wait_for(lambda: g.proc.poll() is not None or
                  call(port, "GET", path + "?hub.mode=subscribe&hub.verify_token=" + VERIFY +
                       "&hub.challenge=987654")[0] == 200, timeout=20,
                  what="the webhook's handshake")
        assert g.proc.poll() is None, g.output()[-3000:]
        assert call(port, "GET", path + "?hub.mode=subscribe&hub.verify_token=x"
                    "&hub.challenge=1") == (403, "forbidden\n")
        st, body = call(port, "GET", path + "?hub.mode=subscribe&hub.verify_token=" + VERIFY +
                        "&hub.challenge=987654")
        assert (st, body) == (200, "987654")

        note = notification("hi from whatsapp", "wamid.E2E1")
        assert call(port, "POST", path, note, {"Content-Type": "application/json"})[0] == 401
        assert call(port, "POST", path, note, signed(note, "wrong-secret"))[0] == 401
        assert call(port, "POST", path, note, signed(note))[0] == 200
        sent = _wait_for(lambda: [m for m in graph.sent()
                                  if m["text"]["body"] == "echo: hi from whatsapp"],
                         timeout=20, what=f"the reply: {graph.sent()}")
        assert sent[0]["to"] == USER
        assert sent[0]["context"]["message_id"] == "wamid.E2E1"
        # Meta redelivers: the same wamid is not answered twice
        assert call(port, "POST", path, note, signed(note))[0] == 200
        note2 = notification("second", "wamid.E2E2")
        assert call(port, "POST", path, note2, signed(note2))[0] == 200
        _wait_for(lambda: [m for m in graph.sent() if m["text"]["body"] == "echo: second"],
                  timeout=20, what="the second reply")
        assert len([m for m in graph.sent()
                    if m["text"]["body"] == "echo: hi from whatsapp"]) == 1
        # only the two signed messages reached the model
        asked = json.dumps(llm.requests())
        assert asked.count("hi from whatsapp") >= 1
    finally:
        g.stop()


def test_the_bridge_is_refused_with_a_clear_error(hermes_bin, llm, home):
    env = hermes_env(home, llm, WHATSAPP_ENABLED="true", WHATSAPP_ALLOWED_USERS=USER)
    g = Gateway(hermes_bin, home, env)
    try:
        _wait_for(lambda: "bridge for personal accounts is not supported" in g.output(),
                  timeout=20, what="the bridge error")
        assert "WHATSAPP_ACCESS_TOKEN" in g.output()
    finally:
        g.stop()


def start_gateway(hermes_bin, llm, home, graph):
    port = free_port()
    env = hermes_env(home, llm, WHATSAPP_ENABLED="true", WHATSAPP_ACCESS_TOKEN=TOKEN,
                     WHATSAPP_PHONE_NUMBER_ID=PHONE, WHATSAPP_APP_SECRET=SECRET,
                     WHATSAPP_VERIFY_TOKEN=VERIFY, WHATSAPP_WEBHOOK_PORT=str(port),
                     WHATSAPP_GRAPH_API_BASE=graph.url, WHATSAPP_ALLOWED_USERS=USER,
                     WHATSAPP_HOME_CHANNEL=USER)  # no "no home channel" notice first
    g = Gateway(hermes_bin, home, env)
    _wait_for(lambda: g.proc.poll() is not None or
              call(port, "GET", "/whatsapp/webhook?hub.mode=subscribe&hub.verify_token=" +
                   VERIFY + "&hub.challenge=1")[0] == 200, timeout=20,
              what="the webhook's handshake")
    assert g.proc.poll() is None, g.output()[-3000:]
    return g, port


def test_a_reply_the_platform_refuses_twice_arrives_once(hermes_bin, llm, home, graph):
    """The Graph API answers the first two sends 500 (Meta's 131000): the adapter acks each
    as worth another try, the gateway's outbox sends again with backoff, and the reply lands
    exactly once."""
    g, port = start_gateway(hermes_bin, llm, home, graph)
    try:
        graph.fail([{"status": 500}, {"status": 500}])
        note = notification("flaky platform", "wamid.FLAKY1")
        assert call(port, "POST", "/whatsapp/webhook", note, signed(note))[0] == 200
        want = "echo: flaky platform"
        _wait_for(lambda: [m for m in graph.sent() if m["text"]["body"] == want],
                  timeout=30, what=f"the reply after two 500s: {graph.attempts()}")
        tries = [a["status"] for a in graph.attempts() if a["body"]["text"]["body"] == want]
        assert tries == [500, 500, 200], (tries, g.output()[-3000:])
        out = g.output()
        assert out.count("was not sent") >= 2, out[-3000:]
        # a later message goes through too, and the first reply was not sent again meanwhile
        note2 = notification("after the storm", "wamid.FLAKY2")
        assert call(port, "POST", "/whatsapp/webhook", note2, signed(note2))[0] == 200
        _wait_for(lambda: [m for m in graph.sent()
                           if m["text"]["body"] == "echo: after the storm"],
                  timeout=30, what="the second reply")
        assert len([m for m in graph.sent() if m["text"]["body"] == want]) == 1
        assert len([a for a in graph.attempts() if a["body"]["text"]["body"] == want]) == 3
    finally:
        g.stop()


def test_a_reply_meta_refuses_for_good_is_not_retried(hermes_bin, llm, home, graph):
    """131047 (outside the 24-hour window) is permanent: one attempt, then the outbox gives the
    reply up with an error in the log."""
    g, port = start_gateway(hermes_bin, llm, home, graph)
    try:
        graph.fail([{"status": 400, "code": 131047}])
        note = notification("too late", "wamid.LATE1")
        assert call(port, "POST", "/whatsapp/webhook", note, signed(note))[0] == 200
        _wait_for(lambda: "given up" in g.output(), timeout=30,
                  what=f"the reply given up: {g.output()[-2000:]}")
        assert "131047" in g.output()
        want = "echo: too late"
        assert [a["status"] for a in graph.attempts()
                if a["body"]["text"]["body"] == want] == [400]
        assert not [m for m in graph.sent() if m["text"]["body"] == want]
    finally:
        g.stop()

"""Fixtures for the end-to-end tests: the built hermes binary, a private HERMES_HOME, and the
scripted LLM server (tests/doubles/fake_llm.py) on 127.0.0.1.

Run through ctest (which sets HERMES_BIN), or by hand:
    HERMES_BIN=build/hermes python3 -m pytest -q tests/e2e
"""
import json
import os
import subprocess
import sys
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
DOUBLES = os.path.join(HERE, "..", "doubles")
sys.path.insert(0, DOUBLES)
from harness import hermes_env, stop_process, wait_for  # noqa: E402  (tests/doubles/harness.py)

_wait_for = wait_for  # the name the e2e tests use


@pytest.fixture(scope="session")
def hermes_bin():
    b = os.environ.get("HERMES_BIN")
    if not b or not os.access(b, os.X_OK):
        pytest.fail("HERMES_BIN must name the built hermes binary")
    return b


class FakeLLM:
    def __init__(self, tmp):
        port_file = os.path.join(tmp, "fake_llm.port")
        self.log = open(os.path.join(tmp, "fake_llm.log"), "w")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(DOUBLES, "fake_llm.py"), "--port", "0",
             "--port-file", port_file],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.port = int(_wait_for(
            lambda: os.path.exists(port_file) and open(port_file).read().strip(),
            what="fake_llm port file"))
        self.url = f"http://127.0.0.1:{self.port}"

    def script(self, specs):
        req = urllib.request.Request(self.url + "/_script", data=json.dumps(specs).encode(),
                                     method="POST")
        urllib.request.urlopen(req, timeout=5).read()

    def requests(self):
        return json.loads(urllib.request.urlopen(self.url + "/_requests", timeout=5).read())

    def reset(self):
        urllib.request.urlopen(urllib.request.Request(self.url + "/_reset", data=b"",
                                                      method="POST"), timeout=5).read()

    def stop(self):
        stop_process(self.proc, self.log)


@pytest.fixture(scope="session")
def fake_llm(tmp_path_factory):
    f = FakeLLM(str(tmp_path_factory.mktemp("llm")))
    yield f
    f.stop()


@pytest.fixture
def llm(fake_llm):
    fake_llm.reset()
    return fake_llm


@pytest.fixture
def home(tmp_path):
    h = tmp_path / "hermes-home"
    h.mkdir()
    return h



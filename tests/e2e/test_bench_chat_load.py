"""The capacity benchmark's chat-platform driver (bench/gateway/chat_load.py) still measures what
it says: a short run through each platform double, direct and shared rooms, every turn
answered, numbers in its RESULT line. Keeps the benchmark from rotting between full runs."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def result(line):
    assert line.startswith("RESULT "), line
    return dict(tok.split("=", 1) for tok in line.split()[1:])


@pytest.mark.parametrize("platform,users,rooms", [("matrix", 6, 6), ("matrix", 6, 2),
                                                  ("mattermost", 6, 6), ("mattermost", 6, 2)])
def test_chat_load_measures_turns_through_the_platform(hermes_bin, tmp_path, platform, users,
                                                       rooms):
    llm_bin = os.path.join(os.path.dirname(hermes_bin), "bench", "gateway", "bench_gw_llm")
    if not os.access(llm_bin, os.X_OK):
        pytest.fail(f"{llm_bin} is not built (it is part of the default build)")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "gateway", "chat_load.py"),
                        "--platform", platform, "--users", str(users), "--rooms", str(rooms),
                        "--llm-latency-ms", "300", "--duration", "3", "--warmup", "1",
                        "--hermes", hermes_bin, "--llm-bin", llm_bin, "--quiet",
                        "--log-dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]
    res = result(r.stdout.strip().splitlines()[-1])
    assert res["platform"] == platform and int(res["users"]) == users
    assert int(res["rooms"]) == rooms
    # closed loop at 300 ms: each user answers several turns in 3 s, none lost
    assert int(res["turns"]) >= users * 3, res
    assert int(res["errors"]) == 0, res
    assert int(res["other"]) == 0, res  # every bot message matched its user
    assert 0 <= float(res["added_p50_ms"]) <= float(res["added_p99_ms"]) < 2000, res
    assert int(res["rss_kb"]) > 0 and float(res["server_cpu_us_per_turn"]) > 0


def test_chat_load_refuses_bad_options(hermes_bin):
    r = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "gateway", "chat_load.py"),
                        "--platform", "matrix", "--users", "5", "--rooms", "9",
                        "--hermes", hermes_bin],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "--rooms 1..--users" in r.stderr

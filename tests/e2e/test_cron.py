"""Cron as users meet it: `hermes cron add|list|status|remove` on a private HERMES_HOME, and
`hermes gateway run` with no messaging platform configured running a due job from a
jobs.json in the original's format: the job's session gets the cron prompt and no cron,
messaging or clarify tools, the run report is written and the job record updated.

Both parts skip themselves while the binary does not have cron wired in yet (the `cron`
command in the table, cron_start in the gateway)."""
import datetime
import json
import os
import signal
import subprocess

import pytest

from conftest import _wait_for, hermes_env


def run(hermes_bin, home, *args, llm=None):
    return subprocess.run([hermes_bin, *args], env=hermes_env(home, llm), capture_output=True,
                          text=True, timeout=30)


def need_cron_command(hermes_bin, home):
    r = run(hermes_bin, home, "cron", "list")
    if r.returncode != 0 and "cron" in r.stderr and "unknown" in r.stderr.lower():
        pytest.skip("this hermes has no `cron` command yet")


def test_cron_cli_add_list_status_remove(hermes_bin, home):
    need_cron_command(hermes_bin, home)
    r = run(hermes_bin, home, "cron", "add", "every 2h", "Check", "the", "build", "--name",
            "builds")
    assert r.returncode == 0, r.stderr
    assert "Created job: " in r.stdout
    job_id = r.stdout.split("Created job: ")[1].split()[0]
    data = json.loads((home / "cron" / "jobs.json").read_text())
    assert data["jobs"][0]["id"] == job_id
    assert data["jobs"][0]["schedule"] == {"kind": "interval", "minutes": 120,
                                           "display": "every 120m"}
    r = run(hermes_bin, home, "cron", "list")
    assert r.returncode == 0 and "Name:      builds" in r.stdout
    r = run(hermes_bin, home, "cron", "status")
    assert r.returncode == 0 and "1 active job(s)" in r.stdout
    assert "Gateway is not running" in r.stdout
    r = run(hermes_bin, home, "cron", "add", "someday", "x")
    assert r.returncode == 1 and "Invalid schedule 'someday'" in r.stderr
    r = run(hermes_bin, home, "cron", "remove", job_id)
    assert r.returncode == 0 and "Removed job: builds" in r.stdout
    r = run(hermes_bin, home, "cron", "remove", job_id)
    assert r.returncode == 1 and "Job not found" in r.stderr


def original_job(job_id, next_run_at):
    now = datetime.datetime.now().astimezone()
    return {
        "id": job_id, "name": "disk check", "prompt": "Check the disk usage of /srv",
        "skills": [], "skill": None, "model": None, "provider": None, "base_url": None,
        "script": None,
        "schedule": {"kind": "interval", "minutes": 60, "display": "every 60m"},
        "schedule_display": "every 60m", "repeat": {"times": None, "completed": 0},
        "enabled": True, "state": "scheduled", "paused_at": None, "paused_reason": None,
        "created_at": now.isoformat(), "next_run_at": next_run_at.isoformat(),
        "last_run_at": None, "last_status": None, "last_error": None,
        "last_delivery_error": None, "deliver": "local", "origin": None,
    }


def test_the_gateway_runs_a_due_job_with_no_platform(hermes_bin, llm, home):
    (home / "cron").mkdir(mode=0o700)
    now = datetime.datetime.now().astimezone()
    job = original_job("0123456789ab", now - datetime.timedelta(minutes=1))
    with open(home / "cron" / "jobs.json", "w") as f:
        json.dump({"jobs": [job], "updated_at": now.isoformat()}, f, indent=2)
    llm.script([{"content": "All disks are below 50%."}])
    log_path = home / "gateway.out"
    log = open(log_path, "w")
    proc = subprocess.Popen([hermes_bin, "gateway", "run"], env=hermes_env(home, llm),
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        def started():
            if proc.poll() is not None:
                raise AssertionError("gateway exited: " + log_path.read_text()[-2000:])
            return "running (PID" in log_path.read_text()
        _wait_for(started, timeout=20, what="the gateway to start")
        if "Cron ticker started" not in log_path.read_text():
            pytest.skip("this hermes's gateway does not start the cron scheduler yet")
        out_dir = home / "cron" / "output" / "0123456789ab"
        _wait_for(lambda: out_dir.is_dir() and any(out_dir.iterdir()), timeout=30,
                  what="the run report")

        def recorded():
            j = json.loads((home / "cron" / "jobs.json").read_text())["jobs"][0]
            return j if j.get("last_status") else None
        j = _wait_for(recorded, timeout=10, what="the job record")
        assert j["last_status"] == "ok"
        assert j["repeat"]["completed"] == 1
        report = next(out_dir.iterdir()).read_text()
        assert "All disks are below 50%." in report
        reqs = llm.requests()
        assert len(reqs) == 1
        body = reqs[0]["body"]
        body = json.loads(body) if isinstance(body, str) else body
        assert "scheduled cron job" in body["messages"][-1]["content"]
        assert "Check the disk usage of /srv" in body["messages"][-1]["content"]
        tools = {t["function"]["name"] for t in body.get("tools", [])}
        assert not tools & {"schedule_cronjob", "list_cronjobs", "remove_cronjob",
                            "send_message", "clarify"}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()

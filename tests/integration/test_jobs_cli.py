"""``appkit jobs`` against the session stack, as a user runs it: enqueue, list, show, cancel, retry,
stats, purge, schedules, and one-line errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.jobs_support import job_rows, qname
from tests.support import StackHandle, run_cli

pytestmark = pytest.mark.integration


def cli(stack: StackHandle, *args: str) -> tuple[int, str, str]:
    assert stack.workdir is not None
    proc = run_cli("jobs", *args, "--workdir", str(stack.workdir))
    return proc.returncode, proc.stdout, proc.stderr


def ok_json(stack: StackHandle, *args: str) -> object:
    code, out, err = cli(stack, *args, "-o", "json")
    assert code == 0, err
    return json.loads(out)


def test_enqueue_list_show_cancel_retry_stats_purge(stack: StackHandle) -> None:
    q = qname("cli")
    job = ok_json(stack, "enqueue", q, '{"to": "a@b.c"}', "--priority", "3", "--key", "k1")
    assert isinstance(job, dict) and job["payload"] == {"to": "a@b.c"} and job["priority"] == 3
    code, out, err = cli(stack, "enqueue", q, "[1, 2]", "--delay", "2h")
    assert code == 0 and "Enqueued job" in out, err
    listed = ok_json(stack, "list", "--queue", q)
    assert isinstance(listed, list) and len(listed) == 2 and listed[1]["id"] == job["id"]
    code, out, _ = cli(stack, "list", "--queue", q)
    assert code == 0 and q in out and "queued" in out
    shown = ok_json(stack, "show", str(job["id"]))
    assert isinstance(shown, dict) and shown["id"] == job["id"] and shown["payload"] == job["payload"]
    code, out, _ = cli(stack, "show", str(job["id"]))
    assert code == 0 and '"to": "a@b.c"' in out
    code, out, err = cli(stack, "cancel", str(job["id"]))
    assert code == 0 and "cancelled" in out, err
    code, out, err = cli(stack, "retry", str(job["id"]))
    assert code == 0 and "queued again" in out, err
    stats = ok_json(stack, "stats", "--queue", q)
    assert stats == [{"queue": q, "queued": 2, "running": 0, "failed": 0, "succeeded": 0, "dead": 0,
                      "cancelled": 0, "oldest_ready_seconds": stats[0]["oldest_ready_seconds"]}]  # type: ignore[index]
    code, out, _ = cli(stack, "stats")
    assert code == 0 and q in out
    code, out, err = cli(stack, "purge", "--older-than", "30d")
    assert code == 0 and out.startswith("Purged"), err


def test_schedules_add_list_remove(stack: StackHandle) -> None:
    name = qname("cli_sched")
    code, out, err = cli(stack, "schedules", "add", name, "*/5 * * * *", "--queue", "reports", "--tz",
                         "America/New_York", "--payload", '{"kind": "x"}')
    assert code == 0 and "next fires at" in out, err
    items = ok_json(stack, "schedules", "list")
    assert isinstance(items, list)
    (mine,) = [s for s in items if s["name"] == name]
    assert mine["cron"] == "*/5 * * * *" and mine["timezone"] == "America/New_York" and mine["payload"] == {"kind": "x"}
    code, out, err = cli(stack, "schedules", "add", name, "@daily", "--queue", "reports")
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
    code, out, err = cli(stack, "schedules", "remove", name)
    assert code == 0, err
    code, out, err = cli(stack, "schedules", "remove", name)
    assert code == 1 and "not found" in err


@pytest.mark.parametrize(("args", "message"), [
    (["enqueue", "q", "{not json"], "not valid JSON"),
    (["enqueue", "q", "3"], "JSON object or array"),
    (["enqueue", "bad queue!", "{}"], "invalid queue name"),
    (["enqueue", "q", "{}", "--delay", "soon"], "invalid duration"),
    (["enqueue", "q", "{}", "--max-attempts", "0"], "max_attempts"),
    (["show", "999999999999"], "not found"),
    (["cancel", "999999999999"], "not found"),
    (["retry", "999999999999"], "not found"),
    (["list", "--status", "sleeping"], "unknown job status"),
    (["purge", "--older-than", "-1d"], "invalid duration"),
    (["stats", "--watch", "-o", "json"], "--watch"),
    (["schedules", "add", "s", "* * *", "--queue", "q"], "5 fields"),
    (["schedules", "add", "s", "* * * * *", "--queue", "q", "--tz", "Nowhere/City"], "unknown time zone"),
    (["work", "nomodule"], "module:attribute"),
    (["work", "no_such_module_xyz:worker"], "cannot import"),
    (["work", "json:dumps"], "not an appkit.jobs.Worker"),
])
def test_bad_input_one_line_error(stack: StackHandle, args: list[str], message: str) -> None:
    code, out, err = cli(stack, *args)
    assert code == 1, (out, err)
    assert message in err and "Traceback" not in err and err.strip().count("\n") == 0, err


def test_bad_input_writes_nothing(stack: StackHandle) -> None:
    q = qname("nothing")
    for args in (["enqueue", q, "{oops"], ["enqueue", q, "{}", "--priority", "99999999"]):
        code, _, err = cli(stack, *args)
        assert code == 1 and "Traceback" not in err
    assert job_rows(stack.db_url, q) == []


def test_no_stack_and_no_env_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "supabase").mkdir()
    proc = run_cli("jobs", "list", "--workdir", str(tmp_path), env={"SUPABASE_URL": "", "SUPABASE_SERVICE_ROLE_KEY": ""})
    assert proc.returncode == 1 and "not running" in proc.stderr and "Traceback" not in proc.stderr


def test_example_worker_runs_under_appkit_jobs_work(stack: StackHandle, tmp_path: Path) -> None:
    """docs/jobs.md's example (examples/jobs_worker.py), as the docs run it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.support import REPO

    assert stack.workdir is not None
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "appkit_cli", "jobs", "work", "examples.jobs_worker:worker",
                                 "--workdir", str(stack.workdir), "--log-format", "json"],
                                cwd=REPO, stdout=out, stderr=out, env={**os.environ, "PYTHONPATH": str(REPO)})
        try:
            email = ok_json(stack, "enqueue", "emails", '{"to": "ada@example.com", "name": "Ada"}')
            thumb = ok_json(stack, "enqueue", "thumbnails", '{"bucket": "b", "path": "p.png"}')
            bad = ok_json(stack, "enqueue", "emails", '{"to": "x"}')
            wanted = {email["id"]: "succeeded", thumb["id"]: "succeeded", bad["id"]: "dead"}  # type: ignore[index]
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                got = {j: ok_json(stack, "show", str(j))["status"] for j in wanted}  # type: ignore[index]
                if got == wanted:
                    break
                time.sleep(0.3)
            assert got == wanted, log.read_text()[-3000:]
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    done = [r for r in lines if r.get("job_id") == email["id"] and r.get("status") == "succeeded"]  # type: ignore[index]
    assert done and done[0]["queue"] == "emails" and "duration_ms" in done[0]

"""``appkit studio`` and the studio ``appkit dev``/``start`` serve beside the stack: URLs in ``appkit status``,
one-line errors for bad arguments, a hosted-project target (no Mail page), a busy port only warned about."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import StackHandle, free_port, run_cli, start_stack, write_project

pytestmark = pytest.mark.integration


def one_line_error(proc: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error:") and fragment in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def wait_http(url: str, timeout: float = 60) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return httpx.get(url, timeout=10)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture()
def studio_proc() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def _spawn(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "appkit_cli", "studio", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)


def test_studio_for_the_local_stack(stack: StackHandle, studio_proc: list[subprocess.Popen[bytes]]) -> None:
    if stack.workdir is None:
        pytest.skip("needs the local stack")
    port = free_port()
    studio_proc.append(_spawn("--workdir", str(stack.workdir), "--port", str(port)))
    resp = wait_http(f"http://127.0.0.1:{port}/")
    assert resp.status_code == 200 and "Overview" in resp.text
    assert wait_http(f"http://127.0.0.1:{port}/mail").status_code == 200
    assert stack.service_role_key not in resp.text


def test_studio_for_a_hosted_project(stack: StackHandle, studio_proc: list[subprocess.Popen[bytes]],
                                     tmp_path: Path) -> None:
    port = free_port()
    studio_proc.append(subprocess.Popen(
        [sys.executable, "-m", "appkit_cli", "studio", "--url", stack.api_url, "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, cwd=tmp_path,
        env={**os.environ, "SUPABASE_SERVICE_ROLE_KEY": stack.service_role_key, "SUPABASE_DB_URL": stack.db_url}))
    resp = wait_http(f"http://127.0.0.1:{port}/")
    assert resp.status_code == 200
    assert httpx.get(f"http://127.0.0.1:{port}/mail").status_code == 404  # captured mail is the local stack's
    assert httpx.get(f"http://127.0.0.1:{port}/tables").status_code == 200


@pytest.mark.parametrize(("args", "fragment"), [
    (("--url", "http://127.0.0.1:9"), "go together"),
    (("--service-role-key", "k"), "go together"),
    (("--url", "http://127.0.0.1:9", "--service-role-key", "k"), "--db-url"),
    (("--url", "ftp://x", "--service-role-key", "k", "--db-url", "postgresql://x"), "invalid API URL"),
])
def test_bad_arguments_are_one_line_errors(tmp_path: Path, args: tuple[str, ...], fragment: str) -> None:
    env = {k: "" for k in ("SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY", "SUPABASE_DB_URL")}
    one_line_error(run_cli("studio", *args, cwd=tmp_path, env=env), fragment)


def test_no_project_or_no_stack_is_a_one_line_error(tmp_path: Path) -> None:
    env = {k: "" for k in ("SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY", "SUPABASE_DB_URL")}
    one_line_error(run_cli("studio", "--workdir", str(tmp_path), env=env), "appkit init")
    write_project(tmp_path)
    one_line_error(run_cli("studio", "--workdir", str(tmp_path), env=env), "not running")
    bad_port = run_cli("studio", "--workdir", str(tmp_path), "--port", "70000", env=env)
    assert bad_port.returncode == 2 and "Traceback" not in bad_port.stderr


def test_busy_port_is_a_one_line_error(stack: StackHandle) -> None:
    if stack.workdir is None:
        pytest.skip("needs the local stack")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        one_line_error(run_cli("studio", "--workdir", str(stack.workdir), "--port", str(port)), "cannot listen")


def _studio_url_file(workdir: Path) -> Path:
    return workdir / "supabase" / ".appkit" / "studio.url"


def test_dev_serves_the_studio_and_status_prints_it(tmp_path: Path) -> None:
    port = free_port()
    write_project(tmp_path, studio_port=port)
    handle = start_stack(tmp_path)
    try:
        deadline = time.monotonic() + 30
        while not _studio_url_file(tmp_path).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port}"
        assert _studio_url_file(tmp_path).read_text().split() == [str(handle.process.pid), url]
        assert wait_http(url + "/").status_code == 200
        status = run_cli("status", "--workdir", str(tmp_path))
        assert status.returncode == 0 and f"Studio URL: {url}" in status.stdout
        env = json.loads(run_cli("status", "--workdir", str(tmp_path), "-o", "json").stdout)
        assert env["STUDIO_URL"] == url
        assert "STUDIO" not in run_cli("status", "--workdir", str(tmp_path), "-o", "dotenv").stdout
    finally:
        handle.stop()
    assert not _studio_url_file(tmp_path).exists()
    with pytest.raises(httpx.TransportError):
        httpx.get(url + "/", timeout=2)


def test_dev_with_a_busy_studio_port_warns_and_serves_the_stack(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        write_project(tmp_path, studio_port=s.getsockname()[1])
        handle = start_stack(tmp_path)
        try:
            assert httpx.get(handle.api_url + "/health").status_code == 200
            deadline = time.monotonic() + 20
            log = tmp_path / "stack-test.log"
            while "studio not started" not in log.read_text() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert "studio not started" in log.read_text()
            status = run_cli("status", "--workdir", str(tmp_path))
            assert status.returncode == 0 and "Studio URL" not in status.stdout
        finally:
            handle.stop()


def test_start_prints_the_studio_url(tmp_path: Path) -> None:
    port = free_port()
    write_project(tmp_path, studio_port=port)
    try:
        started = run_cli("start", "--workdir", str(tmp_path))
        assert started.returncode == 0, started.stderr
        assert f"Studio URL: http://127.0.0.1:{port}" in started.stdout
        assert wait_http(f"http://127.0.0.1:{port}/").status_code == 200
    finally:
        run_cli("stop", "--workdir", str(tmp_path))


def test_a_note_left_by_an_earlier_run_is_ignored(tmp_path: Path) -> None:
    write_project(tmp_path)
    note = _studio_url_file(tmp_path)
    note.parent.mkdir(parents=True, exist_ok=True)
    note.write_text("1 http://127.0.0.1:54323\n")  # a crashed run's
    handle = start_stack(tmp_path)
    try:
        status = run_cli("status", "--workdir", str(tmp_path))
        assert status.returncode == 0 and "Studio URL" not in status.stdout
    finally:
        handle.stop()


def test_studio_disabled_in_config(tmp_path: Path) -> None:
    write_project(tmp_path)  # [studio] enabled = false
    handle = start_stack(tmp_path)
    try:
        status = run_cli("status", "--workdir", str(tmp_path))
        assert status.returncode == 0 and "Studio URL" not in status.stdout
        assert not _studio_url_file(tmp_path).exists()
    finally:
        handle.stop()

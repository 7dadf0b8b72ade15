"""``appkit storage`` against the local stack: buckets, ls/cp/mv/rm on ss:/// paths, parallel and
resumable transfers (the CLI killed mid-upload, then run again), bad input (one line, nothing done)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.integration.test_cli import assert_one_line_error
from tests.proxy_support import CuttingProxy
from tests.support import StackHandle, run_cli, write_project

MB = 1024 * 1024


@pytest.fixture(autouse=True)
def _local(stack: StackHandle) -> None:
    if stack.workdir is None:
        pytest.skip("the storage CLI tests drive the local stack")


def st(stack: StackHandle, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli("storage", *args, "--workdir", str(stack.workdir), env=env)


def ok(stack: StackHandle, *args: str) -> str:
    proc = st(stack, *args)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stdout


@pytest.fixture()
def bucket(stack: StackHandle) -> str:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    ok(stack, "buckets", "create", name)
    return name


def tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def make_tree(root: Path) -> Path:
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "a.txt").write_text("alpha")
    (root / "sub" / "b.json").write_text('{"b": 1}')
    (root / "sub" / "deep" / "c.bin").write_bytes(os.urandom(70_000))
    (root / "large.bin").write_bytes(os.urandom(7 * MB))
    return root


def test_buckets(stack: StackHandle) -> None:
    name = f"bk-{uuid.uuid4().hex[:8]}"
    assert "Created bucket" in ok(stack, "buckets", "create", name, "--public", "--file-size-limit", "5MB",
                                  "--allowed-mime-types", "image/png,text/*")
    rows = {b["name"]: b for b in json.loads(ok(stack, "buckets", "list", "-o", "json"))}
    assert rows[name]["public"] is True and rows[name]["file_size_limit"] == 5 * MB
    assert rows[name]["allowed_mime_types"] == ["image/png", "text/*"]
    assert name in ok(stack, "buckets", "list")
    ok(stack, "buckets", "update", name, "--private", "--file-size-limit", "1KB")
    row = next(b for b in json.loads(ok(stack, "buckets", "list", "-o", "json")) if b["name"] == name)
    assert row["public"] is False and row["file_size_limit"] == 1024
    assert row["allowed_mime_types"] == ["image/png", "text/*"]  # kept
    assert f"{name}/" in ok(stack, "ls").splitlines()
    ok(stack, "buckets", "delete", name)
    assert name not in ok(stack, "buckets", "list")


def test_cp_up_ls_down_round_trip(stack: StackHandle, bucket: str, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "photos")
    out = ok(stack, "cp", "-r", str(src), f"ss:///{bucket}", "-j", "4")
    assert "Uploaded 4 file(s)" in out
    listing = json.loads(ok(stack, "ls", "-r", f"ss:///{bucket}/photos", "-o", "json"))
    assert sorted(r["name"] for r in listing) == ["photos/a.txt", "photos/large.bin", "photos/sub/b.json",
                                                  "photos/sub/deep/c.bin"]
    assert next(r for r in listing if r["name"] == "photos/a.txt")["content_type"] == "text/plain"
    assert ok(stack, "ls", f"ss:///{bucket}/photos").split() == ["a.txt", "large.bin", "sub/"]
    # into an existing folder the source's name is kept; to a new prefix it is not (the Supabase CLI's rule)
    ok(stack, "cp", "-r", str(src), f"ss:///{bucket}/photos")
    assert any(r["name"].startswith("photos/photos/")
               for r in json.loads(ok(stack, "ls", "-r", f"ss:///{bucket}", "-o", "json")))
    ok(stack, "cp", "-r", str(src), f"ss:///{bucket}/renamed", "-j", "2")
    down = tmp_path / "down"
    ok(stack, "cp", "-r", f"ss:///{bucket}/renamed", str(down), "-j", "3")
    assert tree(down) == tree(src)
    ok(stack, "cp", f"ss:///{bucket}/renamed/sub/b.json", str(tmp_path / "one.json"))
    assert (tmp_path / "one.json").read_text() == '{"b": 1}'
    ok(stack, "cp", str(src / "a.txt"), f"ss:///{bucket}/single/", "--cache-control", "max-age=60")
    assert ok(stack, "ls", f"ss:///{bucket}/single").split() == ["a.txt"]


def test_remote_copy_move_and_remove(stack: StackHandle, bucket: str, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "t")
    ok(stack, "cp", "-r", str(src), f"ss:///{bucket}/t")
    ok(stack, "cp", f"ss:///{bucket}/t/a.txt", f"ss:///{bucket}/copy.txt")
    ok(stack, "cp", "-r", f"ss:///{bucket}/t/sub", f"ss:///{bucket}/sub2")
    ok(stack, "mv", "-r", f"ss:///{bucket}/t/sub", f"ss:///{bucket}/moved")
    ok(stack, "mv", f"ss:///{bucket}/copy.txt", f"ss:///{bucket}/renamed.txt")
    names = sorted(r["name"] for r in json.loads(ok(stack, "ls", "-r", f"ss:///{bucket}", "-o", "json")))
    assert names == ["moved/b.json", "moved/deep/c.bin", "renamed.txt", "sub2/b.json", "sub2/deep/c.bin",
                     "t/a.txt", "t/large.bin"]
    assert "Removed 1 object(s)" in ok(stack, "rm", f"ss:///{bucket}/renamed.txt")
    assert "Removed 4 object(s)" in ok(stack, "rm", "-r", f"ss:///{bucket}/moved", f"ss:///{bucket}/sub2")
    out = st(stack, "buckets", "delete", bucket)
    assert_one_line_error(out, "not empty")
    ok(stack, "buckets", "delete", bucket, "--force")


def test_a_killed_large_upload_resumes(stack: StackHandle, bucket: str, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(40 * MB))
    cache = tmp_path / "cache"
    env = {**os.environ, "XDG_CACHE_HOME": str(cache), "COLUMNS": "200"}
    with CuttingProxy(stack.api_url) as proxy:
        proxy.throttle = 0.004  # ~16 MB/s, so the upload is still running when it is killed
        args = [sys.executable, "-m", "appkit_cli", "storage", "cp", str(big), f"ss:///{bucket}/big.bin",
                "--url", proxy.url, "--service-role-key", stack.service_role_key]
        proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        offset = 0
        while time.monotonic() < deadline and offset < 6 * MB:
            states = list((cache / "appkit" / "uploads").glob("*.json"))
            if states:
                url = json.loads(states[0].read_text())["url"]
                head = httpx.head(url.replace(proxy.url, stack.api_url),
                                  headers={"Tus-Resumable": "1.0.0", "apikey": stack.service_role_key,
                                           "Authorization": f"Bearer {stack.service_role_key}"})
                offset = int(head.headers.get("upload-offset", 0))
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert 6 * MB <= offset < 40 * MB, offset
        proxy.throttle = 0
        again = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "Resuming" in again.stderr
    assert not list((cache / "appkit" / "uploads").glob("*.json"))  # the state is gone once done
    down = tmp_path / "back.bin"
    ok(stack, "cp", f"ss:///{bucket}/big.bin", str(down))
    assert hashlib.sha256(down.read_bytes()).digest() == hashlib.sha256(big.read_bytes()).digest()


def test_bad_input_is_one_line_and_does_nothing(stack: StackHandle, bucket: str, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src")
    missing = f"nope-{uuid.uuid4().hex[:6]}"
    for args, fragment in [
        (("ls", "ss://b/x"), "use ss:///bucket/[prefix]"),
        (("ls", "ss:///"), "use ss:///bucket/[prefix]"),
        (("ls", f"ss:///{bucket}/a/../b"), "dot segment"),
        (("ls", f"ss:///{missing}"), "Bucket not found"),
        (("cp", str(src), "local-dir"), "must be an ss:///bucket/path"),
        (("cp", str(tmp_path / "missing.txt"), f"ss:///{bucket}/x"), "no such file or directory"),
        (("cp", str(src), f"ss:///{bucket}/x"), "is a directory (use -r)"),
        (("cp", "-r", str(src), f"ss:///{missing}/x"), "Bucket not found"),
        (("cp", f"ss:///{bucket}/none.txt", str(tmp_path / "n.txt")), "no object at"),
        (("cp", "-r", f"ss:///{bucket}/none", str(tmp_path / "n")), "nothing under"),
        (("cp", f"ss:///{bucket}/a", f"ss:///{missing}/a"), "between buckets"),
        (("cp", str(src / "a.txt"), f"ss:///{bucket}/a", "--cache-control", "soon"), "invalid --cache-control"),
        (("cp", str(src / "a.txt"), f"ss:///{bucket}/a", "-j", "0"), "0"),
        (("mv", f"ss:///{bucket}/none", f"ss:///{bucket}/x"), "no object at"),
        (("rm", f"ss:///{bucket}/none.txt"), "no object at"),
        (("buckets", "create", bucket), "already exists"),
        (("buckets", "create", "bad/name"), "name"),
        (("buckets", "create", f"x{uuid.uuid4().hex[:6]}", "--file-size-limit", "big"), "invalid size"),
        (("buckets", "create", f"x{uuid.uuid4().hex[:6]}", "--allowed-mime-types", "png"), "invalid MIME type"),
        (("buckets", "update", bucket), "nothing to update"),
        (("buckets", "update", missing, "--public"), "Bucket not found"),
        (("buckets", "delete", missing), "Bucket not found"),
    ]:
        proc = st(stack, *args)
        if args[:2] == ("cp", str(src / "a.txt")) and "-j" in args:
            assert proc.returncode != 0 and "Traceback" not in proc.stderr
            continue
        assert_one_line_error(proc, fragment)
    # a failed rm of several paths removes none of them
    ok(stack, "cp", str(src / "a.txt"), f"ss:///{bucket}/keep.txt")
    assert_one_line_error(st(stack, "rm", f"ss:///{bucket}/keep.txt", f"ss:///{bucket}/none.txt"), "no object at")
    assert ok(stack, "ls", f"ss:///{bucket}").split() == ["keep.txt"]
    assert not (tmp_path / "n.txt").exists() and not (tmp_path / "n").exists()
    # an object the bucket's limit refuses: one line, the exit is non-zero
    ok(stack, "buckets", "update", bucket, "--file-size-limit", "10")
    assert_one_line_error(st(stack, "cp", str(src / "sub" / "deep" / "c.bin"), f"ss:///{bucket}/c.bin"),
                          "0 of 1 files done")


def test_no_running_stack(tmp_path: Path) -> None:
    write_project(tmp_path)
    assert_one_line_error(run_cli("storage", "ls", "--workdir", str(tmp_path)), "run `appkit start`")


def test_unreachable_project(tmp_path: Path) -> None:
    proc = run_cli("storage", "buckets", "list", "--url", "http://127.0.0.1:9", "--service-role-key", "k",
                   "--workdir", str(tmp_path))
    assert_one_line_error(proc, "could not reach the server")

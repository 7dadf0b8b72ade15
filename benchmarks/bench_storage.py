"""Storage benchmark: stream a large file up and down with bounded server memory, and list many objects.

    python benchmarks/bench_storage.py            # 1 GiB file, 10,000 objects
    python benchmarks/bench_storage.py --size-mb 64 --objects 2000   # quick run

Starts its own local stack in a temp dir. Baseline, measured in the same run on the same disk:
a raw copy of the same file (read + write + fsync, what the server must at least do for an
upload). Reports upload/download throughput as a ratio of it, the server process's peak RSS
growth during each transfer, and the time to list N objects under a prefix.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support import start_stack, write_project  # noqa: E402

CHUNK = 1024 * 1024


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class RssSampler:
    """Peak RSS of a process while a block runs (sampled every 20 ms)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.base = rss_bytes(pid)
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes(self.pid))
            time.sleep(0.02)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes(self.pid))

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.base) / 1024**2


def make_file(path: Path, size: int) -> None:
    block = os.urandom(CHUNK)
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(CHUNK, left)
            f.write(block[:n])
            left -= n
        f.flush()
        os.fsync(f.fileno())


def raw_copy(src: Path, dst: Path) -> float:
    t = time.perf_counter()
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        shutil.copyfileobj(fi, fo, CHUNK)
        fo.flush()
        os.fsync(fo.fileno())
    elapsed = time.perf_counter() - t
    dst.unlink()
    return elapsed


def file_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--objects", type=int, default=10_000)
    args = ap.parse_args()
    size = args.size_mb * 1024 * 1024

    with tempfile.TemporaryDirectory(prefix="bench-storage-", dir=os.environ.get("BENCH_TMP")) as tmp:
        work = Path(tmp)
        write_project(work, extra_config='\n[storage]\nfile_size_limit = "4GiB"\n')
        stack = start_stack(work)
        try:
            state = json.loads((work / "supabase" / ".appkit" / "stack.json").read_text())
            pid = int(state["pid"])
            key = stack.service_role_key
            base = stack.api_url + "/storage/v1"
            h = {"apikey": key, "Authorization": f"Bearer {key}"}
            client = httpx.Client(headers=h, timeout=600)
            client.post(base + "/bucket", json={"name": "bench"}).raise_for_status()

            src = work / "source.bin"
            make_file(src, size)
            raw_copy(src, work / "copy.bin")  # warm-up

            # (label, seconds, rss growth MB, seconds of the raw copy measured just before)
            results: list[tuple[str, float, float, float]] = []
            rss_before = rss_bytes(pid)
            rss_peak = rss_before
            curl = shutil.which("curl")
            auth = ["-H", f"apikey: {key}", "-H", f"Authorization: Bearer {key}"]

            def timed(label: str, fn: Callable[[], object]) -> None:
                nonlocal rss_peak
                baseline = raw_copy(src, work / "copy.bin")  # paired baseline: same moment, same disk
                with RssSampler(pid) as rss:
                    t = time.perf_counter()
                    fn()
                    elapsed = time.perf_counter() - t
                rss_peak = max(rss_peak, rss.peak)
                results.append((label, elapsed, rss.growth_mb, baseline))

            def run_curl(*argv: str) -> None:
                assert curl is not None
                out = subprocess.run([curl, "-sS", "--fail-with-body", *auth, *argv], capture_output=True, check=False)
                if out.returncode != 0:
                    raise RuntimeError(out.stdout.decode() + out.stderr.decode())

            dst = work / "download.bin"
            if curl:
                timed("upload, raw body, curl", lambda: run_curl(
                    "-X", "POST", "-T", str(src), "-H", "Content-Type: application/octet-stream",
                    base + "/object/bench/curl-raw.bin"))
                timed("upload, multipart form, curl", lambda: run_curl(
                    "-F", f"file=@{src};type=application/octet-stream", base + "/object/bench/curl-form.bin"))
                timed("download, curl (to disk)", lambda: run_curl("-o", str(dst), base + "/object/bench/curl-raw.bin"))
                assert dst.stat().st_size == size
                dst.unlink()

            def py_raw() -> None:
                r = client.post(base + "/object/bench/big.bin", content=file_chunks(src),
                                headers={"content-type": "application/octet-stream", "content-length": str(size)})
                r.raise_for_status()

            def py_storage3() -> None:
                from storage3 import SyncStorageClient

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    s3 = SyncStorageClient(base + "/", h)
                s3.session.timeout = httpx.Timeout(600)
                s3.from_("bench").upload("big-multipart.bin", src, {"content-type": "application/octet-stream"})

            def py_download() -> None:
                got = 0
                with client.stream("GET", base + "/object/bench/big.bin") as resp, open(dst, "wb") as f:
                    resp.raise_for_status()
                    for chunk in resp.iter_raw(CHUNK):
                        f.write(chunk)
                        got += len(chunk)
                assert got == size, (got, size)

            timed("upload, raw body, httpx (Python client)", py_raw)
            timed("upload, storage3 multipart (Python client)", py_storage3)
            timed("download, httpx stream (Python client, to disk)", py_download)
            dst.unlink()

            # many small objects: rows made in one statement (listing reads only the database)
            with psycopg.connect(stack.db_url, autocommit=True) as conn:
                conn.execute(
                    "insert into storage.objects (bucket_id, name, metadata) select 'bench',"
                    " 'many/' || lpad(i::text, 6, '0') || '.txt',"
                    " jsonb_build_object('size', 10, 'mimetype', 'text/plain') from generate_series(1, %s) i",
                    (args.objects,))
                conn.execute(
                    "insert into storage.objects (bucket_id, name) select 'bench', 'other/' || i"
                    " from generate_series(1, %s) i", (args.objects,))
                conn.execute("analyze storage.objects")
                t = time.perf_counter()
                conn.execute("select name, id, metadata from storage.objects where bucket_id = 'bench'"
                             " and name like 'many/%%' order by name limit %s", (args.objects,)).fetchall()
                sql_s = time.perf_counter() - t
            body = {"prefix": "many", "limit": args.objects, "offset": 0,
                    "sortBy": {"column": "name", "order": "asc"}}
            times = []
            for _ in range(5):
                t = time.perf_counter()
                r = client.post(base + "/object/list/bench", json=body)
                r.raise_for_status()
                times.append(time.perf_counter() - t)
                assert len(r.json()) == args.objects
            list_s = statistics.median(times)
            times = []
            for _ in range(5):
                t = time.perf_counter()
                r = client.post(base + "/object/list-v2/bench", json={"prefix": "many/", "limit": args.objects})
                r.raise_for_status()
                times.append(time.perf_counter() - t)
                assert len(r.json()["objects"]) == args.objects
            list2_s = statistics.median(times)
        finally:
            stack.stop()

    mb = size / 1024**2
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\nStorage benchmark: {mb:,.0f} MiB file, {args.objects:,} objects (+{args.objects:,} elsewhere);"
          f" {os.cpu_count()} CPUs, load average at the end {load}\n")
    median_copy = statistics.median(r[3] for r in results)
    print("Each transfer is paired with a raw copy of the same file (read + write + fsync) measured just before it;")
    print(f"the median of those copies is {mb / median_copy:,.0f} MB/s (the disk is shared, so both ratios are shown).\n")
    print("| transfer | throughput | raw copy just before | ratio to it | ratio to median copy | server RSS growth |")
    print("|---|---|---|---|---|---|")
    for label, secs, growth, copy_secs in results:
        print(f"| {label} | {mb / secs:,.0f} MB/s | {mb / copy_secs:,.0f} MB/s | {copy_secs / secs:.2f} |"
              f" {median_copy / secs:.2f} | {growth:.1f} MB |")
    print(f"\nServer RSS before the transfers {rss_before / 1024**2:.0f} MB, peak during all of them"
          f" {rss_peak / 1024**2:.0f} MB (growth {(rss_peak - rss_before) / 1024**2:.1f} MB).")
    print()
    print("| listing | median time | target |")
    print("|---|---|---|")
    print(f"| `list` {args.objects:,} objects under a prefix (v1, storage3's call) | {list_s * 1000:.0f} ms | <= 200 ms |")
    print(f"| `list-v2` {args.objects:,} objects under a prefix | {list2_s * 1000:.0f} ms | <= 200 ms |")
    print(f"| baseline: the bare SQL select of those rows | {sql_s * 1000:.0f} ms | - |")


if __name__ == "__main__":
    main()

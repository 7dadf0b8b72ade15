"""``Flusher``: uploads start the kernel's write-back every 8 MiB, so the closing fsync has little left."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from appkit.local.storage.files import FLUSH_EVERY, Flusher, write_all

MB = 1024 * 1024


def test_write_back_starts_every_8_mib_and_at_the_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int, int]] = []
    real = os.posix_fadvise

    def spy(fd: int, offset: int, length: int, advice: int) -> None:
        calls.append((offset, length, advice))
        real(fd, offset, length, advice)

    monkeypatch.setattr(os, "posix_fadvise", spy)
    fd = os.open(tmp_path / "f.bin", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        flusher = Flusher(fd, start=3 * MB)  # a TUS chunk appended at offset 3 MiB
        os.lseek(fd, 3 * MB, os.SEEK_SET)
        end = 3 * MB
        for _ in range(20):
            write_all(fd, b"x" * MB)
            end += MB
            flusher.wrote(end)
        flusher.flush(end)
        flusher.flush(end)  # nothing new: no call
    finally:
        os.close(fd)
    assert calls == [(3 * MB, FLUSH_EVERY, os.POSIX_FADV_DONTNEED), (11 * MB, FLUSH_EVERY, os.POSIX_FADV_DONTNEED),
                     (19 * MB, 4 * MB, os.POSIX_FADV_DONTNEED)]
    assert (tmp_path / "f.bin").stat().st_size == 23 * MB


def test_a_failing_advice_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: int) -> None:
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr(os, "posix_fadvise", broken)
    flusher = Flusher(-1)
    flusher.wrote(FLUSH_EVERY)  # no exception: write-back is only a hint
    assert flusher.flushed == FLUSH_EVERY

"""Upload a large file resumably (TUS, 6 MB chunks) with a progress line, and resume after a failure.

    eval "$(appkit status -o dotenv | sed 's/^/export /')"
    python examples/resumable_upload.py path/to/big.file [bucket]

The upload URL is kept in ``<file>.upload-url`` while the upload runs: run the same command
again after an interruption and it continues where the server stopped.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from appkit import AppKit, errors


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    source = Path(argv[0])
    bucket = argv[1] if len(argv) > 1 else "uploads"
    state = source.with_name(source.name + ".upload-url")
    resume_url = state.read_text() if state.exists() else None
    with AppKit.from_env() as app:
        files = app.admin.files
        with contextlib.suppress(errors.Conflict):  # already there
            files.create_bucket(bucket)

        def progress(sent: int, total: int) -> None:
            print(f"\r{sent / total:6.1%} of {total:,} bytes", end="", flush=True)

        try:
            stored = files.upload_resumable(bucket, source.name, source, upsert=True, on_progress=progress,
                                            resume_url=resume_url, on_url=state.write_text)
        except errors.UploadInterrupted as exc:
            print(f"\ninterrupted at byte {exc.offset}: run me again to resume")
            return 1
        state.unlink(missing_ok=True)
        print(f"\nstored {stored.key}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""appkit.jobs' public surface, and that a worker process never loads the HTTP SDK or the official clients."""

from __future__ import annotations

import subprocess
import sys

import appkit.jobs


def test_public_names() -> None:
    assert sorted(appkit.jobs.__all__) == ["Cron", "Handler", "Job", "JobContext", "JobStatus", "QueueStats",
                                           "Schedule", "Worker"]
    for name in appkit.jobs.__all__:
        assert getattr(appkit.jobs, name).__module__.startswith("appkit.jobs.")


def test_worker_import_stays_light() -> None:
    code = ("import sys, appkit.jobs\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "{'supabase', 'postgrest', 'storage3', 'realtime', 'supabase_auth', 'httpx'} "
            "or m in {'appkit.client', 'appkit._async', 'appkit._sync'})\n"
            "print(bad)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_facade_exposes_jobs() -> None:
    from appkit import AppKit, AsyncAppKit
    from appkit._async.jobs import AsyncJobs
    from appkit._sync.jobs import Jobs

    app = AppKit(url="http://127.0.0.1:1", anon_key="anon", service_role_key="service")
    assert isinstance(app.admin.jobs, Jobs) and isinstance(app.jobs, Jobs)
    aapp = AsyncAppKit(url="http://127.0.0.1:1", anon_key="anon", service_role_key="service")
    assert isinstance(aapp.admin.jobs, AsyncJobs)
    app.close()

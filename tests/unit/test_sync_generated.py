"""CI check: the sync SDK (src/appkit/_sync) is generated from the async source and current."""

from __future__ import annotations

import subprocess
import sys

from tests.support import REPO


def test_generated_sync_code_is_current() -> None:
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "gen_sync.py"), "--check"],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr


def test_sync_and_async_facades_have_the_same_surface() -> None:
    import inspect

    from appkit._async import auth as a_auth
    from appkit._async import client as a_client
    from appkit._async import files as a_files
    from appkit._async import table as a_table
    from appkit._sync import auth as s_auth
    from appkit._sync import client as s_client
    from appkit._sync import files as s_files
    from appkit._sync import table as s_table

    pairs = [(a_client.AsyncAppKit, s_client.AppKit), (a_table.AsyncTable, s_table.Table),
             (a_auth.AsyncAuth, s_auth.Auth), (a_files.AsyncFiles, s_files.Files)]
    for async_cls, sync_cls in pairs:
        a = {n for n in dir(async_cls) if not n.startswith("_")}
        s = {n for n in dir(sync_cls) if not n.startswith("_")}
        assert a - {"aclose"} == s - {"close"}, (async_cls, sync_cls)
        for name in a - {"aclose"}:
            am, sm = getattr(async_cls, name), getattr(sync_cls, name)
            if inspect.isfunction(am):
                assert inspect.iscoroutinefunction(am) != inspect.iscoroutinefunction(sm) or not \
                    inspect.iscoroutinefunction(am), name
                assert list(inspect.signature(am).parameters) == list(inspect.signature(sm).parameters), name

"""``appkit studio``: serve the web console on 127.0.0.1 for the local stack or a hosted project; and the
studio ``appkit dev`` runs beside the stack."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from appkit_cli._common import (
    ServiceKeyOption,
    UrlOption,
    WorkdirOption,
    console,
    fail,
    handle_errors,
    project,
)

if TYPE_CHECKING:
    from appkit.local import StackInfo, StackPaths
    from appkit.studio import StudioServer, StudioTarget

log = logging.getLogger("appkit.studio")

#: where a running ``appkit dev`` notes its studio's URL (read by ``appkit status``)
STUDIO_URL_FILE = "studio.url"

PortOption = Annotated[int | None, typer.Option(
    "--port", min=1, max=65535, show_default=False,
    help="Port on 127.0.0.1 (default: [studio] port in config.toml, else 54323).")]
StudioDbUrlOption = Annotated[str | None, typer.Option(
    "--db-url", envvar="SUPABASE_DB_URL", show_default=False,
    help="The hosted project's database URL (with --url); default: the local stack's.")]


def local_target(info: StackInfo, workdir: Path) -> StudioTarget:
    from appkit.studio import StudioTarget

    return StudioTarget(api_url=info.api_url, service_role_key=info.service_role_key, db_url=info.db_url,
                        anon_key=info.anon_key, jwt_secret=info.jwt_secret or None, workdir=workdir, local=True)


@handle_errors
def studio(
    workdir: WorkdirOption = None,
    url: UrlOption = None,
    service_role_key: ServiceKeyOption = None,
    db_url: StudioDbUrlOption = None,
    port: PortOption = None,
) -> None:
    """Serve the web console on 127.0.0.1 (Ctrl-C stops it): the local stack's, or a hosted project's
    with --url, --service-role-key and --db-url (the key and the URL never reach the browser)."""
    from appkit.local import load_config, read_info
    from appkit.studio import DEFAULT_PORT, StudioServer, StudioTarget

    target: StudioTarget
    if url or service_role_key:
        if not (url and service_role_key):
            raise fail("--url and --service-role-key go together (or SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY)")
        if not db_url:
            raise fail("a hosted project needs --db-url (or SUPABASE_DB_URL) too: the studio reads tables, "
                       "advisors and migrations through the database")
        target = StudioTarget(api_url=url.rstrip("/"), service_role_key=service_role_key, db_url=db_url,
                              anon_key=os.environ.get("SUPABASE_ANON_KEY") or "",
                              jwt_secret=os.environ.get("SUPABASE_JWT_SECRET") or None,
                              workdir=workdir.resolve() if workdir else None, local=False)
        chosen = port or DEFAULT_PORT
    else:
        paths = project(workdir)
        info = read_info(paths)
        if info is None:
            raise fail(f"the local stack is not running in {paths.workdir}; run `appkit start`"
                       " (or pass --url, --service-role-key and --db-url for a hosted project)")
        target = local_target(info, paths.workdir)
        chosen = port or load_config(paths.config_file).studio.port
    server = StudioServer(target, port=chosen)
    console.print(f"Studio URL: [bold]{server.url}[/] (Ctrl-C to stop)", highlight=False)
    server.serve()


def start_beside(info: StackInfo, paths: StackPaths, port: int) -> StudioServer | None:
    """Start the studio on a thread beside ``appkit dev``'s stack; None (with a warning) when it cannot listen.

    Either way it notes the outcome (this process' pid and the URL, or no URL) for ``appkit start`` and
    ``appkit status``."""
    from appkit.errors import AppKitError
    from appkit.studio import StudioServer

    note = paths.data_dir / STUDIO_URL_FILE
    try:
        server = StudioServer(local_target(info, paths.workdir), port=port)
    except AppKitError as exc:
        log.warning("studio not started: %s", exc)
        note.write_text(f"{os.getpid()}\n")
        return None
    server.start()
    note.write_text(f"{os.getpid()} {server.url}\n")
    log.info("studio on %s", server.url)
    return server


def stop_beside(server: StudioServer | None, paths: StackPaths) -> None:
    (paths.data_dir / STUDIO_URL_FILE).unlink(missing_ok=True)
    if server is not None:
        server.stop()


def _noted(paths: StackPaths, pid: int) -> tuple[bool, str | None]:
    """(whether the stack with ``pid`` noted its studio yet, the studio's URL if it serves one)."""
    try:
        text = (paths.data_dir / STUDIO_URL_FILE).read_text()
    except OSError:
        return False, None
    owner, _, url = text.strip().partition(" ")
    if owner != str(pid):
        return False, None  # left by an earlier run
    return True, url if url.startswith(("http://127.0.0.1:", "http://[::1]:")) else None


def studio_url(paths: StackPaths, pid: int) -> str | None:
    """The URL of the studio the stack running as ``pid`` serves (None when it serves none)."""
    return _noted(paths, pid)[1]


def wait_studio_url(paths: StackPaths, pid: int, timeout: float = 10) -> str | None:
    """:func:`studio_url` once the just-started stack has noted its studio (it does so right after it is ready)."""
    deadline = time.monotonic() + timeout
    while True:
        noted, url = _noted(paths, pid)
        if noted or time.monotonic() > deadline:
            return url
        time.sleep(0.05)

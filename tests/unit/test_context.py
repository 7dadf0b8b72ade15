"""StackContext: how services reach the database."""

from __future__ import annotations

from pathlib import Path

from psycopg.conninfo import conninfo_to_dict

from appkit.local.config import ProjectConfig
from appkit.local.context import StackContext
from appkit.local.keys import JWTKeys

URL = "postgresql://postgres:postgres@127.0.0.1:54322/postgres"


def _ctx(*, embedded: bool = True, socket_dir: Path | None = None) -> StackContext:
    return StackContext(project_dir=Path("."), config=ProjectConfig(), keys=JWTKeys(secret="x" * 40),
                        db_url=URL, data_dir=Path("."), api_url="http://127.0.0.1:54321",
                        embedded=embedded, socket_dir=socket_dir)


def test_embedded_services_connect_through_the_socket_as_their_role() -> None:
    ctx = _ctx(socket_dir=Path("/tmp/dir with space/run"))
    params = conninfo_to_dict(ctx.conninfo("authenticator"))
    assert params == {"user": "authenticator", "password": "postgres", "dbname": "postgres",
                      "host": "/tmp/dir with space/run", "port": "54322"}
    assert conninfo_to_dict(ctx.conninfo())["user"] == "postgres"


def test_without_a_socket_dir_the_tcp_url_is_kept() -> None:
    params = conninfo_to_dict(_ctx().conninfo("anon"))
    assert (params["user"], params["host"], params["port"]) == ("anon", "127.0.0.1", "54322")


def test_an_external_database_url_is_used_unchanged() -> None:
    assert _ctx(embedded=False, socket_dir=Path("/tmp/x")).conninfo("anon") == URL

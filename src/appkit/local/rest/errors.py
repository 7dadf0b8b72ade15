"""PostgREST's error bodies (``code``, ``message``, ``details``, ``hint``) and status mapping."""

from __future__ import annotations

import json
from typing import Any

import psycopg


class RestError(Exception):
    """An error answered to the client with PostgREST's JSON shape."""

    def __init__(
        self, status: int, code: str | None, message: str, *, details: Any = None, hint: Any = None,
        headers: dict[str, str] | None = None, missing: tuple[str, str, str] | None = None,
    ) -> None:
        super().__init__(message)
        #: for a miss in the schema cache: ("table" or "function", schema, name)
        self.missing = missing
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.hint = hint
        self.headers = headers or {}

    def body(self) -> bytes:
        return json.dumps(
            {"code": self.code, "details": self.details, "hint": self.hint, "message": self.message},
            ensure_ascii=False, separators=(",", ":"),
        ).encode()


def parse_error(message: str, details: str | None = None) -> RestError:
    return RestError(400, "PGRST100", message, details=details)


def table_not_found(schema: str, name: str) -> RestError:
    return RestError(
        404, "PGRST205", f"Could not find the table '{schema}.{name}' in the schema cache",
        missing=("table", schema, name),
    )


def column_not_found(table: str, column: str) -> RestError:
    return RestError(400, "PGRST204", f"Could not find the '{column}' column of '{table}' in the schema cache")


def undefined_column(table: str, column: str) -> RestError:
    # what PostgREST answers when Postgres rejects an unknown column in select/filter/order
    return RestError(400, "42703", f"column {table}.{column} does not exist")


def _status_for_sqlstate(code: str, anon: bool) -> int:
    if code == "42501":
        return 401 if anon else 403
    exact = {
        "23503": 409, "23505": 409, "25006": 405, "42883": 404, "42P01": 404, "42P17": 500,
        "P0001": 400, "57014": 500, "40001": 500, "40P01": 500,
    }
    if code in exact:
        return exact[code]
    prefix = code[:2]
    by_class = {
        "08": 503, "09": 500, "0L": 403, "0P": 403, "25": 500, "28": 403, "2D": 500, "38": 500,
        "39": 500, "3B": 500, "40": 500, "53": 503, "54": 500, "55": 500, "57": 500, "58": 500,
        "F0": 500, "HV": 500, "P0": 500, "XX": 500,
    }
    return by_class.get(prefix, 400)


def from_pg(exc: psycopg.Error, *, anon: bool) -> RestError:
    """Map a Postgres error to PostgREST's status and body."""
    diag = exc.diag
    code = exc.sqlstate or ""
    message = diag.message_primary or str(exc).strip()
    details = diag.message_detail
    hint = diag.message_hint
    if isinstance(exc, psycopg.OperationalError) and not code:
        return RestError(503, "PGRST000", "Could not connect with the database", details=str(exc).strip())
    if isinstance(exc, psycopg.DataError) and not code:
        # rejected by the driver before reaching Postgres (e.g. a NUL character in a value)
        return RestError(400, "22021", message)
    return from_fields(code, message, details, hint, anon=anon)


def from_fields(code: str, message: str, details: str | None, hint: str | None, *, anon: bool) -> RestError:
    """Map a Postgres error (SQLSTATE and message fields) to PostgREST's status and body."""
    if code == "PGRST" or code == "PT000":
        # RAISE sqlstate 'PGRST' using message = '{"code":..,"message":..}', detail = '{"status":..}'
        try:
            body = json.loads(message)
            extra = json.loads(details or "{}")
            status = int(extra.get("status", 400))
            headers = {str(k): str(v) for k, v in (extra.get("headers") or {}).items()}
            return RestError(
                status, body.get("code"), str(body.get("message", "")), details=body.get("details"),
                hint=body.get("hint"), headers=headers,
            )
        except (ValueError, TypeError, AttributeError):
            return RestError(500, "PGRST121", "Could not parse JSON in the RAISE SQLSTATE 'PGRST' error",
                            details=message)
    if code.startswith("PT") and code[2:].isdigit():
        return RestError(int(code[2:]), code, message, details=details, hint=hint)
    status = _status_for_sqlstate(code, anon)
    headers = {"WWW-Authenticate": "Bearer"} if code == "42501" and anon else {}
    return RestError(status, code or None, message, details=details, hint=hint, headers=headers)

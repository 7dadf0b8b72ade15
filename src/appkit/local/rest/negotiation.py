"""Content negotiation: ``Accept``, ``Prefer``, row limits, and the response GUCs a function may set."""

from __future__ import annotations

import json
from typing import Any

from appkit.local.rest.errors import RestError
from appkit.local.rest.headers import Prefer, parse_prefer, parse_range
from appkit.local.rest.http import JSON_CT, RestRequest, RestResponse
from appkit.local.rest.parser import NodeQuery
from appkit.local.rest.plan import Plan


def apply_response_gucs(resp: RestResponse, headers_json: Any, status_text: Any) -> RestResponse:
    """PostgREST's ``response.headers`` (a JSON array of one-key objects) and ``response.status``."""
    if isinstance(headers_json, bytes):
        headers_json = headers_json.decode()
    if isinstance(status_text, bytes):
        status_text = status_text.decode()
    if headers_json:
        try:
            items = json.loads(headers_json)
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise ValueError
            for item in items:
                for k, v in item.items():
                    if any(c in str(k) + str(v) for c in "\r\n\0"):
                        raise ValueError
                    resp.headers[str(k)] = str(v)
        except ValueError:
            raise RestError(500, "PGRST111", "response.headers guc must be a JSON array composed of objects "
                                            "with a single key and a string value") from None
    if status_text:
        try:
            code = int(status_text)
            if not 100 <= code <= 599:
                raise ValueError
        except ValueError:
            raise RestError(500, "PGRST112", "response.status guc must be a valid status code") from None
        resp.status = code
        if code != 204 and resp.content_type is None:
            resp.content_type = JSON_CT
    return resp


def singular_error(n: int) -> RestError:
    return RestError(406, "PGRST116", "Cannot coerce the result to a single JSON object",
                    details=f"The result contains {n} rows")


PLAN_TYPES = ("application/vnd.pgrst.plan", "application/vnd.pgrst.plan+json", "application/vnd.pgrst.plan+text")
PLAN_OPTIONS = ("analyze", "verbose", "settings", "buffers", "wal")


def plan_request(accept: str) -> tuple[str, list[str]] | None:
    """PostgREST's ``Accept: application/vnd.pgrst.plan[+json|+text]; options=a|b`` ->
    (format, options), or None when no plan is asked for. Plans are of JSON reads
    (``for="application/json"``)."""
    for part in accept.split(","):
        mt, _, params = part.strip().partition(";")
        mt = mt.strip().lower()
        if mt not in PLAN_TYPES:
            continue
        options: list[str] = []
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "options":
                options = [o for o in value.strip().strip('"').lower().split("|") if o in PLAN_OPTIONS]
            if key.strip().lower() == "for" and value.strip().strip('"').lower() not in (
                    "application/json", "application/vnd.pgrst.array+json", ""):
                return None  # a plan of another media type: not available here
        return ("text" if mt.endswith("+text") else "json"), options
    return None


class Negotiation:
    """Reads the request's ``Accept`` and ``Prefer`` headers and the row limits."""

    max_rows: int
    #: ``pgrst.db_plan_enabled``: plans may be asked for with ``Accept: application/vnd.pgrst.plan``
    plan_enabled: bool

    def _accept(self, req: RestRequest, *, allow_openapi: bool = False) -> tuple[str, bool]:
        """-> (kind, strip_nulls) where kind is json | object | csv."""
        accept = req.headers.get("accept", "")
        if not accept:
            return "json", False
        for part in accept.split(","):
            mt, _, params = part.strip().partition(";")
            mt = mt.strip().lower()
            strip = "nulls=stripped" in params.replace(" ", "")
            if mt in ("application/json", "*/*", "application/*", "application/vnd.pgrst.array+json"):
                return "json", strip
            if mt == "application/vnd.pgrst.object+json":
                return "object", strip
            if mt == "text/csv":
                return "csv", False
            if mt == "application/openapi+json" and allow_openapi:
                return "json", False
            if mt in PLAN_TYPES and self.plan_enabled and plan_request(part) is not None:
                return "json", False  # the statement a plan is made of: the JSON read
        raise RestError(406, "PGRST107", f"None of these media types are available: {accept}")

    def _limits(self, req: RestRequest, plan: Plan) -> tuple[int | None, int]:
        root = plan.queries.get((), NodeQuery())
        offset = root.offset or 0
        limit = root.limit
        rng = req.headers.get("range")
        if rng and req.method in ("GET", "HEAD") and root.limit is None and root.offset is None:
            parsed = parse_range(rng)
            if parsed is not None:
                offset = parsed[0]
                limit = None if parsed[1] is None else parsed[1] - parsed[0] + 1
        if self.max_rows is not None:
            limit = self.max_rows if limit is None else min(limit, self.max_rows)
        return limit, offset

    def _prefer(self, req: RestRequest) -> Prefer:
        prefer = parse_prefer(req.prefer_raw)
        if prefer.handling == "strict" and prefer.invalid:
            raise RestError(400, "PGRST122", "Invalid preferences given with handling=strict",
                           details=f"Invalid preferences: {', '.join(prefer.invalid)}")
        return prefer

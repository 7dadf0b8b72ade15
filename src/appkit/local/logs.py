"""Log records as JSON lines, each stamped with the id of the request it belongs to.

:data:`request_id` is set per request by the observability middleware
(``appkit.local.observe``); every log line a service writes while handling that request
carries it, because the context variable follows the request's task and the tasks it
starts. ``appkit dev --log-format json`` installs :class:`JsonFormatter` with
:class:`RequestIdFilter`.
"""

from __future__ import annotations

import contextvars
import json
import logging
import time

#: the current request's id (None outside a request)
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("appkit_request_id", default=None)

#: attributes every LogRecord has; anything else was passed with ``extra=`` and is kept
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "request_id"}


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` (the current request's id, or None)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``msg``, ``request_id``,
    any ``extra=`` fields, and ``exc`` with the traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)

"""Job handlers: the registered function with its payload model and retry policy, and the context it may receive."""

from __future__ import annotations

import inspect
import random
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, get_type_hints

import pydantic

from appkit.errors import ConfigError

_ERROR_LIMIT = 8000


@dataclass(frozen=True, slots=True)
class JobContext:
    """What a handler may ask about the job it runs (pass a second parameter to receive it)."""

    id: int
    queue: str
    attempt: int
    max_attempts: int
    priority: int
    created_at: datetime
    worker_id: str


@dataclass(frozen=True)
class Handler:
    """A registered handler: the function, the payload model it takes and its retry policy."""

    queue: str
    fn: Callable[..., Any]
    model: type[pydantic.BaseModel] | None
    max_attempts: int | None
    backoff: float
    max_backoff: float
    is_async: bool
    wants_context: bool

    def parse(self, payload: Any) -> Any:
        if self.model is None:
            return payload
        return self.model.model_validate(payload)

    def retry_in(self, attempt: int) -> float:
        """Exponential backoff with jitter: between half and all of ``backoff * 2**(attempt-1)``."""
        delay = float(min(self.max_backoff, self.backoff * 2.0 ** max(attempt - 1, 0)))
        return delay / 2 + random.random() * delay / 2  # noqa: S311 - jitter, not crypto



def model_of(fn: Callable[..., Any]) -> tuple[type[pydantic.BaseModel] | None, bool]:
    """The payload model from the handler's first parameter annotation; whether it takes a context."""
    params = [p for p in inspect.signature(fn).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if not params:
        raise ConfigError(f"job handler {fn.__qualname__} must take the payload as its first parameter")
    try:
        hints = get_type_hints(fn)
    except Exception:  # an unresolvable annotation: treat the payload as raw JSON
        hints = {}
    ann = hints.get(params[0].name)
    model = ann if isinstance(ann, type) and issubclass(ann, pydantic.BaseModel) else None
    return model, len(params) >= 2


def error_text(exc: BaseException) -> str:
    """``Type: message`` on the first line, then the traceback (truncated)."""
    text = f"{type(exc).__name__}: {exc}\n\n" + "".join(traceback.format_exception(exc)).strip()
    return clean_error(text)


def clean_error(text: str) -> str:
    """Fit an error for a text column: no NUL characters (Postgres refuses them), at most 8,000 characters."""
    text = text.replace("\x00", "\\0")
    return text if len(text) <= _ERROR_LIMIT else text[: _ERROR_LIMIT - 16] + "\n... (truncated)"


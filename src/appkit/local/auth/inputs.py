"""Request input as GoTrue reads it: JSON bodies, e-mail addresses, phone numbers, client IPs, redirect URLs."""

from __future__ import annotations

import fnmatch
import functools
import ipaddress
import re
import uuid
from typing import Any
from urllib.parse import urlsplit

from appkit.local.auth.errors import bad_request
from appkit.local.config import AuthConfig
from appkit.local.jsonbody import BadJson, has_nul, loads

_EMAIL_RE = re.compile(
    r"^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
    r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$"
)


_PHONE_RE = re.compile(r"^[1-9][0-9]{1,14}$")


def json_body(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        body = loads(raw)
    except BadJson as exc:
        raise bad_request("bad_json", f"Could not parse request body as JSON: {exc}") from None
    if not isinstance(body, dict):
        raise bad_request("bad_json", "Could not parse request body as JSON: expected a JSON object")
    if b"\\u0000" in raw and has_nul(body):  # Postgres text cannot hold NUL
        raise bad_request("validation_failed", "Request body must not contain NUL characters")
    return body


def get_str(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise bad_request("bad_json", f"Could not parse request body as JSON: field {key!r} must be a string")
    return value


def get_bool(body: dict[str, Any], key: str, default: bool = False) -> bool:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise bad_request("bad_json", f"Could not parse request body as JSON: field {key!r} must be a boolean")
    return value


def get_obj(body: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise bad_request("bad_json", f"Could not parse request body as JSON: field {key!r} must be an object")
    return value


def validate_email(email: str) -> str:
    email = email.strip()
    if not email:
        raise bad_request("validation_failed", "An email address is required")
    if len(email) > 255 or not _EMAIL_RE.match(email):
        raise bad_request("validation_failed", "Unable to validate email address: invalid format")
    return email.lower()


def validate_phone(phone: str) -> str:
    cleaned = phone.strip().replace(" ", "").replace("-", "").removeprefix("+")
    if not _PHONE_RE.match(cleaned):
        raise bad_request("validation_failed", "Invalid phone number format (E.164 required)")
    return cleaned


def client_ip(host: str | None) -> str | None:
    """The client address in canonical form (None when absent or not an IP address)."""
    return _canonical_ip(host) if host else None


@functools.lru_cache(maxsize=1024)
def _canonical_ip(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def merge_metadata(current: dict[str, Any] | None, update: dict[str, Any]) -> dict[str, Any]:
    """GoTrue's metadata update: keys are set, keys set to null are removed."""
    out = dict(current or {})
    for k, v in update.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return out


def parse_go_duration(value: str) -> float:
    from appkit.local.auth.ratelimit import parse_duration

    try:
        return parse_duration(value)
    except ValueError:
        raise bad_request("validation_failed", f"invalid format for ban duration: {value!r}") from None


def redirect_allowed(cfg: AuthConfig, url: str | None) -> str:
    """``url`` when the config allows it (same host as ``site_url`` or an allow-list glob), else ``site_url``."""
    if not url:
        return cfg.site_url
    try:
        target = urlsplit(url)
        site = urlsplit(cfg.site_url)
    except ValueError:
        return cfg.site_url
    if target.scheme in ("http", "https") and target.netloc and target.netloc == site.netloc:
        return url
    for pattern in cfg.additional_redirect_urls:
        if url == pattern or fnmatch.fnmatchcase(url, pattern) or (
            pattern.endswith("/**") and url.startswith(pattern[:-3])
        ):
            return url
    return cfg.site_url


def is_uuid(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True

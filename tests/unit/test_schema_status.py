"""Whether the API exposes schema appkit, read from PostgREST's answers (respx fakes)."""

from __future__ import annotations

import httpx
import pytest
import respx

from appkit.db.schema_status import probe_exposed
from appkit.errors import ServiceUnavailable

URL = "https://abc.supabase.co"


@pytest.mark.parametrize(("status", "body", "exposed"), [
    (200, [], True),
    (404, {"code": "PGRST205", "message": "Could not find the table 'appkit.organizations'"}, True),
    (406, {"code": "PGRST106", "message": "Invalid schema: appkit", "hint": "Only the following schemas are exposed: public"},
     False),
])
def test_answers(status: int, body: object, exposed: bool) -> None:
    with respx.mock:
        route = respx.get(f"{URL}/rest/v1/organizations").mock(return_value=httpx.Response(status, json=body))
        assert probe_exposed(URL, "key") is exposed
        assert route.calls.last.request.headers["Accept-Profile"] == "appkit"


def test_unreachable_or_odd_answers_are_errors() -> None:
    with respx.mock:
        respx.get(f"{URL}/rest/v1/organizations").mock(side_effect=httpx.ConnectError("refused"))
        with pytest.raises(ServiceUnavailable):
            probe_exposed(URL, "key")
    with respx.mock:
        respx.get(f"{URL}/rest/v1/organizations").mock(return_value=httpx.Response(502, text="<html>bad gateway"))
        with pytest.raises(ServiceUnavailable):
            probe_exposed(URL, "key")

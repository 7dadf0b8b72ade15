"""The OpenAPI (Swagger 2.0) document PostgREST serves at its root."""

from __future__ import annotations

import json

from appkit.local.rest.schema import SchemaCache


def document(cache: SchemaCache, schema: str, api_url: str) -> bytes:
    return json.dumps({"swagger": "2.0", "info": {"title": "PostgREST API", "version": "12"}}).encode()

"""Adding "appkit" to [api] schemas of a config.toml: minimal text edits, comments kept."""

from __future__ import annotations

import tomllib

import pytest

from appkit.db.api_config import add_api_schema, api_schemas
from appkit.errors import ConfigError
from appkit_cli.templates import CONFIG_TOML

SUPABASE_INIT = """\
# For detailed configuration reference documentation, visit:
project_id = "demo"

[api]
enabled = true
# Port to use for the API URL.
port = 54321
# Schemas to expose in your API. Tables, views and stored procedures in this schema will get API
# endpoints. `public` and `graphql_public` schemas are included by default.
schemas = ["public", "graphql_public"]
# Extra schemas to add to the search_path of every request.
extra_search_path = ["public", "extensions"]

[api.tls]
enabled = false

[db]
port = 54322
"""


def test_appends_to_the_inline_array_and_keeps_everything_else() -> None:
    out = add_api_schema(SUPABASE_INIT, "appkit")
    assert 'schemas = ["public", "graphql_public", "appkit"]' in out
    assert out.replace(', "appkit"', "", 1) == SUPABASE_INIT
    assert api_schemas(out) == ["public", "graphql_public", "appkit"]
    assert add_api_schema(out, "appkit") == out  # idempotent


def test_multiline_array_with_comments_and_trailing_comma() -> None:
    text = '[api]\nschemas = [\n  "public", # the default\n  "graphql_public",\n]\nport = 1\n[db]\nport = 2\n'
    out = add_api_schema(text, "appkit")
    assert tomllib.loads(out)["api"] == {"schemas": ["public", "graphql_public", "appkit"], "port": 1}
    assert "# the default" in out and out.count("\n") == text.count("\n")
    text2 = '[api]\nschemas = [\n  "public",\n  "graphql_public"  # last\n]\n'
    assert api_schemas(add_api_schema(text2, "appkit")) == ["public", "graphql_public", "appkit"]
    assert api_schemas(add_api_schema("[api]\nschemas = []\n", "appkit")) == ["appkit"]


def test_missing_key_or_section_gets_the_supabase_defaults() -> None:
    out = add_api_schema('project_id = "x"\n[api]\nport = 54321\n[db]\nport = 54322\n', "appkit")
    assert tomllib.loads(out)["api"] == {"port": 54321, "schemas": ["public", "graphql_public", "appkit"]}
    assert tomllib.loads(out)["db"] == {"port": 54322}
    out = add_api_schema('project_id = "x"\n[db]\nport = 54322', "appkit")
    assert tomllib.loads(out) == {"project_id": "x", "db": {"port": 54322},
                                  "api": {"schemas": ["public", "graphql_public", "appkit"]}}
    # [api.tls] is not [api]
    out = add_api_schema("[api.tls]\nenabled = false\n", "appkit")
    assert tomllib.loads(out)["api"]["schemas"] == ["public", "graphql_public", "appkit"]


def test_init_template_already_exposes_appkit() -> None:
    text = CONFIG_TOML.format(project_id="p")
    assert "appkit" in (api_schemas(text) or [])
    assert add_api_schema(text, "appkit") == text


@pytest.mark.parametrize("bad", [
    "[api\nschemas = [",  # not TOML
    '[api]\nschemas = "public"\n',  # not an array
    '[api]\nschemas = [1, 2]\n',
])
def test_malformed_config_is_refused(bad: str) -> None:
    with pytest.raises(ConfigError):
        add_api_schema(bad, "appkit")

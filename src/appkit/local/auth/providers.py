"""OAuth providers: those GoTrue knows (authorize URL, default scopes) and those config.toml sets up."""

from __future__ import annotations

from typing import Any

from appkit.local.config import AuthConfig

#: OAuth providers /authorize can redirect to: (authorize URL, default scopes)
PROVIDERS: dict[str, tuple[str, str]] = {
    "apple": ("https://appleid.apple.com/auth/authorize", "email name"),
    "azure": ("https://login.microsoftonline.com/common/oauth2/v2.0/authorize", "openid"),
    "bitbucket": ("https://bitbucket.org/site/oauth2/authorize", "account email"),
    "discord": ("https://discord.com/api/oauth2/authorize", "email identify"),
    "facebook": ("https://www.facebook.com/dialog/oauth", "email"),
    "github": ("https://github.com/login/oauth/authorize", "user:email"),
    "gitlab": ("https://gitlab.com/oauth/authorize", "read_user"),
    "google": ("https://accounts.google.com/o/oauth2/auth", "email profile"),
    "keycloak": ("", "profile email"),
    "linkedin_oidc": ("https://www.linkedin.com/oauth/v2/authorization", "openid email profile"),
    "notion": ("https://api.notion.com/v1/oauth/authorize", ""),
    "slack_oidc": ("https://slack.com/openid/connect/authorize", "openid email profile"),
    "spotify": ("https://accounts.spotify.com/authorize", "user-read-email"),
    "twitch": ("https://id.twitch.tv/oauth2/authorize", "user:read:email"),
    "twitter": ("https://api.twitter.com/oauth/authenticate", ""),
    "workos": ("https://api.workos.com/sso/authorize", ""),
    "zoom": ("https://zoom.us/oauth/authorize", ""),
}


def configured_providers(cfg: AuthConfig) -> dict[str, dict[str, Any]]:
    """The ``[auth.external.<name>]`` sections of config.toml."""
    extra = cfg.model_extra or {}
    external = extra.get("external") or {}
    return {k: v for k, v in external.items() if isinstance(v, dict)}

"""Auth: ``app.auth`` (``Auth`` / ``AsyncAuth``), sessions, and server-side ``verify`` -> ``Principal``."""

from supabase_auth.types import Session, User

from appkit._async.auth import AsyncAuth, OAuthStart
from appkit._sync.auth import Auth
from appkit.auth.jwt import Principal, verify_token

__all__ = ["AsyncAuth", "Auth", "OAuthStart", "Principal", "Session", "User", "verify_token"]

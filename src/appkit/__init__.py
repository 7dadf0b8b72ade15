"""appkit: a typed Python toolkit for application backends on Supabase."""

from appkit import errors

__all__ = ["errors"]
__version__ = "0.1.0"

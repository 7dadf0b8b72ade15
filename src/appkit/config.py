"""Settings from env / ``.env`` (the ``config.py`` of DESIGN.md); defined in ``appkit.settings``."""

from appkit.settings import Settings

__all__ = ["Settings"]

"""Profiles: one ``appkit.profiles`` row per user; ``app.profiles`` in the SDK.

.. code-block:: python

    me = app.as_user(session)
    me.profiles.update_me(display_name="Ada", avatar_url="https://example.com/ada.png")
    me.profiles.get(teammate_id)        # a member of one of my organizations
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from appkit._lazy import lazy_getattr
from appkit.profiles.models import Profile

if TYPE_CHECKING:
    from appkit._async.profiles import AsyncProfiles
    from appkit._sync.profiles import Profiles

__getattr__ = lazy_getattr("appkit.profiles", {"AsyncProfiles": "appkit._async.profiles",
                                               "Profiles": "appkit._sync.profiles"}, globals())

__all__ = ["AsyncProfiles", "Profile", "Profiles"]

"""The storage API: every endpoint family (buckets, objects, listing, signed URLs) on one object."""

from __future__ import annotations

from appkit.local.storage.buckets import Buckets
from appkit.local.storage.listing import Listing
from appkit.local.storage.signed import SignedUrls


class StorageAPI(SignedUrls, Listing, Buckets):
    """What the routes of :class:`appkit.local.storage.service.StorageService` call."""

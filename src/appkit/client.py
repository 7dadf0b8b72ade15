"""The facades: ``AppKit`` (sync, generated from the async source) and ``AsyncAppKit``."""

from appkit._async.client import AsyncAppKit
from appkit._sync.client import AppKit

__all__ = ["AppKit", "AsyncAppKit"]

"""Files: ``app.files`` (``Files`` / ``AsyncFiles``) over Supabase Storage."""

from appkit._async.files import AsyncFiles, FileInfo, StoredFile
from appkit._sync.files import Files

__all__ = ["AsyncFiles", "FileInfo", "Files", "StoredFile"]

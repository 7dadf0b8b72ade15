"""Files: ``app.files`` (``Files`` / ``AsyncFiles``) over Supabase Storage, with TUS resumable uploads."""

from appkit._async.files import AsyncFiles, FileInfo, StoredFile
from appkit._async.tus import CHUNK_SIZE, ProgressCallback
from appkit._sync.files import Files

__all__ = ["CHUNK_SIZE", "AsyncFiles", "FileInfo", "Files", "ProgressCallback", "StoredFile"]

-- appkit's local Storage service: find the rows that still reference a stored file version
-- (garbage collection after upsert/delete, crash recovery at start). Idempotent.
create index if not exists objects_version_idx on storage.objects (version);

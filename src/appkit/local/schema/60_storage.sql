-- appkit's local Storage service: find the rows that still reference a stored file version
-- (garbage collection after upsert/delete, crash recovery at start). Idempotent.
create index if not exists objects_version_idx on storage.objects (version);
-- listing under a prefix (Storage matches prefixes case-insensitively): an index on the lower-cased name
create index if not exists objects_bucket_lower_name_idx on storage.objects (bucket_id, lower(name) text_pattern_ops);

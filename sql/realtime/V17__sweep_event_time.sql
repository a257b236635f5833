-- The event time of the newest batch saved from each partition, for the abandoned-cart sweep's
-- "now": `event_time` (V9__partition_event_time.sql) is the greatest ever saved, which raw
-- retention needs (it must not drop a day a partition may still write), but after newer events
-- a backfill of older days left the sweep's "now" at the newer ones, so it judged the
-- backfill's sessions before their checkouts were read, or not at all (docs/ARCHITECTURE.md,
-- "A twenty-sixth run"). This one moves back with such a backfill
-- (crates/globalmart-stream/src/write/offsets.rs).
ALTER TABLE stream_offsets ADD COLUMN IF NOT EXISTS batch_event_time timestamptz;
UPDATE stream_offsets SET batch_event_time = event_time
WHERE batch_event_time IS NULL AND event_time IS NOT NULL;

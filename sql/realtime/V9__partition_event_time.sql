-- The latest event time saved from each partition, beside its offset: the abandoned-cart sweep
-- judges "quiet" against the event time every partition of cart-events-topic has reached, so a
-- partition read ahead of another (a backfill runs days of event time a minute) does not make
-- the other's sessions look abandoned (crates/globalmart-stream/src/housekeeping.rs).
ALTER TABLE stream_offsets ADD COLUMN IF NOT EXISTS event_time timestamptz;

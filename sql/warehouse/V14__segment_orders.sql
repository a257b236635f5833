-- The orders of each segment's customers, kept beside its customers and revenue
-- (crates/globalmart-batch/src/analytics/segments.rs): a rerun of a date adds what its rescored
-- customers changed to the three sums, where counting every customer of the date again took
-- 0.86 s after a month of the course's scenario (docs/ARCHITECTURE.md, "Running totals"). The
-- average order value is their ratio. Rows counted before this column have none: a date's next
-- run counts them again.
ALTER TABLE customer_segments_history ADD COLUMN IF NOT EXISTS order_count bigint;

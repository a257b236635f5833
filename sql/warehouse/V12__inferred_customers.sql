-- The customers still waiting for their country (docs/ARCHITECTURE.md, "Point-in-time SCD2"): an
-- inferred member made from an event without one. Each fact chunk fills them from its events
-- (crates/globalmart-batch/src/etl/facts.rs, INFER): without this index that update read the
-- rows of every user of the chunk to find none (1.1 s of a 5-minute run's sale lines, 14,435
-- users, after one day of the course's scenario); with it, it reads only those waiting.
CREATE INDEX IF NOT EXISTS dim_customers_waiting_for_country ON dim_customers (user_id)
    WHERE is_inferred AND country IS NULL;

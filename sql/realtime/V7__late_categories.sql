-- Sales of a product not catalogued yet count under category 'unknown'; when its record
-- arrives, the stream recounts those windows (write/metrics.rs, recount_late_categories). This
-- index keeps finding them a lookup: 'unknown' rows are few.
CREATE INDEX IF NOT EXISTS idx_category_performance_unknown
    ON category_performance (window_start) WHERE category = 'unknown';

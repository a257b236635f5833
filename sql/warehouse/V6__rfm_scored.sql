-- The analysis date whose RFM scores dim_customers holds (crates/globalmart-batch/src/analytics/
-- rfm.rs): a rerun of that date copies to dim_customers only the scores of the rfm_analysis rows
-- it rewrote; another date compares every customer. No row: none scored yet.
CREATE TABLE IF NOT EXISTS rfm_scored (
    only_row      boolean PRIMARY KEY DEFAULT TRUE CHECK (only_row),
    analysis_date date NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

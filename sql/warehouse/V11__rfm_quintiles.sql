-- What a rerun of the RFM needs to rescore only the customers whose score can change
-- (docs/ARCHITECTURE.md, "Running totals"; crates/globalmart-batch/src/analytics/quintiles.rs):
-- which customers' totals changed since the analysis (`generation`: the ETL chunk that last
-- changed them, numbered under the totals' lock), the customers ordered by each measure (an
-- index each), and per analysis date the customers, lowest and highest value of each score.
CREATE SEQUENCE IF NOT EXISTS agg_customer_totals_generation;
ALTER TABLE agg_customer_totals ADD COLUMN IF NOT EXISTS generation bigint NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS agg_customer_totals_by_generation
    ON agg_customer_totals (generation);
CREATE INDEX IF NOT EXISTS agg_customer_totals_by_recency
    ON agg_customer_totals (((extract(epoch FROM last_order - timestamptz 'epoch') * 1000000)::bigint));
CREATE INDEX IF NOT EXISTS agg_customer_totals_by_frequency ON agg_customer_totals (orders);
CREATE INDEX IF NOT EXISTS agg_customer_totals_by_monetary
    ON agg_customer_totals (((spent * 100)::bigint));

-- One row per date, measure and score (1-5): the customers with that score and their lowest
-- and highest value of the measure (µs of the last order, orders, cents spent). generation is
-- the last ETL chunk the analysis saw, NULL when it was computed from the facts (a rerun then
-- computes every customer again).
CREATE TABLE IF NOT EXISTS rfm_quintiles (
    analysis_date  date NOT NULL,
    measure        text NOT NULL,
    score          integer NOT NULL,
    customers      bigint NOT NULL,
    lowest         bigint,
    highest        bigint,
    generation     bigint,
    PRIMARY KEY (analysis_date, measure, score)
);

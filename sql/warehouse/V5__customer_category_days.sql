-- The days on which a customer bought in a category (and in 'All') become one row each
-- (docs/ARCHITECTURE.md, "Running totals"): a chunk adds its (customer, category, day) rows
-- with ON CONFLICT DO NOTHING, where V4's array per customer and category was read, merged and
-- rewritten by every chunk that sold to them. Whether a sale makes its customer new to a week,
-- month or quarter is a range lookup on the key.
CREATE TABLE IF NOT EXISTS agg_customer_category_days (
    user_id   text NOT NULL,
    category  text NOT NULL,
    day       date NOT NULL,
    PRIMARY KEY (user_id, category, day)
);

DO $$
BEGIN
    IF to_regclass('agg_customer_categories') IS NOT NULL THEN
        INSERT INTO agg_customer_category_days (user_id, category, day)
        SELECT a.user_id, a.category, d FROM agg_customer_categories a, unnest(a.days) d
        ON CONFLICT DO NOTHING;
        DROP TABLE agg_customer_categories;
    END IF;
END
$$;

-- The day after the last of the period of `kind` starting on `start`.
CREATE OR REPLACE FUNCTION agg_period_end(kind text, start date) RETURNS date
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE kind
        WHEN 'daily' THEN start + 1
        WHEN 'weekly' THEN start + 7
        WHEN 'monthly' THEN (start + interval '1 month')::date
        ELSE (start + interval '3 months')::date END;

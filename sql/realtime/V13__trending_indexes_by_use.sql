-- trending_products gains a row for about every product view within the metrics' retention
-- (250,000 products: a product rarely repeats within a minute), so each of its indexes costs
-- on every view (docs/ARCHITECTURE.md, "Metrics counted once"). Each index now covers only the
-- rows its readers look for:
--
-- The stock's sales pace and the 10-minute demand (write/stock.rs) read a product's minutes
-- with sales only (`units_sold > 0`), a minority of the rows.
DROP INDEX IF EXISTS idx_trending_products_product_window;
CREATE INDEX IF NOT EXISTS idx_trending_products_product_sales
    ON trending_products (product_id, window_start) WHERE units_sold > 0;

-- A product's late catalogue record moves its rows without a category (write/activity.rs):
-- few, as most events name their product's category.
CREATE INDEX IF NOT EXISTS idx_trending_products_uncategorised
    ON trending_products (product_id) WHERE category IS NULL;

-- The replaced platform's dashboard filters on window_end: rows are folded in window order, so
-- a block-range index finds a time range for a fraction of a B-tree's upkeep.
DROP INDEX IF EXISTS idx_trending_products_window_end;
CREATE INDEX IF NOT EXISTS idx_trending_products_window_end
    ON trending_products USING brin (window_end);

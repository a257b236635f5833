-- A sale's restock check sums the product's last hour of per-minute sales: find them by product
-- and window.
CREATE INDEX IF NOT EXISTS idx_trending_products_product_window
    ON trending_products (product_id, window_start);

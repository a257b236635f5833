-- Stock is recounted from a product's sales since its last restock: find them by product and
-- time.
CREATE INDEX IF NOT EXISTS idx_transactions_product_timestamp ON transactions (product_id, "timestamp");

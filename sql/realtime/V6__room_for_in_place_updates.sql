-- The metric rows are updated by every batch that touches their window (and product_stock by
-- every sale). With free room on each page PostgreSQL updates a row in place (a HOT update:
-- no new index entries, since no indexed column changes) instead of writing a new copy into
-- every index. Applies to pages written from now on.
ALTER TABLE trending_products SET (fillfactor = 70);
ALTER TABLE category_performance SET (fillfactor = 70);
ALTER TABLE sales_per_minute SET (fillfactor = 70);
ALTER TABLE sales_by_country SET (fillfactor = 70);
ALTER TABLE cart_metrics SET (fillfactor = 70);
ALTER TABLE cart_session_windows SET (fillfactor = 70);
ALTER TABLE product_stock SET (fillfactor = 70);

-- Rows the batch updates again and again: the customers' purchase totals and RFM scores (every
-- sale's customer, every rescored customer), the running totals of the products and of the
-- customer-product pairs, and the snapshot of the day under analysis (every 5-minute run
-- rewrites what moved: most products' ranks, the customers near a quintile's boundary). With
-- free room on each page PostgreSQL updates a row in place (a HOT update: no new entry in each
-- index) instead of writing a copy elsewhere and indexing it again; after one day of the
-- course's scenario 3 % of the 255,000 updates of dim_customers were HOT, each of the others
-- adding an entry to its four indexes (docs/ARCHITECTURE.md, "Running totals"). Applies to
-- pages written from now on.
ALTER TABLE dim_customers SET (fillfactor = 85);
ALTER TABLE agg_product_totals SET (fillfactor = 70);
ALTER TABLE agg_customer_products SET (fillfactor = 90);
ALTER TABLE rfm_analysis SET (fillfactor = 80);
ALTER TABLE product_performance SET (fillfactor = 60);

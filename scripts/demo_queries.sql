-- The user guide's seven "Common Queries", verbatim: scripts/demo.sh runs them on the warehouse
-- and the batch's etl test checks each returns rows (statements end with ";").
\echo '--- 1. Top 10 Products by Revenue'
SELECT
    pp.product_id,
    pp.category,
    pp.total_sales,
    pp.total_revenue,
    pp.conversion_rate
FROM product_performance pp
WHERE pp.analysis_date = (SELECT MAX(analysis_date) FROM product_performance)
ORDER BY pp.total_revenue DESC
LIMIT 10;

\echo '--- 2. Customer Segmentation Summary'
SELECT
    segment_name,
    customer_count,
    total_revenue,
    avg_order_value,
    ROUND(100.0 * customer_count / SUM(customer_count) OVER (), 2) as pct_customers
FROM customer_segments
ORDER BY total_revenue DESC;

\echo '--- 3. Daily Sales Trend'
SELECT
    d.date,
    COUNT(DISTINCT fs.transaction_id) as num_orders,
    SUM(fs.total_amount) as revenue,
    AVG(fs.total_amount) as avg_order_value
FROM fact_sales fs
JOIN dim_date d ON fs.date_id = d.date_id
GROUP BY d.date
ORDER BY d.date DESC
LIMIT 30;

\echo '--- 4. Product Views vs Sales (Conversion)'
SELECT
    p.category,
    COUNT(DISTINCT fpv.event_id) as total_views,
    COUNT(DISTINCT fs.transaction_id) as total_sales,
    ROUND(100.0 * COUNT(DISTINCT fs.transaction_id) /
          NULLIF(COUNT(DISTINCT fpv.event_id), 0), 2) as conversion_rate
FROM dim_products p
LEFT JOIN fact_product_views fpv ON p.product_id_pk = fpv.product_id_pk AND p.is_current = TRUE
LEFT JOIN fact_sales fs ON p.product_id_pk = fs.product_id_pk
GROUP BY p.category
ORDER BY conversion_rate DESC;

\echo '--- 5. Customer Lifetime Value (Top 20)'
SELECT
    dc.user_id,
    dc.customer_segment,
    dc.total_transactions,
    dc.total_spent,
    dc.avg_order_value,
    dc.first_transaction_date,
    dc.last_transaction_date
FROM dim_customers dc
WHERE dc.is_current = TRUE
ORDER BY dc.total_spent DESC
LIMIT 20;

\echo '--- 6. Sales by Country'
SELECT
    g.country,
    COUNT(DISTINCT fs.transaction_id) as num_orders,
    SUM(fs.total_amount) as revenue,
    AVG(fs.total_amount) as avg_order_value
FROM fact_sales fs
JOIN dim_geography g ON fs.geography_id = g.geography_id AND g.is_current = TRUE
GROUP BY g.country
ORDER BY revenue DESC;

\echo '--- 7. RFM Analysis - Champions'
SELECT
    user_id,
    recency_days,
    frequency_count,
    monetary_value,
    rfm_segment
FROM rfm_analysis
WHERE analysis_date = (SELECT MAX(analysis_date) FROM rfm_analysis)
  AND rfm_segment = 'Champions'
ORDER BY monetary_value DESC
LIMIT 50;

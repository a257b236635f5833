//! `product_performance`: per current product, its views, cart adds, orders, units, revenue,
//! average selling price, conversion and ranks.
//!
//! - conversion_rate: of the customers who viewed the product, the share who also bought it,
//!   in percent (so always 0..100; 0 without viewers). Buyers who never viewed it are not
//!   counted: they did not convert from a view.
//! - category_rank / overall_rank: by revenue, highest first; ties share a rank.
//! - performance_tier: 'No Sales' without orders; otherwise by where its revenue ranks among
//!   all products: the top 20 % 'Top Performer', the next 30 % 'Strong', the next 30 %
//!   'Average', the rest 'Underperformer'.

use chrono::NaiveDate;
use tokio_postgres::Transaction;

use super::{replace, Facts};
use crate::error::EtlError;
use crate::etl::plan;
use crate::figures::Figures;

const PLAN: &str = "
WITH viewed AS (
    SELECT product_id, count(*) AS views, count(DISTINCT user_id) AS viewers
    FROM views GROUP BY product_id
), added AS (
    SELECT product_id, count(*) AS adds FROM cart_adds GROUP BY product_id
), sold AS (
    -- The sum's type spelled out: over no sales at all, DataFusion plans a wider decimal than
    -- it then produces, and the plan fails.
    SELECT product_id, count(DISTINCT transaction_id) AS orders, sum(quantity) AS units,
        CAST(sum(total_amount) AS DECIMAL(24, 2)) AS revenue
    FROM sales GROUP BY product_id
), converted AS (
    SELECT v.product_id, count(*) AS buyers
    FROM (SELECT DISTINCT user_id, product_id FROM views) v
    JOIN (SELECT DISTINCT user_id, product_id FROM sales) s
        ON s.user_id = v.user_id AND s.product_id = v.product_id
    GROUP BY v.product_id
), totals AS (
    SELECT p.product_id, p.product_name, p.category,
        coalesce(v.views, 0) AS total_views, coalesce(v.viewers, 0) AS viewers,
        coalesce(a.adds, 0) AS total_cart_adds, coalesce(s.orders, 0) AS total_sales,
        coalesce(s.units, 0) AS total_quantity,
        coalesce(s.revenue, CAST(0 AS DECIMAL(24, 2))) AS total_revenue,
        coalesce(c.buyers, 0) AS buyers
    FROM products p
    LEFT JOIN viewed v ON v.product_id = p.product_id
    LEFT JOIN added a ON a.product_id = p.product_id
    LEFT JOIN sold s ON s.product_id = p.product_id
    LEFT JOIN converted c ON c.product_id = p.product_id
)
SELECT product_id, product_name, category, total_views, total_cart_adds, total_sales,
    total_quantity, total_revenue,
    CASE WHEN total_quantity > 0
        THEN round(CAST(total_revenue AS DOUBLE) / total_quantity, 2) END AS avg_price,
    CASE WHEN viewers > 0 THEN round(100.0 * buyers / viewers, 2) ELSE 0.0 END
        AS conversion_rate,
    CAST(rank() OVER (PARTITION BY category ORDER BY total_revenue DESC) AS INT)
        AS category_rank,
    CAST(rank() OVER (ORDER BY total_revenue DESC) AS INT) AS overall_rank,
    CASE WHEN total_sales = 0 THEN 'No Sales'
        WHEN percent_rank() OVER (ORDER BY total_revenue DESC) < 0.2 THEN 'Top Performer'
        WHEN percent_rank() OVER (ORDER BY total_revenue DESC) < 0.5 THEN 'Strong'
        WHEN percent_rank() OVER (ORDER BY total_revenue DESC) < 0.8 THEN 'Average'
        ELSE 'Underperformer' END AS performance_tier
FROM totals";

/// Writes the snapshot of `date`; its figures count the products analysed.
pub async fn snapshot(
    tx: &Transaction<'_>,
    facts: &Facts,
    date: NaiveDate,
) -> Result<Figures, EtlError> {
    let rows = plan(
        &[
            ("products", &facts.products),
            ("views", &facts.views),
            ("cart_adds", &facts.cart_adds),
            ("sales", &facts.sales),
        ],
        PLAN,
    )
    .await?;
    let read = facts.products.num_rows()
        + facts.views.num_rows()
        + facts.cart_adds.num_rows()
        + facts.sales.num_rows();
    replace(tx, "product_performance", date, &rows, read).await
}

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

use super::{replace, Extent, Inputs};
use crate::error::EtlError;
use crate::etl::plan;
use crate::figures::Figures;

const PLAN: &str = "
WITH totals AS (
    SELECT p.product_id, p.product_name, p.category,
        coalesce(t.views, 0) AS total_views, coalesce(t.viewers, 0) AS viewers,
        coalesce(t.cart_adds, 0) AS total_cart_adds, coalesce(t.orders, 0) AS total_sales,
        coalesce(t.units, 0) AS total_quantity,
        coalesce(t.revenue, CAST(0 AS DECIMAL(18, 2))) AS total_revenue,
        coalesce(t.buyers, 0) AS buyers
    FROM products p LEFT JOIN product_totals t ON t.product_id = p.product_id
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
    inputs: &Inputs,
    date: NaiveDate,
) -> Result<Figures, EtlError> {
    let rows = plan(
        &[
            ("products", &inputs.products),
            ("product_totals", &inputs.product_totals),
        ],
        PLAN,
    )
    .await?;
    let read = inputs.products.num_rows() + inputs.product_totals.num_rows();
    let (figures, _) = replace(
        tx,
        "product_performance",
        "product_id",
        date,
        &rows,
        Extent::Whole,
        read,
    )
    .await?;
    Ok(figures)
}

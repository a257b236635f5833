//! `dim_products` from `product_history`, SCD2: a new name, category or price makes a new
//! version; the category group and rating are overwritten on the current one.

use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field};
use globalmart_core::domain::CategoryGroup;

use super::extract::{column, schema, Kind, Source};
use super::scd2::{Dimension, Scd2};
use crate::error::EtlError;

/// The `dim_products` dimension.
#[derive(Debug)]
pub struct DimProducts;

impl Dimension for DimProducts {
    const SCD2: Scd2 = Scd2 {
        table: "dim_products",
        key: "product_id",
        versioned: &["product_name", "category", "price"],
        in_place: &["category_group", "rating"],
    };
    const SOURCE: Source = Source {
        table: "product_history",
        rows: "product versions",
        columns: &[
            column("product_id", "product_id", Kind::Text),
            column("updated_at", "updated_at", Kind::Timestamp),
            column("name", "name", Kind::Text),
            column("category", "category", Kind::Text),
            column("price", "price", Kind::Numeric(12, 2)),
            column("rating", "rating", Kind::Numeric(3, 1)),
        ],
    };
    const PREPARE: &'static str = "
        SELECT s.product_id AS key, s.updated_at AS at, s.name AS product_name, s.category,
            s.price, g.category_group, s.rating
        FROM source s LEFT JOIN category_groups g ON g.category = s.category";

    fn lookups() -> Result<Vec<(&'static str, RecordBatch)>, EtlError> {
        Ok(vec![("category_groups", category_groups()?)])
    }
}

/// The group of each of the 100 categories, from the domain model.
pub(super) fn category_groups() -> Result<RecordBatch, EtlError> {
    let pairs: Vec<(&str, &str)> = CategoryGroup::ALL
        .iter()
        .flat_map(|g| g.categories().iter().map(move |c| (*c, g.name())))
        .collect();
    let categories: StringArray = pairs.iter().map(|p| Some(p.0)).collect();
    let groups: StringArray = pairs.iter().map(|p| Some(p.1)).collect();
    Ok(RecordBatch::try_new(
        schema(vec![
            Field::new("category", DataType::Utf8, false),
            Field::new("category_group", DataType::Utf8, false),
        ]),
        vec![Arc::new(categories), Arc::new(groups)],
    )?)
}

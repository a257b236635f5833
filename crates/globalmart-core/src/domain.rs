//! The closed vocabularies of the platform: countries, payment methods, product category groups
//! and their 100 categories, and the id formats. Field values are spelled exactly as the replaced
//! platform spelled them, so its producers and its queries keep working.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// A country GlobalMart sells in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Country {
    #[serde(rename = "USA")]
    Usa,
    #[serde(rename = "UK")]
    Uk,
    Germany,
    France,
    Japan,
}

impl Country {
    /// Every country, in a stable order.
    pub const ALL: [Country; 5] = [
        Country::Usa,
        Country::Uk,
        Country::Germany,
        Country::France,
        Country::Japan,
    ];

    /// The name as it appears in events and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Country::Usa => "USA",
            Country::Uk => "UK",
            Country::Germany => "Germany",
            Country::France => "France",
            Country::Japan => "Japan",
        }
    }
}

/// How a transaction was paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PaymentMethod {
    #[serde(rename = "Credit Card")]
    CreditCard,
    #[serde(rename = "Debit Card")]
    DebitCard,
    PayPal,
    #[serde(rename = "Apple Pay")]
    ApplePay,
    #[serde(rename = "Google Pay")]
    GooglePay,
}

impl PaymentMethod {
    /// Every payment method, in a stable order.
    pub const ALL: [PaymentMethod; 5] = [
        PaymentMethod::CreditCard,
        PaymentMethod::DebitCard,
        PaymentMethod::PayPal,
        PaymentMethod::ApplePay,
        PaymentMethod::GooglePay,
    ];

    /// The name as it appears in events and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentMethod::CreditCard => "Credit Card",
            PaymentMethod::DebitCard => "Debit Card",
            PaymentMethod::PayPal => "PayPal",
            PaymentMethod::ApplePay => "Apple Pay",
            PaymentMethod::GooglePay => "Google Pay",
        }
    }
}

/// One of the seven groups the 100 product categories belong to; also what a user prefers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CategoryGroup {
    Electronics,
    #[serde(rename = "Clothing & Fashion")]
    ClothingFashion,
    #[serde(rename = "Home & Kitchen")]
    HomeKitchen,
    #[serde(rename = "Books & Media")]
    BooksMedia,
    #[serde(rename = "Sports & Outdoors")]
    SportsOutdoors,
    #[serde(rename = "Beauty & Personal Care")]
    BeautyPersonalCare,
    #[serde(rename = "Toys & Games")]
    ToysGames,
}

impl CategoryGroup {
    /// Every group, in a stable order.
    pub const ALL: [CategoryGroup; 7] = [
        CategoryGroup::Electronics,
        CategoryGroup::ClothingFashion,
        CategoryGroup::HomeKitchen,
        CategoryGroup::BooksMedia,
        CategoryGroup::SportsOutdoors,
        CategoryGroup::BeautyPersonalCare,
        CategoryGroup::ToysGames,
    ];

    /// The categories of this group.
    pub fn categories(self) -> &'static [&'static str] {
        match self {
            CategoryGroup::Electronics => &[
                "Smartphones",
                "Laptops",
                "Tablets",
                "Desktop Computers",
                "Monitors",
                "Headphones",
                "Speakers",
                "Cameras",
                "Smartwatches",
                "Televisions",
                "Gaming Consoles",
                "Computer Accessories",
                "Networking",
                "Storage Devices",
                "Printers",
            ],
            CategoryGroup::ClothingFashion => &[
                "Men's Clothing",
                "Women's Clothing",
                "Kids' Clothing",
                "Shoes",
                "Sneakers",
                "Bags & Handbags",
                "Jewelry",
                "Watches",
                "Sunglasses",
                "Activewear",
                "Outerwear",
                "Swimwear",
                "Underwear & Socks",
                "Hats & Caps",
                "Belts & Accessories",
            ],
            CategoryGroup::HomeKitchen => &[
                "Cookware",
                "Small Appliances",
                "Large Appliances",
                "Furniture",
                "Bedding",
                "Bath",
                "Home Decor",
                "Lighting",
                "Storage & Organization",
                "Cleaning Supplies",
                "Tableware",
                "Kitchen Utensils",
                "Coffee & Tea",
                "Garden & Patio",
                "Tools & Home Improvement",
            ],
            CategoryGroup::BooksMedia => &[
                "Fiction",
                "Non-Fiction",
                "Children's Books",
                "Textbooks",
                "Comics & Graphic Novels",
                "Cookbooks",
                "Biographies",
                "Science & Technology Books",
                "Music CDs",
                "Vinyl Records",
                "Movies & DVDs",
                "Audiobooks",
                "Magazines",
                "E-Readers Accessories",
            ],
            CategoryGroup::SportsOutdoors => &[
                "Fitness Equipment",
                "Yoga",
                "Cycling",
                "Camping",
                "Hiking",
                "Running",
                "Team Sports",
                "Water Sports",
                "Winter Sports",
                "Fishing",
                "Golf",
                "Tennis",
                "Sports Nutrition",
                "Outdoor Clothing",
            ],
            CategoryGroup::BeautyPersonalCare => &[
                "Skincare",
                "Makeup",
                "Hair Care",
                "Fragrances",
                "Nail Care",
                "Men's Grooming",
                "Oral Care",
                "Bath & Body",
                "Sun Care",
                "Beauty Tools",
                "Vitamins & Supplements",
                "Shaving",
                "Deodorants",
                "Personal Care Appliances",
            ],
            CategoryGroup::ToysGames => &[
                "Action Figures",
                "Dolls",
                "Board Games",
                "Puzzles",
                "Building Blocks",
                "Educational Toys",
                "Outdoor Toys",
                "Remote Control Toys",
                "Stuffed Animals",
                "Video Games",
                "Card Games",
                "Baby Toys",
                "Arts & Crafts",
            ],
        }
    }

    /// The price range of products in this group, in dollars (inclusive).
    pub fn price_range(self) -> (Decimal, Decimal) {
        let (low, high) = match self {
            CategoryGroup::Electronics => (50, 2000),
            CategoryGroup::ClothingFashion => (10, 200),
            CategoryGroup::HomeKitchen => (20, 1000),
            CategoryGroup::BooksMedia => (5, 50),
            CategoryGroup::SportsOutdoors => (15, 500),
            CategoryGroup::BeautyPersonalCare => (5, 150),
            CategoryGroup::ToysGames => (10, 200),
        };
        (Decimal::from(low), Decimal::from(high))
    }

    /// The group's name as events and the warehouse write it ("Home & Kitchen").
    pub fn name(self) -> &'static str {
        match self {
            CategoryGroup::Electronics => "Electronics",
            CategoryGroup::ClothingFashion => "Clothing & Fashion",
            CategoryGroup::HomeKitchen => "Home & Kitchen",
            CategoryGroup::BooksMedia => "Books & Media",
            CategoryGroup::SportsOutdoors => "Sports & Outdoors",
            CategoryGroup::BeautyPersonalCare => "Beauty & Personal Care",
            CategoryGroup::ToysGames => "Toys & Games",
        }
    }

    /// The group a category belongs to, if it is one of the 100 known categories.
    pub fn of_category(category: &str) -> Option<CategoryGroup> {
        CategoryGroup::ALL
            .into_iter()
            .find(|group| group.categories().contains(&category))
    }
}

/// The id formats of the event contract (docs/ARCHITECTURE.md, "The event contract"): a prefix and eight digits (`USER_00000042`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    User,
    Product,
}

impl IdKind {
    const DIGITS: usize = 8;

    fn prefix(self) -> &'static str {
        match self {
            IdKind::User => "USER_",
            IdKind::Product => "PROD_",
        }
    }

    /// The printf-style pattern, as error messages show it.
    pub fn pattern(self) -> &'static str {
        match self {
            IdKind::User => "USER_%08d",
            IdKind::Product => "PROD_%08d",
        }
    }

    /// Formats the id with number `n` (`IdKind::User.format(42)` is `USER_00000042`).
    pub fn format(self, n: u32) -> String {
        // By hand rather than format!: a course catalogue formats ten million of them.
        let mut digits = itoa::Buffer::new();
        let digits = digits.format(n);
        let prefix = self.prefix();
        let zeros = Self::DIGITS.saturating_sub(digits.len());
        let mut id = String::with_capacity(prefix.len() + zeros + digits.len());
        id.push_str(prefix);
        id.extend(std::iter::repeat_n('0', zeros));
        id.push_str(digits);
        id
    }

    /// Whether `id` is in this kind's pattern.
    pub fn matches(self, id: &str) -> bool {
        id.strip_prefix(self.prefix()).is_some_and(|digits| {
            digits.len() == Self::DIGITS && digits.bytes().all(|b| b.is_ascii_digit())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn there_are_100_distinct_categories_in_7_groups() {
        let all: Vec<&str> = CategoryGroup::ALL
            .iter()
            .flat_map(|g| g.categories().iter().copied())
            .collect();
        assert_eq!(all.len(), 100);
        assert_eq!(all.iter().collect::<HashSet<_>>().len(), 100);
        assert_eq!(
            CategoryGroup::of_category("Board Games"),
            Some(CategoryGroup::ToysGames)
        );
        assert_eq!(CategoryGroup::of_category("Spaceships"), None);
    }

    #[test]
    fn ids_format_and_match_their_pattern() {
        assert_eq!(IdKind::User.format(42), "USER_00000042");
        assert_eq!(IdKind::Product.format(0), "PROD_00000000");
        assert_eq!(IdKind::User.format(10_000_000), "USER_10000000");
        assert_eq!(IdKind::User.format(123_456_789), "USER_123456789");
        assert!(IdKind::Product.matches("PROD_00000999"));
        for bad in [
            "PROD_0000099",
            "PROD_000009999",
            "USER_00000001",
            "PROD_0000009x",
            "",
        ] {
            assert!(!IdKind::Product.matches(bad), "{bad} must not match");
        }
    }

    #[test]
    fn enums_use_the_replaced_platform_spelling() -> Result<(), serde_json::Error> {
        assert_eq!(serde_json::to_string(&Country::Usa)?, "\"USA\"");
        assert_eq!(
            serde_json::to_string(&PaymentMethod::ApplePay)?,
            "\"Apple Pay\""
        );
        assert_eq!(
            serde_json::from_str::<CategoryGroup>("\"Home & Kitchen\"")?,
            CategoryGroup::HomeKitchen
        );
        for c in Country::ALL {
            assert_eq!(serde_json::to_string(&c)?, format!("\"{}\"", c.as_str()));
        }
        for p in PaymentMethod::ALL {
            assert_eq!(serde_json::to_string(&p)?, format!("\"{}\"", p.as_str()));
        }
        Ok(())
    }
}

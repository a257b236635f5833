//! Kafka topic names (docs/ARCHITECTURE.md, "The event contract"). Event topics are keyed by user_id, catalogue topics by the
//! record's id and compacted, so a consumer that starts late still sees every product and user.

/// A topic of the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    Transactions,
    ProductViews,
    CartEvents,
    Products,
    Users,
    Alerts,
}

impl Topic {
    /// Every topic, in the order `dev-up.sh` creates them.
    pub const ALL: [Topic; 6] = [
        Topic::Transactions,
        Topic::ProductViews,
        Topic::CartEvents,
        Topic::Alerts,
        Topic::Products,
        Topic::Users,
    ];

    /// The topic's name on the broker.
    pub fn name(self) -> &'static str {
        match self {
            Topic::Transactions => "transactions-topic",
            Topic::ProductViews => "product-views-topic",
            Topic::CartEvents => "cart-events-topic",
            Topic::Products => "products-topic",
            Topic::Users => "users-topic",
            Topic::Alerts => "alerts-topic",
        }
    }

    /// The topic with this name, if it is one of ours.
    pub fn from_name(name: &str) -> Option<Topic> {
        Topic::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Catalogue topics keep the latest record per key (`cleanup.policy=compact`).
    pub fn is_compacted(self) -> bool {
        matches!(self, Topic::Products | Topic::Users)
    }
}

/// Partitions per topic on the local stack: the unit of stream parallelism
/// (docs/ARCHITECTURE.md, "Scaling").
pub const DEFAULT_PARTITIONS: i32 = 3;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_only_catalogue_is_compacted() {
        for t in Topic::ALL {
            assert_eq!(Topic::from_name(t.name()), Some(t));
        }
        assert_eq!(Topic::from_name("orders"), None);
        let compacted: Vec<_> = Topic::ALL
            .into_iter()
            .filter(|t| t.is_compacted())
            .collect();
        assert_eq!(compacted, [Topic::Products, Topic::Users]);
    }
}

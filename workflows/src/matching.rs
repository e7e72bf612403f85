//! Which subscriptions an event reaches: exact names, `prefix.*` wildcards and `*`.

use crate::envelope::EventType;

/// A subscription's event filter: `order.placed`, `order.*` (any event under `order.`) or `*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventPattern(String);

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid event pattern {0:?}: use an event name like order.placed, a prefix wildcard like order.*, or *"
)]
pub struct InvalidPattern(pub String);

impl EventPattern {
    /// Parse a pattern; the part before `.*` must itself be a valid dotted name.
    pub fn parse(raw: &str) -> Result<Self, InvalidPattern> {
        let ok = raw == "*"
            || match raw.strip_suffix(".*") {
                Some(prefix) => crate::envelope::valid_dotted_name(prefix, 1),
                None => EventType::parse(raw).is_ok(),
            };
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidPattern(raw.to_owned()))
        }
    }

    /// The stored spelling.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this pattern selects `event_type`.
    pub fn matches(&self, event_type: &EventType) -> bool {
        let ty = event_type.as_str();
        match self.0.strip_suffix('*') {
            Some("") => true,
            Some(prefix_with_dot) => ty.starts_with(prefix_with_dot),
            None => self.0 == ty,
        }
    }
}

/// Whether any of `patterns` selects `event_type`.
pub fn matches_any(patterns: &[EventPattern], event_type: &EventType) -> bool {
    patterns.iter().any(|p| p.matches(event_type))
}

/// Every pattern that selects `event_type`: the name itself, `*`, and `p.*` for each proper prefix `p`.
///
/// The database finds matching subscriptions with `events && candidate_patterns(type)`,
/// which a GIN index answers; `matches` and this function must agree (a property test checks it).
pub fn candidate_patterns(event_type: &EventType) -> Vec<String> {
    let ty = event_type.as_str();
    let mut out = vec!["*".to_owned(), ty.to_owned()];
    for (i, _) in ty.match_indices('.') {
        out.push(format!("{}.*", &ty[..i]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ty(s: &str) -> EventType {
        EventType::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn pat(s: &str) -> EventPattern {
        EventPattern::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn exact_wildcard_and_star_patterns_match_as_documented() {
        assert!(pat("order.placed").matches(&ty("order.placed")));
        assert!(!pat("order.placed").matches(&ty("order.fulfilled")));
        assert!(pat("order.*").matches(&ty("order.placed")));
        assert!(pat("order.*").matches(&ty("order.item.added")));
        assert!(!pat("order.*").matches(&ty("orders.placed")));
        assert!(!pat("order.*").matches(&ty("product.updated")));
        assert!(pat("*").matches(&ty("inventory.updated")));
    }

    #[test]
    fn malformed_patterns_are_refused() {
        for bad in [
            "",
            "order",
            "order.",
            ".placed",
            "order.**",
            "Order.Placed",
            "order.*.x",
            "*.placed",
            "order placed",
        ] {
            assert!(EventPattern::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn candidates_of_a_nested_type_cover_every_prefix() {
        let mut c = candidate_patterns(&ty("order.item.added"));
        c.sort();
        assert_eq!(c, ["*", "order.*", "order.item.*", "order.item.added"]);
    }

    fn event_type_strategy() -> impl Strategy<Value = String> {
        proptest::collection::vec("[a-c][a-c0-9_]{0,2}", 2..4).prop_map(|parts| parts.join("."))
    }

    fn pattern_strategy() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("*".to_owned()),
            event_type_strategy(),
            proptest::collection::vec("[a-c][a-c0-9_]{0,2}", 1..3)
                .prop_map(|p| format!("{}.*", p.join("."))),
        ]
    }

    proptest! {
        #[test]
        fn sql_candidates_agree_with_matches(t in event_type_strategy(), p in pattern_strategy()) {
            let event_type = ty(&t);
            let pattern = pat(&p);
            prop_assert_eq!(pattern.matches(&event_type), candidate_patterns(&event_type).contains(&p));
        }
    }
}

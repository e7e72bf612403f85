//! Typed strings at the edge: request fields and query parameters are parsed into these while poem-openapi
//! reads the request, so a handler never sees (and never forgets to check) a value the database cannot store.
//!
//! Each type refuses what it cannot hold with a stable problem code (see [`refusal_code`]): a parse failure of
//! one of these types answers `422` with that code instead of the generic `400 invalid_request`.

use std::borrow::Cow;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{
    ParseError, ParseFromJSON, ParseFromParameter, ParseResult, ToJSON, Type,
};
use serde_json::Value;

use super::code::ProblemCode;

/// Characters no name or filter may contain: C0 and C1 control characters (NUL among them, which Postgres
/// cannot store in `text` or `jsonb`).
fn is_control(c: char) -> bool {
    c.is_control()
}

/// What counts as blank when trimming a name: Unicode white space and U+FEFF, exactly the set the
/// schema's pattern spells out, so the document and the server agree on every string.
fn is_blank(c: char) -> bool {
    c.is_whitespace() || c == '\u{feff}'
}

/// No control character anywhere.
const NO_CONTROL: &str = r"^[^\u0000-\u001F\u007F-\u009F]*$";
/// No control character, and at least one character that is not blank.
const NOT_BLANK: &str = r"^[^\u0000-\u001F\u007F-\u009F]*[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000\uFEFF][^\u0000-\u001F\u007F-\u009F]*$";

/// Longest name or filter value, in characters.
pub const MAX_CHARS: usize = 200;

/// The stable problem code for a poem-openapi parse failure `reason`, when one of this module's types failed.
/// poem-openapi starts the message of a custom parse error with `failed to parse "<type name>"` and appends
/// the enclosing types after it, so the prefix names the innermost type that refused.
pub fn refusal_code(reason: &str) -> Option<ProblemCode> {
    [
        (Name::NAME, Name::CODE),
        (FilterText::NAME, FilterText::CODE),
        (PayloadFilter::NAME, PayloadFilter::CODE),
        (OrderingKey::NAME, OrderingKey::CODE),
        (Settings::NAME, Settings::CODE),
    ]
    .into_iter()
    .find(|(name, _)| {
        reason
            .strip_prefix("failed to parse \"")
            .and_then(|r| r.strip_prefix(name))
            .is_some_and(|r| r.starts_with('"'))
    })
    .map(|(_, code)| code)
}

/// Implements poem-openapi's `Type` for a string newtype with the given schema.
macro_rules! string_type {
    ($ty:ident, $schema:expr) => {
        impl Type for $ty {
            const IS_REQUIRED: bool = true;
            type RawValueType = Self;
            type RawElementValueType = Self;

            fn name() -> Cow<'static, str> {
                Self::NAME.into()
            }

            fn schema_ref() -> MetaSchemaRef {
                MetaSchemaRef::Inline(Box::new($schema))
            }

            fn as_raw_value(&self) -> Option<&Self::RawValueType> {
                Some(self)
            }

            fn raw_element_iter<'a>(
                &'a self,
            ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
                Box::new(self.as_raw_value().into_iter())
            }
        }

        impl ToJSON for $ty {
            fn to_json(&self) -> Option<Value> {
                Some(Value::String(self.0.clone()))
            }
        }

        impl ParseFromJSON for $ty {
            fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
                match value {
                    None | Some(Value::Null) => Err(ParseError::expected_input()),
                    // Only a JSON string: `123` or `true` are not names (poem-openapi's `String` would take them).
                    Some(Value::String(s)) => Self::parse(&s).map_err(ParseError::custom),
                    Some(_) => Err(ParseError::custom("must be a JSON string")),
                }
            }
        }

        impl ParseFromParameter for $ty {
            fn parse_from_parameter(value: &str) -> ParseResult<Self> {
                Self::parse(value).map_err(ParseError::custom)
            }
        }

        impl std::ops::Deref for $ty {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }
    };
}

/// What every typed request string requires: 1 to `max_chars` characters ([`MAX_CHARS`] unless the type says
/// otherwise), none of them a control character.
fn check_text(raw: &str, max_chars: usize) -> Result<(), String> {
    if !(1..=max_chars).contains(&raw.chars().count()) {
        return Err(format!("must be 1-{max_chars} characters"));
    }
    if raw.chars().any(is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

fn string_schema(pattern: &str) -> MetaSchema {
    MetaSchema {
        min_length: Some(1),
        max_length: Some(MAX_CHARS),
        pattern: Some(pattern.to_owned()),
        ..MetaSchema::new("string")
    }
}

/// A display name: a JSON string of 1–200 characters, not blank, without control characters; stored trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(String);

impl Name {
    const NAME: &'static str = "Name";
    const CODE: ProblemCode = ProblemCode::InvalidName;

    /// Check `raw` and trim it.
    pub fn parse(raw: &str) -> Result<Self, String> {
        check_text(raw, MAX_CHARS)?;
        let trimmed = raw.trim_matches(is_blank);
        if trimmed.is_empty() {
            return Err("must not be blank".into());
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The trimmed name.
    pub fn into_inner(self) -> String {
        self.0
    }
}

string_type!(Name, string_schema(NOT_BLANK));

/// An exact-match filter value (a query parameter): 1–200 characters without control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterText(String);

impl FilterText {
    const NAME: &'static str = "FilterText";
    const CODE: ProblemCode = ProblemCode::InvalidFilter;

    /// Check `raw` (kept as given: a filter matches exactly).
    pub fn parse(raw: &str) -> Result<Self, String> {
        check_text(raw, MAX_CHARS)?;
        Ok(Self(raw.to_owned()))
    }

    /// The value, exactly as given (a filter matches exactly).
    pub fn into_inner(self) -> String {
        self.0
    }
}

string_type!(FilterText, string_schema(NO_CONTROL));

/// Longest payload filter, in characters.
pub const MAX_PAYLOAD_FILTER_CHARS: usize = 1000;

/// A subscription's payload filter: an SQL/JSON path predicate (PostgreSQL `jsonpath`) of 1–1000 characters without
/// control characters. This type checks the characters only; Postgres parses the expression (see
/// `db::paths::check_payload_filter`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadFilter(String);

impl PayloadFilter {
    const NAME: &'static str = "PayloadFilter";
    const CODE: ProblemCode = ProblemCode::InvalidPayloadFilter;

    /// Check `raw` (kept as given).
    pub fn parse(raw: &str) -> Result<Self, String> {
        check_text(raw, MAX_PAYLOAD_FILTER_CHARS)?;
        Ok(Self(raw.to_owned()))
    }
}

string_type!(
    PayloadFilter,
    MetaSchema {
        max_length: Some(MAX_PAYLOAD_FILTER_CHARS),
        ..string_schema(NO_CONTROL)
    }
);

/// Longest ordering key path, in characters.
pub const MAX_ORDERING_KEY_CHARS: usize = 200;

/// An ordered subscription's ordering key: an SQL/JSON path (PostgreSQL `jsonpath`) of 1–200 characters without
/// control characters. This type checks the characters only; Postgres parses the path (see
/// `db::paths::check_ordering_key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderingKey(String);

impl OrderingKey {
    const NAME: &'static str = "OrderingKey";
    const CODE: ProblemCode = ProblemCode::InvalidOrderingKey;

    /// Check `raw` (kept as given).
    pub fn parse(raw: &str) -> Result<Self, String> {
        check_text(raw, MAX_ORDERING_KEY_CHARS)?;
        Ok(Self(raw.to_owned()))
    }

    /// A path as Postgres stored and printed it (checked when it was set).
    pub fn stored(path: String) -> Self {
        Self(path)
    }
}

string_type!(
    OrderingKey,
    MetaSchema {
        max_length: Some(MAX_ORDERING_KEY_CHARS),
        ..string_schema(NO_CONTROL)
    }
);

/// Connector settings: a JSON object in which no key or string, at any depth, contains NUL (which `jsonb`
/// cannot store). Other control characters are allowed: a setting may legitimately hold a multi-line text.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings(Value);

impl Settings {
    const NAME: &'static str = "Settings";
    const CODE: ProblemCode = ProblemCode::InvalidSettings;

    /// Check `value`: an object without NUL in any key or string.
    pub fn parse(value: Value) -> Result<Self, String> {
        if !value.is_object() {
            return Err("settings must be a JSON object".into());
        }
        if let Some(path) = nul_at(&value, "settings") {
            return Err(format!("{path} contains a NUL character"));
        }
        Ok(Self(value))
    }

    /// The settings object, borrowed.
    pub fn as_value(&self) -> &Value {
        &self.0
    }

    /// The settings object, owned (to store it).
    pub fn into_inner(self) -> Value {
        self.0
    }
}

/// Where in `value` a NUL character occurs (in a key or a string), as a path like `settings.a[2]`.
/// Recursion is bounded by serde_json's nesting limit (128), which refused anything deeper while parsing.
pub(crate) fn nul_at(value: &Value, path: &str) -> Option<String> {
    match value {
        Value::String(s) if s.contains('\0') => Some(path.to_owned()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_at(v, &format!("{path}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                Some(format!("a key of {path}"))
            } else {
                nul_at(v, &format!("{path}.{k}"))
            }
        }),
        _ => None,
    }
}

impl Type for Settings {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        Self::NAME.into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            additional_properties: Some(Box::new(MetaSchemaRef::Inline(Box::new(MetaSchema::ANY)))),
            ..MetaSchema::new("object")
        }))
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

impl ParseFromJSON for Settings {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            None | Some(Value::Null) => Err(ParseError::expected_input()),
            Some(v) => Self::parse(v).map_err(ParseError::custom),
        }
    }
}

impl ToJSON for Settings {
    fn to_json(&self) -> Option<Value> {
        Some(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_are_trimmed_strings_without_control_characters() {
        assert_eq!(
            Name::parse("  Shop  ").map(Name::into_inner),
            Ok("Shop".into())
        );
        for bad in ["", "   ", "\u{feff}", "a\0b", "tab\there", &"x".repeat(201)] {
            assert!(Name::parse(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(
            Name::parse(&"é".repeat(200)).is_ok(),
            "characters, not bytes"
        );
    }

    #[test]
    fn only_json_strings_are_names() {
        for v in [json!(123), json!(true), json!(["a"]), json!({"a": 1})] {
            assert!(Name::parse_from_json(Some(v.clone())).is_err(), "{v}");
        }
        assert!(Name::parse_from_json(Some(json!("ok"))).is_ok());
    }

    #[test]
    fn a_parse_failure_names_its_stable_code() {
        let err = Name::parse_from_json(Some(json!("a\u{0}"))).expect_err("refused");
        assert_eq!(
            refusal_code(&err.into_message()),
            Some(ProblemCode::InvalidName)
        );
        let err =
            Settings::parse_from_json(Some(json!({"a": {"b": ["x\u{0}"]}}))).expect_err("nul");
        let message = err.into_message();
        assert_eq!(refusal_code(&message), Some(ProblemCode::InvalidSettings));
        assert!(message.contains("settings.a.b[0]"), "{message}");
        assert_eq!(refusal_code(r#"failed to parse "NameX": no"#), None);
        assert_eq!(
            refusal_code(r#"Expected input type "Name", found 1."#),
            None
        );
    }

    #[test]
    fn settings_refuse_nul_in_keys_and_non_objects() {
        assert!(Settings::parse(json!({"k\u{0}": 1})).is_err());
        assert!(Settings::parse(json!([])).is_err());
        assert!(Settings::parse(json!({"pem": "line1\nline2"})).is_ok());
    }
}

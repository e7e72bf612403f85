use serde_json::{Value, json};

use super::*;
use crate::catalog;

fn entry(ty: &str) -> &'static CatalogEntry {
    get(ty).unwrap_or_else(|| panic!("{ty} is not in the catalog"))
}

/// A validator of `schema` that also checks `format` (`date-time`, `email`, `uri`), which 2020-12 only annotates.
fn validator(schema: &Value) -> jsonschema::Validator {
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(schema)
        .unwrap_or_else(|e| panic!("schema does not compile: {e}"))
}

fn errors(schema: &Value, instance: &Value) -> Vec<String> {
    validator(schema)
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// Catches a type dropped or renamed by an edit of the data file (subscribers and the admin panel rely on them).
#[test]
fn the_compiled_catalog_lists_every_type_the_platform_is_known_to_emit() {
    let types: Vec<&str> = all().iter().map(|e| e.event_type.as_str()).collect();
    for known in [
        "order.placed",
        "order.updated",
        "order.paid",
        "order.fulfilled",
        "order.cancelled",
        "product.created",
        "product.updated",
        "product.deleted",
        "inventory.updated",
        "category.created",
        "category.updated",
        "category.deleted",
        "customer.created",
        "customer.updated",
        "newsletter.subscribed",
        "cart.created",
        "cart.updated",
        "checkout.started",
        "checkout.completed",
        "return.created",
        "return.updated",
    ] {
        assert!(types.contains(&known), "{known} is missing");
    }
    assert!(all().iter().all(|e| !e.description.trim().is_empty()));
    assert_eq!(
        get("order.placed").map(|e| e.event_type.as_str()),
        Some("order.placed")
    );
    assert!(get("order.shipped").is_none());
}

/// Catches a data file whose entries a reader (or `get`'s binary search) cannot rely on.
#[test]
fn unsorted_duplicate_malformed_or_misspelt_entries_are_refused() {
    let e = |ty: &str| json!({"type": ty, "description": "d", "schema": {}, "example": {}});
    let text = |entries: Vec<Value>| Value::Array(entries).to_string();
    assert!(parse(&text(vec![e("a.b"), e("a.c")])).is_ok());
    assert_eq!(
        parse(&text(vec![e("a.c"), e("a.b")])),
        Err(CatalogError::Unsorted("a.b".into()))
    );
    assert_eq!(
        parse(&text(vec![e("a.b"), e("a.b")])),
        Err(CatalogError::Unsorted("a.b".into()))
    );
    assert!(matches!(
        parse(&text(vec![e("Order.Placed")])),
        Err(CatalogError::Malformed(_))
    ));
    let mut typo = e("a.b");
    typo["exmaple"] = json!({});
    assert!(matches!(
        parse(&text(vec![typo])),
        Err(CatalogError::Malformed(_))
    ));
    let mut not_object = e("a.b");
    not_object["example"] = json!([1]);
    assert_eq!(
        parse(&text(vec![not_object])),
        Err(CatalogError::NotAnObject("a.b".into()))
    );
}

/// Catches a schema that is not valid JSON Schema 2020-12, and an example (or `previousAttributes` example) that
/// does not follow its own type's schema.
#[test]
fn every_schema_is_valid_2020_12_and_every_example_follows_its_schema() {
    for e in all() {
        let ty = e.event_type.as_str();
        assert_eq!(
            e.schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{ty}"
        );
        if let Err(err) = jsonschema::draft202012::meta::validate(&e.schema) {
            panic!("{ty}: schema is not valid 2020-12: {err}");
        }
        let errs = errors(&e.schema, &e.example);
        assert!(errs.is_empty(), "{ty} example: {errs:?}");
        if let Some(previous) = &e.previous_attributes {
            // Old values of changed fields: each is a field of `data` and follows that field's schema.
            let mut fields = json!({"type": "object", "properties": e.schema["properties"],
                "additionalProperties": false});
            if let Some(defs) = e.schema.get("$defs") {
                fields["$defs"] = defs.clone();
            }
            let errs = errors(&fields, previous);
            assert!(errs.is_empty(), "{ty} previousAttributes: {errs:?}");
        }
    }
}

/// The keywords of `schema` and its subschemas that this catalog does not use (a misspelt `requried` is valid
/// JSON Schema, silently ignored: the meta-schema cannot catch it).
fn unknown_keywords(schema: &Value, at: &str, out: &mut Vec<String>) {
    const KEYWORDS: [&str; 18] = [
        "$schema",
        "$defs",
        "$ref",
        "type",
        "description",
        "required",
        "properties",
        "items",
        "additionalProperties",
        "anyOf",
        "not",
        "enum",
        "pattern",
        "format",
        "minLength",
        "minimum",
        "minItems",
        "title",
    ];
    let Some(map) = schema.as_object() else {
        return;
    };
    for (key, value) in map {
        let here = format!("{at}/{key}");
        match key.as_str() {
            "properties" | "$defs" => {
                value
                    .as_object()
                    .into_iter()
                    .flatten()
                    .for_each(|(name, sub)| {
                        unknown_keywords(sub, &format!("{here}/{name}"), out);
                    })
            }
            "anyOf" => value.as_array().into_iter().flatten().for_each(|sub| {
                unknown_keywords(sub, &here, out);
            }),
            "items" | "additionalProperties" | "not" => unknown_keywords(value, &here, out),
            k if !KEYWORDS.contains(&k) => out.push(here),
            _ => {}
        }
    }
}

/// Catches a misspelt keyword, which JSON Schema ignores (so the schema would promise less than it seems to).
#[test]
fn schemas_use_no_unknown_keyword() {
    let mut unknown = Vec::new();
    for e in all() {
        unknown_keywords(&e.schema, e.event_type.as_str(), &mut unknown);
    }
    assert!(unknown.is_empty(), "unknown keywords: {unknown:?}");
    let mut typo = Vec::new();
    unknown_keywords(
        &json!({"properties": {"a": {"requried": []}}}),
        "t",
        &mut typo,
    );
    assert_eq!(typo, ["t/properties/a/requried"]);
}

/// Catches a catalog example the marketplace connectors could not sync (docs/connectors.md, `workflows::catalog`).
#[test]
fn connector_events_examples_parse_through_the_connectors_parsers() {
    for ty in ["product.updated", "product.created"] {
        let listings = catalog::listings(&entry(ty).example).unwrap_or_else(|e| panic!("{e}"));
        let skus: Vec<&str> = listings.iter().map(|l| l.sku.as_str()).collect();
        assert_eq!(skus, ["TS-42", "TS-43"], "{ty}");
        assert!(listings.iter().all(|l| l.active && l.price.is_some()));
    }
    let levels = catalog::stock_levels(&entry("inventory.updated").example).expect("inventory");
    assert_eq!(levels.len(), 2);
    let f = catalog::fulfillment(&entry("order.fulfilled").example).expect("fulfillment");
    assert_eq!(f.channel.map(|c| c.connector).as_deref(), Some("amazon"));
}

/// `data` with `pointer` set to `value` (removed when `value` is `None`).
fn with(data: &Value, pointer: &str, value: Option<Value>) -> Value {
    let mut out = data.clone();
    let (parent, key) = pointer.rsplit_once('/').unwrap_or(("", pointer));
    let Some(slot) = out.pointer_mut(parent).and_then(Value::as_object_mut) else {
        panic!("no object at {parent}");
    };
    match value {
        Some(v) => slot.insert(key.to_owned(), v),
        None => slot.remove(key),
    };
    out
}

/// Checks each `(data, valid)` case against `ty`'s schema and `parses`: the schema must accept exactly the valid
/// ones, and the parser must accept whatever the schema accepts and refuse the others too (so the check is not
/// vacuous: every refusal here is one the connectors would dead-letter).
fn schema_agrees_with_parser(ty: &str, parses: fn(&Value) -> bool, cases: &[(Value, bool)]) {
    let schema = validator(&entry(ty).schema);
    for (n, (data, valid)) in cases.iter().enumerate() {
        let schema_ok = schema.is_valid(data);
        assert_eq!(
            schema_ok, *valid,
            "{ty} case {n}: the schema said {schema_ok}"
        );
        assert_eq!(parses(data), *valid, "{ty} case {n}: the parser disagrees");
    }
}

/// Catches a `product.updated` schema that admits payloads the connectors refuse: what the catalog calls valid
/// must sync.
#[test]
fn what_the_product_schema_accepts_the_connectors_accept() {
    let p = &entry("product.updated").example;
    let simple = with(&with(p, "/variants", None), "/sku", Some(json!("TS")));
    let cases = [
        (with(p, "/variants/0/sku", None), false),
        (with(p, "/variants/0/sku", Some(json!(" "))), false),
        (with(p, "/title", None), false),
        (with(p, "/price/amount", Some(json!("ten"))), false),
        (with(p, "/price/amount", Some(json!("1.2345678"))), false),
        (with(p, "/price/amount", Some(json!(89.9))), false),
        (with(p, "/condition", Some(json!("broken"))), false),
        (with(p, "/variants", Some(json!([]))), false),
        (with(p, "/variants", None), false),
        (simple, true),
        (with(p, "/status", Some(json!("ARCHIVED"))), true),
    ];
    schema_agrees_with_parser("product.updated", |d| catalog::listings(d).is_ok(), &cases);
}

/// Catches an `inventory.updated` schema that admits payloads the connectors refuse.
#[test]
fn what_the_inventory_schema_accepts_the_connectors_accept() {
    let i = &entry("inventory.updated").example;
    let cases = [
        (with(i, "/items", Some(json!([]))), false),
        (with(i, "/items/0/quantity", Some(json!("6"))), false),
        (with(i, "/items/0/sku", None), false),
        (with(i, "/items/0/quantity", Some(json!(-3))), true),
        (json!({"sku": "TS-42", "quantity": 6}), true),
        (json!({"sku": "TS-42"}), false),
    ];
    schema_agrees_with_parser(
        "inventory.updated",
        |d| catalog::stock_levels(d).is_ok(),
        &cases,
    );
}

/// Catches an `order.fulfilled` schema that admits payloads the Amazon connector refuses.
#[test]
fn what_the_fulfillment_schema_accepts_the_connectors_accept() {
    let f = &entry("order.fulfilled").example;
    let cases = [
        (with(f, "/items", Some(json!([]))), false),
        (with(f, "/trackingNumber", None), false),
        (with(f, "/shippedAt", Some(json!("yesterday"))), false),
        (with(f, "/items/0/quantity", Some(json!("1"))), false),
        (
            with(f, "/channel", Some(json!({"connector": "amazon"}))),
            false,
        ),
        (with(f, "/channel", Some(Value::Null)), true),
        (with(f, "/channel", None), true),
    ];
    schema_agrees_with_parser(
        "order.fulfilled",
        |d| catalog::fulfillment(d).is_ok(),
        &cases,
    );
}

/// Catches a second, diverging notion of which types a subscription pattern selects.
#[test]
fn unknown_patterns_are_those_that_select_no_catalog_type() {
    let patterns: Vec<String> = [
        "order.placed",
        "order.*",
        "*",
        "checkout.*",
        "order.shipped",
        "orders.*",
        "order.placed.*",
        "foo.bar",
        "not a pattern",
    ]
    .map(String::from)
    .into();
    assert_eq!(
        unknown_patterns(&patterns),
        [
            "order.shipped",
            "orders.*",
            "order.placed.*",
            "foo.bar",
            "not a pattern"
        ]
    );
    assert!(unknown_patterns(&[]).is_empty());
}

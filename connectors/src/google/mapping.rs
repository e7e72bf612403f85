//! Google Merchant API (products v1) shapes: a listing as a `ProductInput`, and the service-account JWT claims.

use serde_json::{Value, json};

use workflows::catalog::Listing;

/// Where product inputs go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feed<'a> {
    /// Merchant Center account id.
    pub merchant_id: &'a str,
    /// Two-letter language of the content ("en").
    pub content_language: &'a str,
    /// Feed label ("US").
    pub feed_label: &'a str,
}

/// The `ProductInput` body of `accounts.productInputs.insert` (replaces the input with the same offer id,
/// language and feed label, so a retry does not duplicate it).
pub fn product_input(l: &Listing, feed: &Feed<'_>) -> Value {
    let in_stock = l.active && l.quantity.is_none_or(|q| q > 0);
    let mut attrs = json!({
        "title": l.title,
        "availability": if in_stock { "IN_STOCK" } else { "OUT_OF_STOCK" },
        "condition": l.condition.to_uppercase(),
    });
    let a = attrs.as_object_mut().expect("object literal");
    if let Some(d) = &l.description {
        a.insert("description".into(), json!(d));
    }
    if let Some(link) = &l.url {
        a.insert("link".into(), json!(link));
    }
    if let Some((first, rest)) = l.image_urls.split_first() {
        a.insert("imageLink".into(), json!(first));
        if !rest.is_empty() {
            a.insert("additionalImageLinks".into(), json!(rest));
        }
    }
    if let Some(brand) = &l.brand {
        a.insert("brand".into(), json!(brand));
    }
    if let Some(gtin) = &l.gtin {
        a.insert("gtins".into(), json!([gtin]));
    }
    if let Some(group) = &l.product_id {
        a.insert("itemGroupId".into(), json!(group));
    }
    if let Some(price) = &l.price {
        a.insert(
            "price".into(),
            json!({"amountMicros": price.micros().unwrap_or(0).to_string(), "currencyCode": price.currency}),
        );
    }
    json!({
        "offerId": l.sku,
        "contentLanguage": feed.content_language,
        "feedLabel": feed.feed_label,
        "productAttributes": attrs,
    })
}

/// OAuth scope of the Merchant API.
pub const SCOPE: &str = "https://www.googleapis.com/auth/content";

/// Claims of the service-account assertion exchanged at the token endpoint (RFC 7523), valid one hour.
pub fn jwt_claims(client_email: &str, token_url: &str, issued_at: i64) -> Value {
    json!({"iss": client_email, "scope": SCOPE, "aud": token_url, "iat": issued_at, "exp": issued_at + 3600})
}

#[cfg(test)]
mod tests {
    use super::*;
    use workflows::catalog::listings;

    const FEED: Feed<'static> = Feed {
        merchant_id: "123",
        content_language: "en",
        feed_label: "US",
    };

    #[test]
    fn a_listing_becomes_a_product_input() {
        let l = listings(&json!({"productId": "p1", "sku": "TS-42", "title": "Trail Shoe", "url": "https://shop/p1",
            "imageUrls": ["https://img/1.jpg", "https://img/2.jpg"], "gtin": "4006381333931",
            "price": {"amount": "89.90", "currency": "EUR"}, "quantity": 0})).expect("valid");
        let p = product_input(&l[0], &FEED);
        assert_eq!(p["offerId"], "TS-42");
        assert_eq!(
            (p["contentLanguage"].as_str(), p["feedLabel"].as_str()),
            (Some("en"), Some("US"))
        );
        let a = &p["productAttributes"];
        assert_eq!(
            a["price"],
            json!({"amountMicros": "89900000", "currencyCode": "EUR"})
        );
        assert_eq!(a["availability"], "OUT_OF_STOCK");
        assert_eq!(a["condition"], "NEW");
        assert_eq!(a["additionalImageLinks"], json!(["https://img/2.jpg"]));
        assert_eq!(a["itemGroupId"], "p1");
    }

    #[test]
    fn claims_last_an_hour_for_the_content_scope() {
        let c = jwt_claims(
            "sa@p.iam.gserviceaccount.com",
            "https://oauth2.googleapis.com/token",
            1000,
        );
        assert_eq!(c["exp"], 4600);
        assert_eq!(c["scope"], SCOPE);
        assert_eq!(c["aud"], "https://oauth2.googleapis.com/token");
    }
}

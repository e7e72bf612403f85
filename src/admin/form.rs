//! Form bodies (`application/x-www-form-urlencoded`), with repeated fields (checkboxes).

use poem::Body;
use poem::Response;
use poem::http::StatusCode;

use super::layout::{bare_page, error, html_response};

/// A posted form's fields, in order.
pub struct Form(Vec<(String, String)>);

impl Form {
    /// Read a body (its size is bounded by the edge) as a form.
    pub async fn read(body: Body) -> Result<Self, Response> {
        let bytes = body.into_bytes().await.map_err(|e| {
            html_response(
                StatusCode::BAD_REQUEST,
                bare_page(
                    "Bad request",
                    error(&format!("the form could not be read: {e}")),
                ),
            )
        })?;
        Ok(Self::parse(&bytes))
    }

    /// Parse url-encoded bytes.
    pub fn parse(bytes: &[u8]) -> Self {
        Self(form_urlencoded::parse(bytes).into_owned().collect())
    }

    /// The first value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `name`, trimmed, `None` when absent or blank.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name).map(str::trim).filter(|v| !v.is_empty())
    }

    /// Every value of `name` (checkboxes).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_fields_and_blanks() {
        let f = Form::parse(b"events=order.placed&events=order.paid&name=+A%26B+&empty=+");
        assert_eq!(f.all("events"), ["order.placed", "order.paid"]);
        assert_eq!(f.text("name"), Some("A&B"));
        assert_eq!(f.text("empty"), None);
        assert_eq!(f.get("missing"), None);
    }
}

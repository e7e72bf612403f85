//! The page frame (navigation, sign-out, assets) and the small pieces every page uses: forms with their CSRF
//! token, result and error messages, the HTML responses with their security headers.

use maud::{DOCTYPE, Markup, PreEscaped, html};
use poem::Response;
use poem::http::{StatusCode, header};

use super::session::Session;

/// Headers of every admin page: no framing, scripts and styles only from this service, never cached.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'";

/// An HTML response with the admin pages' headers.
pub fn html_response(status: StatusCode, page: Markup) -> Response {
    Response::builder()
        .status(status)
        .content_type("text/html; charset=utf-8")
        .header("content-security-policy", CSP)
        .header("x-frame-options", "DENY")
        .header("x-content-type-options", "nosniff")
        .header("referrer-policy", "same-origin")
        .header(header::CACHE_CONTROL, "no-store")
        .body(page.into_string())
}

/// A 303 to `to` (after a form, or to the sign-in page).
pub fn see_other(to: &str) -> Response {
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, to)
        .header(header::CACHE_CONTROL, "no-store")
        .finish()
}

/// The links of the navigation: (path, label, operators only).
const NAV: &[(&str, &str, bool)] = &[
    ("/admin", "Overview", false),
    ("/admin/stats", "Statistics", false),
    ("/admin/deliveries", "Delivery log", false),
    ("/admin/dead-letters", "Dead letters", false),
    ("/admin/credentials", "Credentials", true),
    ("/admin/event-types", "Event catalog", false),
    ("/admin/connectors", "Connectors", true),
    ("/admin/quarantine", "Quarantine", true),
    ("/admin/outbox", "Outbox", true),
];

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="htmx-config" content=r#"{"includeIndicatorStyles":false,"allowScriptTags":false}"#;
            title { (title) " · ShopSTAR3 integrations" }
            link rel="stylesheet" href="/admin/assets/uPlot.min.css";
            link rel="stylesheet" href="/admin/assets/admin.css";
            script src="/admin/assets/htmx.min.js" defer {}
            script src="/admin/assets/uPlot.iife.min.js" defer {}
            script src="/admin/assets/admin.js" defer {}
        }
    }
}

/// A page of a signed-in admin: navigation, the store, sign-out, then `body`.
pub fn page(session: &Session, title: &str, body: Markup) -> Markup {
    let scope = &session.scope;
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header {
                    nav aria-label="Main" {
                        ul {
                            @for (href, label, operator_only) in NAV {
                                @if !operator_only || scope.operator {
                                    li { a href=(href) { (label) } }
                                }
                            }
                        }
                    }
                    p.who {
                        "Store " strong #store-id { (scope.store_id.as_str()) }
                        @if scope.operator { " (operator)" }
                    }
                    form #sign-out method="post" action="/admin/logout" {
                        (csrf_field(session))
                        button type="submit" { "Sign out" }
                    }
                }
                main #main { h1 { (title) } (body) }
            }
        }
    }
}

/// A page without a session (sign-in, errors before sign-in).
pub fn bare_page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body { main #main { h1 { (title) } (body) } }
        }
    }
}

/// The hidden CSRF field of a form.
pub fn csrf_field(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

/// A POST form with its CSRF token and one submit button.
pub fn button_form(session: &Session, id: Option<&str>, action: &str, label: &str) -> Markup {
    html! {
        form.inline id=[id] method="post" action=(action) {
            (csrf_field(session))
            button type="submit" { (label) }
        }
    }
}

/// An error message (announced to screen readers).
pub fn error(text: &str) -> Markup {
    html! { p #error role="alert" { (text) } }
}

/// A result message (announced to screen readers).
pub fn result(text: &str) -> Markup {
    html! { p #result role="status" { (text) } }
}

/// A secret shown this once, with a copy button.
pub fn secret_once(id: &str, label: &str, secret: &str) -> Markup {
    html! {
        div.secret role="group" aria-labelledby=(format!("{id}-label")) {
            p id=(format!("{id}-label")) {
                strong { (label) } " — shown this once: copy it now, it cannot be shown again."
            }
            code id=(id) { (secret) }
            " "
            button #copy-secret type="button" data-copy=(id) { "Copy" }
        }
    }
}

/// Data for a script, as JSON in a non-executed `<script>` (the page's CSP allows no inline script).
pub fn json_data(id: &str, value: &serde_json::Value) -> Markup {
    // `</` cannot end the element early: JSON allows `<\/` for `</`.
    let text = value.to_string().replace("</", "<\\/");
    html! { script type="application/json" id=(id) { (PreEscaped(text)) } }
}

/// The "not found" page: unknown ids and other stores' ids look the same.
pub fn not_found(session: &Session) -> Response {
    html_response(
        StatusCode::NOT_FOUND,
        page(
            session,
            "Not found",
            html! { p { "Nothing here for this store." } },
        ),
    )
}

/// An API refusal shown on a page (its status and detail), e.g. a 409 or 422 of the API the page called.
pub fn refused(session: &Session, title: &str, status: StatusCode, detail: &str) -> Response {
    if status == StatusCode::NOT_FOUND {
        return not_found(session);
    }
    html_response(status, page(session, title, error(detail)))
}

/// Operator-only pages answer store admins 403.
pub fn operators_only(session: &Session) -> Response {
    html_response(
        StatusCode::FORBIDDEN,
        page(
            session,
            "Operators only",
            error("This page is for platform operators."),
        ),
    )
}

//! The admin panel over HTTP (the browser tests are in `admin_browser`): sign-in rules, sessions (expiry, sign-out),
//! CSRF, store isolation, and that values from users and receivers are shown as text.

use reqwest::redirect::Policy;
use reqwest::{Client, Response, StatusCode};
use serde_json::json;

use crate::common::receiver::Receiver;
use crate::common::{ADMIN_TOKEN, TestApp, event};

/// A browser-like client of the panel: no redirects followed, the session cookie kept by hand.
struct Panel {
    http: Client,
    base: String,
    cookie: Option<String>,
}

impl Panel {
    fn new(app: &TestApp) -> Self {
        let http = Client::builder()
            .redirect(Policy::none())
            .build()
            .expect("client");
        Self {
            http,
            base: app.url("/admin"),
            cookie: None,
        }
    }

    async fn sign_in(&mut self, fields: &[(&str, &str)]) -> Response {
        let r = self
            .http
            .post(format!("{}/login", self.base))
            .form(fields)
            .send()
            .await
            .expect("login");
        if let Some(c) = r.headers().get("set-cookie") {
            let c = c
                .to_str()
                .expect("cookie")
                .split(';')
                .next()
                .expect("pair")
                .to_owned();
            self.cookie = Some(c);
        }
        r
    }

    async fn get(&self, path: &str) -> Response {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        req.send().await.expect("get")
    }

    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Response {
        let mut req = self.http.post(format!("{}{path}", self.base)).form(fields);
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        req.send().await.expect("post")
    }

    async fn page(&self, path: &str) -> String {
        let r = self.get(path).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        r.text().await.expect("body")
    }

    /// The CSRF token of the page at `path`.
    async fn csrf(&self, path: &str) -> String {
        let page = self.page(path).await;
        let at = page.find(r#"name="csrf" value=""#).expect("a csrf field")
            + r#"name="csrf" value=""#.len();
        page[at..].split('"').next().expect("token").to_owned()
    }
}

fn location(r: &Response) -> &str {
    r.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

async fn store_key(app: &TestApp, store: &str, scopes: &[&str]) -> String {
    let name = format!("panel {}", scopes.join(" "));
    app.api()
        .create_key(store, &name, scopes)
        .await
        .key()
        .to_owned()
}

/// Catches: a key without `webhooks:manage` signing in, a wrong key, a session cookie that is not HttpOnly/Strict,
/// a session that outlives its expiry, its sign-out or its key's deactivation.
#[tokio::test]
async fn sign_in_needs_webhooks_manage_and_sessions_end_at_expiry_sign_out_and_key_deactivation() {
    let app = TestApp::spawn().await;
    let mut panel = Panel::new(&app);
    assert_eq!(panel.get("").await.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&panel.get("").await), "/admin/login");

    let reader = store_key(&app, "store-a", &["orders:read"]).await;
    assert_eq!(
        panel.sign_in(&[("api_key", &reader)]).await.status(),
        StatusCode::FORBIDDEN
    );
    let wrong = "ss3_live_abcdefgh_0000000000000000000000000000000000000000";
    assert_eq!(
        panel.sign_in(&[("api_key", wrong)]).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert!(panel.cookie.is_none(), "no session for a refused sign-in");

    let key = store_key(&app, "store-a", &["webhooks:manage"]).await;
    let r = panel.sign_in(&[("api_key", &key)]).await;
    assert_eq!(
        (r.status(), location(&r)),
        (StatusCode::SEE_OTHER, "/admin")
    );
    let set = r
        .headers()
        .get("set-cookie")
        .expect("cookie")
        .to_str()
        .expect("text")
        .to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/admin"] {
        assert!(set.contains(attribute), "{set}");
    }
    assert!(!set.contains(&key), "the key is never in the cookie");
    assert!(panel.page("").await.contains("store-a"));

    // Expired.
    sqlx::query("UPDATE admin_sessions SET expires_at = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .expect("expire");
    assert_eq!(location(&panel.get("").await), "/admin/login");

    // Signed out: the old cookie is worthless.
    panel.sign_in(&[("api_key", &key)]).await;
    let csrf = panel.csrf("").await;
    let r = panel.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(location(&r), "/admin/login");
    assert_eq!(location(&panel.get("").await), "/admin/login");

    // The key deactivated: its session ends.
    panel.sign_in(&[("api_key", &key)]).await;
    assert_eq!(panel.get("").await.status(), StatusCode::OK);
    let id = sqlx::query_scalar::<_, uuid::Uuid>(
        "SELECT credential_id FROM api_credentials WHERE 'webhooks:manage' = ANY(scopes)",
    )
    .fetch_one(&app.pool)
    .await
    .expect("id");
    let r = app
        .api()
        .request(
            reqwest::Method::POST,
            &format!("/credentials/{id}/deactivate"),
            "store-a",
        )
        .send()
        .await
        .expect("deactivate");
    assert_eq!(r.status(), 200);
    assert_eq!(location(&panel.get("").await), "/admin/login");
}

/// Catches: a state-changing form accepted without its CSRF token, or with another session's.
#[tokio::test]
async fn forms_without_the_sessions_csrf_token_are_refused() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(&[]).await;
    let mut panel = Panel::new(&app);
    let mut other = Panel::new(&app);
    panel
        .sign_in(&[(
            "api_key",
            &store_key(&app, "store-a", &["webhooks:manage"]).await,
        )])
        .await;
    other
        .sign_in(&[("operator_token", ADMIN_TOKEN), ("store_id", "store-a")])
        .await;
    let url = receiver.url();
    for csrf in [None, Some("wrong"), Some("other")] {
        let token = match csrf {
            Some("other") => other.csrf("").await,
            Some(t) => t.to_owned(),
            None => String::new(),
        };
        let mut f: Vec<(&str, &str)> = vec![
            ("name", "x"),
            ("target_url", &url),
            ("events", "order.placed"),
        ];
        if csrf.is_some() {
            f.push(("csrf", &token));
        }
        let r = panel.post("/subscriptions", &f).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "csrf {csrf:?}");
    }
    assert_eq!(
        app.count("SELECT count(*) FROM webhook_subscriptions")
            .await,
        0
    );
    let token = panel.csrf("/subscriptions/new").await;
    let r = panel
        .post(
            "/subscriptions",
            &[
                ("csrf", &token),
                ("name", "x"),
                ("target_url", &url),
                ("events", "order.placed"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        app.count("SELECT count(*) FROM webhook_subscriptions")
            .await,
        1
    );
    // Rotating the signing secret: refused without the token, shown once with it.
    let sub: uuid::Uuid = sqlx::query_scalar("SELECT subscription_id FROM webhook_subscriptions")
        .fetch_one(&app.pool)
        .await
        .expect("id");
    let rotate = format!("/subscriptions/{sub}/rotate-secret");
    let r = panel.post(&rotate, &[("grace_seconds", "60")]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let token = panel.csrf(&format!("/subscriptions/{sub}")).await;
    let r = panel
        .post(&rotate, &[("csrf", &token), ("grace_seconds", "60")])
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.expect("page");
    assert!(page.contains(r#"id="signing-secret">whsec_"#), "{page}");
    assert_eq!(
        app.count("SELECT count(*) FROM webhook_subscriptions WHERE secret_version = 1")
            .await,
        1
    );
}

/// Catches: markup from a subscription's name or a receiver's response body rendered as HTML; another store's
/// delivery or subscription shown; a signing secret shown after its one moment.
#[tokio::test]
async fn values_from_users_and_receivers_are_text_and_other_stores_ids_are_404() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(&[500]).await;
    let (sub, secret) = app
        .subscribe("store-a", &receiver.url(), &["order.*"])
        .await;
    sqlx::query("UPDATE webhook_subscriptions SET name = '<b>bold</b>'")
        .execute(&app.pool)
        .await
        .expect("name");
    let delivery = app
        .first_delivery(&event(
            "order.placed",
            "store-a",
            json!({"note": "<img src=x onerror=alert(1)>"}),
        ))
        .await;
    app.worker("w1")
        .await
        .run_pending_jobs()
        .await
        .expect("run");
    sqlx::query("UPDATE webhook_delivery_attempts SET response_body = '<script>alert(1)</script>'")
        .execute(&app.pool)
        .await
        .expect("body");

    let mut panel = Panel::new(&app);
    panel
        .sign_in(&[(
            "api_key",
            &store_key(&app, "store-a", &["webhooks:manage"]).await,
        )])
        .await;
    let overview = panel.page("").await;
    assert!(
        overview.contains("&lt;b&gt;bold&lt;/b&gt;") && !overview.contains("<b>bold"),
        "{overview}"
    );
    let detail = panel.page(&format!("/deliveries/{delivery}")).await;
    assert!(
        detail.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "the receiver's body as text"
    );
    assert!(!detail.contains("<script>alert"), "never as markup");
    assert!(!detail.contains("<img src=x"), "the payload as text");
    let sub_page = panel.page(&format!("/subscriptions/{sub}")).await;
    assert!(
        !sub_page.contains(&secret) && !detail.contains(&secret),
        "the signing secret is never shown again"
    );

    let mut other = Panel::new(&app);
    other
        .sign_in(&[(
            "api_key",
            &store_key(&app, "store-b", &["webhooks:manage"]).await,
        )])
        .await;
    for path in [
        format!("/deliveries/{delivery}"),
        format!("/subscriptions/{sub}"),
        format!("/subscriptions/{sub}/stats"),
    ] {
        assert_eq!(
            other.get(&path).await.status(),
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    let csrf = other.csrf("").await;
    let r = other
        .post(
            &format!("/deliveries/{delivery}/resend"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "resend of another store's delivery"
    );
    for path in ["/credentials", "/connectors", "/quarantine", "/outbox"] {
        assert_eq!(
            panel.get(path).await.status(),
            StatusCode::FORBIDDEN,
            "{path} is for operators"
        );
    }
}

/// Catches: an operator's credential page showing a secret more than once, or pages failing to render.
#[tokio::test]
async fn an_operator_creates_a_credential_and_sees_its_secret_once_and_every_page_renders() {
    let app = TestApp::spawn().await;
    let mut panel = Panel::new(&app);
    let r = panel
        .sign_in(&[("operator_token", ADMIN_TOKEN), ("store_id", "store-a")])
        .await;
    assert_eq!(location(&r), "/admin");
    let csrf = panel.csrf("/credentials").await;
    let r = panel
        .post(
            "/credentials",
            &[
                ("csrf", &csrf),
                ("name", "app"),
                ("credential_type", "API_KEY"),
                ("scopes", "orders:read"),
                ("scopes", "catalog:read"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.expect("page");
    let at = page
        .find(r#"id="credential-secret">"#)
        .expect("secret shown")
        + r#"id="credential-secret">"#.len();
    let key = page[at..].split('<').next().expect("key").to_owned();
    assert!(key.starts_with("ss3_live_"), "{key}");
    assert!(app.api().validate(&key).await.valid, "the key shown works");
    let list = panel.page("/credentials").await;
    assert!(
        list.contains("app") && !list.contains(&key),
        "listed, never shown again"
    );
    for path in [
        "",
        "/stats",
        "/deliveries",
        "/dead-letters",
        "/event-types",
        "/connectors",
        "/quarantine",
        "/outbox",
        "/subscriptions/new",
    ] {
        panel.page(path).await;
    }
    let connector = app
        .api()
        .create_connector(
            "store-a",
            &json!({"connectorType": "ebay", "displayName": "eBay <shop>", "settings": {},
                    "credentials": {"apiKey": "client-id-x", "apiSecret": "very-secret-y", "refreshToken": "refresh-z"}}),
        )
        .await;
    let page = panel
        .page(&format!(
            "/connectors/{}?direction=OUTBOUND&status=&entity_type=",
            connector.config_id
        ))
        .await;
    assert!(
        page.contains("eBay &lt;shop&gt;") && page.contains("apiSecret"),
        "{page}"
    );
    for secret in ["client-id-x", "very-secret-y", "refresh-z"] {
        assert!(
            !page.contains(secret),
            "a connector credential is never shown"
        );
    }
    assert_eq!(
        panel.get("/assets/htmx.min.js").await.status(),
        StatusCode::OK
    );
}

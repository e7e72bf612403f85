//! A real browser for the admin panel's tests: Debian's chromedriver, started per test on a free loopback port and
//! killed with it (`common::chromedriver`), driving headless Chromium over WebDriver (thirtyfour).
//!
//! The binaries come from `SS3_TEST_CHROMEDRIVER` and `SS3_TEST_CHROMIUM` (`scripts/test.sh` installs and exports
//! them), else `/usr/bin/chromedriver` and `/usr/bin/chromium`. Screenshots go to `SS3_TEST_SCREENSHOTS`, else to
//! `admin-screenshots/` in cargo's target directory (`target/admin-screenshots/`, or under `CARGO_TARGET_DIR`).
//!
//! Every wait polls the page until a deadline (the pages refresh themselves while a delivery is in flight), and a
//! failed wait saves a screenshot and shows the page's URL and text, so a mismatch with the page contract
//! (`/admin`, issue 12) reads as "page P, selector S, saw T".

use std::path::{Path, PathBuf};
use std::time::Duration;

use thirtyfour::prelude::*;
use tokio::time::Instant;

use crate::common::chromedriver::{Chromedriver, binary};
use crate::common::wait::pause;

/// How long a page may take to show what a test waits for (a navigation, a self-refresh, a worker's result).
pub const WAIT: Duration = Duration::from_secs(15);

/// The viewport; screenshots grow it to the page's full height.
const WIDTH: u32 = 1280;
const HEIGHT: u32 = 900;

/// Where screenshots (and chromedriver's logs, in `logs/`) are written: one flat directory a reviewer can open.
pub fn screenshot_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SS3_TEST_SCREENSHOTS").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    // CARGO_TARGET_TMPDIR is `<target dir>/tmp`: its parent is the target directory this binary was built into.
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("admin-screenshots")
}

/// A cookie as the browser holds it (the attributes tests check).
#[derive(Debug, Clone)]
pub struct BrowserCookie {
    pub value: String,
    pub http_only: Option<bool>,
    /// `Strict`, `Lax` or `None`.
    pub same_site: Option<String>,
}

/// A chromedriver process and one headless Chromium session on the app at `base`.
pub struct Browser {
    /// The session; `quit` ends it politely, a failed test's drop by killing chromedriver's process group.
    driver: Option<WebDriver>,
    /// Dropped after `driver` (fields drop in order): its drop kills the group.
    chromedriver: Chromedriver,
    base: String,
}

impl Browser {
    /// Start chromedriver, open a headless Chromium session on `base` (`http://host:port`).
    pub async fn start(base: impl Into<String>) -> Self {
        let chromedriver = Chromedriver::start(&screenshot_dir().join("logs")).await;
        let mut caps = DesiredCapabilities::chrome();
        caps.set_binary(&binary("SS3_TEST_CHROMIUM", "/usr/bin/chromium"))
            .expect("binary capability");
        let size = format!("--window-size={WIDTH},{HEIGHT}");
        for arg in [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            size.as_str(),
        ] {
            caps.add_arg(arg).expect("argument capability");
        }
        let driver = WebDriver::builder(chromedriver.url(), caps)
            .request_timeout(Duration::from_secs(60))
            .connect()
            .await
            .unwrap_or_else(|e| panic!("open a Chromium session: {e}{}", chromedriver.log_tail()));
        Self {
            driver: Some(driver),
            chromedriver,
            base: base.into(),
        }
    }

    fn driver(&self) -> &WebDriver {
        self.driver.as_ref().expect("the session is open")
    }

    /// The app's URL for `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Open `path` of the app (and wait for the page to load).
    pub async fn goto(&self, path: &str) {
        let url = self.url(path);
        self.driver()
            .goto(url.as_str())
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    /// Reload the current page.
    pub async fn reload(&self) {
        self.driver().refresh().await.expect("reload");
    }

    /// The current URL's path and query (`/admin/deliveries/…?…`).
    pub async fn path(&self) -> String {
        let url = self.driver().current_url().await.expect("current URL");
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// The first element matching `css`, or the test fails saying which page lacked it.
    pub async fn find(&self, css: &str) -> WebElement {
        match self.driver().find(By::Css(css)).await {
            Ok(element) => element,
            Err(e) => self.fail(&format!("no element `{css}` ({e})")).await,
        }
    }

    /// Every element matching `css` (none is not an error).
    pub async fn find_all(&self, css: &str) -> Vec<WebElement> {
        self.driver()
            .find_all(By::Css(css))
            .await
            .unwrap_or_default()
    }

    /// Whether an element matches `css` now.
    pub async fn exists(&self, css: &str) -> bool {
        !self.find_all(css).await.is_empty()
    }

    /// Type `value` into the field named `name` (the first on the page), replacing what it held.
    pub async fn fill(&self, name: &str, value: &str) {
        let field = self.find(&format!("[name=\"{name}\"]")).await;
        field.clear().await.expect("clear field");
        field.send_keys(value).await.expect("type into field");
    }

    /// Choose the option with `value` in the select named `name`.
    pub async fn select(&self, name: &str, value: &str) {
        self.click(&format!(
            "select[name=\"{name}\"] option[value=\"{value}\"]"
        ))
        .await;
    }

    /// Tick the checkbox `css` (left ticked if it is).
    pub async fn check(&self, css: &str) {
        let box_ = self.find(css).await;
        if !box_.is_selected().await.expect("checkbox state") {
            box_.click().await.expect("tick checkbox");
        }
    }

    /// Click the element `css`.
    pub async fn click(&self, css: &str) {
        let element = self.find(css).await;
        if let Err(e) = element.click().await {
            self.fail(&format!("click `{css}`: {e}")).await;
        }
    }

    /// Press the submit button of the form `form` (the contract names forms, not always their buttons).
    pub async fn submit(&self, form: &str) {
        self.click(&format!(
            "{form} button:not([type=\"button\"]):not([type=\"reset\"]), {form} input[type=\"submit\"]"
        ))
        .await;
    }

    /// The visible text of the first element matching `css`, trimmed.
    pub async fn text(&self, css: &str) -> String {
        let element = self.find(css).await;
        element
            .text()
            .await
            .expect("element text")
            .trim()
            .to_owned()
    }

    /// The visible texts of every element matching `css`, trimmed, in page order.
    pub async fn texts(&self, css: &str) -> Vec<String> {
        let mut texts = Vec::new();
        for element in self.find_all(css).await {
            texts.push(
                element
                    .text()
                    .await
                    .expect("element text")
                    .trim()
                    .to_owned(),
            );
        }
        texts
    }

    /// The current value of the form field `css` (a select's chosen option).
    pub async fn value(&self, css: &str) -> String {
        let field = self.find(css).await;
        field
            .value()
            .await
            .expect("field value")
            .unwrap_or_default()
    }

    /// The text of `css` if it is there now (a page that is reloading may not have it for a moment).
    async fn try_text(&self, css: &str) -> Option<String> {
        let element = self.driver().find(By::Css(css)).await.ok()?;
        element.text().await.ok().map(|t| t.trim().to_owned())
    }

    /// The whole page's HTML as the browser holds it now.
    pub async fn source(&self) -> String {
        self.driver().source().await.expect("page source")
    }

    /// Wait until the text of `css` is `expected` (trimmed), polling (the page may reload itself meanwhile).
    pub async fn wait_for_text(&self, css: &str, expected: &str, within: Duration) {
        let deadline = Instant::now() + within;
        let mut last = None;
        loop {
            last = self.try_text(css).await.or(last);
            if last.as_deref() == Some(expected) {
                return;
            }
            if Instant::now() >= deadline {
                let saw = last.map_or("no such element".to_owned(), |t| format!("{t:?}"));
                self.fail(&format!(
                    "`{css}` did not read {expected:?} within {within:?}; last saw {saw}"
                ))
                .await;
            }
            pause().await;
        }
    }

    /// Wait until an element matches `css`.
    pub async fn wait_for(&self, css: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.exists(css).await {
            if Instant::now() >= deadline {
                self.fail(&format!("no element `{css}` within {within:?}"))
                    .await;
            }
            pause().await;
        }
    }

    /// Wait until the browser is at `path` (path and query), e.g. after a form's redirect.
    pub async fn wait_for_path(&self, path: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while self.path().await != path {
            if Instant::now() >= deadline {
                self.fail(&format!("not at {path} within {within:?}")).await;
            }
            pause().await;
        }
    }

    /// Wait until the path starts with `prefix` and return the whole path.
    pub async fn wait_for_path_prefix(&self, prefix: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let path = self.path().await;
            if path.starts_with(prefix) {
                return path;
            }
            if Instant::now() >= deadline {
                self.fail(&format!("not under {prefix} within {within:?}"))
                    .await;
            }
            pause().await;
        }
    }

    /// The cookie `name` as the browser holds it, if it does.
    pub async fn cookie(&self, name: &str) -> Option<BrowserCookie> {
        let cookie = self.driver().get_named_cookie(name).await.ok()?;
        Some(BrowserCookie {
            value: cookie.value,
            http_only: cookie.http_only,
            same_site: cookie.same_site.map(|s| format!("{s:?}")),
        })
    }

    /// Hand the browser the cookie `name=value` for the app's host, path `/` (as someone replaying one would).
    pub async fn add_cookie(&self, name: &str, value: &str) {
        let mut cookie = Cookie::new(name, value);
        cookie.path = Some("/".to_owned());
        self.driver().add_cookie(cookie).await.expect("add cookie");
    }

    /// Save the whole page (grown to its full height) as `<screenshot_dir>/<name>.png`; returns the path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("create the screenshot directory");
        let path = dir.join(format!("{name}.png"));
        let driver = self.driver();
        let height = driver
            .execute(
                "return document.documentElement.scrollHeight;",
                Vec::<serde_json::Value>::new(),
            )
            .await
            .ok()
            .and_then(|ret| ret.json().as_u64())
            .map_or(HEIGHT, |h| {
                u32::try_from(h).unwrap_or(HEIGHT).clamp(HEIGHT, 6000)
            });
        let _ = driver
            .set_window_rect(0, 0, WIDTH, height + (HEIGHT - inner_height(driver).await))
            .await;
        let png = driver.screenshot_as_png().await.expect("screenshot");
        let _ = driver.set_window_rect(0, 0, WIDTH, HEIGHT).await;
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// Fail the test showing where the browser is and what the page says, after saving a screenshot of it.
    pub async fn fail(&self, what: &str) -> ! {
        let path = self.path().await;
        let name = format!(
            "failed-{}",
            path.trim_start_matches('/')
                .replace(|c: char| !c.is_ascii_alphanumeric(), "-")
        );
        let shot = self.screenshot(&name).await;
        let body = self
            .try_text("body")
            .await
            .unwrap_or_else(|| "(no body)".to_owned());
        let body: String = body.chars().take(2000).collect();
        panic!(
            "page {path}: {what}\nscreenshot: {}\npage text:\n{body}",
            shot.display()
        );
    }

    /// End the session (Chromium exits), then chromedriver (`Drop`).
    pub async fn quit(mut self) {
        if let Some(driver) = self.driver.take() {
            let _ = driver.quit().await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(driver) = self.driver.take() {
            // A failed test: thirtyfour's own drop would block the runtime on a DELETE of the session that can hang
            // for its whole request timeout. Chromedriver's drop ends Chromium instead.
            let _ = driver.leak();
        }
    }
}

/// The window's inner height (what a screenshot shows), to size the window so the whole page fits.
async fn inner_height(driver: &WebDriver) -> u32 {
    driver
        .execute(
            "return window.innerHeight;",
            Vec::<serde_json::Value>::new(),
        )
        .await
        .ok()
        .and_then(|ret| ret.json().as_u64())
        .map_or(HEIGHT, |h| u32::try_from(h).unwrap_or(HEIGHT).min(HEIGHT))
}

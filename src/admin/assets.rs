//! The panel's static files, embedded in the binary (no CDN: deployments may have no internet). Third-party files
//! come from the npm registry at pinned versions with their licences (`assets/vendor/README.md`).

use poem::http::{StatusCode, header};
use poem::web::Path;
use poem::{Response, handler};

/// (name, content type, bytes).
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "admin.css",
        "text/css; charset=utf-8",
        include_bytes!("assets/admin.css"),
    ),
    (
        "admin.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/admin.js"),
    ),
    (
        "htmx.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/vendor/htmx.min.js"),
    ),
    (
        "uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/vendor/uPlot.iife.min.js"),
    ),
    (
        "uPlot.min.css",
        "text/css; charset=utf-8",
        include_bytes!("assets/vendor/uPlot.min.css"),
    ),
];

/// `GET /admin/assets/:name`: cached for a day (the names do not change within a release).
#[handler]
pub fn serve(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, bytes)) => Response::builder()
            .content_type(*content_type)
            .header(header::CACHE_CONTROL, "public, max-age=86400")
            .header("x-content-type-options", "nosniff")
            .body(*bytes),
        None => Response::builder().status(StatusCode::NOT_FOUND).finish(),
    }
}

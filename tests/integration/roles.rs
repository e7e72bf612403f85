//! Roles under supervision: a role that stops on its own stops the others, and `run` fails naming it, so the
//! process exits non-zero instead of living on with a part missing.

use std::sync::Arc;
use std::time::Duration;

use integration_service::startup::{Application, Roles};
use tokio_util::sync::CancellationToken;

use crate::common::{TestDb, t0, test_config};

/// Catches: `Application::run` dropping the HTTP server's result, so a process whose API listener broke kept
/// running (and reporting healthy through its other roles) while accepting no connection (issue 9, item 9).
#[tokio::test]
async fn a_broken_api_listener_stops_every_role_and_run_fails_naming_the_api_role() {
    let db = TestDb::create().await;
    let config = test_config(&db);
    let clock = jobs::ManualClock::new(t0());
    let app = Application::build(config, Arc::new(clock))
        .await
        .expect("application builds");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    // Break the listening socket as a failing network stack would: from now on accept() fails with EINVAL.
    socket2::SockRef::from(&listener)
        .shutdown(std::net::Shutdown::Both)
        .expect("shutdown the listening socket");
    let shutdown = CancellationToken::new();
    let ran = tokio::time::timeout(
        Duration::from_secs(60),
        app.run(Roles::ALL, Some(listener), shutdown.clone()),
    )
    .await;
    let error = ran
        .expect("run returned instead of serving nothing forever")
        .expect_err("run reports the dead role");
    let message = format!("{error:#}");
    assert!(message.contains("the api role stopped"), "{message}");
    assert!(message.contains("listener"), "{message}");
    assert!(!shutdown.is_cancelled(), "the caller's token is left alone");
}

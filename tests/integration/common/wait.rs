//! Waiting on state only observable by asking (a database row, a fake's log, another process's queue).
//!
//! Where the system under test gives a signal (a channel, a join handle, a readiness future), tests await it. Where
//! it does not, they poll through `pause`, the suite's one poll interval; a plain `sleep` in a test is only ever the
//! behaviour under test (a silence, an outage, a pacing), with a comment saying so.

use std::time::Duration;

/// The suite's poll interval: short against every deadline, long enough not to load the 2-core machine.
pub const POLL: Duration = Duration::from_millis(50);

/// Pause between two looks at a condition the test polls.
pub async fn pause() {
    tokio::time::sleep(POLL).await;
}

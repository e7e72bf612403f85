//! Fair delivery: every outbound job belongs to a lane, its owner (a webhook subscription, a connector). A lane has
//! a bounded number of attempts in flight at once across every worker; lanes with due work take turns; and a lane
//! whose receiver keeps timing out or answering slowly is held to one attempt at a time (a circuit breaker that
//! probes it) until an attempt is answered in time again. Waiting for a turn never counts as an attempt.
//!
//! This module is the rule; the claim statement (`jobs::queue::claim`) applies the same rule in SQL, set-based.

/// The operator's settings of lanes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaneLimits {
    /// Attempts in flight per lane when its owner sets no limit of its own.
    pub default_in_flight: u32,
    /// The most an owner may set.
    pub max_in_flight: u32,
    /// Slow attempts in a row after which the lane has one attempt in flight at a time.
    pub slow_after: u32,
}

impl Default for LaneLimits {
    fn default() -> Self {
        Self {
            default_in_flight: 32,
            max_in_flight: 128,
            slow_after: 5,
        }
    }
}

/// Whether a lane's receiver answers in time: `healthy`, or `slow` (one attempt in flight at a time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(
    feature = "openapi",
    derive(poem_openapi::Enum),
    oai(rename_all = "lowercase")
)]
pub enum LaneState {
    /// Its last attempts were answered in time (or too few were slow to matter): its full limit applies.
    Healthy,
    /// `slow_after` attempts in a row timed out or were answered late: one attempt in flight at a time, until one
    /// is answered in time.
    Slow,
}

/// A lane as stored: its owner's own limit, if any, and its current run of slow attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lane {
    /// The owner's own limit (`None`: the default).
    pub own_limit: Option<u32>,
    /// Attempts in a row that timed out or were answered late.
    pub consecutive_slow: u32,
}

impl LaneLimits {
    /// Whether `own` is a limit an owner may set.
    pub fn allows(&self, own: u32) -> bool {
        (1..=self.max_in_flight).contains(&own)
    }

    /// The lane's state.
    pub fn state(&self, lane: Lane) -> LaneState {
        if lane.consecutive_slow >= self.slow_after.max(1) {
            LaneState::Slow
        } else {
            LaneState::Healthy
        }
    }

    /// Attempts the lane may have in flight now.
    pub fn in_flight_limit(&self, lane: Lane) -> u32 {
        match self.state(lane) {
            LaneState::Slow => 1,
            LaneState::Healthy => lane
                .own_limit
                .unwrap_or(self.default_in_flight)
                .min(self.max_in_flight)
                .max(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lane_gets_its_own_limit_within_the_operator_bound_and_one_while_slow() {
        let limits = LaneLimits::default();
        let lane = |own_limit, consecutive_slow| Lane {
            own_limit,
            consecutive_slow,
        };
        assert_eq!(limits.in_flight_limit(lane(None, 0)), 32);
        assert_eq!(limits.in_flight_limit(lane(Some(3), 4)), 3);
        assert_eq!(limits.in_flight_limit(lane(Some(500), 0)), 128, "clamped");
        assert_eq!(limits.state(lane(Some(3), 5)), LaneState::Slow);
        assert_eq!(limits.in_flight_limit(lane(Some(3), 5)), 1);
        assert!(limits.allows(128) && !limits.allows(129) && !limits.allows(0));
    }
}

//! Amazon's inbound side: orders from the Orders API v2026-01-01 `searchOrders`, read from a `lastUpdatedAfter`
//! cursor in `paginationToken` pages, published once per order and status (an order first seen `PENDING` is
//! published again as `UNSHIPPED`, `SHIPPED`, `CANCELLED`…). A walk a 429 (or the page cap) interrupts keeps what it
//! read: the cursor carries the next page's token, and the next poll goes on from there.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use super::mapping::order_event_data;
use super::{Amazon, ORDER_RECEIVED, Settings, plans};
use crate::channel::{Method, encode};
use crate::model::{ConnectorContext, ConnectorError, PollReport, PolledRecord};

/// Order pages read per poll (100 orders each; `searchOrders` allows a burst of 20).
const MAX_PAGES: usize = 20;

/// Where a poll starts: orders updated at or after `after`, and for a walk left unfinished, the token of its next
/// page and the newest update it saw. Stored as `after` (RFC 3339), or `after|newest|token` mid-walk.
#[derive(Debug, Clone, PartialEq)]
struct Cursor {
    after: DateTime<Utc>,
    newest: DateTime<Utc>,
    page: Option<String>,
}

fn time(t: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl Cursor {
    fn parse(stored: &str) -> Option<Self> {
        let mut parts = stored.splitn(3, '|');
        let after = time(parts.next()?)?;
        match (parts.next().and_then(time), parts.next()) {
            (Some(newest), Some(page)) => Some(Self {
                after,
                newest,
                page: Some(page.to_owned()),
            }),
            _ => Some(Self {
                after,
                newest: after,
                page: None,
            }),
        }
    }

    fn stored(&self) -> String {
        match &self.page {
            Some(page) => format!("{}|{}|{page}", rfc3339(self.after), rfc3339(self.newest)),
            None => rfc3339(self.newest),
        }
    }
}

impl Amazon {
    /// Orders updated since the cursor (or the configured start, or a day ago), and the cursor after them.
    pub(super) async fn poll_orders(
        &self,
        ctx: &ConnectorContext<'_>,
        s: &Settings,
        cursor: Option<&str>,
    ) -> Result<PollReport, ConnectorError> {
        let mut at = cursor.and_then(Cursor::parse).unwrap_or_else(|| {
            let after = s
                .orders_created_after
                .unwrap_or(ctx.now - chrono::Duration::days(1));
            Cursor {
                after,
                newest: after,
                page: None,
            }
        });
        let query = format!(
            "/orders/2026-01-01/orders?marketplaceIds={}&lastUpdatedAfter={}&maxResultsPerPage=100&includedData=PROCEEDS,FULFILLMENT",
            encode(s.marketplace_id.as_str()),
            encode(&rfc3339(at.after))
        );
        let mut records = Vec::new();
        for n in 0..MAX_PAGES {
            let path = match &at.page {
                Some(token) => format!("{query}&paginationToken={}", encode(token)),
                None => query.clone(),
            };
            let op = plans::SEARCH_ORDERS;
            let answer = match self.call(ctx, s, op, Method::Get, path, None).await {
                Ok(answer) => answer,
                Err(e) => return interrupted(e, n, at, records),
            };
            self.read_page(ctx, &answer, &mut at, &mut records);
            at.page = answer["pagination"]["nextToken"]
                .as_str()
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if at.page.is_none() {
                break;
            }
        }
        // lastUpdatedAfter is inclusive, so the newest order comes back next time; a record is published once.
        Ok(report(records, &at))
    }

    fn read_page(
        &self,
        ctx: &ConnectorContext<'_>,
        answer: &Value,
        at: &mut Cursor,
        records: &mut Vec<PolledRecord>,
    ) {
        let config_id = ctx.config.config_id.to_string();
        for order in answer["orders"].as_array().into_iter().flatten() {
            let Some((id, data)) = order_event_data(order, &config_id) else {
                continue;
            };
            if let Some(t) = order["lastUpdatedTime"].as_str().and_then(time) {
                at.newest = at.newest.max(t);
            }
            records.push(PolledRecord {
                external_id: id,
                event_type: ORDER_RECEIVED.into(),
                data,
            });
        }
    }
}

fn report(records: Vec<PolledRecord>, at: &Cursor) -> PollReport {
    PollReport {
        entity_type: "order".into(),
        records,
        cursor: Some(at.stored()),
    }
}

/// A page failed. After pages were read, keep them and the place: a retryable failure (429, 5xx, our pacing) goes
/// on from the failed page next time; a permanent one (e.g. an expired `paginationToken`) walks again from `after`.
/// A first page that fails keeps the cursor, except a refused stored token, which is dropped.
fn interrupted(
    e: ConnectorError,
    pages_read: usize,
    mut at: Cursor,
    records: Vec<PolledRecord>,
) -> Result<PollReport, ConnectorError> {
    let permanent = e.as_failure().permanent && !matches!(e, ConnectorError::RateLimited(_));
    if pages_read == 0 && !(permanent && at.page.is_some()) {
        return Err(e);
    }
    tracing::info!(error = %e, pages_read, "order walk interrupted; progress kept");
    if permanent {
        at.page = None;
        at.newest = at.after;
    }
    Ok(report(records, &at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_a_time_or_a_walk_in_progress() {
        let t = |s: &str| time(s).expect("time");
        let plain = Cursor::parse("2026-11-22T12:00:00Z").expect("parses");
        assert_eq!(
            (plain.after, plain.page.as_deref()),
            (t("2026-11-22T12:00:00Z"), None)
        );
        let walk = Cursor {
            after: t("2026-11-01T00:00:00Z"),
            newest: t("2026-11-21T11:00:00Z"),
            page: Some("2~x|y".into()),
        };
        assert_eq!(
            walk.stored(),
            "2026-11-01T00:00:00Z|2026-11-21T11:00:00Z|2~x|y"
        );
        assert_eq!(Cursor::parse(&walk.stored()), Some(walk));
        assert_eq!(Cursor::parse("nonsense"), None);
    }
}

//! Amazon's inbound side: new orders from the Orders API v0, read from a `CreatedAfter` cursor in `NextToken` pages.

use chrono::{DateTime, SecondsFormat, Utc};

use super::mapping::order_event_data;
use super::{Amazon, ORDER_RECEIVED, Settings};
use crate::channel::{Method, encode};
use crate::model::{ConnectorContext, ConnectorError, PollReport, PolledRecord};

/// Order pages read per poll (100 orders each); the cursor carries on at the next poll.
const MAX_PAGES: usize = 20;

impl Amazon {
    /// Orders created since `cursor` (or the configured start, or a day ago), and the cursor after them.
    pub(super) async fn poll_orders(
        &self,
        ctx: &ConnectorContext<'_>,
        s: &Settings,
        cursor: Option<&str>,
    ) -> Result<PollReport, ConnectorError> {
        let since = cursor
            .and_then(|c| DateTime::parse_from_rfc3339(c).ok())
            .map(|t| t.with_timezone(&Utc))
            .or(s.orders_created_after)
            .unwrap_or(ctx.now - chrono::Duration::days(1));
        let base = format!(
            "/orders/v0/orders?MarketplaceIds={}",
            encode(s.marketplace_id.as_str())
        );
        let mut path = format!(
            "{base}&CreatedAfter={}&MaxResultsPerPage=100",
            encode(&since.to_rfc3339_opts(SecondsFormat::Secs, true))
        );
        let (mut records, mut newest) = (Vec::new(), since);
        let config_id = ctx.config.config_id.to_string();
        for _ in 0..MAX_PAGES {
            let answer = self.call(ctx, s, Method::Get, path, None).await?;
            let payload = &answer["payload"];
            for order in payload["Orders"].as_array().into_iter().flatten() {
                let Some((id, data)) = order_event_data(order, &config_id) else {
                    continue;
                };
                if let Some(t) = order["PurchaseDate"]
                    .as_str()
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                {
                    newest = newest.max(t.with_timezone(&Utc));
                }
                records.push(PolledRecord {
                    external_id: id,
                    event_type: ORDER_RECEIVED.into(),
                    data,
                });
            }
            match payload["NextToken"].as_str().filter(|t| !t.is_empty()) {
                Some(token) => path = format!("{base}&NextToken={}", encode(token)),
                None => break,
            }
        }
        // CreatedAfter is inclusive, so the newest order is seen again next time; published records are deduplicated.
        Ok(PollReport {
            entity_type: "order".into(),
            records,
            cursor: Some(newest.to_rfc3339_opts(SecondsFormat::Secs, true)),
        })
    }
}

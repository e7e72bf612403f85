//! Amazon's `order.fulfilled`: one `confirmShipment` (Orders API v0) per fulfillment of an Amazon order, its
//! package numbered by [`package_reference_id`], after a `getOrder` (v2026-01-01, `PACKAGES`) that shows whether
//! that package is already confirmed.

use serde_json::Value;
use workflows::catalog::fulfillment;

use super::mapping::shipment_confirmation_body;
use super::{Amazon, Settings, plans};
use crate::channel::{Method, encode};
use crate::model::{ConnectorContext, ConnectorError, SyncReport};

impl Amazon {
    /// `order.fulfilled`: confirm the shipment of an order that came from Amazon. A package already confirmed with
    /// the same tracking number is skipped (a retry after a lost answer); one with another tracking number is sent
    /// again, which edits it; an order shipped without this package is skipped.
    pub(super) async fn confirm_shipment(
        &self,
        ctx: &ConnectorContext<'_>,
        s: &Settings,
        data: &Value,
    ) -> Result<SyncReport, ConnectorError> {
        let f = fulfillment(data)?;
        let Some((order_id, body)) = shipment_confirmation_body(&f, s.marketplace_id.as_str())?
        else {
            return Ok(SyncReport::skipped("shipment", "not an Amazon order"));
        };
        let package = &body["packageDetail"];
        let path = format!(
            "/orders/2026-01-01/orders/{}?includedData=FULFILLMENT,PACKAGES",
            encode(&order_id)
        );
        let answer = self
            .call(ctx, s, plans::GET_ORDER, Method::Get, path, None)
            .await?;
        let order = &answer["order"];
        let confirmed = order["packages"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["packageReferenceId"] == package["packageReferenceId"]);
        if let Some(p) = confirmed
            && p["trackingNumber"] == package["trackingNumber"]
        {
            let why = format!(
                "order {order_id}: package {} is already confirmed as shipped",
                package["packageReferenceId"].as_str().unwrap_or("?")
            );
            return Ok(SyncReport::skipped("shipment", why));
        }
        if confirmed.is_none() && order["fulfillment"]["fulfillmentStatus"] == "SHIPPED" {
            let why = format!("order {order_id} is already confirmed as shipped (other packages)");
            return Ok(SyncReport::skipped("shipment", why));
        }
        let path = format!(
            "/orders/v0/orders/{}/shipmentConfirmation",
            encode(&order_id)
        );
        let op = plans::CONFIRM_SHIPMENT;
        self.call(ctx, s, op, Method::Post, path, Some(body))
            .await?;
        Ok(SyncReport::written("shipment", 1))
    }
}

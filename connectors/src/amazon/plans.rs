//! SP-API usage plans of the operations the adapter calls: each operation's default rate and burst, from the
//! "Usage Plan" table of its model in amzn/selling-partner-api-models (Amazon's 429 carries no `Retry-After`, so
//! these are what the client paces and backs off by).

use workflows::ratelimit::RateLimit;

use crate::channel::Operation;

const fn plan(name: &'static str, per_second: f64, burst: u32) -> Operation {
    Operation {
        name,
        limit: RateLimit { per_second, burst },
    }
}

/// `putListingsItem` (listingsItems_2021-08-01.json): 5/s, burst 10.
pub const PUT_LISTINGS_ITEM: Operation = plan("putListingsItem", 5.0, 10);
/// `patchListingsItem` (listingsItems_2021-08-01.json): 5/s, burst 10.
pub const PATCH_LISTINGS_ITEM: Operation = plan("patchListingsItem", 5.0, 10);
/// `getListingsItem` (listingsItems_2021-08-01.json): 5/s, burst 10.
pub const GET_LISTINGS_ITEM: Operation = plan("getListingsItem", 5.0, 10);
/// `getDefinitionsProductType` (definitionsProductTypes_2020-09-01.json): 5/s, burst 10.
pub const GET_DEFINITIONS_PRODUCT_TYPE: Operation = plan("getDefinitionsProductType", 5.0, 10);
/// `searchOrders` (orders_2026-01-01.json): 0.0056/s, burst 20.
pub const SEARCH_ORDERS: Operation = plan("searchOrders", 0.0056, 20);
/// `searchCatalogItems` (catalogItems_2022-04-01.json): 2/s, burst 2.
pub const SEARCH_CATALOG_ITEMS: Operation = plan("searchCatalogItems", 2.0, 2);
/// `getOrder` (orders_2026-01-01.json): 0.5/s, burst 30.
pub const GET_ORDER: Operation = plan("getOrder", 0.5, 30);
/// `confirmShipment` (ordersV0.json): 2/s, burst 10.
pub const CONFIRM_SHIPMENT: Operation = plan("confirmShipment", 2.0, 10);
/// `getMarketplaceParticipations` (sellers.json): 0.016/s, burst 15.
pub const GET_MARKETPLACE_PARTICIPATIONS: Operation =
    plan("getMarketplaceParticipations", 0.016, 15);

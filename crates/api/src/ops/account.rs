//! Account-level operations: DescribeLimits and DescribeEndpoints.

use serde_json::{Value, json};

use super::update_table::TABLE_MAX_CAPACITY_UNITS;
use crate::{RequestContext, Service};

/// DynamoDB's default account quota for provisioned capacity in a region.
const ACCOUNT_MAX_CAPACITY_UNITS: i64 = 80_000;

/// How long an SDK may cache the DescribeEndpoints answer, as DynamoDB says.
const ENDPOINT_CACHE_MINUTES: i64 = 1440;

/// DescribeLimits: DynamoDB's default quotas (Haven enforces the per-table ones in UpdateTable).
pub(crate) fn describe_limits() -> Value {
    json!({
        "AccountMaxReadCapacityUnits": ACCOUNT_MAX_CAPACITY_UNITS,
        "AccountMaxWriteCapacityUnits": ACCOUNT_MAX_CAPACITY_UNITS,
        "TableMaxReadCapacityUnits": TABLE_MAX_CAPACITY_UNITS,
        "TableMaxWriteCapacityUnits": TABLE_MAX_CAPACITY_UNITS,
    })
}

/// DescribeEndpoints answers the address the client used. An SDK with endpoint discovery turned
/// on sends its later requests to this address, so answering DynamoDB's own
/// `dynamodb.<region>.amazonaws.com` would move a Haven client's traffic to AWS. Without a Host
/// header (only possible below HTTP/1.1) the regional AWS name is the only address there is.
pub(crate) fn describe_endpoints(service: &Service, context: &RequestContext) -> Value {
    let address = context
        .host
        .clone()
        .unwrap_or_else(|| format!("dynamodb.{}.amazonaws.com", service.config.region));
    json!({
        "Endpoints": [{ "Address": address, "CachePeriodInMinutes": ENDPOINT_CACHE_MINUTES }]
    })
}

//! The table and index settings capacity reads: OnDemandThroughput (an on-demand table's or
//! index's maximum units per second, -1 for none) and WarmThroughput (the units per second a table
//! or index can take at once).
//!
//! Haven has no partitions to pre-warm, so WarmThroughput is kept and described, never acted on:
//! a table can always take what its capacity allows. As in DynamoDB it only ever grows: a request
//! for less than the current value (at first AWS's defaults for a new table, 12,000 reads and
//! 4,000 writes per second) keeps the current value.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::DynamoError;
use crate::items::Capacity;

/// What AWS reports as a new table's warm throughput.
const DEFAULT_WARM_READS: i64 = 12_000;
const DEFAULT_WARM_WRITES: i64 = 4_000;

/// "-1" in OnDemandThroughput: no maximum.
const NO_MAXIMUM: i64 = -1;

/// Whose setting a message names.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Owner {
    Table,
    Index,
}

impl Owner {
    fn name(self) -> &'static str {
        match self {
            Owner::Table => "table",
            Owner::Index => "index",
        }
    }
}

/// An on-demand table's or index's maxima, in request units per second (-1: none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnDemandMaximum {
    pub read: i64,
    pub write: i64,
}

impl OnDemandMaximum {
    /// The maximum for `capacity`, if one is set.
    pub(crate) fn units(&self, capacity: Capacity) -> Option<i64> {
        let units = match capacity {
            Capacity::Read => self.read,
            Capacity::Write => self.write,
        };
        (units != NO_MAXIMUM).then_some(units)
    }

    pub(crate) fn describe(&self) -> Value {
        json!({ "MaxReadRequestUnits": self.read, "MaxWriteRequestUnits": self.write })
    }
}

/// The OnDemandThroughput member of CreateTable, UpdateTable and an index's specification.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct OnDemandThroughputInput {
    max_read_request_units: Option<i64>,
    max_write_request_units: Option<i64>,
}

impl OnDemandThroughputInput {
    /// The maxima after this request: each member sent replaces the current one, each must be
    /// -1 or at least 1.
    pub fn applied_to(
        &self,
        current: Option<OnDemandMaximum>,
        owner: Owner,
    ) -> Result<OnDemandMaximum, DynamoError> {
        let current = current.unwrap_or(OnDemandMaximum {
            read: NO_MAXIMUM,
            write: NO_MAXIMUM,
        });
        let checked = |member: &str, value: Option<i64>, now: i64| match value {
            None => Ok(now),
            Some(v) if v == NO_MAXIMUM || v >= 1 => Ok(v),
            Some(_) => Err(DynamoError::validation(format!(
                "One or more parameter values were invalid: Requested {member} for OnDemandThroughput for {} is outside of valid range",
                owner.name()
            ))),
        };
        Ok(OnDemandMaximum {
            read: checked(
                "MaxReadRequestUnits",
                self.max_read_request_units,
                current.read,
            )?,
            write: checked(
                "MaxWriteRequestUnits",
                self.max_write_request_units,
                current.write,
            )?,
        })
    }
}

/// The warm throughput Haven describes for a table or index, in units per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warm {
    pub read: i64,
    pub write: i64,
}

impl Warm {
    pub(crate) fn describe(&self) -> Value {
        json!({
            "ReadUnitsPerSecond": self.read,
            "WriteUnitsPerSecond": self.write,
            "Status": "ACTIVE",
        })
    }
}

/// The WarmThroughput member of CreateTable, UpdateTable and an index's specification.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct WarmThroughputInput {
    read_units_per_second: Option<i64>,
    write_units_per_second: Option<i64>,
}

impl WarmThroughputInput {
    /// The warm throughput after this request: never lower than before (AWS's defaults for a
    /// new table); each member sent must be at least 1.
    pub fn applied_to(&self, current: Option<Warm>, owner: Owner) -> Result<Warm, DynamoError> {
        let current = current.unwrap_or(Warm {
            read: DEFAULT_WARM_READS,
            write: DEFAULT_WARM_WRITES,
        });
        let checked = |member: &str, value: Option<i64>, now: i64| match value {
            Some(v) if v < 1 => Err(DynamoError::validation(format!(
                "One or more parameter values were invalid: Requested {member} for WarmThroughput for {} is outside of valid range",
                owner.name()
            ))),
            value => Ok(value.unwrap_or(now).max(now)),
        };
        Ok(Warm {
            read: checked(
                "ReadUnitsPerSecond",
                self.read_units_per_second,
                current.read,
            )?,
            write: checked(
                "WriteUnitsPerSecond",
                self.write_units_per_second,
                current.write,
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn on_demand(value: Value, current: Option<OnDemandMaximum>) -> Result<(i64, i64), String> {
        let input: OnDemandThroughputInput = serde_json::from_value(value).unwrap();
        input
            .applied_to(current, Owner::Table)
            .map(|m| (m.read, m.write))
            .map_err(|e| e.message().unwrap())
    }

    #[test]
    fn on_demand_members_replace_the_current_ones() {
        assert_eq!(
            on_demand(json!({"MaxReadRequestUnits": 5}), None),
            Ok((5, -1))
        );
        let current = Some(OnDemandMaximum { read: 5, write: 7 });
        assert_eq!(
            on_demand(json!({"MaxWriteRequestUnits": -1}), current),
            Ok((5, -1))
        );
        assert_eq!(
            on_demand(json!({"MaxWriteRequestUnits": 0}), None),
            Err("One or more parameter values were invalid: Requested MaxWriteRequestUnits for OnDemandThroughput for table is outside of valid range".into())
        );
        assert_eq!(
            OnDemandMaximum { read: 5, write: -1 }.units(Capacity::Write),
            None
        );
    }

    #[test]
    fn warm_throughput_never_goes_down() {
        let warm = |value: Value, current| {
            let input: WarmThroughputInput = serde_json::from_value(value).unwrap();
            input
                .applied_to(current, Owner::Index)
                .map(|w| (w.read, w.write))
                .map_err(|e| e.message().unwrap())
        };
        assert_eq!(warm(json!({}), None), Ok((12_000, 4_000)));
        assert_eq!(
            warm(json!({"ReadUnitsPerSecond": 15_000}), None),
            Ok((15_000, 4_000))
        );
        assert_eq!(
            warm(
                json!({"ReadUnitsPerSecond": 100}),
                Some(Warm {
                    read: 15_000,
                    write: 4_000
                })
            ),
            Ok((15_000, 4_000))
        );
        assert_eq!(
            warm(json!({"WriteUnitsPerSecond": 0}), None),
            Err("One or more parameter values were invalid: Requested WriteUnitsPerSecond for WarmThroughput for index is outside of valid range".into())
        );
    }
}

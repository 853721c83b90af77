//! UpdateTable's GlobalSecondaryIndexUpdates `Update`: a global index's ProvisionedThroughput (on
//! a provisioned table), OnDemandThroughput (on an on-demand table) and WarmThroughput, with the
//! errors DynamoDB (and DynamoDB Local, where it answers) gives. The new settings take effect on
//! the index's capacity at once (`crate::capacity` reads them from the metadata on each request).

use serde::Deserialize;

use super::control::{ProvisionedThroughputInput, check_throughput};
use crate::capacity::settings::{OnDemandThroughputInput, Owner, WarmThroughputInput};
use crate::catalog::{IndexKind, IndexMeta, TableMeta, Throughput};
use crate::error::{DynamoError, Violations};

const FIELD: &str = "globalSecondaryIndexUpdates.1.member.update.provisionedThroughput";

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct IndexUpdateInput {
    index_name: Option<String>,
    provisioned_throughput: Option<ProvisionedThroughputInput>,
    on_demand_throughput: Option<OnDemandThroughputInput>,
    warm_throughput: Option<WarmThroughputInput>,
}

impl IndexUpdateInput {
    /// Field constraints, checked before the table is looked up.
    pub fn check_fields(&self) -> Result<(), DynamoError> {
        let mut violations = Violations::new();
        if let Some(throughput) = &self.provisioned_throughput {
            check_throughput(&mut violations, FIELD, throughput);
        }
        violations.into_result()
    }

    /// The table's metadata with the index updated.
    pub fn applied_to(&self, meta: &TableMeta, now: f64) -> Result<TableMeta, DynamoError> {
        let name = self.index_name.as_deref().unwrap_or_default();
        let mut updated = meta.clone();
        let index = updated
            .indexes
            .iter_mut()
            .find(|i| i.name == name && i.kind == IndexKind::Global && i.maintained())
            .ok_or_else(|| DynamoError::validation("Invalid global secondary index name"))?;
        if meta.billing_mode == "PAY_PER_REQUEST" {
            self.update_on_demand(index, name)?;
        } else {
            self.update_provisioned(index, now)?;
        }
        if let Some(warm) = &self.warm_throughput {
            index.warm = Some(warm.applied_to(index.warm, Owner::Index)?);
        }
        Ok(updated)
    }

    fn update_on_demand(&self, index: &mut IndexMeta, name: &str) -> Result<(), DynamoError> {
        if self.provisioned_throughput.is_some() {
            return Err(DynamoError::validation(format!(
                "One or more parameter values were invalid: ProvisionedThroughput should not be specified for index: {name} when BillingMode is PAY_PER_REQUEST"
            )));
        }
        if let Some(on_demand) = &self.on_demand_throughput {
            index.on_demand = Some(on_demand.applied_to(index.on_demand, Owner::Index)?);
        } else if self.warm_throughput.is_none() {
            return Err(no_throughput());
        }
        Ok(())
    }

    fn update_provisioned(&self, index: &mut IndexMeta, now: f64) -> Result<(), DynamoError> {
        let Some(requested) = &self.provisioned_throughput else {
            return match self.warm_throughput {
                Some(_) if self.on_demand_throughput.is_none() => Ok(()),
                _ => Err(no_throughput()),
            };
        };
        let read = requested.read_capacity_units.unwrap_or_default();
        let write = requested.write_capacity_units.unwrap_or_default();
        let old = index.throughput.clone().unwrap_or_default();
        if (read, write) == (old.read_capacity_units, old.write_capacity_units) {
            return Err(DynamoError::validation(
                "The requested throughput value equals the current value",
            ));
        }
        let increased = read > old.read_capacity_units || write > old.write_capacity_units;
        let decreased = read < old.read_capacity_units || write < old.write_capacity_units;
        index.throughput = Some(Throughput {
            read_capacity_units: read,
            write_capacity_units: write,
            last_increase: if increased {
                Some(now)
            } else {
                old.last_increase
            },
            last_decrease: if decreased {
                Some(now)
            } else {
                old.last_decrease
            },
            decreases_today: old.decreases_today + decreased as i64,
        });
        Ok(())
    }
}

fn no_throughput() -> DynamoError {
    DynamoError::validation("No provisioned throughput specified for the global secondary index")
}

//! Every DynamoDB operation by its AWS name, and the dispatch from name to implementation.
//! Operations not built yet answer UnknownOperationException, as DynamoDB does for operations it
//! does not offer; README.md lists them. The four operations of DynamoDB Streams (its own target
//! prefix, `DynamoDBStreams_20120810`, on the same endpoint) are here too; they live in
//! `crate::streams`.

/// Implements `Deserialize` for `$name`, an operation's input made of `common` (the members it
/// shares with other operations: `$common`, whose fields the list names) and its own members,
/// reading all of them at one level as the request holds them. `#[serde(flatten)]` says the same
/// more briefly, but serde then reads every member the outer struct does not name into a buffer
/// first, and the shared struct from that buffer: 4% of an UpdateItem's instructions
/// (docs/benchmarks.md, "Issue 26"). The compiler checks the list against `$common`'s fields.
macro_rules! flat_input {
    ($name:ident, $common:ident { $($c:ident: $cty:ty),* $(,)? }, { $($field:ident: $ty:ty),* $(,)? }) => {
        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                /// Every member of the input, at one level.
                #[derive(serde::Deserialize)]
                #[serde(rename_all = "PascalCase")]
                struct Flat {
                    $($c: $cty,)*
                    $($field: $ty,)*
                }
                let flat = Flat::deserialize(deserializer)?;
                Ok($name {
                    common: $common { $($c: flat.$c),* },
                    $($field: flat.$field),*
                })
            }
        }
    };
}
pub(crate) use flat_input;

mod account;
mod batch;
mod contributor_insights;
mod control;
mod decoded;
mod index_specs;
mod index_update;
mod items;
mod query;
mod resource_policies;
mod scan;
mod table_features;
mod tags;
mod time_to_live;
mod transact;
mod update_item;
mod update_table;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::reply::Reply;
use crate::{DynamoError, RequestContext, Service};

pub use contributor_insights::InsightsSetting;
pub(crate) use control::{
    CreateTableInput, ProvisionedThroughputInput, TableNameInput, check_billing, check_throughput,
    describe, enum_violation, new_table_meta, now, projection,
};
pub use decoded::Decoded;
pub(crate) use query::{KeyRange, partition_key as query_partition_key};
pub(crate) use scan::segment_range;
pub(crate) use transact::{
    Action, Failure, Kind as ActionKind, REPEATED_ITEM, TransactWrite, check_token, commit_actions,
    read_items, reject_repeated_items, request_fingerprint,
};
pub(crate) use update_item::{ReturnValues, updated_item};
pub(crate) use update_table::{civil_from_days, modify_table};

/// The `X-Amz-Target` prefix of DynamoDB's operations, and of DynamoDB Streams'.
const DYNAMODB_TARGET: &str = "DynamoDB_20120810";
const STREAMS_TARGET: &str = "DynamoDBStreams_20120810";
/// The `X-Amz-Target` prefix of the requests one region's shipper sends another.
pub const REPLICATION_TARGET: &str = "HavenReplication_20261207";

macro_rules! operations {
    ($($name:ident),* $(,)?) => {
        /// Every operation of the DynamoDB API (version 2012-08-10).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Operation { $($name),* }

        impl Operation {
            pub fn from_name(name: &str) -> Option<Operation> {
                match name { $(stringify!($name) => Some(Operation::$name),)* _ => None }
            }

            pub fn name(self) -> &'static str {
                match self { $(Operation::$name => stringify!($name)),* }
            }
        }
    };
}

operations!(
    BatchExecuteStatement,
    BatchGetItem,
    BatchWriteItem,
    CreateBackup,
    CreateGlobalTable,
    CreateTable,
    DeleteBackup,
    DeleteItem,
    DeleteResourcePolicy,
    DeleteTable,
    DescribeBackup,
    DescribeContinuousBackups,
    DescribeContributorInsights,
    DescribeEndpoints,
    DescribeExport,
    DescribeGlobalTable,
    DescribeGlobalTableSettings,
    DescribeImport,
    DescribeKinesisStreamingDestination,
    DescribeLimits,
    DescribeTable,
    DescribeTableReplicaAutoScaling,
    DescribeTimeToLive,
    DisableKinesisStreamingDestination,
    EnableKinesisStreamingDestination,
    ExecuteStatement,
    ExecuteTransaction,
    ExportTableToPointInTime,
    GetItem,
    GetResourcePolicy,
    ImportTable,
    ListBackups,
    ListContributorInsights,
    ListExports,
    ListGlobalTables,
    ListImports,
    ListTables,
    ListTagsOfResource,
    PutItem,
    PutResourcePolicy,
    Query,
    RestoreTableFromBackup,
    RestoreTableToPointInTime,
    Scan,
    TagResource,
    TransactGetItems,
    TransactWriteItems,
    UntagResource,
    UpdateContinuousBackups,
    UpdateContributorInsights,
    UpdateGlobalTable,
    UpdateGlobalTableSettings,
    UpdateItem,
    UpdateKinesisStreamingDestination,
    UpdateTable,
    UpdateTableReplicaAutoScaling,
    UpdateTimeToLive,
    // DynamoDB Streams (target prefix DynamoDBStreams_20120810).
    DescribeStream,
    GetRecords,
    GetShardIterator,
    ListStreams,
    // Haven's replication between regions (target prefix HavenReplication_20261207).
    ReplicateChanges,
    ManageReplica,
);

impl Operation {
    /// The operation an `X-Amz-Target` header names (`DynamoDB_20120810.PutItem`,
    /// `DynamoDBStreams_20120810.GetRecords`); an operation under the other service's prefix is
    /// unknown, as it is to AWS.
    pub fn from_target(target: &str) -> Option<Operation> {
        let (prefix, name) = target.split_once('.')?;
        let operation = Operation::from_name(name)?;
        let expected = if operation.is_streams() {
            STREAMS_TARGET
        } else if matches!(
            operation,
            Operation::ReplicateChanges | Operation::ManageReplica
        ) {
            REPLICATION_TARGET
        } else {
            DYNAMODB_TARGET
        };
        (prefix == expected).then_some(operation)
    }

    fn is_streams(self) -> bool {
        use Operation::*;
        matches!(
            self,
            DescribeStream | GetRecords | GetShardIterator | ListStreams
        )
    }
}

pub(crate) async fn dispatch(
    service: &Service,
    operation: Operation,
    request: Value,
    context: &RequestContext,
) -> Result<Reply, DynamoError> {
    use Operation::*;
    // The item operations (their answers keep items in model form: see crate::reply).
    let request = match Decoded::from_value(operation, request) {
        Ok(decoded) => return decoded?.run(service).await,
        Err(request) => request,
    };
    let json = match operation {
        CreateTable => control::create_table(service, parse(request)?).await,
        DescribeTable => control::describe_table(service, parse(request)?),
        ListTables => control::list_tables(service, parse(request)?),
        DeleteTable => control::delete_table(service, parse(request)?).await,
        TransactWriteItems => transact::transact_write_items(service, request).await,
        TransactGetItems => transact::transact_get_items(service, parse(request)?).await,
        UpdateTable => update_table::update_table(service, parse(request)?).await,
        TagResource => tags::tag_resource(service, parse(request)?).await,
        UntagResource => tags::untag_resource(service, parse(request)?).await,
        ListTagsOfResource => tags::list_tags_of_resource(service, parse(request)?),
        UpdateTimeToLive => time_to_live::update_time_to_live(service, parse(request)?).await,
        DescribeTimeToLive => time_to_live::describe_time_to_live(service, parse(request)?),
        DescribeLimits => Ok(account::describe_limits()),
        DescribeEndpoints => Ok(account::describe_endpoints(service, context)),
        ListStreams => crate::streams::list_streams(service, parse(request)?),
        DescribeStream => crate::streams::describe_stream(service, parse(request)?),
        GetShardIterator => crate::streams::get_shard_iterator(service, parse(request)?),
        GetRecords => crate::streams::get_records(service, parse(request)?),
        ExecuteStatement => {
            return crate::partiql::execute_statement(service, parse(request)?).await;
        }
        BatchExecuteStatement => {
            crate::partiql::batch_execute_statement(service, parse(request)?).await
        }
        ExecuteTransaction => crate::partiql::execute_transaction(service, request).await,
        ReplicateChanges => {
            crate::replication::receiver::replicate_changes(service, parse(request)?).await
        }
        ManageReplica => crate::replication::control::manage(service, parse(request)?).await,
        CreateGlobalTable => crate::replication::legacy::create(service, parse(request)?).await,
        UpdateGlobalTable => crate::replication::legacy::update(service, parse(request)?).await,
        DescribeGlobalTable => crate::replication::legacy::describe(service, parse(request)?),
        ListGlobalTables => crate::replication::legacy::list(service, parse(request)?),
        DescribeGlobalTableSettings => {
            crate::replication::settings::describe(service, parse(request)?).await
        }
        UpdateGlobalTableSettings => {
            crate::replication::settings::update(service, parse(request)?).await
        }
        CreateBackup => crate::backup::create_backup(service, parse(request)?).await,
        DescribeBackup => crate::backup::describe_backup(service, parse(request)?).await,
        ListBackups => crate::backup::list_backups(service, parse(request)?).await,
        DeleteBackup => crate::backup::delete_backup(service, parse(request)?).await,
        RestoreTableFromBackup => {
            crate::backup::restore_table_from_backup(service, parse(request)?).await
        }
        UpdateContinuousBackups => {
            crate::backup::update_continuous_backups(service, parse(request)?).await
        }
        DescribeContinuousBackups => {
            crate::backup::describe_continuous_backups(service, parse(request)?)
        }
        RestoreTableToPointInTime => {
            crate::backup::restore_table_to_point_in_time(service, parse(request)?).await
        }
        GetResourcePolicy => resource_policies::get_resource_policy(service, parse(request)?),
        PutResourcePolicy => {
            let caller = context.principal.as_ref();
            resource_policies::put_resource_policy(service, parse(request)?, caller).await
        }
        DeleteResourcePolicy => {
            resource_policies::delete_resource_policy(service, parse(request)?).await
        }
        DescribeContributorInsights => {
            contributor_insights::describe_contributor_insights(service, parse(request)?)
        }
        UpdateContributorInsights => {
            contributor_insights::update_contributor_insights(service, parse(request)?).await
        }
        ListContributorInsights => {
            contributor_insights::list_contributor_insights(service, parse(request)?)
        }
        ImportTable => crate::import::import_table(service, parse(request)?).await,
        DescribeImport => crate::import::describe_import(service, parse(request)?).await,
        ListImports => crate::import::list_imports(service, parse(request)?).await,
        ExportTableToPointInTime => {
            crate::export::export_table_to_point_in_time(service, parse(request)?).await
        }
        DescribeExport => crate::export::describe_export(service, parse(request)?).await,
        ListExports => crate::export::list_exports(service, parse(request)?).await,
        _ => Err(DynamoError::UnknownOperation),
    };
    json.map(Reply::from)
}

/// Reads a request body into an operation's request type; a shape mismatch is a SerializationException.
pub(crate) fn parse<T: DeserializeOwned>(request: Value) -> Result<T, DynamoError> {
    serde_json::from_value(request)
        .map_err(|error| DynamoError::Serialization(serialization_message(&error)))
}

fn serialization_message(error: &serde_json::Error) -> String {
    let text = error.to_string();
    if text.contains("invalid type: string") {
        "STRING_VALUE can not be converted to the expected type".into()
    } else if text.contains("invalid type: integer") || text.contains("invalid type: floating") {
        "NUMBER_VALUE can not be converted to the expected type".into()
    } else {
        "Unexpected value type in payload".into()
    }
}

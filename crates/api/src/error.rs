//! Errors are data: one enum whose variants are DynamoDB's error types, each carrying AWS's exact
//! message. The HTTP layer only serialises them (`__type`, `message`, status code).

use haven_model::Item;

/// The namespace DynamoDB puts before its own error names.
const DYNAMODB: &str = "com.amazonaws.dynamodb.v20120810";
/// The namespace of errors raised by AWS's request framework (Coral) before DynamoDB sees a request.
const CORAL_SERVICE: &str = "com.amazon.coral.service";
const CORAL_VALIDATE: &str = "com.amazon.coral.validate";
/// The namespace of the request framework's load-shedding errors.
const CORAL_AVAILABILITY: &str = "com.amazon.coral.availability";

/// Every error a DynamoDB operation can answer.
#[derive(Debug, Clone, PartialEq)]
pub enum DynamoError {
    Validation(String),
    Serialization(String),
    UnknownOperation,
    MissingAuthenticationToken,
    IncompleteSignature(String),
    /// A SigV4 signature that does not verify, an expired request or a badly scoped credential.
    InvalidSignature(String),
    /// An access key Haven does not know (or a session token it did not issue).
    UnrecognizedClient(String),
    ResourceNotFound(String),
    /// IAM refused the request (DynamoDB answers this for another account's resource ARN).
    AccessDenied(String),
    ResourceInUse(String),
    ConditionalCheckFailed {
        message: String,
        item: Option<Item>,
    },
    LimitExceeded(String),
    ProvisionedThroughputExceeded(String),
    /// A PartiQL INSERT found an item with its key already there.
    DuplicateItem,
    /// A transaction was refused; one reason per action, in request order.
    TransactionCanceled(Vec<CancellationReason>),
    /// The ClientRequestToken was used by a different request within the idempotency window.
    IdempotentParameterMismatch(String),
    /// A write would grow an item collection (a partition of a table with local indexes) past its limit.
    ItemCollectionSizeLimitExceeded,
    /// A transaction kept conflicting with concurrent writes of its items and gave up.
    TransactionConflict,
    InternalServerError,
    /// The server is overloaded and refused the request at once (SDKs retry it with backoff).
    Throttling,
    /// An on-demand table or index is at the maximum its OnDemandThroughput sets
    /// (`crate::capacity`): DynamoDB's own ThrottlingException, not the request framework's.
    OnDemandThrottling(String),
    /// A DynamoDB Streams shard iterator older than its lifetime (15 minutes).
    ExpiredIterator,
    /// A DynamoDB Streams read of records that retention has already removed.
    TrimmedDataAccess,
    /// CreateBackup (and the other backup operations) name a table that does not exist.
    TableNotFound(String),
    /// No backup has the ARN asked for.
    BackupNotFound(String),
    /// The backup is being created, or a table is being restored from it.
    BackupInUse(String),
    /// A restore's target table name is taken.
    TableAlreadyExists(String),
    /// The table is being created (restored) or deleted.
    TableInUse(String),
    /// A point-in-time restore of a table without point-in-time recovery.
    PointInTimeRecoveryUnavailable(String),
    /// A point-in-time restore outside the restorable window.
    InvalidRestoreTime(String),
    /// No resource-based policy is attached, or not the revision a request expected.
    PolicyNotFound(String),
    /// No import has the ARN asked for (`crate::import`).
    ImportNotFound(String),
    /// An ImportTable's ClientToken was used by an import with other parameters.
    ImportConflict(String),
    /// No export has the ARN asked for.
    ExportNotFound(String),
    /// An export's ClientToken was used with other parameters.
    ExportConflict(String),
    /// An export's time (or incremental window) outside the point-in-time recovery window.
    InvalidExportTime(String),
    /// CreateGlobalTable (version 2017.11.29) of a table that is already a global table.
    GlobalTableAlreadyExists(String),
    /// No global table (version 2017.11.29) of that name.
    GlobalTableNotFound(String),
    /// UpdateGlobalTable adds a region that already holds a replica.
    ReplicaAlreadyExists(String),
    /// UpdateGlobalTable (or its settings) names a region that holds no replica.
    ReplicaNotFound(String),
}

/// Why one action of a cancelled transaction failed (`Code` None when it did not).
#[derive(Debug, Clone, PartialEq)]
pub struct CancellationReason {
    pub code: &'static str,
    pub message: Option<String>,
    pub item: Option<Item>,
}

impl DynamoError {
    pub fn validation(message: impl Into<String>) -> DynamoError {
        DynamoError::Validation(message.into())
    }

    /// A document nested deeper than DynamoDB's 32 levels, however deep.
    pub fn nesting_exceeded() -> DynamoError {
        DynamoError::validation(
            "Nesting Levels have exceeded supported limits: Attributes in the item have nested levels beyond supported limit",
        )
    }

    /// ResourceNotFoundException for data-plane operations on a missing table.
    pub fn table_not_found() -> DynamoError {
        DynamoError::ResourceNotFound("Requested resource not found".into())
    }

    /// The error name as AWS spells it (the part after `#` in `__type`).
    pub fn name(&self) -> &'static str {
        match self {
            DynamoError::Validation(_) => "ValidationException",
            DynamoError::Serialization(_) => "SerializationException",
            DynamoError::UnknownOperation => "UnknownOperationException",
            DynamoError::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            DynamoError::IncompleteSignature(_) => "IncompleteSignatureException",
            DynamoError::InvalidSignature(_) => "InvalidSignatureException",
            DynamoError::UnrecognizedClient(_) => "UnrecognizedClientException",
            DynamoError::ResourceNotFound(_) => "ResourceNotFoundException",
            DynamoError::AccessDenied(_) => "AccessDeniedException",
            DynamoError::ResourceInUse(_) => "ResourceInUseException",
            DynamoError::ConditionalCheckFailed { .. } => "ConditionalCheckFailedException",
            DynamoError::LimitExceeded(_) => "LimitExceededException",
            DynamoError::ProvisionedThroughputExceeded(_) => {
                "ProvisionedThroughputExceededException"
            }
            DynamoError::DuplicateItem => "DuplicateItemException",
            DynamoError::TransactionCanceled(_) => "TransactionCanceledException",
            DynamoError::IdempotentParameterMismatch(_) => "IdempotentParameterMismatchException",
            DynamoError::ItemCollectionSizeLimitExceeded => {
                "ItemCollectionSizeLimitExceededException"
            }
            DynamoError::TransactionConflict => "TransactionConflictException",
            DynamoError::InternalServerError => "InternalServerError",
            DynamoError::Throttling | DynamoError::OnDemandThrottling(_) => "ThrottlingException",
            DynamoError::ExpiredIterator => "ExpiredIteratorException",
            DynamoError::TrimmedDataAccess => "TrimmedDataAccessException",
            DynamoError::TableNotFound(_) => "TableNotFoundException",
            DynamoError::BackupNotFound(_) => "BackupNotFoundException",
            DynamoError::BackupInUse(_) => "BackupInUseException",
            DynamoError::TableAlreadyExists(_) => "TableAlreadyExistsException",
            DynamoError::TableInUse(_) => "TableInUseException",
            DynamoError::PointInTimeRecoveryUnavailable(_) => {
                "PointInTimeRecoveryUnavailableException"
            }
            DynamoError::InvalidRestoreTime(_) => "InvalidRestoreTimeException",
            DynamoError::PolicyNotFound(_) => "PolicyNotFoundException",
            DynamoError::ImportNotFound(_) => "ImportNotFoundException",
            DynamoError::ImportConflict(_) => "ImportConflictException",
            DynamoError::ExportNotFound(_) => "ExportNotFoundException",
            DynamoError::ExportConflict(_) => "ExportConflictException",
            DynamoError::InvalidExportTime(_) => "InvalidExportTimeException",
            DynamoError::GlobalTableAlreadyExists(_) => "GlobalTableAlreadyExistsException",
            DynamoError::GlobalTableNotFound(_) => "GlobalTableNotFoundException",
            DynamoError::ReplicaAlreadyExists(_) => "ReplicaAlreadyExistsException",
            DynamoError::ReplicaNotFound(_) => "ReplicaNotFoundException",
        }
    }

    /// The cancellation message, listing each action's code in request order.
    fn cancellation_message(reasons: &[CancellationReason]) -> String {
        let codes: Vec<&str> = reasons.iter().map(|r| r.code).collect();
        format!(
            "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
            codes.join(", ")
        )
    }

    fn namespace(&self) -> &'static str {
        match self {
            DynamoError::Validation(_) => CORAL_VALIDATE,
            DynamoError::Serialization(_)
            | DynamoError::UnknownOperation
            | DynamoError::MissingAuthenticationToken
            | DynamoError::IncompleteSignature(_)
            | DynamoError::InvalidSignature(_)
            | DynamoError::UnrecognizedClient(_)
            | DynamoError::AccessDenied(_) => CORAL_SERVICE,
            DynamoError::Throttling => CORAL_AVAILABILITY,
            _ => DYNAMODB,
        }
    }

    /// The `__type` field: `<namespace>#<name>`.
    pub fn type_name(&self) -> String {
        format!("{}#{}", self.namespace(), self.name())
    }

    pub fn message(&self) -> Option<String> {
        Some(match self {
            DynamoError::TransactionCanceled(reasons) => {
                return Some(Self::cancellation_message(reasons));
            }
            other => other.static_message()?.to_string(),
        })
    }

    fn static_message(&self) -> Option<&str> {
        Some(match self {
            DynamoError::Validation(m)
            | DynamoError::Serialization(m)
            | DynamoError::IncompleteSignature(m)
            | DynamoError::InvalidSignature(m)
            | DynamoError::UnrecognizedClient(m)
            | DynamoError::ResourceNotFound(m)
            | DynamoError::AccessDenied(m)
            | DynamoError::ResourceInUse(m)
            | DynamoError::LimitExceeded(m)
            | DynamoError::ProvisionedThroughputExceeded(m)
            | DynamoError::OnDemandThrottling(m)
            | DynamoError::IdempotentParameterMismatch(m)
            | DynamoError::TableNotFound(m)
            | DynamoError::BackupNotFound(m)
            | DynamoError::BackupInUse(m)
            | DynamoError::TableAlreadyExists(m)
            | DynamoError::TableInUse(m)
            | DynamoError::PointInTimeRecoveryUnavailable(m)
            | DynamoError::InvalidRestoreTime(m)
            | DynamoError::PolicyNotFound(m)
            | DynamoError::ImportNotFound(m)
            | DynamoError::ImportConflict(m)
            | DynamoError::GlobalTableAlreadyExists(m)
            | DynamoError::GlobalTableNotFound(m)
            | DynamoError::ReplicaAlreadyExists(m)
            | DynamoError::ReplicaNotFound(m) => m,
            DynamoError::ExportNotFound(m)
            | DynamoError::ExportConflict(m)
            | DynamoError::InvalidExportTime(m) => m,
            DynamoError::ConditionalCheckFailed { message, .. } => message,
            DynamoError::MissingAuthenticationToken => "Request is missing Authentication Token",
            DynamoError::InternalServerError => "Internal server error",
            DynamoError::ItemCollectionSizeLimitExceeded => "Collection size exceeded.",
            DynamoError::DuplicateItem => "Duplicate primary key exists in table",
            DynamoError::TransactionConflict => "Transaction is ongoing for the item",
            DynamoError::Throttling => "Rate of requests exceeds the allowed throughput.",
            DynamoError::ExpiredIterator => "Shard iterator has expired",
            DynamoError::TrimmedDataAccess => "The data you are trying to access has been trimmed",
            DynamoError::UnknownOperation | DynamoError::TransactionCanceled(_) => return None,
        })
    }

    /// The HTTP status DynamoDB answers with.
    pub fn status(&self) -> u16 {
        match self {
            DynamoError::InternalServerError => 500,
            _ => 400,
        }
    }
}

/// `Name: message`, as the AWS CLI prints an error (for callers inside the process, such as the
/// mirror, that log it or wrap it).
impl std::fmt::Display for DynamoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.message() {
            Some(message) => write!(f, "{}: {message}", self.name()),
            None => f.write_str(self.name()),
        }
    }
}

impl std::error::Error for DynamoError {}

impl From<haven_storage::StorageError> for DynamoError {
    fn from(error: haven_storage::StorageError) -> DynamoError {
        tracing::error!(%error, "storage failure");
        DynamoError::InternalServerError
    }
}

/// Collects constraint violations and reports them as AWS does:
/// `2 validation errors detected: Value ... ; Value ...`.
#[derive(Default)]
pub struct Violations(Vec<String>);

impl Violations {
    pub fn new() -> Violations {
        Violations::default()
    }

    pub fn push(&mut self, violation: impl Into<String>) {
        self.0.push(violation.into());
    }

    /// `Value null at 'tableName' failed to satisfy constraint: Member must not be null`.
    pub fn null(&mut self, field: &str) {
        self.push(format!(
            "Value null at '{field}' failed to satisfy constraint: Member must not be null"
        ));
    }

    /// Checks a table (or index) name against DynamoDB's length and character rules.
    pub fn name(&mut self, field: &str, name: Option<&str>) {
        let Some(name) = name else {
            return self.null(field);
        };
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        {
            self.failed(
                field,
                name,
                format_args!("Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+"),
            );
        }
        self.length(field, name, 3, 255);
    }

    /// Checks a required string member: null when absent, else its length against `min..=max`.
    pub fn required_length(&mut self, field: &str, value: Option<&str>, min: usize, max: usize) {
        match value {
            None => self.null(field),
            Some(value) => self.length(field, value, min, max),
        }
    }

    /// Checks a string member's length against `min..=max`.
    pub fn length(&mut self, field: &str, value: &str, min: usize, max: usize) {
        if value.len() < min {
            let constraint = format_args!("Member must have length greater than or equal to {min}");
            self.failed(field, value, constraint);
        }
        if value.len() > max {
            let constraint = format_args!("Member must have length less than or equal to {max}");
            self.failed(field, value, constraint);
        }
    }

    /// Checks a paging Limit member (DynamoDB's list operations take 1 to 100).
    pub fn page_limit(&mut self, limit: Option<i64>) {
        if let Some(limit) = limit {
            self.range("limit", limit, 1, 100);
        }
    }

    /// Checks a number member against `min..=max`.
    pub fn range(&mut self, field: &str, value: i64, min: i64, max: i64) {
        if value < min {
            let constraint = format_args!("Member must have value greater than or equal to {min}");
            self.failed(field, value, constraint);
        } else if value > max {
            let constraint = format_args!("Member must have value less than or equal to {max}");
            self.failed(field, value, constraint);
        }
    }

    /// `Value '<value>' at '<field>' failed to satisfy constraint: <constraint>`, formatted only
    /// when a check fails: these checks run on every request.
    fn failed(
        &mut self,
        field: &str,
        value: impl std::fmt::Display,
        constraint: std::fmt::Arguments,
    ) {
        self.push(format!(
            "Value '{value}' at '{field}' failed to satisfy constraint: {constraint}"
        ));
    }

    pub fn into_result(self) -> Result<(), DynamoError> {
        match self.0.len() {
            0 => Ok(()),
            n => Err(DynamoError::Validation(format!(
                "{n} validation error{} detected: {}",
                if n == 1 { "" } else { "s" },
                self.0.join("; ")
            ))),
        }
    }
}

//! CreateTable and UpdateTable members for table features: the StreamSpecification of DynamoDB
//! Streams (checked here, built in `crate::streams`), and those Haven does not offer yet: encryption
//! with a KMS key, OnDemandThroughput and WarmThroughput. (A ResourcePolicy is checked and stored
//! by `super::resource_policies`.)
//!
//! A client that sends one of them expects the feature. Dropping the member silently would leave it
//! believing that its table streams its changes, or is encrypted with its key, or caps its spending.
//! So each member is first validated as DynamoDB validates it (same messages: a client's own mistake
//! reads the same here as against AWS), then what Haven can honour is accepted (streams, DynamoDB's
//! default encryption, which it describes with no SSEDescription) and the rest is refused with a
//! ValidationException that names the member.

use serde::Deserialize;

use crate::error::{DynamoError, Violations};

use super::control::enum_violation;

/// DynamoDB's StreamViewType values, in the order its constraint message lists them.
const STREAM_VIEW_TYPES: [&str; 4] = ["OLD_IMAGE", "KEYS_ONLY", "NEW_AND_OLD_IMAGES", "NEW_IMAGE"];
const SSE_TYPES: [&str; 2] = ["AES256", "KMS"];

/// The refusal of a member (or a value of one) whose feature Haven does not offer yet.
pub(crate) fn unsupported(what: &str) -> DynamoError {
    DynamoError::validation(format!("{what} is not supported by this version of Haven"))
}

/// The first of `members` (name, present in the request) that the request carries.
pub(crate) fn first_present(members: &[(&'static str, bool)]) -> Option<&'static str> {
    members
        .iter()
        .find_map(|(name, present)| present.then_some(*name))
}

fn invalid(message: &str) -> DynamoError {
    DynamoError::validation(format!(
        "One or more parameter values were invalid: {message}"
    ))
}

/// Which request a StreamSpecification came with: DynamoDB words the same rules differently.
#[derive(Clone, Copy)]
pub(crate) enum StreamRequest {
    CreateTable,
    UpdateTable,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct StreamSpecificationInput {
    stream_enabled: Option<bool>,
    stream_view_type: Option<String>,
}

impl StreamSpecificationInput {
    /// Field constraints (`streamSpecification.*`), reported with the request's others.
    pub(crate) fn check_fields(&self, violations: &mut Violations) {
        if self.stream_enabled.is_none() {
            violations.null("streamSpecification.streamEnabled");
        }
        if let Some(view) = &self.stream_view_type {
            enum_violation(
                violations,
                "streamSpecification.streamViewType",
                view,
                &STREAM_VIEW_TYPES,
            );
        }
    }

    /// DynamoDB's rule that a StreamViewType comes with an enabled stream and only with one.
    /// Returns the view type of the stream the request enables (None: it disables streams).
    pub(crate) fn requested(&self, request: StreamRequest) -> Result<Option<String>, DynamoError> {
        let enabled = self.stream_enabled.unwrap_or_default();
        let message = match (request, enabled, self.stream_view_type.is_some()) {
            (_, true, true) | (_, false, false) => {
                return Ok(self.stream_view_type.clone().filter(|_| enabled));
            }
            (StreamRequest::CreateTable, true, false) => {
                "Table is being created with a stream enabled, UpdateViewType is required"
            }
            (StreamRequest::CreateTable, false, true) => {
                "Table is being created with a stream disabled, UpdateViewType should not be specified"
            }
            (StreamRequest::UpdateTable, true, false) => {
                "If stream is being enabled then UpdateViewType is required"
            }
            (StreamRequest::UpdateTable, false, true) => {
                "If stream is being disabled, then UpdateViewType must not be specified"
            }
        };
        Err(invalid(message))
    }
}

#[derive(Deserialize)]
pub(crate) struct SseSpecificationInput {
    #[serde(rename = "Enabled")]
    enabled: Option<bool>,
    #[serde(rename = "SSEType")]
    sse_type: Option<String>,
    #[serde(rename = "KMSMasterKeyId")]
    kms_master_key_id: Option<String>,
}

impl SseSpecificationInput {
    /// Field constraints (`sSESpecification.*`, DynamoDB's spelling), reported with the others.
    pub(crate) fn check_fields(&self, violations: &mut Violations) {
        if let Some(sse_type) = &self.sse_type {
            enum_violation(violations, "sSESpecification.sSEType", sse_type, &SSE_TYPES);
        }
        if self.kms_master_key_id.as_deref() == Some("") {
            violations.push(
                "Value '' at 'sSESpecification.kMSMasterKeyId' failed to satisfy constraint: Member must have length greater than or equal to 1",
            );
        }
    }

    /// DynamoDB's checks of the combination. Returns whether the request asks for encryption with
    /// a KMS key (`Enabled` true, or an SSEType without `Enabled`); `{}` and `Enabled` false keep
    /// DynamoDB's default encryption.
    pub(crate) fn asks_for_kms(&self) -> Result<bool, DynamoError> {
        if self.enabled == Some(false) {
            if self.sse_type.is_some() {
                return Err(invalid("SSEType can not be specified if Enabled is false"));
            }
            if self.kms_master_key_id.is_some() {
                return Err(invalid(
                    "KMSMasterKeyId can not be specified if Enabled is false",
                ));
            }
            return Ok(false);
        }
        match self.sse_type.as_deref() {
            Some("AES256") => Err(invalid("SSEType AES256 is not supported")),
            None if self.kms_master_key_id.is_some() => Err(invalid(
                "SSEType KMS is required if KMSMasterKeyId is specified",
            )),
            sse_type => Ok(self.enabled == Some(true) || sse_type.is_some()),
        }
    }
}

/// Haven does not encrypt tables with KMS keys.
pub(crate) fn refuse_kms() -> DynamoError {
    unsupported("SSESpecification with KMS encryption")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn stream(value: serde_json::Value, request: StreamRequest) -> Result<Option<String>, String> {
        let input: StreamSpecificationInput = serde_json::from_value(value).unwrap();
        input.requested(request).map_err(|e| e.message().unwrap())
    }

    fn sse(value: serde_json::Value) -> Result<bool, String> {
        let input: SseSpecificationInput = serde_json::from_value(value).unwrap();
        input.asks_for_kms().map_err(|e| e.message().unwrap())
    }

    fn field_violations(value: serde_json::Value) -> String {
        let mut violations = Violations::new();
        if let Some(s) = value.get("StreamSpecification") {
            serde_json::from_value::<StreamSpecificationInput>(s.clone())
                .unwrap()
                .check_fields(&mut violations);
        }
        if let Some(s) = value.get("SSESpecification") {
            serde_json::from_value::<SseSpecificationInput>(s.clone())
                .unwrap()
                .check_fields(&mut violations);
        }
        violations.into_result().unwrap_err().message().unwrap()
    }

    #[test]
    fn a_view_type_goes_with_an_enabled_stream_only() {
        use StreamRequest::{CreateTable, UpdateTable};
        assert_eq!(
            stream(json!({"StreamEnabled": false}), CreateTable),
            Ok(None)
        );
        assert_eq!(
            stream(
                json!({"StreamEnabled": true, "StreamViewType": "KEYS_ONLY"}),
                UpdateTable
            ),
            Ok(Some("KEYS_ONLY".into()))
        );
        assert_eq!(
            stream(json!({"StreamEnabled": true}), CreateTable),
            Err("One or more parameter values were invalid: Table is being created with a stream enabled, UpdateViewType is required".into())
        );
        assert_eq!(
            stream(json!({"StreamEnabled": false, "StreamViewType": "NEW_IMAGE"}), CreateTable),
            Err("One or more parameter values were invalid: Table is being created with a stream disabled, UpdateViewType should not be specified".into())
        );
        assert_eq!(
            stream(json!({"StreamEnabled": true}), UpdateTable),
            Err("One or more parameter values were invalid: If stream is being enabled then UpdateViewType is required".into())
        );
        assert_eq!(
            stream(json!({"StreamEnabled": false, "StreamViewType": "NEW_IMAGE"}), UpdateTable),
            Err("One or more parameter values were invalid: If stream is being disabled, then UpdateViewType must not be specified".into())
        );
    }

    #[test]
    fn sse_keeps_the_default_or_asks_for_kms() {
        assert_eq!(sse(json!({})), Ok(false));
        assert_eq!(sse(json!({"Enabled": false})), Ok(false));
        assert_eq!(sse(json!({"Enabled": true})), Ok(true));
        assert_eq!(sse(json!({"SSEType": "KMS"})), Ok(true));
        assert_eq!(
            sse(json!({"Enabled": true, "SSEType": "KMS", "KMSMasterKeyId": "k"})),
            Ok(true)
        );
        let invalid = |m: &str| Err(format!("One or more parameter values were invalid: {m}"));
        assert_eq!(
            sse(json!({"Enabled": false, "SSEType": "KMS", "KMSMasterKeyId": "k"})),
            invalid("SSEType can not be specified if Enabled is false")
        );
        assert_eq!(
            sse(json!({"Enabled": false, "KMSMasterKeyId": "k"})),
            invalid("KMSMasterKeyId can not be specified if Enabled is false")
        );
        assert_eq!(
            sse(json!({"Enabled": true, "SSEType": "AES256"})),
            invalid("SSEType AES256 is not supported")
        );
        assert_eq!(
            sse(json!({"Enabled": true, "KMSMasterKeyId": "k"})),
            invalid("SSEType KMS is required if KMSMasterKeyId is specified")
        );
    }

    #[test]
    fn field_constraints_use_dynamodb_member_paths() {
        assert_eq!(
            field_violations(json!({"StreamSpecification": {"StreamViewType": "new_image"}})),
            "2 validation errors detected: Value null at 'streamSpecification.streamEnabled' failed to satisfy constraint: Member must not be null; Value 'new_image' at 'streamSpecification.streamViewType' failed to satisfy constraint: Member must satisfy enum value set: [OLD_IMAGE, KEYS_ONLY, NEW_AND_OLD_IMAGES, NEW_IMAGE]"
        );
        assert_eq!(
            field_violations(json!({"SSESpecification": {"SSEType": "kms", "KMSMasterKeyId": ""}})),
            "2 validation errors detected: Value 'kms' at 'sSESpecification.sSEType' failed to satisfy constraint: Member must satisfy enum value set: [AES256, KMS]; Value '' at 'sSESpecification.kMSMasterKeyId' failed to satisfy constraint: Member must have length greater than or equal to 1"
        );
    }
}

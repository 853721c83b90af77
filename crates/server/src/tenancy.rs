//! Which tables a request sees: one shared set (Haven's default), as DynamoDB Local does
//! without `-sharedDb` a set per access key id and region, or, with `--auth`, a set per AWS
//! account as in AWS itself (a key's account is in the credentials file).
//!
//! DynamoDB Local keeps a database file per `<access key id>_<region>`; Haven does the same with
//! a whole [`Service`] (its own engine, catalog and workers) per namespace, opened on first use by
//! a factory the binary gives. Nothing below the server learns about namespaces: the catalog and
//! the engine of each namespace are the ones a single-namespace server would have. The key id
//! and region are read from the Authorization header's credential scope, which every SDK sends.
//!
//! DynamoDB Local's rule for key ids (observed with version 3.3): letters and digits only,
//! in both modes, otherwise `UnrecognizedClientException`; key ids and regions are
//! case-sensitive. Namespaces are bounded (`max`) so that made-up key ids cannot open engines
//! without end.
//!
//! Accounts: a key without an account, or with the server's own (`--account`), sees the server's
//! own tables, on whatever storage it runs; any other account's tables are a namespace named
//! `<account>_<region>`, opened like a key id's. One account never sees another's tables, and the
//! account id is the one in its ARNs, so policies name it as in AWS.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hyper::header::{AUTHORIZATION, HeaderMap};

use haven_api::{DynamoError, Service};

use crate::credentials::AccessKey;

/// Opens the service of a namespace the first time a request names it.
pub type OpenNamespace = Arc<dyn Fn(&Namespace) -> Result<Arc<Service>, String> + Send + Sync>;

/// The tables a request may see.
pub enum Tenancy {
    /// One set of tables for every caller; with `check_key_ids`, key ids must follow DynamoDB
    /// Local's rule all the same (its `-sharedDb` mode).
    Shared {
        service: Arc<Service>,
        check_key_ids: bool,
    },
    /// A set of tables per access key id and region (DynamoDB Local without `-sharedDb`).
    PerKeyRegion(Namespaces),
    /// A set of tables per AWS account of the signing key (`--auth`): the server's own account's
    /// in `own`, the others' in `others` (None where the storage keeps only one set, which
    /// refuses keys of other accounts).
    PerAccount {
        own: Arc<Service>,
        others: Option<Namespaces>,
    },
}

impl From<Arc<Service>> for Tenancy {
    fn from(service: Arc<Service>) -> Tenancy {
        Tenancy::Shared {
            service,
            check_key_ids: false,
        }
    }
}

impl Tenancy {
    /// The region `GET /` names: the shared tables' region; with a set per key and region, where
    /// a `GET` names neither, `us-east-1`, as DynamoDB Local answers.
    pub(crate) fn region(&self) -> &str {
        match self {
            Tenancy::Shared { service, .. } => service.region(),
            Tenancy::PerKeyRegion(_) => "us-east-1",
            Tenancy::PerAccount { own, .. } => own.region(),
        }
    }

    /// The service that answers a request with these headers (whose Authorization header has
    /// already been checked for its shape), signed by `signer` when authentication is on.
    pub(crate) fn service(
        &self,
        headers: &HeaderMap,
        signer: Option<&AccessKey>,
    ) -> Result<Arc<Service>, DynamoError> {
        match self {
            Tenancy::Shared {
                service,
                check_key_ids,
            } => {
                if *check_key_ids {
                    Namespace::of(headers)?;
                }
                Ok(service.clone())
            }
            Tenancy::PerKeyRegion(namespaces) => namespaces.get(&Namespace::of(headers)?),
            Tenancy::PerAccount { own, others } => {
                let account = signer.and_then(|key| key.account.as_deref());
                match (account, others) {
                    (None, _) => Ok(own.clone()),
                    (Some(account), _) if account == own.account() => Ok(own.clone()),
                    (Some(account), Some(others)) => others.get(&Namespace {
                        owner: account.to_string(),
                        region: own.region().to_string(),
                    }),
                    (Some(account), None) => Err(DynamoError::AccessDenied(format!(
                        "Account {account} has no tables on this server: the tables of accounts other than the server's own ({}) need the embedded storage",
                        own.account()
                    ))),
                }
            }
        }
    }
}

/// An owner of tables and a region: an access key id, as DynamoDB Local separates databases, or
/// an AWS account id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Namespace {
    pub owner: String,
    pub region: String,
}

/// Longest key id and region accepted (IAM's key ids have at most 128 characters).
const MAX_PART: usize = 128;

impl Namespace {
    /// The namespace named by the Authorization header's `Credential=<key id>/<date>/<region>/...`.
    pub fn of(headers: &HeaderMap) -> Result<Namespace, DynamoError> {
        let authorization = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let credential = authorization
            .split([' ', ','])
            .find_map(|part| part.trim().strip_prefix("Credential="))
            .unwrap_or_default();
        let mut scope = credential.splitn(4, '/');
        let access_key_id = scope.next().unwrap_or_default();
        let region = scope.nth(1).unwrap_or_default();
        if !valid_part(access_key_id, false) || !valid_part(region, true) {
            return Err(invalid_key());
        }
        Ok(Namespace {
            owner: access_key_id.to_string(),
            region: region.to_string(),
        })
    }

    /// A name for the namespace's files: `<owner>_<region>`, as DynamoDB Local names its
    /// database files `<key id>_<region>` (both parts are letters, digits and, in a region,
    /// dashes).
    pub fn file_stem(&self) -> String {
        format!("{}_{}", self.owner, self.region)
    }
}

/// Whether a key id (letters and digits) or a region (also dashes) is acceptable.
fn valid_part(part: &str, dashes: bool) -> bool {
    !part.is_empty()
        && part.len() <= MAX_PART
        && part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || (dashes && b == b'-'))
}

fn invalid_key() -> DynamoError {
    DynamoError::UnrecognizedClient("The Access Key ID or security token is invalid.".into())
}

/// The services of the namespaces seen so far, at most `max` of them.
pub struct Namespaces {
    open: OpenNamespace,
    max: usize,
    services: Mutex<HashMap<Namespace, Arc<Service>>>,
}

impl Namespaces {
    pub fn new(open: OpenNamespace, max: usize) -> Namespaces {
        Namespaces {
            open,
            max,
            services: Mutex::default(),
        }
    }

    /// The namespace's service, opened now if it is new. Opening happens under the lock: it is
    /// rare (once per namespace) and must not run twice for one namespace.
    fn get(&self, namespace: &Namespace) -> Result<Arc<Service>, DynamoError> {
        let mut services = self.services.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(service) = services.get(namespace) {
            return Ok(service.clone());
        }
        if services.len() >= self.max {
            tracing::warn!(
                max = self.max,
                "too many sets of tables (access key id or account, and region): refusing a new one"
            );
            return Err(DynamoError::LimitExceeded(format!(
                "This server keeps at most {} sets of tables (one per access key id or account, and region)",
                self.max
            )));
        }
        let service = (self.open)(namespace).map_err(|error| {
            tracing::error!(%error, namespace = namespace.file_stem(), "cannot open a namespace");
            DynamoError::InternalServerError
        })?;
        services.insert(namespace.clone(), service.clone());
        Ok(service)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, authorization.parse().unwrap());
        headers
    }

    #[test]
    fn reads_key_id_and_region_from_the_credential_scope() {
        let h = headers(
            "AWS4-HMAC-SHA256 Credential=keyA/20240101/eu-west-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0",
        );
        assert_eq!(
            Namespace::of(&h).unwrap(),
            Namespace {
                owner: "keyA".into(),
                region: "eu-west-1".into()
            }
        );
        assert_eq!(Namespace::of(&h).unwrap().file_stem(), "keyA_eu-west-1");
    }

    #[test]
    fn refuses_key_ids_dynamodb_local_refuses() {
        for key in ["key-a", "key_a", "", "k\u{e9}", &"a".repeat(129)] {
            let h = headers(&format!(
                "AWS4-HMAC-SHA256 Credential={key}/20240101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0"
            ));
            let error = Namespace::of(&h).unwrap_err();
            assert_eq!(error.name(), "UnrecognizedClientException");
        }
    }

    #[test]
    fn refuses_regions_unfit_for_a_file_name() {
        for region in ["", "../x", "us+east", "us_east"] {
            let h = headers(&format!(
                "AWS4-HMAC-SHA256 Credential=key/20240101/{region}/dynamodb/aws4_request, SignedHeaders=host, Signature=0"
            ));
            assert!(Namespace::of(&h).is_err(), "{region}");
        }
    }
}

//! Access keys: the credentials file, its reloading, and key generation.
//!
//! The file holds one key per line, `ACCESS_KEY_ID SECRET_ACCESS_KEY [NAME]`, fields separated by
//! spaces or tabs, optionally a key's policy on a line `policy ACCESS_KEY_ID {JSON}` and the AWS
//! account it belongs to on a line `account ACCESS_KEY_ID 123456789012` (without one, the key
//! belongs to the server's own account, `--account`); blank lines and lines starting with `#` are
//! ignored (docs/security.md). The server checks the file
//! for a change on every request (one `stat`), so keys are created, rotated, revoked and their
//! policies changed without a restart, and in force from the next request. Secrets are never
//! logged: `AccessKey`'s Debug hides them and parse errors name the line, not its content.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use hyper::Uri;
use hyper::header::HeaderMap;

use haven_api::DynamoError;
use haven_api::access::{Policy, Principal};

use crate::sigv4;

const FILE_HEADER: &str = "# Haven credentials: one access key per line: ACCESS_KEY_ID SECRET_ACCESS_KEY [NAME]\n\
# and a key's policy, if it has one: policy ACCESS_KEY_ID {JSON} (a key without one has full access),\n\
# and its account, if not the server's own: account ACCESS_KEY_ID 123456789012.\n\
# Managed by `haven keys create|list|revoke|policy`; keep this file private (mode 0600).\n";

/// The first field of a policy line; never an access key id.
const POLICY_KEYWORD: &str = "policy";

/// The first field of an account line; never an access key id.
const ACCOUNT_KEYWORD: &str = "account";

#[derive(Clone, PartialEq)]
pub struct AccessKey {
    pub id: String,
    pub secret: String,
    pub name: Option<String>,
    /// None: full access.
    pub policy: Option<Arc<Policy>>,
    /// The AWS account the key belongs to, whose tables it sees (12 digits); None: the server's
    /// own account.
    pub account: Option<String>,
}

impl fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessKey")
            .field("id", &self.id)
            .field("secret", &"<hidden>")
            .field("name", &self.name)
            .field("policy", &self.policy.is_some())
            .field("account", &self.account)
            .finish()
    }
}

impl AccessKey {
    /// A new random key: `HK` and 18 base-32 characters, and a 40-character secret.
    pub fn generate(name: Option<String>) -> io::Result<AccessKey> {
        const ID_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        const SECRET_ALPHABET: &[u8] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut random = [0u8; 58];
        getrandom::fill(&mut random).map_err(|e| io::Error::other(e.to_string()))?;
        let id: String = "HK"
            .chars()
            .chain(
                random[..18]
                    .iter()
                    .map(|b| ID_ALPHABET[usize::from(b % 32)] as char),
            )
            .collect();
        let secret: String = random[18..]
            .iter()
            .map(|b| SECRET_ALPHABET[usize::from(b % 64)] as char)
            .collect();
        Ok(AccessKey {
            id,
            secret,
            name,
            policy: None,
            account: None,
        })
    }

    /// The caller this key authenticates, as authorization sees it.
    pub fn principal(&self) -> Principal {
        Principal {
            user: self.name.clone().unwrap_or_else(|| self.id.clone()),
            policy: self.policy.clone(),
        }
    }
}

/// Parses a credentials file. An error names the line and what is wrong with it, never its content.
pub fn parse(text: &str) -> io::Result<Vec<AccessKey>> {
    let mut keys: Vec<AccessKey> = Vec::new();
    let mut policies: Vec<(usize, &str, Policy)> = Vec::new();
    let mut accounts: Vec<(usize, &str, &str)> = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let invalid = |what: &str| invalid_line(number, what);
        let mut fields = line.splitn(3, [' ', '\t']);
        let id = fields.next().unwrap_or_default();
        let second = fields.next().unwrap_or_default().trim();
        let rest = fields.next().map(str::trim).filter(|n| !n.is_empty());
        if id == POLICY_KEYWORD {
            let policy = Policy::parse(rest.unwrap_or_default())
                .map_err(|e| invalid(&format!("invalid policy for {second}: {e}")))?;
            policies.push((number, second, policy));
            continue;
        }
        if id == ACCOUNT_KEYWORD {
            let account = rest.unwrap_or_default();
            if !is_account_id(account) {
                return Err(invalid(&format!(
                    "the account of {second} must be 12 digits"
                )));
            }
            accounts.push((number, second, account));
            continue;
        }
        if second.is_empty() {
            return Err(invalid("expected ACCESS_KEY_ID SECRET_ACCESS_KEY [NAME]"));
        }
        if !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(invalid("an access key id is letters and digits only"));
        }
        if keys.iter().any(|k| k.id == id) {
            return Err(invalid("duplicate access key id"));
        }
        keys.push(AccessKey {
            id: id.to_string(),
            secret: second.to_string(),
            name: rest.map(str::to_string),
            policy: None,
            account: None,
        });
    }
    for (number, id, policy) in policies {
        let key = key_of_line(&mut keys, number, id, "policy")?;
        if key.policy.is_some() {
            return Err(invalid_line(number, &format!("a second policy for {id}")));
        }
        key.policy = Some(Arc::new(policy));
    }
    for (number, id, account) in accounts {
        let key = key_of_line(&mut keys, number, id, "account")?;
        if key.account.is_some() {
            return Err(invalid_line(number, &format!("a second account for {id}")));
        }
        key.account = Some(account.to_string());
    }
    Ok(keys)
}

/// The key a `policy` or `account` line (`what`) names.
fn key_of_line<'k>(
    keys: &'k mut [AccessKey],
    number: usize,
    id: &str,
    what: &str,
) -> io::Result<&'k mut AccessKey> {
    keys.iter_mut().find(|k| k.id == id).ok_or_else(|| {
        invalid_line(
            number,
            &format!("a {what} for {id}, which is not a key of this file"),
        )
    })
}

/// Whether `account` is an AWS account id: 12 digits.
pub fn is_account_id(account: &str) -> bool {
    account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())
}

fn invalid_line(number: usize, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("credentials file line {}: {what}", number + 1),
    )
}

/// Reads a credentials file; a missing file holds no keys.
pub fn load(path: &Path) -> io::Result<Vec<AccessKey>> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Writes the keys atomically (a private temporary file renamed over the old one), mode 0600.
pub fn save(path: &Path, keys: &[AccessKey]) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut text = String::from(FILE_HEADER);
    for key in keys {
        text.push_str(&key.id);
        text.push(' ');
        text.push_str(&key.secret);
        if let Some(name) = &key.name {
            text.push(' ');
            text.push_str(name);
        }
        text.push('\n');
        if let Some(policy) = &key.policy {
            let document = policy.document().to_string();
            text.push_str(&format!("{POLICY_KEYWORD} {} {document}\n", key.id));
        }
        if let Some(account) = &key.account {
            text.push_str(&format!("{ACCOUNT_KEYWORD} {} {account}\n", key.id));
        }
    }
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file path"))?;
    let temporary = path.with_file_name(format!(
        ".{}.tmp{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, path)
}

/// The file's identity: a change of any part means it was rewritten.
type Stamp = Option<(SystemTime, u64, u64)>;

fn stamp(path: &Path) -> Stamp {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.modified().ok()?, metadata.len(), metadata.ino()))
}

struct State {
    keys: HashMap<String, AccessKey>,
    stamp: Stamp,
}

/// The keys of a credentials file, re-read when the file changes.
pub struct KeyStore {
    path: PathBuf,
    state: Mutex<State>,
}

impl KeyStore {
    /// Reads the file now; fails if it cannot be read or parsed.
    pub fn open(path: &Path) -> io::Result<KeyStore> {
        let stamp = stamp(path);
        let keys = load(path)?;
        Ok(KeyStore {
            path: path.to_path_buf(),
            state: Mutex::new(State {
                keys: by_id(keys),
                stamp,
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The key `access_key_id`, from the file as it is now: its metadata is checked on every call
    /// (one `stat`), so a revoked key is refused from the next request on.
    pub fn key(&self, access_key_id: &str) -> Option<AccessKey> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let current = stamp(&self.path);
        if current != state.stamp {
            match load(&self.path) {
                Ok(keys) => {
                    state.keys = by_id(keys);
                    state.stamp = current;
                    tracing::info!(
                        path = %self.path.display(),
                        keys = state.keys.len(),
                        "credentials file reloaded"
                    );
                }
                // Keep the keys we had: a half-edited file must not lock everyone out. The
                // stamp is not updated, so the file is read again on the next request.
                Err(error) => tracing::error!(
                    path = %self.path.display(),
                    %error,
                    "cannot reload the credentials file; keeping the previous keys"
                ),
            }
        }
        state.keys.get(access_key_id).cloned()
    }
}

fn by_id(keys: Vec<AccessKey>) -> HashMap<String, AccessKey> {
    keys.into_iter().map(|k| (k.id.clone(), k)).collect()
}

/// SigV4 authentication of every request against a credentials file.
pub struct Authenticator {
    /// The region requests must be signed for.
    pub region: String,
    pub keys: KeyStore,
}

impl Authenticator {
    /// Verifies the request's signature; returns the key that signed it.
    pub fn verify(
        &self,
        method: &str,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<AccessKey, DynamoError> {
        self.verify_head(method, uri, headers)?.finish(body)
    }

    /// Authenticates a request from its head, before its body is read: the Authorization header's
    /// shape, then [`sigv4::verify_head`]. The body is checked by [`Signer::finish`].
    pub fn verify_head(
        &self,
        method: &str,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<Signer, DynamoError> {
        crate::auth::check_authorization(headers)?;
        let head = sigv4::RequestHead {
            method,
            uri,
            headers,
        };
        // The key is looked up once, so the secret checked and the policy used are one version.
        let mut key = None;
        let pending = sigv4::verify_head(&head, &self.region, SystemTime::now(), |id| {
            key = self.keys.key(id);
            key.as_ref().map(|k| k.secret.clone())
        })?;
        let key = key.ok_or(DynamoError::InternalServerError)?;
        Ok(Signer { key, pending })
    }
}

/// The key that signed a request's head, until its body is checked.
#[must_use = "the request is not authenticated until its body is checked"]
pub struct Signer {
    key: AccessKey,
    pending: sigv4::PendingBody,
}

impl Signer {
    /// The key, once `body` is the body that was signed.
    pub fn finish(self, body: &[u8]) -> Result<AccessKey, DynamoError> {
        self.pending.finish(body)?;
        Ok(self.key)
    }
}

//! What the cache is keyed by: the question (name in lower case, wire format, then type and class)
//! and the two query bits that change the answer, DO (DNSSEC records wanted) and CD (checking
//! disabled). Everything the resolver asks upstream is rebuilt from it, so a resolution needs
//! nothing of the client's query but its key. It lives on the stack: a cache hit allocates nothing.

use haven_dns::wire::{MAX_NAME_LEN, Question};

/// Name, type (2 bytes), class (2 bytes), flags (1 byte).
const MAX_KEY_LEN: usize = MAX_NAME_LEN + 5;
const FLAG_DNSSEC_OK: u8 = 0x01;
const FLAG_CHECKING_DISABLED: u8 = 0x02;

#[derive(Clone, Copy)]
pub struct Key {
    bytes: [u8; MAX_KEY_LEN],
    len: usize,
}

impl Key {
    pub fn of(question: &Question) -> Key {
        let mut bytes = [0u8; MAX_KEY_LEN];
        let name_and_type = question.key();
        let len = name_and_type.len();
        bytes[..len].copy_from_slice(name_and_type);
        bytes[len..len + 2].copy_from_slice(&question.class.to_be_bytes());
        bytes[len + 2] = if question.dnssec_ok() {
            FLAG_DNSSEC_OK
        } else {
            0
        } | if question.checking_disabled {
            FLAG_CHECKING_DISABLED
        } else {
            0
        };
        Key {
            bytes,
            len: len + 3,
        }
    }

    /// A key as the cache stores it; `None` for bytes no [`Key::of`] could have made.
    pub fn from_bytes(stored: &[u8]) -> Option<Key> {
        let mut bytes = [0u8; MAX_KEY_LEN];
        bytes.get_mut(..stored.len())?.copy_from_slice(stored);
        (stored.len() > 5).then_some(Key {
            bytes,
            len: stored.len(),
        })
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// The name in lower case, wire format.
    pub fn name(&self) -> &[u8] {
        &self.bytes[..self.len - 5]
    }

    /// The question as sent upstream: name, type, class.
    pub fn question(&self) -> &[u8] {
        &self.bytes[..self.len - 1]
    }

    pub fn record_type(&self) -> u16 {
        u16::from_be_bytes([self.bytes[self.len - 5], self.bytes[self.len - 4]])
    }

    pub fn dnssec_ok(&self) -> bool {
        self.bytes[self.len - 1] & FLAG_DNSSEC_OK != 0
    }

    pub fn checking_disabled(&self) -> bool {
        self.bytes[self.len - 1] & FLAG_CHECKING_DISABLED != 0
    }

    /// The name as text, for logs (`dynamodb.us-east-1.amazonaws.com.`).
    pub fn display_name(&self) -> String {
        display_name(self.name())
    }

    /// The type's mnemonic, for logs (`A`, `AAAA`, `TYPE65534`...).
    pub fn type_name(&self) -> String {
        hickory_proto::rr::RecordType::from(self.record_type()).to_string()
    }
}

/// A lower-case wire-format name as dotted text; bytes outside printable ASCII escaped.
pub fn display_name(mut name: &[u8]) -> String {
    let mut text = String::new();
    while let Some((&length, rest)) = name.split_first() {
        if length == 0 {
            break;
        }
        let (label, rest) = rest.split_at(usize::from(length).min(rest.len()));
        text.extend(label.escape_ascii().map(char::from));
        text.push('.');
        name = rest;
    }
    if text.is_empty() {
        text.push('.');
    }
    text
}

impl std::fmt::Debug for Key {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "{} type {}",
            self.display_name(),
            self.record_type()
        )
    }
}

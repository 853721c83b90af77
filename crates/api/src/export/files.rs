//! An export's data files as AWS writes them: `data/<26 random characters>.json.gz` (or
//! `.ion.gz`), gzip-compressed lines, each file closed once its lines pass a bounded size (so an
//! export's memory does not grow with the table), and for each file the line of
//! `manifest-files.json` naming it with its item count and checksums.

use std::io::Write;

use base64::Engine as _;
use flate2::Compression;
use flate2::write::GzEncoder;
use haven_model::Item;
use md5::{Digest, Md5};
use serde_json::{Value, json};

use super::ion;
use crate::backup::store::{BackupStore, StoreError};

/// A data file is closed once its uncompressed lines pass this many bytes.
pub(crate) const DATA_FILE_BYTES: usize = 16 * 1024 * 1024;

/// What an export writes each item or change as.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Format {
    DynamoDbJson,
    Ion,
}

impl Format {
    pub(crate) fn parse(name: &str) -> Format {
        match name {
            "ION" => Format::Ion,
            _ => Format::DynamoDbJson,
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Format::DynamoDbJson => "json.gz",
            Format::Ion => "ion.gz",
        }
    }

    /// A full export's line: `{"Item":{...}}`, or in Ion `$dynamodb_Item::{Item:{...}}`.
    pub(crate) fn item_line(self, item: &Item) -> String {
        match self {
            Format::DynamoDbJson => crate::backup::image::item_line(item),
            Format::Ion => {
                let mut out = String::from("$dynamodb_Item::{Item:");
                ion::item(item, &mut out);
                out.push('}');
                out
            }
        }
    }

    /// An incremental export's line: the write's time, the key, and the images asked for.
    pub(crate) fn change_line(self, change: &Change, old_image: bool) -> String {
        let old = change.old.as_ref().filter(|_| old_image);
        match self {
            Format::DynamoDbJson => {
                let mut line = json!({
                    "Metadata": {"WriteTimestampMicros": {"N": change.micros.to_string()}},
                    "Keys": crate::wire::item_to_json(&change.keys),
                });
                if let Some(new) = &change.new {
                    line["NewImage"] = crate::wire::item_to_json(new);
                }
                if let Some(old) = old {
                    line["OldImage"] = crate::wire::item_to_json(old);
                }
                line.to_string()
            }
            Format::Ion => {
                let mut out = format!(
                    "$dynamodb_Item::{{Metadata:{{WriteTimestampMicros:{}}},Keys:",
                    change.micros
                );
                ion::item(&change.keys, &mut out);
                for (name, image) in [("NewImage", change.new.as_ref()), ("OldImage", old)] {
                    if let Some(image) = image {
                        out.push(',');
                        out.push_str(name);
                        out.push(':');
                        ion::item(image, &mut out);
                    }
                }
                out.push('}');
                out
            }
        }
    }
}

/// One item's change over an incremental export's window.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Change {
    pub keys: Item,
    /// The item as the window began (None: it did not exist).
    pub old: Option<Item>,
    /// The item as the window ended (None: deleted).
    pub new: Option<Item>,
    /// When its last write in the window was committed, in microseconds.
    pub micros: u64,
}

/// The data files of one export being written.
pub(crate) struct DataFiles<'s> {
    store: &'s dyn BackupStore,
    /// `<prefix>/AWSDynamoDB/<id>/data/`.
    directory: String,
    format: Format,
    encoder: GzEncoder<Vec<u8>>,
    /// Uncompressed bytes and lines in the open file.
    bytes: usize,
    items: u64,
    /// A file is written once its lines pass this many bytes.
    limit: usize,
    /// The `manifest-files.json` line of each file written.
    pub written: Vec<Value>,
}

impl<'s> DataFiles<'s> {
    pub(crate) fn new(store: &'s dyn BackupStore, root: &str, format: Format) -> DataFiles<'s> {
        DataFiles {
            store,
            directory: format!("{root}/data/"),
            format,
            encoder: GzEncoder::new(Vec::new(), Compression::default()),
            bytes: 0,
            items: 0,
            limit: DATA_FILE_BYTES,
            written: Vec::new(),
        }
    }

    /// Adds one line; writes the open file once it is full (true: a file was written).
    pub(crate) fn add(&mut self, line: &str) -> Result<bool, StoreError> {
        if self.bytes == 0 && self.format == Format::Ion {
            self.write(b"$ion_1_0 ")?;
        }
        self.write(line.as_bytes())?;
        self.write(b"\n")?;
        self.items += 1;
        if self.bytes < self.limit {
            return Ok(false);
        }
        self.flush()?;
        Ok(true)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.bytes += bytes.len();
        self.encoder
            .write_all(bytes)
            .map_err(|e| StoreError(e.to_string()))
    }

    /// Writes the open file (an empty one if no file was written yet, as AWS writes one per
    /// partition even when it is empty) and answers every file's manifest line.
    pub(crate) fn finish(mut self) -> Result<Vec<Value>, StoreError> {
        if self.items > 0 || self.written.is_empty() {
            self.flush()?;
        }
        Ok(self.written)
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        let fresh = GzEncoder::new(Vec::new(), Compression::default());
        let encoder = std::mem::replace(&mut self.encoder, fresh);
        let body = encoder.finish().map_err(|e| StoreError(e.to_string()))?;
        let key = format!(
            "{}{}.{}",
            self.directory,
            random_name(),
            self.format.extension()
        );
        self.store.put(&key, &body)?;
        let digest = Md5::digest(&body);
        self.written.push(json!({
            "itemCount": self.items,
            "md5Checksum": base64::engine::general_purpose::STANDARD.encode(digest),
            "etag": hex(&digest),
            "dataFileS3Key": key,
        }));
        self.bytes = 0;
        self.items = 0;
        Ok(())
    }
}

/// Lower-case hexadecimal (an object's ETag is its MD5 so written).
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// 26 random characters of base32 (lower case, `a-z2-7`), as AWS names data files.
fn random_name() -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut bits = uuid::Uuid::new_v4().as_u128();
    (0..26)
        .map(|_| {
            let c = ALPHABET[(bits & 31) as usize] as char;
            bits >>= 5;
            c
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::store::MemoryStore;
    use std::io::Read;

    fn item(json: serde_json::Value) -> Item {
        crate::wire::parse_item(&json).unwrap()
    }

    fn gunzip(bytes: &[u8]) -> String {
        let mut text = String::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_string(&mut text)
            .unwrap();
        text
    }

    #[test]
    fn files_hold_gzip_lines_and_their_manifest_lines_name_them() {
        let store = MemoryStore::default();
        let mut files = DataFiles::new(&store, "p/AWSDynamoDB/1-a", Format::DynamoDbJson);
        let one = item(serde_json::json!({"pk": {"S": "a"}}));
        files.add(&Format::DynamoDbJson.item_line(&one)).unwrap();
        files.add(&Format::DynamoDbJson.item_line(&one)).unwrap();
        let written = files.finish().unwrap();
        assert_eq!(written.len(), 1);
        let key = written[0]["dataFileS3Key"].as_str().unwrap();
        assert!(key.starts_with("p/AWSDynamoDB/1-a/data/") && key.ends_with(".json.gz"));
        assert_eq!(key.len(), "p/AWSDynamoDB/1-a/data/".len() + 26 + 8);
        let body = store.get(key).unwrap().unwrap();
        assert_eq!(
            gunzip(&body),
            "{\"Item\":{\"pk\":{\"S\":\"a\"}}}\n{\"Item\":{\"pk\":{\"S\":\"a\"}}}\n"
        );
        assert_eq!(written[0]["itemCount"], 2);
        assert_eq!(written[0]["etag"], hex(&Md5::digest(&body)));
    }

    #[test]
    fn a_file_is_written_once_its_lines_pass_the_limit() {
        let store = MemoryStore::default();
        let mut files = DataFiles::new(&store, "r", Format::Ion);
        files.limit = 100;
        let one = item(serde_json::json!({"pk": {"S": "a".repeat(40)}}));
        let line = Format::Ion.item_line(&one);
        let full: Vec<bool> = (0..5).map(|_| files.add(&line).unwrap()).collect();
        assert_eq!(full, [false, true, false, true, false]);
        let written = files.finish().unwrap();
        let counts: Vec<u64> = written
            .iter()
            .map(|f| f["itemCount"].as_u64().unwrap())
            .collect();
        assert_eq!(counts, [2, 2, 1]);
        for file in &written {
            let key = file["dataFileS3Key"].as_str().unwrap();
            assert!(key.ends_with(".ion.gz"), "{key}");
            let text = gunzip(&store.get(key).unwrap().unwrap());
            assert!(
                text.starts_with("$ion_1_0 $dynamodb_Item::{Item:{pk:"),
                "{text}"
            );
        }
    }

    #[test]
    fn an_empty_export_still_writes_one_empty_file() {
        let store = MemoryStore::default();
        let written = DataFiles::new(&store, "r", Format::Ion).finish().unwrap();
        assert_eq!(written.len(), 1);
        assert_eq!(written[0]["itemCount"], 0);
    }

    #[test]
    fn incremental_lines_carry_the_images_asked_for() {
        let change = Change {
            keys: item(serde_json::json!({"pk": {"S": "a"}})),
            old: Some(item(serde_json::json!({"pk": {"S": "a"}, "v": {"N": "1"}}))),
            new: None,
            micros: 1_700_000_000_000_000,
        };
        let line: Value =
            serde_json::from_str(&Format::DynamoDbJson.change_line(&change, true)).unwrap();
        assert_eq!(
            line["Metadata"]["WriteTimestampMicros"]["N"],
            "1700000000000000"
        );
        assert_eq!(line["OldImage"]["v"]["N"], "1");
        assert!(line.get("NewImage").is_none());
        let new_only = Format::DynamoDbJson.change_line(&change, false);
        assert!(!new_only.contains("OldImage"), "{new_only}");
        let ion = Format::Ion.change_line(&change, true);
        assert!(
            ion.starts_with(
                "$dynamodb_Item::{Metadata:{WriteTimestampMicros:1700000000000000},Keys:{pk:\"a\"}"
            ),
            "{ion}"
        );
    }
}

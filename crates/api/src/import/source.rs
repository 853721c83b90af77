//! Where an import reads: the objects under a bucket's prefix, on the S3-compatible endpoint the
//! server is configured with (`--s3-endpoint`), or in a directory whose subdirectories stand for
//! buckets (`--s3-dir`, for machines with no S3 at all). Objects are streamed through their
//! decompression and cut into records of bounded length, so an import's memory does not grow
//! with its objects, and a line without an end cannot exhaust it.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::backup::s3::{S3Config, S3Store};

/// Most objects one import reads (AWS's quota per import).
pub(crate) const MAX_OBJECTS: usize = 50_000;
/// Most pages of names a listing reads (1,000 a page: a little over `MAX_OBJECTS`).
const MAX_LIST_PAGES: usize = MAX_OBJECTS / 1_000 + 1;
/// Longest record read; a longer one is counted as an error and skipped (an item is at most
/// 400 KB, and its text a few times that).
pub(crate) const MAX_RECORD_BYTES: usize = 4 * 1024 * 1024;

/// Where ImportTable finds buckets.
#[derive(Debug, Clone, Default)]
pub enum ImportSourceConfig {
    /// Nowhere: every import fails, saying so.
    #[default]
    None,
    /// An S3-compatible endpoint; the bucket and prefix of the config are ignored.
    S3(S3Config),
    /// A directory holding one subdirectory per bucket.
    Directory(PathBuf),
}

/// Why the source could not be read: the import fails with this code and message.
#[derive(Debug)]
pub(crate) struct SourceError {
    pub code: &'static str,
    pub message: String,
}

fn failed(code: &'static str, message: impl Into<String>) -> SourceError {
    SourceError {
        code,
        message: message.into(),
    }
}

/// One bucket of the configured source.
pub(crate) enum Bucket {
    S3(S3Store),
    Directory(PathBuf),
}

impl Bucket {
    pub(crate) fn open(config: &ImportSourceConfig, bucket: &str) -> Result<Bucket, SourceError> {
        match config {
            ImportSourceConfig::None => Err(failed(
                "S3ConfigurationError",
                "No S3 endpoint is configured on this server (haven serve --s3-endpoint or --s3-dir)",
            )),
            ImportSourceConfig::S3(config) => Ok(Bucket::S3(S3Store::new(S3Config {
                bucket: bucket.to_string(),
                prefix: String::new(),
                ..config.clone()
            }))),
            ImportSourceConfig::Directory(root) => {
                let path = root.join(bucket);
                if bucket.contains(['/', '\\']) || bucket.starts_with('.') || !path.is_dir() {
                    return Err(no_bucket(bucket));
                }
                Ok(Bucket::Directory(path))
            }
        }
    }

    /// The keys of every object under `prefix`, in byte order (folder markers left out); an
    /// error when there are none or more than `MAX_OBJECTS`.
    pub(crate) fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, SourceError> {
        let mut keys = match self {
            Bucket::S3(store) => store
                .list_all(prefix, MAX_LIST_PAGES)
                .map_err(|e| s3_failure(bucket, e.0))?,
            Bucket::Directory(root) => {
                let mut keys = Vec::new();
                walk(root, root, prefix, &mut keys)?;
                keys.sort();
                keys
            }
        };
        keys.retain(|key| !key.ends_with('/'));
        if keys.is_empty() {
            return Err(failed(
                "S3NoObjects",
                format!("No objects found under s3://{bucket}/{prefix}"),
            ));
        }
        if keys.len() > MAX_OBJECTS {
            return Err(failed(
                "LimitExceeded",
                format!("The import source has more than {MAX_OBJECTS} objects"),
            ));
        }
        Ok(keys)
    }

    /// An object's bytes as a stream.
    pub(crate) fn read(&self, bucket: &str, key: &str) -> Result<Box<dyn Read>, SourceError> {
        let gone = || failed("S3NoSuchKey", format!("s3://{bucket}/{key} is gone"));
        match self {
            Bucket::S3(store) => match store.open(key) {
                Ok(Some(reader)) => Ok(reader),
                Ok(None) => Err(gone()),
                Err(error) => Err(s3_failure(bucket, error.0)),
            },
            Bucket::Directory(root) => std::fs::File::open(root.join(key))
                .map(|file| Box::new(file) as Box<dyn Read>)
                .map_err(|_| gone()),
        }
    }
}

fn no_bucket(bucket: &str) -> SourceError {
    failed(
        "S3NoSuchBucket",
        format!("The specified bucket does not exist: {bucket}"),
    )
}

fn s3_failure(bucket: &str, message: String) -> SourceError {
    if message.contains("NoSuchBucket") {
        return no_bucket(bucket);
    }
    failed("S3Error", message)
}

/// Every file under `dir` whose `/`-separated key relative to `root` starts with `prefix`
/// (symbolic links to directories are not followed; bounded by `MAX_OBJECTS`).
fn walk(root: &Path, dir: &Path, prefix: &str, keys: &mut Vec<String>) -> Result<(), SourceError> {
    let unreadable = |e: std::io::Error| failed("S3Error", format!("{}: {e}", dir.display()));
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        let entry = entry.map_err(unreadable)?;
        if keys.len() > MAX_OBJECTS {
            return Ok(());
        }
        let path = entry.path();
        if entry.file_type().map_err(unreadable)?.is_dir() {
            walk(root, &path, prefix, keys)?;
        } else if let Ok(relative) = path.strip_prefix(root) {
            let parts: Vec<_> = relative.iter().map(|p| p.to_string_lossy()).collect();
            let key = parts.join("/");
            if key.starts_with(prefix) {
                keys.push(key);
            }
        }
    }
    Ok(())
}

/// Wraps an object's stream in its decompression (InputCompressionType).
pub(crate) fn decompressed(
    reader: Box<dyn Read>,
    compression: &str,
) -> Result<Box<dyn BufRead>, SourceError> {
    let reader: Box<dyn Read> = match compression {
        "GZIP" => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        "ZSTD" => Box::new(
            zstd::stream::read::Decoder::new(reader)
                .map_err(|e| failed("DecompressionError", e.to_string()))?,
        ),
        _ => reader,
    };
    Ok(Box::new(BufReader::with_capacity(64 * 1024, reader)))
}

/// What reading one record gave.
#[derive(Debug, PartialEq)]
pub(crate) enum Record {
    /// A record is in the buffer (without its line end).
    Read,
    /// The record was longer than `MAX_RECORD_BYTES` and was skipped.
    TooLong,
    /// The object has no more records.
    End,
}

/// Reads the next record into `buffer`: up to a line end, or with `quoted` (CSV) up to a line
/// end outside double quotes. Returns the bytes consumed too.
pub(crate) fn next_record(
    reader: &mut dyn BufRead,
    buffer: &mut Vec<u8>,
    quoted: bool,
) -> std::io::Result<(Record, usize)> {
    buffer.clear();
    let (mut consumed, mut in_quotes, mut too_long) = (0, false, false);
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            let outcome = match (too_long, consumed) {
                (true, _) => Record::TooLong,
                (false, 0) => Record::End,
                _ => Record::Read,
            };
            return Ok((outcome, consumed));
        }
        let mut end = None;
        for (at, byte) in available.iter().enumerate() {
            match byte {
                b'"' if quoted => in_quotes = !in_quotes,
                b'\n' if !in_quotes => {
                    end = Some(at);
                    break;
                }
                _ => {}
            }
        }
        let taken = end.unwrap_or(available.len());
        if !too_long && buffer.len() + taken <= MAX_RECORD_BYTES {
            buffer.extend_from_slice(&available[..taken]);
        } else {
            too_long = true;
            buffer.clear();
        }
        let used = taken + usize::from(end.is_some());
        reader.consume(used);
        consumed += used;
        if end.is_some() {
            if buffer.last() == Some(&b'\r') {
                buffer.pop();
            }
            let outcome = if too_long {
                Record::TooLong
            } else {
                Record::Read
            };
            return Ok((outcome, consumed));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(text: &[u8], quoted: bool) -> Vec<(Record, String)> {
        let mut reader: &[u8] = text;
        let mut buffer = Vec::new();
        let mut out = Vec::new();
        for _ in 0..10 {
            let (record, _) = next_record(&mut reader, &mut buffer, quoted).unwrap();
            if record == Record::End {
                break;
            }
            out.push((record, String::from_utf8_lossy(&buffer).into_owned()));
        }
        out
    }

    #[test]
    fn records_end_at_line_ends_outside_quotes_and_stay_bounded() {
        let read = |s: &str| (Record::Read, s.to_string());
        assert_eq!(
            records(b"a\r\nb\n\nc", false),
            [read("a"), read("b"), read(""), read("c")]
        );
        assert_eq!(
            records(b"1,\"x\ny\"\n2,z\n", true),
            [read("1,\"x\ny\""), read("2,z")]
        );
        let mut long = vec![b'x'; MAX_RECORD_BYTES + 1];
        long.extend_from_slice(b"\nnext\n");
        assert_eq!(
            records(&long, false),
            [(Record::TooLong, String::new()), read("next")]
        );
    }
}

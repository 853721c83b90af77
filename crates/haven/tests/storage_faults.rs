//! Storage faults through the real server and the real file path.
//!
//! - A full disk: the data directory is a small tmpfs (mounting one needs root, which CI has; the
//!   test fails, never skips, without it). Writes fill it until they fail with InternalServerError;
//!   deleting a ballast file gives the space back and writes succeed again without a restart; every
//!   acknowledged item is intact, before and after a restart.
//! - A damaged data file (a flipped byte in an item's value, in the value log or the index; a
//!   truncated index file) stops start-up with a non-zero exit and a message naming the file; an intact file starts. A byte flipped anywhere
//!   else either stops start-up the same way or falls in space no commit uses, and then every
//!   item reads back intact: never garbage.
//! - A second server on a data directory in use is refused, naming it.
//!
//! These are the embedded engine's; the PostgreSQL engine's start-up refusals are in
//! `postgres_nodes.rs`.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::AttributeValue;
use common::{HavenServer, create_table};

const TABLE: &str = "faults";

/// A tmpfs of `megabytes` MB mounted on a fresh directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(megabytes: u32) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "mounting a tmpfs failed ({status}): this test needs root (CI runs as root)"
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn item(key: &str, fill: u8) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_string(), AttributeValue::S(key.to_string())),
        (
            "data".to_string(),
            AttributeValue::S(char::from(fill).to_string().repeat(100_000)),
        ),
    ])
}

/// Puts `item(key)`; on failure returns the error code and HTTP status.
async fn put(client: &Client, key: &str, fill: u8) -> Result<(), (String, u16)> {
    client
        .put_item()
        .table_name(TABLE)
        .set_item(Some(item(key, fill)))
        .send()
        .await
        .map(|_| ())
        .map_err(|error| {
            let status = error.raw_response().map_or(0, |r| r.status().as_u16());
            (error.code().unwrap_or("no code").to_string(), status)
        })
}

async fn check_items(client: &Client, acknowledged: &[(String, u8)]) {
    for (key, fill) in acknowledged {
        let got = client
            .get_item()
            .table_name(TABLE)
            .key("pk", AttributeValue::S(key.clone()))
            .consistent_read(true)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GetItem {key}: {e:?}"))
            .item;
        assert_eq!(got, Some(item(key, *fill)), "acknowledged item {key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_writes_with_internal_server_error_then_recovers() {
    let tmpfs = Tmpfs::mount(24);
    let data = tmpfs.path().join("data");
    // The ballast holds back the space that is given back later.
    let ballast = tmpfs.path().join("ballast");
    std::fs::write(&ballast, vec![0u8; 8 << 20]).unwrap();
    let server = HavenServer::start_on_disk(&data);
    let client = server.client_without_retries();
    create_table(&client, TABLE, &[("pk", "S")]).await;

    let mut acknowledged = Vec::new();
    let mut failures = Vec::new();
    for i in 0..400 {
        let key = format!("item-{i}");
        match put(&client, &key, b'a' + (i % 26) as u8).await {
            // A write may still succeed between failures, in space a failed one left allocated.
            Ok(()) => acknowledged.push((key, b'a' + (i % 26) as u8)),
            Err(failure) => failures.push(failure),
        }
        if failures.len() == 5 {
            break;
        }
    }
    assert_eq!(failures.len(), 5, "the disk never filled up");
    assert!(
        acknowledged.len() > 10,
        "only {} items fitted",
        acknowledged.len()
    );
    for failure in &failures {
        assert_eq!(failure, &("InternalServerError".to_string(), 500));
    }
    // Reads still work on a full disk.
    check_items(&client, &acknowledged[..3]).await;

    std::fs::remove_file(&ballast).unwrap();
    for i in 0..5 {
        let key = format!("after-{i}");
        put(&client, &key, b'z')
            .await
            .unwrap_or_else(|e| panic!("{key} after space returned: {e:?}"));
        acknowledged.push((key, b'z'));
    }
    check_items(&client, &acknowledged).await;

    let status = tokio::task::spawn_blocking(move || common::terminate(server))
        .await
        .unwrap();
    assert!(status.success(), "haven exited with {status}");
    let server = HavenServer::start_on_disk(&data);
    check_items(&server.client(), &acknowledged).await;
}

/// A data directory holding a table with a few items, written by a server that then stopped.
async fn stopped_data_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let server = HavenServer::start_on_disk(dir.path());
    let client = server.client();
    create_table(&client, TABLE, &[("pk", "S")]).await;
    for i in 0..20 {
        put(&client, &format!("item-{i}"), b'q').await.unwrap();
    }
    assert!(common::terminate(server).success());
    let file = dir.path().join("haven.redb");
    (dir, file)
}

/// Starts `haven serve` on `dir` expecting it to refuse; returns its standard error.
fn failed_start(dir: &Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_haven"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .output()
        .expect("haven runs");
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(!output.status.success(), "haven started: {stderr}");
    assert!(
        String::from_utf8_lossy(&output.stdout).is_empty(),
        "haven listened"
    );
    stderr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_the_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = HavenServer::start_on_disk(dir.path());
    let client = first.client();
    create_table(&client, TABLE, &[("pk", "S")]).await;
    let stderr = failed_start(dir.path());
    let dir_name = dir.path().display().to_string();
    assert!(
        stderr.contains(&dir_name) && stderr.contains("in use"),
        "stderr does not name {dir_name} as in use: {stderr}"
    );
    put(&client, "still here", b'x').await.unwrap();
    check_items(&client, &[("still here".to_string(), b'x')]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_an_item_value_stops_start_up_naming_the_file() {
    let (dir, index) = stopped_data_dir().await;
    // One byte in every copy of the items' values ('q' repeated), in the index file and the value
    // log's segments alike, so that the live copy is hit wherever it lies.
    let mut files = vec![index];
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "log") {
            files.push(path);
        }
    }
    let run = [b'q'; 1000];
    let mut damaged = Vec::new();
    for file in files {
        let mut bytes = std::fs::read(&file).unwrap();
        let mut flipped = 0;
        let mut at = 0;
        while at + run.len() <= bytes.len() {
            if bytes[at..at + run.len()] == run {
                bytes[at + 500] ^= 0x04;
                flipped += 1;
                at += run.len();
            } else {
                at += 1;
            }
        }
        if flipped > 0 {
            std::fs::write(&file, bytes).unwrap();
            damaged.push(file.display().to_string());
        }
    }
    assert!(!damaged.is_empty(), "no item value found in the files");
    let stderr = failed_start(dir.path());
    assert!(
        damaged.iter().any(|file| stderr.contains(file)),
        "{stderr} names none of {damaged:?}"
    );
    assert!(stderr.contains("corrupted"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_data_file_stops_start_up_naming_the_file() {
    let (dir, file) = stopped_data_dir().await;
    let len = std::fs::metadata(&file).unwrap().len();
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let stderr = failed_start(dir.path());
    assert!(stderr.contains(&file.display().to_string()), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intact_data_file_starts_with_its_items() {
    let (dir, _) = stopped_data_dir().await;
    let server = HavenServer::start_on_disk(dir.path());
    let acknowledged: Vec<(String, u8)> = (0..20).map(|i| (format!("item-{i}"), b'q')).collect();
    check_items(&server.client(), &acknowledged).await;
}

/// Starts `haven serve` on `dir`: the running server, or its standard error if it refused.
fn start_or_refusal(dir: &Path) -> Result<HavenServer, String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_haven"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--log-level",
            "error",
            "--data-dir",
        ])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("haven runs");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    if let Some(address) = line
        .trim()
        .rsplit("http://")
        .next()
        .and_then(|a| a.parse().ok())
    {
        return Ok(HavenServer { child, address });
    }
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        !status.success(),
        "haven exited 0 without serving: {stderr}"
    );
    Err(stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_byte_flipped_anywhere_is_refused_or_harmless() {
    let (dir, file) = stopped_data_dir().await;
    let pristine = std::fs::read(&file).unwrap();
    let acknowledged: Vec<(String, u8)> = (0..20).map(|i| (format!("item-{i}"), b'q')).collect();
    let (mut refused, mut harmless) = (0, 0);
    for step in 1..16 {
        let at = pristine.len() * step / 16;
        let mut bytes = pristine.clone();
        bytes[at] ^= 0x10;
        std::fs::write(&file, &bytes).unwrap();
        match start_or_refusal(dir.path()) {
            Err(stderr) => {
                assert!(stderr.contains(&file.display().to_string()), "{stderr}");
                refused += 1;
            }
            Ok(server) => {
                check_items(&server.client(), &acknowledged).await;
                harmless += 1;
            }
        }
    }
    eprintln!("flipped bytes: {refused} refused at start-up, {harmless} in unused space");
}

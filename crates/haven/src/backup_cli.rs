//! `haven backup create|list|restore|delete`: operator commands against a running server, over
//! the same DynamoDB API any client uses (so they work against Haven or AWS alike), signed with
//! AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY when set (a placeholder key otherwise, which a
//! server without --auth accepts). The long ones wait for the end and show progress: a spinner
//! while a backup is written, a bar of items, bytes, rate and ETA while a table is restored.

use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::api_client::{Client, POLL, text};

#[derive(clap::Args)]
pub struct BackupArgs {
    /// The server's endpoint.
    #[arg(long, global = true, default_value = "http://127.0.0.1:8000")]
    endpoint: String,
    /// The region requests are signed for.
    #[arg(long, global = true, default_value = "us-east-1")]
    region: String,
    #[command(subcommand)]
    command: BackupCommand,
}

#[derive(clap::Subcommand)]
enum BackupCommand {
    /// Back up a table and wait until the backup is AVAILABLE; prints its ARN.
    Create {
        #[arg(long)]
        table: String,
        /// The backup's name (3 to 255 of a-z, A-Z, 0-9, '_', '-', '.').
        #[arg(long)]
        name: String,
    },
    /// List backups (ARN, status, table, items, bytes), oldest first.
    List {
        /// Only this table's backups.
        #[arg(long)]
        table: Option<String>,
    },
    /// Restore a backup into a new table and wait until the table is ACTIVE.
    Restore {
        #[arg(long)]
        backup_arn: String,
        /// The new table's name.
        #[arg(long)]
        target: String,
    },
    /// Delete a backup.
    Delete {
        #[arg(long)]
        backup_arn: String,
    },
}

pub fn run(args: BackupArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.endpoint, args.region);
    match args.command {
        BackupCommand::Create { table, name } => create(&client, &table, &name),
        BackupCommand::List { table } => list(&client, table),
        BackupCommand::Restore { backup_arn, target } => restore(&client, &backup_arn, &target),
        BackupCommand::Delete { backup_arn } => {
            let answer = client.call("DeleteBackup", json!({ "BackupArn": backup_arn }))?;
            let status = &answer["BackupDescription"]["BackupDetails"]["BackupStatus"];
            println!("{backup_arn} {}", status.as_str().unwrap_or_default());
            Ok(())
        }
    }
}

fn create(client: &Client, table: &str, name: &str) -> anyhow::Result<()> {
    let request = json!({ "TableName": table, "BackupName": name });
    let answer = client.call("CreateBackup", request)?;
    let arn = text(&answer["BackupDetails"]["BackupArn"])?;
    let spinner = ProgressBar::new_spinner().with_message(format!("backing up {table}"));
    spinner.enable_steady_tick(Duration::from_millis(100));
    let details = loop {
        let described = client.call("DescribeBackup", json!({ "BackupArn": arn }))?;
        let description = &described["BackupDescription"];
        if description["BackupDetails"]["BackupStatus"] == "AVAILABLE" {
            break description.clone();
        }
        std::thread::sleep(POLL);
    };
    spinner.finish_and_clear();
    let items = &details["SourceTableDetails"]["ItemCount"];
    let bytes = &details["BackupDetails"]["BackupSizeBytes"];
    println!("{arn}");
    eprintln!(
        "{table}: {items} items, {bytes} bytes, in {:.1?}",
        spinner.elapsed()
    );
    Ok(())
}

fn list(client: &Client, table: Option<String>) -> anyhow::Result<()> {
    let mut start: Option<String> = None;
    loop {
        let mut request = json!({});
        if let Some(table) = &table {
            request["TableName"] = json!(table);
        }
        if let Some(start) = &start {
            request["ExclusiveStartBackupArn"] = json!(start);
        }
        let answer = client.call("ListBackups", request)?;
        for backup in answer["BackupSummaries"].as_array().into_iter().flatten() {
            println!(
                "{}\t{}\t{}\t{}\t{}",
                text(&backup["BackupArn"])?,
                text(&backup["BackupStatus"])?,
                text(&backup["TableName"])?,
                text(&backup["BackupName"])?,
                backup["BackupSizeBytes"],
            );
        }
        match answer["LastEvaluatedBackupArn"].as_str() {
            Some(last) => start = Some(last.to_string()),
            None => return Ok(()),
        }
    }
}

fn restore(client: &Client, backup_arn: &str, target: &str) -> anyhow::Result<()> {
    let described = client.call("DescribeBackup", json!({ "BackupArn": backup_arn }))?;
    let source = &described["BackupDescription"]["SourceTableDetails"];
    let total = source["ItemCount"].as_u64().unwrap_or(0);
    let request = json!({ "BackupArn": backup_arn, "TargetTableName": target });
    client.call("RestoreTableFromBackup", request)?;
    let bar = ProgressBar::new(total).with_message(target.to_string());
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} items, {prefix} ({per_sec}, ETA {eta})",
        )
        .context("the progress bar's template")?,
    );
    loop {
        let table = client.call("DescribeTable", json!({ "TableName": target }))?;
        let table = &table["Table"];
        bar.set_position(table["ItemCount"].as_u64().unwrap_or(0));
        let megabytes = table["TableSizeBytes"].as_f64().unwrap_or(0.0) / 1e6;
        bar.set_prefix(format!("{megabytes:.1} MB"));
        if table["TableStatus"] == "ACTIVE" {
            break;
        }
        std::thread::sleep(POLL);
    }
    bar.finish_and_clear();
    println!("{target} ACTIVE ({total} items from {backup_arn})");
    Ok(())
}

//! `haven export` and `haven import`: a table to S3 and S3 to a new table, against a running
//! server, over the DynamoDB API (ExportTableToPointInTime and DescribeExport, ImportTable and
//! DescribeImport), so they work against Haven or AWS alike. Both wait for the end with progress on
//! the terminal (an export's elapsed time; an import's items, bytes and rate) and exit non-zero
//! with the service's failure code and message if it fails.

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::api_client::{Client, POLL, text};

/// Where the server is, for both commands.
#[derive(clap::Args)]
pub struct Endpoint {
    /// The server's endpoint.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    endpoint: String,
    /// The region requests are signed for.
    #[arg(long, default_value = "us-east-1")]
    region: String,
}

/// The S3 location: a bucket and a key prefix.
#[derive(clap::Args)]
pub struct Location {
    #[arg(long)]
    bucket: String,
    #[arg(long)]
    prefix: Option<String>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ExportFormat {
    DynamodbJson,
    Ion,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ImportFormat {
    DynamodbJson,
    Ion,
    Csv,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Compression {
    None,
    Gzip,
    Zstd,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum View {
    NewAndOldImages,
    NewImage,
}

/// The wire name of a value of one of the enums above (`DYNAMODB_JSON`, `NEW_AND_OLD_IMAGES`).
fn wire(value: impl clap::ValueEnum) -> String {
    let name = value.to_possible_value().expect("no skipped values");
    name.get_name().replace('-', "_").to_uppercase()
}

#[derive(clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    /// The table to export (its name; the ARN is looked up).
    #[arg(long)]
    table: String,
    #[command(flatten)]
    location: Location,
    #[arg(long, value_enum, default_value = "dynamodb-json")]
    format: ExportFormat,
    /// The moment to export, in seconds since the epoch (default: now). The table needs
    /// point-in-time recovery.
    #[arg(long)]
    time: Option<f64>,
    /// An incremental export of the changes from this moment (seconds since the epoch)...
    #[arg(long, requires = "to")]
    from: Option<f64>,
    /// ...to this one.
    #[arg(long, requires = "from")]
    to: Option<f64>,
    /// What an incremental export writes of each change.
    #[arg(long, value_enum, default_value = "new-and-old-images")]
    view: View,
}

#[derive(clap::Args)]
pub struct ImportArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    #[command(flatten)]
    location: Location,
    #[arg(long, value_enum)]
    format: ImportFormat,
    #[arg(long, value_enum, default_value = "none")]
    compression: Compression,
    /// The new table's name.
    #[arg(long)]
    table: String,
    /// The key, partition first: NAME:TYPE with TYPE S, N or B (`--key pk:S --key sk:N`).
    #[arg(long, required = true, num_args = 1)]
    key: Vec<String>,
    /// CSV: the separator (one of , ; : | or a tab).
    #[arg(long)]
    csv_delimiter: Option<String>,
    /// CSV: the column names, when the files have no header line (comma-separated).
    #[arg(long, value_delimiter = ',')]
    csv_header: Vec<String>,
}

pub fn export(args: ExportArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.endpoint.endpoint, args.endpoint.region);
    let table = client.call("DescribeTable", json!({ "TableName": args.table }))?;
    let mut request = json!({
        "TableArn": text(&table["Table"]["TableArn"])?,
        "S3Bucket": args.location.bucket,
        "ExportFormat": wire(args.format),
    });
    if let Some(prefix) = args.location.prefix {
        request["S3Prefix"] = json!(prefix);
    }
    if let Some(time) = args.time {
        request["ExportTime"] = json!(time);
    }
    if let (Some(from), Some(to)) = (args.from, args.to) {
        request["ExportType"] = json!("INCREMENTAL_EXPORT");
        request["IncrementalExportSpecification"] = json!({
            "ExportFromTime": from, "ExportToTime": to, "ExportViewType": wire(args.view),
        });
    }
    let answer = client.call("ExportTableToPointInTime", request)?;
    let arn = text(&answer["ExportDescription"]["ExportArn"])?.to_string();
    let spinner = ProgressBar::new_spinner().with_message(format!("exporting {}", args.table));
    spinner.enable_steady_tick(POLL);
    let described = |answer: &Value| answer["ExportDescription"].clone();
    let description = wait(
        &client,
        "DescribeExport",
        json!({ "ExportArn": arn }),
        described,
    )?;
    spinner.finish_and_clear();
    finished(&description, "ExportStatus")?;
    println!("{arn}");
    eprintln!(
        "{}: {} items, {} bytes, manifest s3://{}/{}, in {:.1?}",
        args.table,
        description["ItemCount"],
        description["BilledSizeBytes"],
        description["S3Bucket"].as_str().unwrap_or_default(),
        description["ExportManifest"].as_str().unwrap_or_default(),
        spinner.elapsed()
    );
    Ok(())
}

pub fn import(args: ImportArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.endpoint.endpoint, args.endpoint.region);
    let (definitions, schema) = key_schema(&args.key)?;
    let mut source = json!({ "S3Bucket": args.location.bucket });
    if let Some(prefix) = args.location.prefix {
        source["S3KeyPrefix"] = json!(prefix);
    }
    let mut request = json!({
        "S3BucketSource": source,
        "InputFormat": wire(args.format),
        "InputCompressionType": wire(args.compression),
        "TableCreationParameters": {
            "TableName": args.table,
            "AttributeDefinitions": definitions,
            "KeySchema": schema,
            "BillingMode": "PAY_PER_REQUEST",
        },
    });
    if args.csv_delimiter.is_some() || !args.csv_header.is_empty() {
        let mut csv = json!({});
        if let Some(delimiter) = args.csv_delimiter {
            csv["Delimiter"] = json!(delimiter);
        }
        if !args.csv_header.is_empty() {
            csv["HeaderList"] = json!(args.csv_header);
        }
        request["InputFormatOptions"] = json!({ "Csv": csv });
    }
    let answer = client.call("ImportTable", request)?;
    let arn = text(&answer["ImportTableDescription"]["ImportArn"])?.to_string();
    let bar = ProgressBar::new_spinner().with_message(format!("importing into {}", args.table));
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {msg} [{elapsed_precise}] {human_pos} items, {prefix} ({per_sec})",
        )
        .context("the progress bar's template")?,
    );
    let described = |answer: &Value| {
        let description = answer["ImportTableDescription"].clone();
        bar.set_position(description["ProcessedItemCount"].as_u64().unwrap_or(0));
        let megabytes = description["ProcessedSizeBytes"].as_f64().unwrap_or(0.0) / 1e6;
        bar.set_prefix(format!("{megabytes:.1} MB"));
        description
    };
    let description = wait(
        &client,
        "DescribeImport",
        json!({ "ImportArn": arn }),
        described,
    )?;
    bar.finish_and_clear();
    finished(&description, "ImportStatus")?;
    println!("{arn}");
    eprintln!(
        "{}: {} items imported of {} read, {} bad lines, in {:.1?}",
        args.table,
        description["ImportedItemCount"],
        description["ProcessedItemCount"],
        description["ErrorCount"],
        bar.elapsed()
    );
    Ok(())
}

/// Calls `operation` with `request` until the description `describe` takes from the answer has
/// a status other than IN_PROGRESS; answers that description.
fn wait(
    client: &Client,
    operation: &str,
    request: Value,
    mut describe: impl FnMut(&Value) -> Value,
) -> anyhow::Result<Value> {
    loop {
        let description = describe(&client.call(operation, request.clone())?);
        let status = [&description["ExportStatus"], &description["ImportStatus"]];
        if status.iter().all(|status| *status != "IN_PROGRESS") {
            return Ok(description);
        }
        std::thread::sleep(POLL);
    }
}

/// An error naming the failure unless the description's `status` is COMPLETED.
fn finished(description: &Value, status: &str) -> anyhow::Result<()> {
    let state = text(&description[status])?;
    if state != "COMPLETED" {
        bail!(
            "{state}: {}: {}",
            description["FailureCode"]
                .as_str()
                .unwrap_or("no failure code"),
            description["FailureMessage"].as_str().unwrap_or_default()
        );
    }
    Ok(())
}

/// `NAME:TYPE` arguments as AttributeDefinitions and a KeySchema (HASH, then RANGE).
fn key_schema(keys: &[String]) -> anyhow::Result<(Vec<Value>, Vec<Value>)> {
    if keys.len() > 2 {
        bail!("--key is given once for the partition key and once more for a sort key, no more");
    }
    let mut definitions = Vec::new();
    let mut schema = Vec::new();
    for (key, role) in keys.iter().zip(["HASH", "RANGE"]) {
        let Some((name, kind @ ("S" | "N" | "B"))) = key.rsplit_once(':') else {
            bail!("--key {key}: expected NAME:TYPE with TYPE S, N or B");
        };
        definitions.push(json!({ "AttributeName": name, "AttributeType": kind }));
        schema.push(json!({ "AttributeName": name, "KeyType": role }));
    }
    Ok((definitions, schema))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_wire_names() {
        let keys = ["pk:S".to_string(), "a:b:N".to_string()];
        let (definitions, schema) = key_schema(&keys).unwrap();
        assert_eq!(
            definitions[1],
            json!({ "AttributeName": "a:b", "AttributeType": "N" })
        );
        assert_eq!(
            schema[0],
            json!({ "AttributeName": "pk", "KeyType": "HASH" })
        );
        assert!(key_schema(&["pk:X".to_string()]).is_err());
        assert!(key_schema(&["pk".to_string()]).is_err());
        assert_eq!(wire(ImportFormat::DynamodbJson), "DYNAMODB_JSON");
        assert_eq!(wire(View::NewAndOldImages), "NEW_AND_OLD_IMAGES");
        assert_eq!(wire(Compression::Zstd), "ZSTD");
    }
}

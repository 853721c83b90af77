//! Where `haven serve` lets ImportTable find its buckets: an S3-compatible endpoint
//! (`--s3-endpoint`, signed with the key in the environment), a directory standing for S3 on a
//! machine without it (`--s3-dir`, one subdirectory per bucket), or by default the endpoint and
//! key of `--backup-s3`. The request only names a bucket; which S3 holds it is the server's
//! setting, as the region is on AWS.

use std::path::PathBuf;

use anyhow::Context;
use haven_api::{ImportSourceConfig, S3Config};

#[derive(clap::Args)]
pub struct ImportSourceArgs {
    /// The S3-compatible endpoint whose buckets ImportTable reads (`https://s3.eu-west-1.amazonaws.com`,
    /// a MinIO, Ceph or Garage URL...), path-style, signed with AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY. Default: --backup-s3-endpoint (docs/backups.md).
    #[arg(long, conflicts_with = "s3_dir")]
    s3_endpoint: Option<String>,
    /// The region --s3-endpoint signs for.
    #[arg(long, default_value = "us-east-1")]
    s3_region: String,
    /// A directory ImportTable reads as S3 instead: each subdirectory is a bucket, each file an
    /// object named by its path (for machines without an S3).
    #[arg(long)]
    s3_dir: Option<PathBuf>,
}

/// The import source these flags name; `backup` is the backup store's S3 config, if any.
pub fn config(
    args: &ImportSourceArgs,
    backup: Option<&S3Config>,
) -> anyhow::Result<ImportSourceConfig> {
    if let Some(dir) = &args.s3_dir {
        return Ok(ImportSourceConfig::Directory(dir.clone()));
    }
    let Some(endpoint) = &args.s3_endpoint else {
        return Ok(backup.map_or(ImportSourceConfig::None, |config| {
            ImportSourceConfig::S3(config.clone())
        }));
    };
    let variable = |name: &str| {
        std::env::var(name)
            .with_context(|| format!("--s3-endpoint needs {name} in the environment"))
    };
    Ok(ImportSourceConfig::S3(S3Config {
        endpoint: endpoint.trim_end_matches('/').to_string(),
        bucket: String::new(),
        prefix: String::new(),
        region: args.s3_region.clone(),
        access_key_id: variable("AWS_ACCESS_KEY_ID")?,
        secret_access_key: variable("AWS_SECRET_ACCESS_KEY")?,
    }))
}

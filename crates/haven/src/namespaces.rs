//! Tables kept apart by owner: with `--isolation key-region` each access key id and region, as
//! DynamoDB Local keeps them without `-sharedDb`; with `--auth` each AWS account other than the
//! server's own. Each namespace gets an engine of its own (the memory engine, or an embedded one in
//! a folder `<owner>_<region>.haven`, named like DynamoDB Local's `<key id>_<region>.db` file, under
//! `--data-dir`, or under `--data-dir`/accounts for accounts) and a `Service` whose ARNs name the
//! namespace's region (and account); the server's `Tenancy` picks one per request.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use haven_api::{Service, ServiceConfig};
use haven_server::tenancy::{Namespace, Namespaces, OpenNamespace};
use haven_storage::{Engine, RedbEngine};
use haven_storage_memory::MemoryEngine;

/// The embedded engines opened for namespaces on disk, to be shut down when the server stops (the
/// memory engine commits before it answers: it has nothing to finish).
#[derive(Clone, Default)]
pub struct Opened(Arc<Mutex<Vec<Arc<RedbEngine>>>>);

impl Opened {
    /// Commits what is queued in every namespace's engine and stops them.
    pub fn shutdown(&self) {
        let engines = std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()));
        for engine in engines {
            engine.shutdown();
        }
    }
}

/// Where namespaces keep their data.
pub enum Place {
    Memory,
    Disk { dir: PathBuf, cache_bytes: usize },
}

impl Place {
    /// In memory, or in folders under `dir` with a cache of `cache_mb` each.
    pub fn of(in_memory: bool, dir: PathBuf, cache_mb: usize) -> Place {
        if in_memory {
            Place::Memory
        } else {
            Place::Disk {
                dir,
                cache_bytes: cache_mb * 1024 * 1024,
            }
        }
    }
}

/// Who a namespace's owner is.
#[derive(Clone, Copy)]
pub enum Owner {
    /// An access key id (DynamoDB Local's isolation): the ARNs name the server's account.
    AccessKeyId,
    /// An AWS account, which its tables' ARNs name.
    Account,
}

/// The namespaces of a server, at most `max`, each opened on first use.
pub fn namespaces(
    place: Place,
    owner: Owner,
    config: ServiceConfig,
    max: usize,
    opened: &Opened,
) -> Namespaces {
    let opened = opened.clone();
    let open: OpenNamespace = Arc::new(move |namespace: &Namespace| {
        let engine = open_engine(&place, namespace, &opened)?;
        let account = match owner {
            Owner::AccessKeyId => config.account.clone(),
            Owner::Account => namespace.owner.clone(),
        };
        let config = ServiceConfig {
            region: namespace.region.clone(),
            account,
            ..config.clone()
        };
        let service = Service::new(engine, config).map_err(|e| e.to_string())?;
        tracing::info!(
            namespace = namespace.file_stem(),
            "tables opened for a new owner and region"
        );
        Ok(Arc::new(service))
    });
    Namespaces::new(open, max)
}

/// The engine of a new namespace: a memory engine, or an embedded one in the namespace's folder
/// (remembered in `opened`, to be shut down with the server).
fn open_engine(
    place: &Place,
    namespace: &Namespace,
    opened: &Opened,
) -> Result<Arc<dyn Engine>, String> {
    match place {
        Place::Memory => Ok(Arc::new(MemoryEngine::new())),
        Place::Disk { dir, cache_bytes } => {
            let folder = dir.join(format!("{}.haven", namespace.file_stem()));
            let engine = RedbEngine::open_with_cache(&folder, *cache_bytes);
            let engine = Arc::new(engine.map_err(|e| e.to_string())?);
            opened
                .0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(engine.clone());
            Ok(engine)
        }
    }
}

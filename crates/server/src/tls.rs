//! HTTPS: TLS (rustls, with the `ring` provider) on the listening port, HTTP/1.1 inside.
//!
//! The certificate chain and private key are PEM files. Both files' metadata (modification time,
//! size, inode) are checked when a connection is accepted; when either changed, they are read
//! again and the new certificate serves that connection and every later one, so a renewed
//! certificate is picked up without a restart. Connections already open keep the certificate
//! they started with. A pair that cannot be loaded (a half-written file, a key that does not
//! match the certificate) is logged and the previous pair kept, and read again on the next
//! connection, so installing the two files one after the other is safe.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;

/// A byte stream a connection is served on: a TCP stream, or TLS over one.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The identity of both files: a change of either means the pair is read again.
type Stamp = [Option<(SystemTime, u64, u64)>; 2];

/// The server's certificate and key, reloaded when their files change.
pub struct TlsFiles {
    cert: PathBuf,
    key: PathBuf,
    current: Mutex<(Stamp, TlsAcceptor)>,
}

impl TlsFiles {
    /// Loads the pair now; fails (naming the file and the problem) if it cannot be used.
    pub fn open(cert: &Path, key: &Path) -> io::Result<TlsFiles> {
        let stamp = stamp(cert, key);
        let acceptor = load(cert, key)?;
        Ok(TlsFiles {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: Mutex::new((stamp, acceptor)),
        })
    }

    /// The acceptor for the files as they are now.
    fn acceptor(&self) -> TlsAcceptor {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let stamp = stamp(&self.cert, &self.key);
        if stamp != current.0 {
            match load(&self.cert, &self.key) {
                Ok(acceptor) => {
                    *current = (stamp, acceptor);
                    tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
                }
                Err(error) => tracing::error!(
                    %error,
                    "cannot reload the TLS certificate and key; keeping the previous ones"
                ),
            }
        }
        current.1.clone()
    }
}

/// The stream a new connection is served on: TLS after a handshake with the current certificate
/// when `tls` is on (None if the handshake fails or takes longer than `timeout`), else the stream
/// itself.
pub async fn handshake<S: Io + 'static>(
    tls: Option<&TlsFiles>,
    stream: S,
    timeout: Duration,
) -> Option<Box<dyn Io>> {
    let Some(tls) = tls else {
        return Some(Box::new(stream));
    };
    let accepting = tls.acceptor().accept(stream);
    match tokio::time::timeout(timeout, accepting).await {
        Ok(Ok(stream)) => Some(Box::new(stream)),
        Ok(Err(error)) => {
            tracing::debug!(%error, "TLS handshake failed");
            None
        }
        Err(_) => None,
    }
}

fn stamp(cert: &Path, key: &Path) -> Stamp {
    [cert, key].map(|path| {
        let metadata = std::fs::metadata(path).ok()?;
        Some((metadata.modified().ok()?, metadata.len(), metadata.ino()))
    })
}

fn load(cert_path: &Path, key_path: &Path) -> io::Result<TlsAcceptor> {
    let invalid = |path: &Path, what: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {what}", path.display()),
        )
    };
    let certs = CertificateDer::pem_file_iter(cert_path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| invalid(cert_path, e.to_string()))?;
    if certs.is_empty() {
        return Err(invalid(cert_path, "no certificate in the file".into()));
    }
    // The error of a key file never quotes the key.
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|_| invalid(key_path, "no PEM private key in the file".into()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(cert_path, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| invalid(cert_path, e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

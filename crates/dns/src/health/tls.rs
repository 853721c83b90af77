//! Health checks of API nodes that serve HTTPS (`haven serve --tls-cert`): the probe speaks TLS and
//! verifies the node's certificate against the CA bundle the configuration names, never against
//! the system's roots and never without verification, so a probe passes only where a client that
//! trusts that CA could connect. A node whose certificate does not verify is failing, exactly like
//! one that does not answer: the clients DNS would send there could not use it either.
//!
//! The name checked in the certificate is `[health] server_name` when given (certificates issued
//! for a DNS name), otherwise the node's IP address (an IP address SAN).
//!
//! Replication between regions (`[replication] scheme = "https"`, the binary's
//! `src/replication.rs`) trusts its peers the same way, with the same settings and checks: it takes
//! [`ProbeTls::from_settings`] and uses [`ProbeTls::client_config`] on its blocking connections.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// How probes set up TLS: the trusted roots and the name certificates must carry.
#[derive(Clone)]
pub struct ProbeTls {
    config: Arc<ClientConfig>,
    connector: TlsConnector,
    /// None: each node's own IP address.
    server_name: Option<ServerName<'static>>,
}

impl fmt::Debug for ProbeTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProbeTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl ProbeTls {
    /// The TLS settings of a configuration section (`[health]`, `[replication]`): `scheme`
    /// "http" (None) or "https", which needs `ca_file`; the error names the section.
    pub fn from_settings(
        section: &str,
        scheme: &str,
        ca_file: Option<&Path>,
        server_name: Option<&str>,
    ) -> Result<Option<ProbeTls>, String> {
        match (scheme, ca_file) {
            ("http", None) if server_name.is_none() => Ok(None),
            ("http", _) => Err(format!(
                "[{section}] ca_file and server_name apply only with scheme = \"https\""
            )),
            ("https", None) => Err(format!(
                "[{section}] scheme = \"https\" needs ca_file, the CA bundle that node certificates \
                 are verified against"
            )),
            ("https", Some(path)) => ProbeTls::new(path, server_name)
                .map(Some)
                .map_err(|message| format!("[{section}] {message}")),
            (other, _) => Err(format!(
                "[{section}] scheme must be \"http\" or \"https\", not {other:?}"
            )),
        }
    }

    /// Trusts the certificates of the PEM bundle `ca_file`; `server_name` is the name node
    /// certificates must carry (None: their IP address). The error says what is wrong, in words.
    pub fn new(ca_file: &Path, server_name: Option<&str>) -> Result<ProbeTls, String> {
        let shown = ca_file.display();
        let certs = CertificateDer::pem_file_iter(ca_file)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|error| format!("ca_file {shown}: {error}"))?;
        if certs.is_empty() {
            return Err(format!("ca_file {shown} holds no PEM certificate"));
        }
        let mut roots = RootCertStore::empty();
        for cert in certs {
            roots
                .add(cert)
                .map_err(|error| format!("ca_file {shown}: {error}"))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = Arc::new(
            ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|error| error.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth(),
        );
        let server_name = server_name
            .map(|name| {
                ServerName::try_from(name.to_owned())
                    .map_err(|_| format!("server_name {name:?} is not a DNS name or IP address"))
            })
            .transpose()?;
        Ok(ProbeTls {
            connector: TlsConnector::from(config.clone()),
            config,
            server_name,
        })
    }

    /// The client configuration: trusts exactly the CA bundle.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        self.config.clone()
    }

    /// The name `target`'s certificate must carry: `server_name`, else its IP address.
    pub fn name_for(&self, target: SocketAddr) -> ServerName<'static> {
        self.server_name
            .clone()
            .unwrap_or_else(|| ServerName::IpAddress(target.ip().into()))
    }

    /// The TLS session over `stream`, once the node's certificate has verified.
    pub(super) async fn connect(
        &self,
        target: SocketAddr,
        stream: TcpStream,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        self.connector.connect(self.name_for(target), stream).await
    }
}

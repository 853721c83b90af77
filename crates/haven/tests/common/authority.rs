//! A certificate authority made in the test (rcgen), and certificates it issues for IP addresses:
//! for the tests of HTTPS between Haven's own nodes (DNS health checks, replication).

use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// A test certificate authority.
pub struct Authority {
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Authority {
    pub fn new(name: &str) -> Authority {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let pem = params.self_signed(&key).unwrap().pem();
        Authority {
            pem,
            issuer: Issuer::new(params, key),
        }
    }

    /// Writes a certificate for `ip` (an IP address SAN) and its key into `dir`; returns the
    /// `--tls-cert` and `--tls-key` arguments.
    pub fn issue(&self, ip: &str, dir: &Path) -> [String; 4] {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![ip.to_string()])
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        let (cert_path, key_path) = (dir.join(format!("{ip}.crt")), dir.join(format!("{ip}.key")));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        let path = |p: &Path| p.to_str().unwrap().to_owned();
        [
            "--tls-cert".into(),
            path(&cert_path),
            "--tls-key".into(),
            path(&key_path),
        ]
    }
}

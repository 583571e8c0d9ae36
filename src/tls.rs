//! rustls configurations and PEM loading, for both ends: the HTTPS listener (`server.tls_cert`,
//! `server.tls_key`) and the LDAPS client to the DCs (the configured CA or the system store,
//! hostname verification always on; there is deliberately no switch to turn verification off).
//! Depends on nothing else in the crate, so `config` can check the files without the server.

use std::path::Path;
use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// LDAPS to the DCs.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => add_ca_file(&mut roots, path)?,
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(
                    "no CA certificates in the system store; set directory.ca_file".to_owned(),
                );
            }
        }
    }
    with_roots(roots)
}

/// HTTPS to webhooks: the system's CA store and `extra_ca_file` together, since a webhook may be
/// a public service or one behind the organisation's own CA.
pub fn system_and_extra(extra_ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(path) = extra_ca_file {
        add_ca_file(&mut roots, path)?;
    }
    with_roots(roots)
}

fn add_ca_file(roots: &mut RootCertStore, path: &Path) -> Result<(), String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read CA certificates from {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| format!("bad CA certificate in {}: {e}", path.display()))?;
    }
    Ok(())
}

fn with_roots(roots: RootCertStore) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// HTTPS to this service's own listener (`healthcheck`): the server must present exactly `leaf`,
/// the certificate of `server.tls_cert`, and prove it holds its key. A pin, not a chain: the
/// listener may use a certificate whose CA this host does not trust, or a name other than the
/// loopback address the probe connects to.
pub fn pinned(leaf: CertificateDer<'static>) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = PinnedLeaf {
        leaf,
        algorithms: provider.signature_verification_algorithms,
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Arc::new(config)
}

/// The first certificate of a PEM file: the leaf of `server.tls_cert`.
pub fn leaf_certificate(path: &Path) -> Result<CertificateDer<'static>, String> {
    CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .next()
        .ok_or_else(|| format!("{} holds no PEM certificate", path.display()))?
        .map_err(|e| format!("{}: {e}", path.display()))
}

#[derive(Debug)]
struct PinnedLeaf {
    leaf: CertificateDer<'static>,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl rustls::client::danger::ServerCertVerifier for PinnedLeaf {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.leaf.as_ref() {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The rustls error inside an I/O error from a TLS handshake, if that is what it is.
pub fn tls_failure(error: &std::io::Error) -> Option<String> {
    let inner = error.get_ref()?;
    inner
        .downcast_ref::<rustls::Error>()
        .map(|e| match e {
            rustls::Error::InvalidCertificate(cert) => {
                format!("the DC's certificate was not accepted ({cert:?}); check directory.ca_file and that the DC's name is in its subjectAltName")
            }
            other => other.to_string(),
        })
}

#[derive(Debug, thiserror::Error)]
pub enum TlsFileError {
    #[error("{path}: {message}")]
    Cert { path: String, message: String },
    #[error("{path}: {message}")]
    Key { path: String, message: String },
    #[error("the certificate and the key do not belong together: {0}")]
    Mismatch(rustls::Error),
}

impl TlsFileError {
    /// The configuration key the problem is about.
    pub fn key(&self) -> &'static str {
        match self {
            Self::Cert { .. } => "server.tls_cert",
            Self::Key { .. } | Self::Mismatch(_) => "server.tls_key",
        }
    }
}

/// HTTPS from `server.tls_cert` (PEM chain, leaf first) and `server.tls_key` (PEM, PKCS#8, PKCS#1
/// or SEC1): TLS 1.2 and 1.3 with the ring provider, HTTP/1.1 announced by ALPN.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsFileError> {
    let cert_error = |message: String| TlsFileError::Cert {
        path: cert.display().to_string(),
        message,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| cert_error(format!("not a PEM certificate file ({e})")))?;
    if chain.is_empty() {
        return Err(cert_error("holds no PEM certificate".to_owned()));
    }
    let private_key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsFileError::Key {
        path: key.display().to_string(),
        message: format!("not a PEM private key ({e})"),
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
    .map_err(TlsFileError::Mismatch)?
    .with_no_client_auth()
    .with_single_cert(chain, private_key)
    .map_err(TlsFileError::Mismatch)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

//! TLS to upstream servers (`[upstream.tls]`): rustls client settings built at load (trusted
//! roots from a CA file or the system store, read on the main thread), a rustls client config
//! per shard (its own resumption cache, so no lock is shared between shards), the name each
//! server is checked against, and the handshake on a fresh connection.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::{aws_lc_rs, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// TLS sessions kept per shard and upstream for resumption.
const SESSIONS_PER_SHARD: usize = 256;

/// An upstream cluster's TLS settings, checked and loaded.
#[derive(Debug, Clone)]
pub struct UpstreamTls {
    roots: Arc<RootCertStore>,
    /// `verify = false`: accept any certificate (testing only).
    verify: bool,
    /// Name to send and check instead of each server's host.
    pub server_name: Option<ServerName<'static>>,
}

impl UpstreamTls {
    /// Load the roots: `ca` (a PEM file, relative to the config file) or the system store.
    pub fn load(
        ca: Option<&Path>,
        server_name: Option<&str>,
        verify: bool,
    ) -> Result<UpstreamTls, (&'static str, String)> {
        let server_name = match server_name {
            Some(n) => Some(
                ServerName::try_from(n.to_string())
                    .map_err(|_| ("server_name", format!("\"{n}\" is not a DNS name or IP")))?,
            ),
            None => None,
        };
        let mut roots = RootCertStore::empty();
        match ca {
            Some(path) => {
                let pem = crate::config::read_bounded(path, crate::config::FILE_BYTES_MAX)
                    .map_err(|e| ("ca", format!("cannot read {}: {e}", path.display())))?;
                for cert in CertificateDer::pem_slice_iter(&pem) {
                    let cert =
                        cert.map_err(|e| ("ca", format!("{}: invalid PEM: {e}", path.display())))?;
                    roots.add(cert).map_err(|e| {
                        (
                            "ca",
                            format!("{}: unusable certificate: {e}", path.display()),
                        )
                    })?;
                }
                if roots.is_empty() {
                    return Err((
                        "ca",
                        format!("{}: no certificate in the file", path.display()),
                    ));
                }
            }
            None if verify => {
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
                if roots.is_empty() {
                    return Err((
                        "ca",
                        "no system root certificates found; give `ca`".to_string(),
                    ));
                }
            }
            None => {}
        }
        Ok(UpstreamTls {
            roots: Arc::new(roots),
            verify,
            server_name,
        })
    }

    /// The name a server at `address` ("host:port", as written) is checked against.
    pub fn name_for(&self, address: &str) -> Option<ServerName<'static>> {
        if let Some(n) = &self.server_name {
            return Some(n.clone());
        }
        let host = match address.parse::<std::net::SocketAddr>() {
            Ok(a) => return Some(ServerName::IpAddress(a.ip().into())),
            Err(_) => address.rsplit_once(':').map_or(address, |(h, _)| h),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Some(ServerName::IpAddress(ip.into()));
        }
        ServerName::try_from(host.to_string()).ok()
    }

    /// A client config for one shard: ALPN http/1.1, TLS 1.2 and 1.3, its own session cache.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        let provider = Arc::new(aws_lc_rs::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .expect("aws-lc-rs supports TLS 1.2 and 1.3");
        let mut cfg = if self.verify {
            builder
                .with_root_certificates(self.roots.clone())
                .with_no_client_auth()
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth()
        };
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        cfg.resumption = Resumption::in_memory_sessions(SESSIONS_PER_SHARD);
        Arc::new(cfg)
    }
}

/// `verify = false`: any certificate is accepted, but the handshake signatures are still
/// checked (so the peer holds the key of the certificate it sent).
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

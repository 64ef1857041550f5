//! TLS termination with rustls (aws-lc-rs provider) through monoio-rustls: certificates and keys
//! loaded from PEM files at config load, chosen by SNI with a default, ALPN http/1.1, TLS 1.2
//! and 1.3, resumption by tickets. Each shard builds its own `ServerConfig` (its own session
//! cache); the ticket keys are shared so that a client resumes on whichever shard it lands.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::crypto::aws_lc_rs;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ProducesTickets, ResolvesServerCert, ServerSessionMemoryCache};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

/// Stateful (session id) resumption entries per shard, for TLS 1.2 clients without tickets.
const SESSION_CACHE_ENTRIES: usize = 4096;

/// A listener's certificates, loaded and checked.
#[derive(Clone)]
pub struct TlsSettings {
    default: Arc<CertifiedKey>,
    /// Lower-case server name → certificate.
    by_name: HashMap<String, Arc<CertifiedKey>>,
    ticketer: Arc<dyn ProducesTickets>,
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSettings")
            .field("sni", &self.by_name.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl TlsSettings {
    pub fn new(
        default: Arc<CertifiedKey>,
        sni: Vec<(String, Arc<CertifiedKey>)>,
    ) -> Result<TlsSettings, String> {
        let ticketer =
            aws_lc_rs::Ticketer::new().map_err(|e| format!("cannot create the ticket key: {e}"))?;
        Ok(TlsSettings {
            default,
            by_name: sni
                .into_iter()
                .map(|(n, k)| (n.to_ascii_lowercase(), k))
                .collect(),
            ticketer,
        })
    }

    /// Use `old`'s session-ticket key (a reload keeps the listener's key, so tickets issued
    /// before it still resume).
    pub fn keep_ticket_key(&mut self, old: &TlsSettings) {
        self.ticketer = old.ticketer.clone();
    }

    /// A rustls server config for one shard.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        let resolver = SniResolver {
            default: self.default.clone(),
            by_name: self.by_name.clone(),
        };
        let mut cfg = ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .expect("aws-lc-rs supports TLS 1.2 and 1.3")
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(resolver));
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        cfg.ticketer = self.ticketer.clone();
        cfg.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES);
        Arc::new(cfg)
    }
}

/// Load a certificate chain and its private key from PEM files, checking that they match.
/// Errors name the file and the problem.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, String> {
    let read = |p: &Path| {
        crate::config::read_bounded(p, crate::config::FILE_BYTES_MAX)
            .map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: invalid PEM: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate in the file", cert.display()));
    }
    let private = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| format!("{}: no usable private key: {e}", key.display()))?;
    let provider = aws_lc_rs::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(private)
        .map_err(|e| format!("{}: unsupported private key: {e}", key.display()))?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(_)) => {
            return Err(format!(
                "{} does not match the certificate in {}",
                key.display(),
                cert.display()
            ))
        }
        Err(e) => return Err(format!("{}: invalid certificate: {e}", cert.display())),
    }
    Ok(Arc::new(certified))
}

/// Certificate choice by SNI; the default for no SNI or an unknown name.
#[derive(Debug)]
struct SniResolver {
    default: Arc<CertifiedKey>,
    by_name: HashMap<String, Arc<CertifiedKey>>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let chosen = hello
            .server_name()
            .and_then(|n| self.by_name.get(&n.to_ascii_lowercase()));
        Some(chosen.unwrap_or(&self.default).clone())
    }
}

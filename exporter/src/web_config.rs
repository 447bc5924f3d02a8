//! `--web.config.file` in the Prometheus exporter-toolkit format (TLS and basic auth), so the
//! file an operator already uses for node_exporter works here unchanged.
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt
//!   key_file: server.key
//!   client_auth_type: RequireAndVerifyClientCert   # optional
//!   client_ca_file: ca.crt                         # optional
//!   min_version: TLS12                             # optional
//! basic_auth_users:
//!   prometheus: $2y$10$...                         # bcrypt hash
//! ```

use crate::config::{ConfigError, Problem};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfigFile {
    pub tls_server_config: Option<TlsServerConfig>,
    pub http_server_config: Option<HttpServerConfig>,
    pub basic_auth_users: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsServerConfig {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub client_auth_type: Option<String>,
    pub client_ca_file: Option<PathBuf>,
    pub min_version: Option<String>,
    pub max_version: Option<String>,
    /// Accepted for compatibility; rustls offers only modern suites, so these are not needed.
    pub cipher_suites: Option<Vec<String>>,
    pub prefer_server_cipher_suites: Option<bool>,
    pub curve_preferences: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpServerConfig {
    pub http2: Option<bool>,
    pub headers: Option<BTreeMap<String, String>>,
}

/// What the server needs at run time: a TLS config and/or the users allowed in.
#[derive(Clone, Default)]
pub struct WebSecurity {
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub auth: Option<BasicAuth>,
    pub headers: Vec<(String, String)>,
}

/// bcrypt-checked basic auth with a cache of verified credentials: bcrypt costs tens of
/// milliseconds by design, and Prometheus sends the same credentials every scrape.
#[derive(Clone)]
pub struct BasicAuth {
    users: Arc<BTreeMap<String, String>>,
    verified: Arc<Mutex<HashSet<[u8; 32]>>>,
}

impl BasicAuth {
    pub fn new(users: BTreeMap<String, String>) -> BasicAuth {
        BasicAuth {
            users: Arc::new(users),
            verified: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    /// Whether `user`/`password` match a configured bcrypt hash.
    pub fn check(&self, user: &str, password: &str) -> bool {
        let Some(hash) = self.users.get(user) else {
            // Spend the same time as a real check so user names cannot be probed by timing.
            let _ = bcrypt::verify(password, dummy_hash());
            return false;
        };
        let key: [u8; 32] = Sha256::new()
            .chain_update(user.as_bytes())
            .chain_update([0u8])
            .chain_update(password.as_bytes())
            .chain_update([0u8])
            .chain_update(hash.as_bytes())
            .finalize()
            .into();
        if self
            .verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&key)
        {
            return true;
        }
        let ok = bcrypt::verify(password, hash).unwrap_or(false);
        if ok {
            let mut cache = self.verified.lock().unwrap_or_else(|p| p.into_inner());
            if cache.len() > 1024 {
                cache.clear();
            }
            cache.insert(key);
        }
        ok
    }
}

/// A real bcrypt hash at the default cost, verified against when the user does not exist so
/// that an unknown user costs as much as a wrong password (computed once, on first use).
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        bcrypt::hash("quantwatch-unknown-user", bcrypt::DEFAULT_COST)
            .expect("bcrypt hashing with the default cost cannot fail")
    })
}

/// Loads and validates `path`; every problem is reported with the file and key.
pub fn load(path: &Path) -> Result<WebSecurity, ConfigError> {
    let file = path.display().to_string();
    let problem = |key: &str, reason: String| Problem {
        file: file.clone(),
        key: key.to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        problems: vec![problem("-", format!("cannot read the file: {e}"))],
    })?;
    let parsed: WebConfigFile = if text.trim().is_empty() {
        WebConfigFile::default()
    } else {
        serde_saphyr::from_str(&text).map_err(|e| ConfigError {
            problems: vec![problem("-", e.to_string())],
        })?
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let mut problems = Vec::new();
    let mut sec = WebSecurity::default();

    if let Some(users) = parsed.basic_auth_users {
        for (user, hash) in &users {
            if hash.parse::<bcrypt::HashParts>().is_err() {
                problems.push(problem(
                    &format!("basic_auth_users.{user}"),
                    "is not a bcrypt hash (generate one with `htpasswd -nBC 10 USER`)".into(),
                ));
            }
        }
        if !users.is_empty() {
            sec.auth = Some(BasicAuth::new(users));
        }
    }
    if let Some(http) = parsed.http_server_config {
        sec.headers = http.headers.unwrap_or_default().into_iter().collect();
    }
    if let Some(tls) = parsed.tls_server_config {
        match build_tls(&tls, base) {
            Ok(cfg) => sec.tls = Some(Arc::new(cfg)),
            Err((key, reason)) => problems.push(problem(&key, reason)),
        }
    }
    if problems.is_empty() {
        Ok(sec)
    } else {
        Err(ConfigError { problems })
    }
}

fn build_tls(t: &TlsServerConfig, base: &Path) -> Result<rustls::ServerConfig, (String, String)> {
    let resolve = |p: &PathBuf| {
        if p.is_absolute() {
            p.clone()
        } else {
            base.join(p)
        }
    };
    let cert_file = t.cert_file.as_ref().ok_or((
        "tls_server_config.cert_file".to_string(),
        "is required".to_string(),
    ))?;
    let key_file = t.key_file.as_ref().ok_or((
        "tls_server_config.key_file".to_string(),
        "is required".to_string(),
    ))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(resolve(cert_file))
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            (
                "tls_server_config.cert_file".to_string(),
                format!("cannot load certificates: {e}"),
            )
        })?;
    if certs.is_empty() {
        return Err((
            "tls_server_config.cert_file".into(),
            "contains no certificate".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(resolve(key_file)).map_err(|e| {
        (
            "tls_server_config.key_file".to_string(),
            format!("cannot load the private key: {e}"),
        )
    })?;
    let version = |v: &Option<String>, key: &str, default: u8| -> Result<u8, (String, String)> {
        match v.as_deref() {
            None => Ok(default),
            Some("TLS12") => Ok(12),
            Some("TLS13") => Ok(13),
            Some(other) => Err((
                format!("tls_server_config.{key}"),
                format!("{other:?} is not supported (TLS12 or TLS13)"),
            )),
        }
    };
    let min = version(&t.min_version, "min_version", 12)?;
    let max = version(&t.max_version, "max_version", 13)?;
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [(12, &rustls::version::TLS12), (13, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(v, _)| *v >= min && *v <= max)
            .map(|(_, p)| p)
            .collect();
    if versions.is_empty() {
        return Err((
            "tls_server_config.min_version".into(),
            "is greater than max_version".into(),
        ));
    }
    if t.cipher_suites.is_some() || t.curve_preferences.is_some() {
        tracing::warn!(
            "web config: cipher_suites and curve_preferences are ignored; only modern TLS suites are offered"
        );
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| ("tls_server_config".to_string(), e.to_string()))?;
    let auth_type = t.client_auth_type.as_deref().unwrap_or("NoClientCert");
    let builder = match auth_type {
        "NoClientCert" => builder.with_no_client_auth(),
        "RequireAndVerifyClientCert" | "VerifyClientCertIfGiven" => {
            let ca = t.client_ca_file.as_ref().ok_or((
                "tls_server_config.client_ca_file".to_string(),
                format!("is required with client_auth_type {auth_type}"),
            ))?;
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(resolve(ca))
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    (
                        "tls_server_config.client_ca_file".to_string(),
                        format!("cannot load certificates: {e}"),
                    )
                })?
            {
                roots.add(c).map_err(|e| {
                    (
                        "tls_server_config.client_ca_file".to_string(),
                        e.to_string(),
                    )
                })?;
            }
            let mut vb = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            );
            if auth_type == "VerifyClientCertIfGiven" {
                vb = vb.allow_unauthenticated();
            }
            let verifier = vb.build().map_err(|e| {
                (
                    "tls_server_config.client_ca_file".to_string(),
                    e.to_string(),
                )
            })?;
            builder.with_client_cert_verifier(verifier)
        }
        other => {
            return Err((
                "tls_server_config.client_auth_type".into(),
                format!(
                    "{other:?} is not supported (NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert)"
                ),
            ));
        }
    };
    let mut cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| ("tls_server_config.key_file".to_string(), e.to_string()))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_accepts_the_right_password_only_and_caches() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let auth = BasicAuth::new([("prom".to_string(), hash)].into_iter().collect());
        assert!(auth.check("prom", "s3cret"));
        assert!(auth.check("prom", "s3cret"), "cached path");
        assert!(!auth.check("prom", "wrong"));
        assert!(!auth.check("nobody", "s3cret"));
        // The unknown-user path really runs bcrypt: its hash parses at the default cost.
        let parts: bcrypt::HashParts = dummy_hash().parse().unwrap();
        assert_eq!(parts.get_cost(), bcrypt::DEFAULT_COST);
    }

    #[test]
    fn bad_hash_and_missing_key_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("web.yml");
        std::fs::write(
            &p,
            "basic_auth_users:\n  prom: plaintext\ntls_server_config:\n  cert_file: c.pem\n",
        )
        .unwrap();
        let err = match load(&p) {
            Err(e) => e,
            Ok(_) => panic!("expected an error"),
        };
        let keys: Vec<&str> = err.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            ["basic_auth_users.prom", "tls_server_config.key_file"]
        );
    }
}

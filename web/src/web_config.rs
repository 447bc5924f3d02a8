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
//! http_server_config:
//!   headers:                                       # added to every response
//!     Strict-Transport-Security: max-age=31536000
//! ```
//!
//! Everything is checked at load: a header that is not a valid HTTP name or value is a
//! problem, not silently dropped at serve time.

use crate::config::{Problem, parse_yaml};
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
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

/// What the server needs at run time: a TLS config and/or the users allowed in, and the
/// response headers the operator asked for.
#[derive(Clone, Default)]
pub struct WebSecurity {
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub auth: Option<BasicAuth>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl std::fmt::Debug for WebSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the hashes: a bcrypt hash is an offline-crackable secret.
        f.debug_struct("WebSecurity")
            .field("tls", &self.tls.is_some())
            .field(
                "basic_auth_users",
                &self.auth.as_ref().map(|a| a.users.len()),
            )
            .field("headers", &self.headers.len())
            .finish()
    }
}

/// bcrypt-checked basic auth with a cache of verified credentials: bcrypt costs tens of
/// milliseconds by design, and Prometheus sends the same credentials every scrape.
///
/// An unknown user is checked against a real hash of the highest cost among the configured
/// ones, so that asking about a user who does not exist costs what a wrong password of a real
/// user costs and response times do not tell valid user names apart.
#[derive(Clone)]
pub struct BasicAuth {
    users: Arc<BTreeMap<String, String>>,
    verified: Arc<Mutex<HashSet<[u8; 32]>>>,
    dummy: Arc<String>,
}

impl BasicAuth {
    /// `users` maps names to bcrypt hashes (checked by [`load`]; an unparsable hash simply
    /// never matches).
    pub fn new(users: BTreeMap<String, String>) -> BasicAuth {
        let cost = users
            .values()
            .filter_map(|h| h.parse::<bcrypt::HashParts>().ok())
            .map(|p| p.get_cost())
            .max()
            .unwrap_or(bcrypt::DEFAULT_COST);
        let dummy = bcrypt::hash("quantwatch-unknown-user", cost)
            .or_else(|_| bcrypt::hash("quantwatch-unknown-user", bcrypt::DEFAULT_COST))
            .unwrap_or_default();
        BasicAuth {
            users: Arc::new(users),
            verified: Arc::new(Mutex::new(HashSet::new())),
            dummy: Arc::new(dummy),
        }
    }

    /// The bcrypt cost an unknown user's check pays (equal to the highest configured cost).
    pub fn unknown_user_cost(&self) -> Option<u32> {
        self.dummy
            .parse::<bcrypt::HashParts>()
            .ok()
            .map(|p| p.get_cost())
    }

    /// Whether `user`/`password` match a configured bcrypt hash.
    pub fn check(&self, user: &str, password: &str) -> bool {
        let Some(hash) = self.users.get(user) else {
            // Spend the same time as a real check so user names cannot be probed by timing.
            let _ = bcrypt::verify(password, &self.dummy);
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

impl BasicAuth {
    /// [`BasicAuth::check`] off the async threads: bcrypt blocks for tens of milliseconds.
    pub async fn check_blocking(&self, user: String, password: String) -> bool {
        let auth = self.clone();
        tokio::task::spawn_blocking(move || auth.check(&user, &password))
            .await
            .unwrap_or(false)
    }
}

impl WebSecurity {
    /// `app` with the web config applied the exporter-toolkit way: every route behind basic
    /// auth (when users are configured; 401 with `WWW-Authenticate: Basic realm="{realm}"`
    /// otherwise) and the configured headers on every response, 401s included.
    pub fn apply(&self, app: Router, realm: &'static str) -> Router {
        let mut app = app;
        if let Some(auth) = self.auth.clone() {
            app = app.layer(middleware::from_fn(move |req: Request, next: Next| {
                let auth = auth.clone();
                async move { guard(&auth, req, next, realm).await }
            }));
        }
        self.apply_headers(app)
    }

    /// [`WebSecurity::apply`] with the security in force read per request from `current`, so
    /// that the users and headers of a reloaded web config apply from the next request on (TLS
    /// is per connection: see `serve::serve_with_tls`).
    pub fn apply_swappable(
        app: Router,
        current: Arc<crate::reload::Swap<WebSecurity>>,
        realm: &'static str,
    ) -> Router {
        app.layer(middleware::from_fn(move |req: Request, next: Next| {
            let sec = current.get();
            async move {
                let mut resp = match &sec.auth {
                    Some(auth) => guard(auth, req, next, realm).await,
                    None => next.run(req).await,
                };
                for (k, v) in sec.headers.iter() {
                    resp.headers_mut().insert(k.clone(), v.clone());
                }
                resp
            }
        }))
    }

    /// `app` with the configured `http_server_config.headers` on every response.
    pub fn apply_headers(&self, app: Router) -> Router {
        if self.headers.is_empty() {
            return app;
        }
        let headers = Arc::new(self.headers.clone());
        app.layer(middleware::from_fn(move |req: Request, next: Next| {
            let headers = headers.clone();
            async move {
                let mut resp = next.run(req).await;
                for (k, v) in headers.iter() {
                    resp.headers_mut().insert(k.clone(), v.clone());
                }
                resp
            }
        }))
    }
}

/// Lets the request through when its credentials check out; 401 with
/// `WWW-Authenticate: Basic realm="{realm}"` otherwise.
async fn guard(
    auth: &BasicAuth,
    req: Request,
    next: Next,
    realm: &'static str,
) -> axum::response::Response {
    let ok = match crate::auth::basic_credentials(req.headers()) {
        Some((user, pass)) => auth.check_blocking(user, pass).await,
        None => false,
    };
    if ok {
        next.run(req).await
    } else {
        let mut resp = (StatusCode::UNAUTHORIZED, "Unauthorized\n").into_response();
        if let Ok(v) = HeaderValue::from_str(&format!("Basic realm=\"{realm}\"")) {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        resp
    }
}

/// Loads and validates `path`; every problem is reported with the file and key.
pub fn load(path: &Path) -> Result<WebSecurity, Vec<Problem>> {
    let file = path.display().to_string();
    let problem = |key: &str, reason: String| Problem {
        file: file.clone(),
        key: key.to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![problem("-", format!("cannot read the file: {e}"))])?;
    let parsed: WebConfigFile = if text.trim().is_empty() {
        WebConfigFile::default()
    } else {
        parse_yaml(&text, &file).map_err(|p| vec![p])?
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
        for (name, value) in http.headers.unwrap_or_default() {
            let key = format!("http_server_config.headers.{name}");
            match (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                (Ok(n), Ok(v)) => sec.headers.push((n, v)),
                (Err(_), _) => problems.push(problem(
                    &key,
                    "is not a valid HTTP header name (letters, digits and !#$%&'*+-.^_`|~ only)"
                        .into(),
                )),
                // The value is not shown: operators put tokens in headers.
                (_, Err(_)) => problems.push(problem(
                    &key,
                    "the value is not a valid HTTP header value (no control characters or line breaks; value not shown)"
                        .into(),
                )),
            }
        }
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
        Err(problems)
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
    }

    #[test]
    fn an_unknown_user_costs_the_configured_bcrypt_cost() {
        let users = [
            ("a".to_string(), bcrypt::hash("x", 4).unwrap()),
            ("b".to_string(), bcrypt::hash("y", 6).unwrap()),
        ];
        let auth = BasicAuth::new(users.into_iter().collect());
        assert_eq!(auth.unknown_user_cost(), Some(6));
        let auth = BasicAuth::new([("a".to_string(), bcrypt::hash("x", 5).unwrap())].into());
        assert_eq!(auth.unknown_user_cost(), Some(5));
    }

    #[test]
    fn invalid_headers_are_refused_without_their_value() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("web.yml");
        std::fs::write(
            &p,
            "http_server_config:\n  headers:\n    X-Good: yes\n    \"Bad Name\": v\n    X-Token: \"tok-hunter2\\nInjected: 1\"\n",
        )
        .unwrap();
        let problems = match load(&p) {
            Err(e) => e,
            Ok(_) => panic!("expected an error"),
        };
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "http_server_config.headers.Bad Name",
                "http_server_config.headers.X-Token"
            ]
        );
        assert!(!format!("{problems:?}").contains("hunter2"));
        std::fs::write(&p, "http_server_config:\n  headers:\n    X-Good: yes\n").unwrap();
        let sec = load(&p).unwrap();
        assert_eq!(sec.headers.len(), 1);
        assert_eq!(sec.headers[0].0.as_str(), "x-good");
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
        let keys: Vec<&str> = err.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            ["basic_auth_users.prom", "tls_server_config.key_file"]
        );
    }
}

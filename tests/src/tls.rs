//! Self-signed certificates for TLS tests (web configs of both binaries, SMTP STARTTLS) and
//! the exporter-toolkit web config files both binaries read.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Writes `cert.pem` and `key.pem` (valid for `localhost` and 127.0.0.1, not a CA) into `dir`.
pub fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let out = Command::new(crate::require("openssl", "openssl"))
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("running openssl must work");
    assert!(
        out.status.success(),
        "openssl req failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// An exporter-toolkit web config (`--web.config.file`) written into a directory: both
/// binaries read the same format, so their TLS and basic-auth tests share this helper.
pub struct WebConfig {
    /// The `web.yml` file.
    pub path: PathBuf,
    /// The self-signed server certificate, when TLS is on.
    pub cert: Option<PathBuf>,
}

/// Writes `dir/web.yml`: TLS 1.2+ with a fresh self-signed certificate for `localhost` when
/// `tls`, and `users` (name, password) as `basic_auth_users` hashed with bcrypt at cost 4
/// (the cheapest: tests check who gets in, not how long bcrypt takes).
pub fn web_config(dir: &Path, tls: bool, users: &[(&str, &str)]) -> WebConfig {
    let mut yaml = String::new();
    let cert = if tls {
        let (cert, key) = self_signed(dir);
        yaml.push_str(&format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  min_version: TLS12\n",
            cert.display(),
            key.display()
        ));
        Some(cert)
    } else {
        None
    };
    if !users.is_empty() {
        yaml.push_str("basic_auth_users:\n");
        for (user, pass) in users {
            let hash = bcrypt::hash(pass, 4).expect("bcrypt at cost 4 must work");
            yaml.push_str(&format!("  {user}: {hash}\n"));
        }
    }
    let path = dir.join("web.yml");
    std::fs::write(&path, yaml).expect("writing the web config must work");
    WebConfig { path, cert }
}

impl WebConfig {
    /// A blocking client that trusts the certificate (use `https://localhost:PORT`).
    pub fn client(&self) -> reqwest::blocking::Client {
        let mut b =
            reqwest::blocking::Client::builder().timeout(std::time::Duration::from_secs(30));
        if let Some(cert) = &self.cert {
            let pem = std::fs::read(cert).expect("reading the certificate must work");
            let ca = reqwest::Certificate::from_pem(&pem).expect("a PEM certificate");
            b = b.add_root_certificate(ca);
        }
        b.build().expect("building a reqwest client must work")
    }
}

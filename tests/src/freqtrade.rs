//! freqtrade fixtures made by freqtrade's own code: the Python venv `scripts/test` installs
//! (`target/ft-venv`: `pip install --no-deps freqtrade` plus the modules its `persistence`
//! and `data.metrics` import), the generator and writer scripts under
//! `tests/fixtures/freqtrade/`, and what the generator says every family must be.

use std::path::PathBuf;
use std::process::Command;

/// The workspace root.
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The venv's python (`QW_FT_PYTHON` overrides).
pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("QW_FT_PYTHON") {
        return PathBuf::from(p);
    }
    let p = workspace().join("target/ft-venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run scripts/test once (it creates the freqtrade venv), or \
         python3 -m venv target/ft-venv && target/ft-venv/bin/pip install --no-deps \
         freqtrade==2026.9 && target/ft-venv/bin/pip install -r tests/fixtures/freqtrade/requirements.txt",
        p.display()
    );
    p
}

pub fn fixture(name: &str) -> PathBuf {
    workspace().join("tests/fixtures/freqtrade").join(name)
}

/// Runs a fixture script with the venv's python; panics with its output when it fails.
pub fn run_script(script: &str, args: &[&str]) -> String {
    let out = Command::new(python())
        .arg(fixture(script))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {script}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{script} {args:?} failed:\n{text}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[derive(Debug, Clone)]
pub struct ExpectedSeries {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// What `generate.py` computed with freqtrade's own code.
#[derive(Debug, Clone)]
pub struct Expected {
    /// The instant the exporter's clock must be pinned to (RFC 3339).
    pub now: String,
    pub capital: f64,
    pub series: Vec<ExpectedSeries>,
}

/// Creates a freqtrade database at `db_url` (SQLAlchemy URL) with freqtrade's code and
/// returns the expected values.
pub fn generate(db_url: &str) -> Expected {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("expected.json");
    run_script(
        "generate.py",
        &[db_url, out.to_str().expect("temp paths are UTF-8")],
    );
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&out).expect("the generator writes expected.json"),
    )
    .expect("expected.json is JSON");
    let series = v["series"]
        .as_array()
        .expect("series is a list")
        .iter()
        .map(|s| ExpectedSeries {
            name: s["name"].as_str().unwrap_or_default().to_string(),
            labels: s["labels"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect()
                })
                .unwrap_or_default(),
            value: s["value"].as_f64().unwrap_or(f64::NAN),
        })
        .collect();
    Expected {
        now: v["now"].as_str().unwrap_or_default().to_string(),
        capital: v["capital"].as_f64().unwrap_or_default(),
        series,
    }
}

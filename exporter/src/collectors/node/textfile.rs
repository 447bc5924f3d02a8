//! `textfile` collector: `*.prom` files in `--collector.textfile.directory` merged into the
//! scrape, with node_exporter's semantics: `node_textfile_mtime_seconds{file}` for each file
//! read, `node_textfile_scrape_error` 1 when any file could not be read or parsed (that file
//! is skipped whole; the scrape still succeeds), files with client-side timestamps refused.
//! A family whose name another collector already published is not duplicated: it is dropped
//! and reported (log + `node_textfile_scrape_error 1`).

use super::{Ctx, NodeCollector, NodeError};
use crate::metrics::{Families, Family, Kind};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::UNIX_EPOCH;

pub struct Textfile {
    dir: Option<PathBuf>,
}

impl Textfile {
    pub fn new(dir: Option<PathBuf>) -> Textfile {
        Textfile { dir }
    }
}

/// One sample: series name (the family's, or its `_bucket`/`_sum`/`_count`), labels, value.
pub type Sample = (String, Vec<(String, String)>, f64);

/// One parsed family: type, help, samples.
#[derive(Debug, Default)]
pub struct Parsed {
    pub kind: Option<Kind>,
    pub help: Option<String>,
    pub samples: Vec<Sample>,
}

impl NodeCollector for Textfile {
    fn update(&self, ctx: &Ctx<'_>, out: &mut Families) -> Result<(), NodeError> {
        let mut errored = false;
        let mut merged: BTreeMap<String, (Parsed, Vec<String>)> = BTreeMap::new();
        let mut mtimes: BTreeMap<String, f64> = BTreeMap::new();
        if let Some(dir) = &self.dir {
            let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
                Ok(rd) => rd
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "prom"))
                    .collect(),
                Err(e) => {
                    tracing::error!(path = %dir.display(), error = %e, "failed to read textfile collector directory");
                    errored = true;
                    Vec::new()
                }
            };
            files.sort();
            for path in files {
                let shown = path.display().to_string();
                let text = match std::fs::read_to_string(&path) {
                    Ok(t) => t,
                    Err(e) => {
                        tracing::error!(file = %shown, error = %e, "failed to read textfile");
                        errored = true;
                        continue;
                    }
                };
                let families = match parse(&text) {
                    Ok(f) => f,
                    Err(e) => {
                        tracing::error!(file = %shown, error = %e, "failed to parse textfile; skipping it");
                        errored = true;
                        continue;
                    }
                };
                for (name, fam) in families {
                    if ctx.produced.contains(&name) {
                        tracing::error!(file = %shown, family = %name, "textfile family clashes with a built-in one; dropped");
                        errored = true;
                        continue;
                    }
                    let slot = merged
                        .entry(name)
                        .or_insert_with(|| (Parsed::default(), Vec::new()));
                    if slot.0.kind.is_none() {
                        slot.0.kind = fam.kind;
                    }
                    if slot.0.help.is_none() {
                        slot.0.help = fam.help;
                    }
                    slot.0.samples.extend(fam.samples);
                    slot.1.push(shown.clone());
                }
                let mtime = std::fs::metadata(&path)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map(|d| d.as_secs() as f64)
                    .unwrap_or(0.0);
                mtimes.insert(shown, mtime);
            }
        }
        for (name, (fam, files)) in merged {
            let help = fam
                .help
                .unwrap_or_else(|| format!("Metric read from {}", files.join(", ")));
            let mut f = Family::new(&name, &help, fam.kind.unwrap_or(Kind::Untyped));
            for (series, labels, v) in &fam.samples {
                let l: Vec<(&str, &str)> = labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                f.add_sample(series, &l, *v);
            }
            out.push(f);
        }
        let mut mt = Family::gauge(
            "node_textfile_mtime_seconds",
            "Unixtime mtime of textfiles successfully read.",
        );
        for (file, t) in &mtimes {
            mt.add(&[("file", file)], *t);
        }
        out.push(mt);
        out.gauge(
            "node_textfile_scrape_error",
            "1 if there was an error opening or reading a file, 0 otherwise",
            if errored { 1.0 } else { 0.0 },
        );
        Ok(())
    }
}

fn valid_name(s: &str, colon: bool) -> bool {
    let mut chars = s.chars();
    let ok_first = |c: char| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':');
    matches!(chars.next(), Some(c) if ok_first(c))
        && chars.all(|c| ok_first(c) || c.is_ascii_digit())
}

/// The family a sample line belongs to: itself, or the histogram/summary it is a series of.
fn family_of<'a>(name: &'a str, families: &BTreeMap<String, Parsed>) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && families
                .get(base)
                .is_some_and(|f| matches!(f.kind, Some(Kind::Histogram | Kind::Summary)))
        {
            return base;
        }
    }
    name
}

/// The Prometheus text format (0.0.4), strictly: a bad line fails the whole file, as
/// node_exporter's parser does; so do client-side timestamps.
pub fn parse(text: &str) -> Result<BTreeMap<String, Parsed>, String> {
    let mut families: BTreeMap<String, Parsed> = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        let line = line.trim_start();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            let rest = rest.trim_start();
            let mut parts = rest.splitn(3, ' ');
            let keyword = parts.next().unwrap_or("");
            if keyword != "HELP" && keyword != "TYPE" {
                continue;
            }
            let name = parts.next().unwrap_or("");
            if !valid_name(name, true) {
                return Err(format!("line {n}: invalid metric name {name:?}"));
            }
            let arg = parts.next().unwrap_or("");
            let fam = families.entry(name.to_string()).or_default();
            if keyword == "HELP" {
                if fam.help.is_some() {
                    return Err(format!("line {n}: second HELP for {name}"));
                }
                fam.help = Some(arg.replace("\\n", "\n").replace("\\\\", "\\"));
            } else {
                if fam.kind.is_some() || !fam.samples.is_empty() {
                    return Err(format!(
                        "line {n}: TYPE for {name} after its samples or twice"
                    ));
                }
                fam.kind = Some(match arg.trim() {
                    "counter" => Kind::Counter,
                    "gauge" => Kind::Gauge,
                    "histogram" => Kind::Histogram,
                    "summary" => Kind::Summary,
                    "untyped" => Kind::Untyped,
                    other => return Err(format!("line {n}: unknown type {other:?}")),
                });
            }
            continue;
        }
        let (series, labels, rest) = parse_series(line).map_err(|e| format!("line {n}: {e}"))?;
        let mut fields = rest.split_ascii_whitespace();
        let value = fields.next().ok_or_else(|| format!("line {n}: no value"))?;
        let value = parse_value(value).ok_or_else(|| format!("line {n}: bad value {value:?}"))?;
        if fields.next().is_some() {
            return Err(format!(
                "line {n}: client-side timestamps are not supported"
            ));
        }
        let base = family_of(&series, &families).to_string();
        families
            .entry(base)
            .or_default()
            .samples
            .push((series, labels, value));
    }
    families.retain(|_, f| !f.samples.is_empty());
    Ok(families)
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

type Series = (String, Vec<(String, String)>, String);

fn parse_series(line: &str) -> Result<Series, String> {
    let end = line
        .find(|c: char| c == '{' || c.is_ascii_whitespace())
        .ok_or("no value")?;
    let name = &line[..end];
    if !valid_name(name, true) {
        return Err(format!("invalid metric name {name:?}"));
    }
    let mut rest = &line[end..];
    let mut labels = Vec::new();
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices().peekable();
        loop {
            while chars
                .peek()
                .is_some_and(|(_, c)| c.is_ascii_whitespace() || *c == ',')
            {
                chars.next();
            }
            let Some(&(start, c)) = chars.peek() else {
                return Err("unterminated label set".into());
            };
            if c == '}' {
                rest = &body[start + 1..];
                break;
            }
            let eq = body[start..].find('=').ok_or("label without value")? + start;
            let key = body[start..eq].trim();
            if !valid_name(key, false) {
                return Err(format!("invalid label name {key:?}"));
            }
            while chars.peek().is_some_and(|(i, _)| *i <= eq) {
                chars.next();
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err(format!("label {key}: value not quoted"));
            }
            let mut value = String::new();
            loop {
                match chars.next() {
                    None => return Err("unterminated label value".into()),
                    Some((_, '"')) => break,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, c @ ('\\' | '"'))) => value.push(c),
                        _ => return Err("bad escape in label value".into()),
                    },
                    Some((_, c)) => value.push(c),
                }
            }
            if labels.iter().any(|(k, _): &(String, String)| k == key) {
                return Err(format!("duplicate label {key}"));
            }
            labels.push((key.to_string(), value));
        }
    }
    if !rest.starts_with(|c: char| c.is_ascii_whitespace()) {
        return Err("no value".into());
    }
    Ok((name.to_string(), labels, rest.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_families_and_refuses_bad_lines() {
        let f = parse("# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\\\"\",y=\"\"} 3\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1.5\nh_count 2\nfree 7\n")
            .expect("valid");
        assert_eq!(f["a_total"].kind, Some(Kind::Counter));
        assert_eq!(
            f["a_total"].samples[0].1,
            vec![
                ("x".to_string(), "1\"".to_string()),
                ("y".to_string(), String::new())
            ]
        );
        assert_eq!(f["h"].samples.len(), 3);
        assert_eq!(f["free"].kind, None);
        for bad in [
            "a{x=1} 2\n",
            "a 1 1700000000\n",
            "9a 1\n",
            "a{x=\"1\"\n",
            "a nope\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should fail");
        }
    }
}

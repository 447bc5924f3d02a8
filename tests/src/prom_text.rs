//! A strict parser of the Prometheus text exposition format, for exact-value assertions.

use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed scrape: every sample plus the declared TYPE of every family.
#[derive(Clone, Debug, Default)]
pub struct Exposition {
    pub samples: Vec<Sample>,
    pub types: BTreeMap<String, String>,
    pub helps: BTreeMap<String, String>,
}

impl Exposition {
    /// The value of the one sample named `name` whose labels include every pair of `labels`.
    /// Panics if several samples match: a test asking for one value must name it fully.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let hits = self.matching(name, labels);
        assert!(
            hits.len() <= 1,
            "{name}{labels:?} matches {} samples: {hits:?}",
            hits.len()
        );
        hits.first().map(|s| s.value)
    }

    /// Every sample named `name` whose labels include every pair of `labels`.
    pub fn matching(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// The family a sample belongs to (strips histogram/summary suffixes when declared so).
    pub fn family_of(&self, sample_name: &str) -> String {
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = sample_name.strip_suffix(suffix)
                && matches!(
                    self.types.get(base).map(String::as_str),
                    Some("histogram" | "summary")
                )
            {
                return base.to_string();
            }
        }
        sample_name.to_string()
    }

    /// Every sample whose name `keep` accepts, as (name, labels) → value, for comparing two
    /// expositions series for series.
    pub fn series(
        &self,
        keep: impl Fn(&str) -> bool,
    ) -> BTreeMap<(String, BTreeMap<String, String>), f64> {
        self.samples
            .iter()
            .filter(|s| keep(&s.name))
            .map(|s| ((s.name.clone(), s.labels.clone()), s.value))
            .collect()
    }

    /// Label names used by the samples of family `family` (without `le`/`quantile`).
    pub fn label_names(&self, family: &str) -> std::collections::BTreeSet<String> {
        self.samples
            .iter()
            .filter(|s| self.family_of(&s.name) == family)
            .flat_map(|s| s.labels.keys().cloned())
            .filter(|k| k != "le" && k != "quantile")
            .collect()
    }
}

/// Parses `text`; panics naming the line on malformed input.
pub fn parse(text: &str) -> Exposition {
    let mut exp = Exposition::default();
    for (lineno, line) in text.lines().enumerate() {
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.splitn(2, ' ');
            let name = it.next().unwrap_or_default().to_string();
            let ty = it.next().unwrap_or_default().to_string();
            exp.types.insert(name, ty);
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let mut it = rest.splitn(2, ' ');
            let name = it.next().unwrap_or_default().to_string();
            exp.helps
                .insert(name, it.next().unwrap_or_default().to_string());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let sample =
            parse_sample(line).unwrap_or_else(|why| panic!("line {}: {why}: {line:?}", lineno + 1));
        exp.samples.push(sample);
    }
    exp
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(['{', ' '])
        .ok_or_else(|| "no value".to_string())?;
    let name = line[..name_end].to_string();
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if rest.starts_with('{') {
        let mut chars = rest[1..].char_indices();
        let mut key = String::new();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '}' => {
                    end = Some(i + 2);
                    break;
                }
                ',' | ' ' => continue,
                '=' => {
                    if chars.next().map(|(_, c)| c) != Some('"') {
                        return Err("label value must be quoted".into());
                    }
                    let mut value = String::new();
                    loop {
                        match chars.next() {
                            Some((_, '\\')) => match chars.next() {
                                Some((_, 'n')) => value.push('\n'),
                                Some((_, c)) => value.push(c),
                                None => return Err("unterminated escape".into()),
                            },
                            Some((_, '"')) => break,
                            Some((_, c)) => value.push(c),
                            None => return Err("unterminated label value".into()),
                        }
                    }
                    labels.insert(std::mem::take(&mut key), value);
                }
                c => key.push(c),
            }
        }
        let end = end.ok_or_else(|| "unterminated label set".to_string())?;
        rest = &rest[end..];
    }
    let value_text = rest
        .split_whitespace()
        .next()
        .ok_or_else(|| "no value".to_string())?;
    let value = match value_text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().map_err(|e| format!("bad value {v:?}: {e}"))?,
    };
    Ok(Sample {
        name,
        labels,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_labels_escapes_and_types() {
        let e = parse(
            "# HELP a_total help\n# TYPE a_total counter\na_total{x=\"1\",y=\"q\\\"\\\\z\"} 3\nb 2.5\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 4\n",
        );
        assert_eq!(e.value("a_total", &[("x", "1")]), Some(3.0));
        assert_eq!(
            e.samples[0].labels.get("y").map(String::as_str),
            Some("q\"\\z")
        );
        assert_eq!(e.value("b", &[]), Some(2.5));
        assert_eq!(e.types.get("a_total").map(String::as_str), Some("counter"));
        assert_eq!(e.family_of("h_bucket"), "h");
        assert!(e.label_names("h").is_empty());
    }

    #[test]
    #[should_panic(expected = "unterminated label value")]
    fn rejects_unterminated_labels() {
        parse("a{x=\"1} 3\n");
    }
}

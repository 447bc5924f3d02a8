//! The router's architecture, checked: every source file's `use` and `crate::` paths are read
//! and each import must follow the layers of ARCHITECTURE.md ("The router's layers"):
//!
//! core → store → plan → render → channels → context → delivery → web → app
//!
//! A part imports only parts below it (or itself), and the "never" rules hold: core imports
//! nothing of the crate; store imports only core and no HTTP framework; plan never imports
//! render, channels, context, delivery, web or app and never reads the clock; channels and
//! context never import each other; nothing imports app; only core reads the wall clock. On top,
//! no import circle among the files. A failure names the file, the line and the rule.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The parts, bottom first; a file's part is its first directory under `src/`.
const LAYERS: [&str; 9] = [
    "core", "store", "plan", "render", "channels", "context", "delivery", "web", "app",
];

/// Outside crates a part must not use, by part.
const FORBIDDEN_CRATES: [(&str, &[&str]); 1] = [("store", &["axum", "reqwest", "hyper", "http"])];

/// Wall-clock reads; only `core::clock` makes them.
const WALL_CLOCK: [&str; 3] = ["Utc::now(", "SystemTime::now(", "Local::now("];

fn rank(layer: &str) -> Option<usize> {
    LAYERS.iter().position(|l| *l == layer)
}

/// One source file: its module path (`["plan", "rota"]`) and its text.
struct Source {
    rel: String,
    module: Vec<String>,
    text: String,
}

fn sources() -> Vec<Source> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&root, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let rel = path
                .strip_prefix(&root)
                .expect("under src")
                .to_string_lossy()
                .replace('\\', "/");
            let mut module: Vec<String> = rel
                .trim_end_matches(".rs")
                .split('/')
                .map(str::to_string)
                .collect();
            if matches!(
                module.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                module.pop();
            }
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            Source { rel, module, text }
        })
        .collect()
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The file's part: `main.rs` is the app's; `lib.rs` only declares the parts.
fn layer_of(s: &Source) -> Option<&'static str> {
    if s.rel == "main.rs" {
        return Some("app");
    }
    let first = s.module.first()?;
    LAYERS.iter().copied().find(|l| l == first)
}

/// Code without comments and the contents of string literals (raw strings included), line by
/// line, so a doc comment or a template that names a path is not an import.
fn code_lines(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    while i < chars.len() {
        let c = chars[i];
        if c == '/' && at(i + 1) == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if chars[i] == '\n' {
                        out.push('\n');
                    }
                    i += 1;
                }
            }
            continue;
        }
        let ident_before = i > 0 && (chars[i - 1].is_ascii_alphanumeric() || chars[i - 1] == '_');
        // Raw strings: r"…", r#"…"#, br#"…"#.
        if c == 'r' && !ident_before || (c == 'b' && at(i + 1) == 'r' && !ident_before) {
            let mut j = if c == 'b' { i + 2 } else { i + 1 };
            let mut hashes = 0;
            while at(j) == '#' {
                hashes += 1;
                j += 1;
            }
            if at(j) == '"' {
                out.push('"');
                j += 1;
                loop {
                    if j >= chars.len() {
                        break;
                    }
                    if chars[j] == '"' && (0..hashes).all(|k| at(j + 1 + k) == '#') {
                        j += 1 + hashes;
                        break;
                    }
                    if chars[j] == '\n' {
                        out.push('\n');
                    }
                    j += 1;
                }
                out.push('"');
                i = j;
                continue;
            }
        }
        if c == '"' {
            out.push('"');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                if at(i) == '\n' {
                    out.push('\n');
                }
                i += 1;
            }
            out.push('"');
            i += 1;
            continue;
        }
        // A char literal such as '"' must not open a string ('a lifetime stays code).
        if c == '\'' {
            if at(i + 1) == '\\' {
                let mut j = i + 2;
                while j < chars.len() && chars[j] != '\'' {
                    j += 1;
                }
                out.push_str("' '");
                i = j + 1;
                continue;
            }
            if at(i + 2) == '\'' {
                out.push_str("' '");
                i += 3;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out.split('\n').map(str::to_string).collect()
}

/// Expand a `use` tree (`crate::a::{b, c::{d, e}}`) into its paths.
fn expand(tree: &str, prefix: &[String], out: &mut Vec<Vec<String>>) {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let head: Vec<String> = tree[..open]
            .split("::")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        let mut base = prefix.to_vec();
        base.extend(head);
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let mut depth = 0;
        let mut cur = String::new();
        for c in inner.chars() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(&cur, &base, out);
                    cur.clear();
                    continue;
                }
                _ => {}
            }
            cur.push(c);
        }
        if !cur.trim().is_empty() {
            expand(&cur, &base, out);
        }
    } else {
        let tree = tree.split(" as ").next().unwrap_or(tree);
        let mut p = prefix.to_vec();
        p.extend(
            tree.split("::")
                .map(str::trim)
                .filter(|s| !s.is_empty() && *s != "self" && *s != "*")
                .map(str::to_string),
        );
        out.push(p);
    }
}

/// One import: the line it is on and the path, resolved to start at the crate root.
struct Import {
    line: usize,
    path: Vec<String>,
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every path the file names: `use` trees and inline `crate::…`/`super::…` paths, with
/// `super` resolved against the module the line is in (inline `mod tests { … }` included).
fn imports(s: &Source) -> (Vec<Import>, Vec<(usize, String)>) {
    let lines = code_lines(&s.text);
    let mut out = Vec::new();
    let mut externals = Vec::new();
    // Inline modules open at this indentation: (indent, name).
    let mut inline: Vec<(usize, String)> = Vec::new();
    let mut pending_use: Option<(usize, String)> = None;
    for (i, line) in lines.iter().enumerate() {
        let n = i + 1;
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim();
        if let Some((ind, _)) = inline.last()
            && *ind == indent
            && trimmed.starts_with('}')
        {
            inline.pop();
            continue;
        }
        let mut module = s.module.clone();
        module.extend(inline.iter().map(|(_, m)| m.clone()));
        // `use` statements (possibly over several lines).
        let stmt = match pending_use.take() {
            Some((start, mut acc)) => {
                acc.push(' ');
                acc.push_str(trimmed);
                Some((start, acc))
            }
            None => {
                let t = trimmed.strip_prefix("pub ").unwrap_or(trimmed);
                let t = t.strip_prefix("pub(crate) ").unwrap_or(t);
                t.strip_prefix("use ").map(|rest| (n, rest.to_string()))
            }
        };
        if let Some((start, acc)) = stmt {
            if let Some(end) = acc.find(';') {
                let mut paths = Vec::new();
                expand(&acc[..end], &[], &mut paths);
                for p in paths {
                    match p.first().map(String::as_str) {
                        Some("crate" | "super" | "self") => {
                            if let Some(path) = resolve(&module, &p) {
                                out.push(Import { line: start, path });
                            }
                        }
                        Some(other) => externals.push((start, other.to_string())),
                        None => {}
                    }
                }
            } else {
                pending_use = Some((start, acc));
            }
            continue;
        }
        if let Some(rest) = trimmed
            .strip_prefix("mod ")
            .or_else(|| trimmed.strip_prefix("pub mod "))
            && let Some(name) = rest.strip_suffix(" {")
        {
            inline.push((indent, name.trim().to_string()));
            continue;
        }
        // Inline paths: `crate::x::y`, `super::x`.
        for start_word in ["crate::", "super::"] {
            let mut from = 0;
            while let Some(at) = line[from..].find(start_word) {
                let at = from + at;
                from = at + start_word.len();
                if at > 0
                    && (is_ident(line[..at].chars().last().unwrap_or(' '))
                        || line[..at].ends_with("::"))
                {
                    continue;
                }
                let path: String = line[at..]
                    .chars()
                    .take_while(|c| is_ident(*c) || *c == ':')
                    .collect();
                let p: Vec<String> = path
                    .split("::")
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
                if let Some(path) = resolve(&module, &p) {
                    out.push(Import { line: n, path });
                }
            }
        }
        // Outside crates named inline (`axum::…`).
        for word in ["axum::", "reqwest::", "hyper::", "http::"] {
            if let Some(at) = line.find(word)
                && (at == 0 || !is_ident(line[..at].chars().last().unwrap_or(' ')))
                && !line[..at].ends_with("::")
            {
                externals.push((n, word.trim_end_matches("::").to_string()));
            }
        }
    }
    (out, externals)
}

/// A path from the crate root, or `None` for one that leaves the crate.
fn resolve(module: &[String], path: &[String]) -> Option<Vec<String>> {
    let mut cur: Vec<String>;
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            cur = Vec::new();
            rest = &rest[1..];
        }
        Some("super" | "self") => {
            cur = module.to_vec();
            while let Some(first) = rest.first() {
                match first.as_str() {
                    "super" => {
                        cur.pop();
                    }
                    "self" => {}
                    _ => break,
                }
                rest = &rest[1..];
            }
        }
        _ => return None,
    }
    cur.extend(rest.iter().cloned());
    Some(cur)
}

/// The file a crate path lands in: the longest module prefix that is a file.
fn target_file<'a>(path: &[String], files: &'a BTreeMap<Vec<String>, String>) -> Option<&'a str> {
    (0..=path.len())
        .rev()
        .find_map(|n| files.get(&path[..n]).map(String::as_str))
}

fn rule_for(from: &str, to: &str) -> Option<String> {
    if from == to {
        return None;
    }
    let (rf, rt) = (rank(from)?, rank(to)?);
    if to == "app" {
        return Some("nothing imports app".into());
    }
    if from == "core" {
        return Some("core imports nothing of the crate".into());
    }
    if from == "store" && to != "core" {
        return Some("store imports only core".into());
    }
    if from == "plan" && rt > rf {
        return Some("plan never imports render, channels, context, delivery, web or app".into());
    }
    if matches!(
        (from, to),
        ("channels", "context") | ("context", "channels")
    ) {
        return Some("channels and context never import each other".into());
    }
    if rt > rf {
        return Some(format!(
            "{from} may import only parts below it ({})",
            LAYERS[..rf].join(", ")
        ));
    }
    None
}

#[test]
fn every_import_follows_the_layers() {
    let sources = sources();
    assert!(
        sources.len() > 40,
        "found only {} source files",
        sources.len()
    );
    let mut broken = Vec::new();
    for s in &sources {
        if s.rel == "lib.rs" {
            continue;
        }
        let Some(from) = layer_of(s) else {
            broken.push(format!(
                "src/{}: not in any part ({}); move it under one",
                s.rel,
                LAYERS.join(", ")
            ));
            continue;
        };
        let (imports, externals) = imports(s);
        for imp in &imports {
            let Some(to) = imp.path.first() else { continue };
            // What the crate root declares belongs to app.
            let to = if rank(to).is_none() {
                "app"
            } else {
                to.as_str()
            };
            if let Some(rule) = rule_for(from, to) {
                broken.push(format!(
                    "src/{}:{}: imports crate::{} — {rule}",
                    s.rel,
                    imp.line,
                    imp.path.join("::")
                ));
            }
        }
        for (part, crates) in FORBIDDEN_CRATES {
            if from == part {
                for (line, name) in &externals {
                    if crates.contains(&name.as_str()) {
                        broken.push(format!(
                            "src/{}:{line}: uses {name} — {part} uses no HTTP framework",
                            s.rel
                        ));
                    }
                }
            }
        }
        let lines = code_lines(&s.text);
        for (i, line) in lines.iter().enumerate() {
            if from != "core" {
                for read in WALL_CLOCK {
                    if line.contains(read) {
                        broken.push(format!(
                            "src/{}:{}: reads the wall clock ({read}) — only core::clock does; take `now`",
                            s.rel,
                            i + 1
                        ));
                    }
                }
            }
            if from == "plan" && (line.contains("Instant::now(") || line.contains("clock::")) {
                broken.push(format!(
                    "src/{}:{}: reads the clock — plan takes `now` from its caller",
                    s.rel,
                    i + 1
                ));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "{} import(s) break the router's layers:\n{}",
        broken.len(),
        broken.join("\n")
    );
}

#[test]
fn no_import_circle_among_the_files() {
    let sources = sources();
    let files: BTreeMap<Vec<String>, String> = sources
        .iter()
        .map(|s| (s.module.clone(), s.rel.clone()))
        .collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut at: BTreeMap<(String, String), usize> = BTreeMap::new();
    for s in &sources {
        let (imports, _) = imports(s);
        for imp in imports {
            if let Some(t) = target_file(&imp.path, &files)
                && t != s.rel
                && t != "lib.rs"
            {
                edges
                    .entry(s.rel.clone())
                    .or_default()
                    .insert(t.to_string());
                at.entry((s.rel.clone(), t.to_string())).or_insert(imp.line);
            }
        }
    }
    let circles = strongly_connected(&files.values().cloned().collect::<Vec<_>>(), &edges);
    let big: Vec<String> = circles
        .iter()
        .filter(|c| c.len() > 1)
        .map(|c| {
            let members: BTreeSet<&String> = c.iter().collect();
            let arrows: Vec<String> = c
                .iter()
                .flat_map(|a| {
                    edges
                        .get(a)
                        .into_iter()
                        .flatten()
                        .filter(|b| members.contains(b))
                        .map(|b| format!("src/{a}:{} → src/{b}", at[&(a.clone(), b.clone())]))
                        .collect::<Vec<_>>()
                })
                .collect();
            format!("a circle of {} files:\n  {}", c.len(), arrows.join("\n  "))
        })
        .collect();
    assert!(big.is_empty(), "{}", big.join("\n"));
}

/// Tarjan's strongly connected components.
fn strongly_connected(
    nodes: &[String],
    edges: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<Vec<String>> {
    struct T<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<String, usize>,
        low: BTreeMap<String, usize>,
        stack: Vec<String>,
        on: BTreeSet<String>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit(t: &mut T<'_>, v: &str) {
        t.index.insert(v.to_string(), t.next);
        t.low.insert(v.to_string(), t.next);
        t.next += 1;
        t.stack.push(v.to_string());
        t.on.insert(v.to_string());
        let next: Vec<String> = t.edges.get(v).into_iter().flatten().cloned().collect();
        for w in next {
            if !t.index.contains_key(&w) {
                visit(t, &w);
                let l = t.low[&w].min(t.low[v]);
                t.low.insert(v.to_string(), l);
            } else if t.on.contains(&w) {
                let l = t.index[&w].min(t.low[v]);
                t.low.insert(v.to_string(), l);
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(&w);
                let done = w == v;
                comp.push(w);
                if done {
                    break;
                }
            }
            t.out.push(comp);
        }
    }
    let mut t = T {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for n in nodes {
        if !t.index.contains_key(n) {
            visit(&mut t, n);
        }
    }
    t.out
}

/// The checker itself must see what it is meant to catch.
#[test]
fn the_checker_reads_use_trees_super_and_inline_paths() {
    let s = Source {
        rel: "plan/rota.rs".into(),
        module: vec!["plan".into(), "rota".into()],
        text: "use crate::{core::model::AlertEvent, web::{State, auth}};\n\
               // crate::app::App in a comment is not an import\n\
               fn f() { let x = \"crate::app::App\"; crate::delivery::run(); }\n\
               const T: &str = r#\"crate::web::x \"quoted\" crate::app::y\"#;\n\
               mod tests {\n    use super::*;\n    use super::super::routing::Tree;\n}\n"
            .into(),
    };
    let (imports, _) = imports(&s);
    let got: Vec<(usize, String)> = imports
        .iter()
        .map(|i| (i.line, i.path.join("::")))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, "core::model::AlertEvent".to_string()),
            (1, "web::State".to_string()),
            (1, "web::auth".to_string()),
            (3, "delivery::run".to_string()),
            (6, "plan::rota".to_string()),
            (7, "plan::routing::Tree".to_string()),
        ]
    );
    assert_eq!(
        rule_for("plan", "web").as_deref(),
        Some("plan never imports render, channels, context, delivery, web or app")
    );
    assert_eq!(
        rule_for("context", "channels").as_deref(),
        Some("channels and context never import each other")
    );
    assert_eq!(rule_for("delivery", "channels"), None);
    assert_eq!(
        rule_for("web", "app").as_deref(),
        Some("nothing imports app")
    );
}

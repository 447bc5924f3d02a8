//! Our runbooks, served by the router: `GET /runbooks/{alertname}` answers that alert's section
//! of `docs/runbooks.md` as an HTML page. The document is built into the binary, so a runbook
//! link in a page opens wherever the router is reachable (no repository, no wiki), and it
//! matches the rules shipped with this very build.
//!
//! Our rules carry `runbook_url: /runbooks/{alertname}`, a path the router completes with
//! `runbook_base_url` (default `ROUTER_PUBLIC_URL`) when it writes a message; an operator's own
//! absolute `runbook_url` is kept as written (`template::alert_links`).
//!
//! The page is anonymous (see `auth::is_anonymous`): it holds the shipped document, no alert
//! data. The markdown is rendered by a deliberately small converter (headings, paragraphs,
//! lists, code, tables as preformatted text, `**bold**`, `` `code` ``, http(s) links) over
//! escaped text: nothing in the document becomes markup it did not ask for.

use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::json;

use crate::render::template::Markup;

/// `docs/runbooks.md` as built.
pub const DOCUMENT: &str = include_str!("../../../docs/runbooks.md");

/// The markdown of the section headed `## {name}`, heading excluded; `None` when there is none.
pub fn section<'a>(doc: &'a str, name: &str) -> Option<&'a str> {
    let mut start = None;
    let mut offset = 0;
    for line in doc.split_inclusive('\n') {
        let heading = line.trim_end();
        if let Some(s) = start {
            if heading.starts_with("## ") || heading.starts_with("# ") {
                return Some(&doc[s..offset]);
            }
        } else if heading.strip_prefix("## ").map(str::trim) == Some(name) {
            start = Some(offset + line.len());
        }
        offset += line.len();
    }
    start.map(|s| &doc[s..])
}

/// Every alert section's name (`## Name` headings), in document order.
pub fn names(doc: &str) -> Vec<&str> {
    doc.lines()
        .filter_map(|l| l.trim_end().strip_prefix("## ").map(str::trim))
        .collect()
}

fn esc(s: &str) -> String {
    Markup::Html.escape(s)
}

/// Inline markdown over escaped text: `code`, **bold**, [text](http(s) url).
fn inline(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('`')
            && let Some(end) = after.find('`')
        {
            out.push_str(&format!("<code>{}</code>", esc(&after[..end])));
            rest = &after[end + 1..];
        } else if let Some(after) = rest.strip_prefix("**")
            && let Some(end) = after.find("**")
        {
            out.push_str(&format!("<strong>{}</strong>", inline(&after[..end])));
            rest = &after[end + 2..];
        } else if let Some(after) = rest.strip_prefix('[')
            && let Some(mid) = after.find("](")
            && let Some(end) = after[mid + 2..].find(')')
        {
            let label = &after[..mid];
            let url = &after[mid + 2..mid + 2 + end];
            match crate::core::text::safe_url(url) {
                Some(u) => out.push_str(&format!("<a href=\"{}\">{}</a>", esc(&u), inline(label))),
                // A link into the repository (another .md) does not exist here: its text stays.
                None => out.push_str(&inline(label)),
            }
            rest = &after[mid + 2 + end + 1..];
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push_str(&esc(&c.to_string()));
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// The section's markdown as HTML.
pub fn to_html(md: &str) -> String {
    #[derive(PartialEq)]
    enum Block {
        None,
        Para,
        List,
    }
    let mut out = String::new();
    let mut block = Block::None;
    let mut para = String::new();
    let close = |block: &mut Block, para: &mut String, out: &mut String| {
        match block {
            Block::Para => out.push_str(&format!("<p>{}</p>\n", inline(para.trim()))),
            Block::List => {
                out.push_str(&format!("<li>{}</li>\n</ul>\n", inline(para.trim())));
            }
            Block::None => {}
        }
        para.clear();
        *block = Block::None;
    };
    let mut fence = false;
    let mut table = false;
    for line in md.lines() {
        if line.trim_start().starts_with("```") {
            close(&mut block, &mut para, &mut out);
            out.push_str(if fence {
                "</code></pre>\n"
            } else {
                "<pre><code>"
            });
            fence = !fence;
            continue;
        }
        if fence {
            out.push_str(&esc(line));
            out.push('\n');
            continue;
        }
        if line.trim_start().starts_with('|') {
            if !table {
                close(&mut block, &mut para, &mut out);
                out.push_str("<pre>");
                table = true;
            }
            out.push_str(&esc(line));
            out.push('\n');
            continue;
        } else if table {
            out.push_str("</pre>\n");
            table = false;
        }
        let trimmed = line.trim();
        if trimmed.is_empty() {
            close(&mut block, &mut para, &mut out);
        } else if let Some(h) = trimmed.strip_prefix("### ") {
            close(&mut block, &mut para, &mut out);
            out.push_str(&format!("<h3>{}</h3>\n", inline(h)));
        } else if let Some(item) = line.strip_prefix("- ").or_else(|| line.strip_prefix("* ")) {
            match block {
                Block::List => out.push_str(&format!("<li>{}</li>\n", inline(para.trim()))),
                _ => {
                    close(&mut block, &mut para, &mut out);
                    out.push_str("<ul>\n");
                }
            }
            para.clear();
            para.push_str(item);
            block = Block::List;
        } else {
            if block == Block::None {
                block = Block::Para;
            }
            para.push(' ');
            para.push_str(trimmed);
        }
    }
    close(&mut block, &mut para, &mut out);
    if fence {
        out.push_str("</code></pre>\n");
    }
    if table {
        out.push_str("</pre>\n");
    }
    out
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n<title>{t}</title>\n\
         <link rel=\"stylesheet\" href=\"/static/style.css\">\n</head>\n<body>\n<h1>{t}</h1>\n{body}</body>\n</html>\n",
        t = esc(title)
    );
    (status, [(header::CACHE_CONTROL, "max-age=300")], Html(html)).into_response()
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

/// `GET /runbooks/{alertname}`: the section as HTML; 404 (HTML for a browser, JSON otherwise)
/// when the document has no section for that name.
pub async fn get_runbook(Path(name): Path<String>, headers: HeaderMap) -> Response {
    match section(DOCUMENT, &name) {
        Some(md) => page(StatusCode::OK, &format!("Runbook: {name}"), &to_html(md)),
        None => {
            let reason = format!("no runbook section for {name:?}");
            if wants_html(&headers) {
                page(
                    StatusCode::NOT_FOUND,
                    "No such runbook",
                    &format!("<p>{}</p>\n", esc(&reason)),
                )
            } else {
                (
                    StatusCode::NOT_FOUND,
                    axum::Json(json!({"error": "not_found", "reason": reason})),
                )
                    .into_response()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "# Runbooks\nintro\n\n## A\n\n**Meaning.** x < y & `a<b>`\n- one\n  more\n- two [link](https://ex.example/a) [repo](stack.md)\n\n```sh\necho <hi>\n```\n| a | b |\n|---|---|\n\n## B\nb text\n";

    #[test]
    fn sections_split_on_level_two_headings() {
        assert_eq!(section(DOC, "B"), Some("b text\n"));
        assert!(section(DOC, "A").unwrap().starts_with("\n**Meaning.**"));
        assert!(!section(DOC, "A").unwrap().contains("b text"));
        assert_eq!(section(DOC, "C"), None);
        assert_eq!(section(DOC, "Runbooks"), None);
        assert_eq!(names(DOC), ["A", "B"]);
    }

    #[test]
    fn markdown_becomes_escaped_html() {
        let html = to_html(section(DOC, "A").unwrap());
        assert_eq!(
            html,
            "<p><strong>Meaning.</strong> x &lt; y &amp; <code>a&lt;b&gt;</code></p>\n\
             <ul>\n<li>one more</li>\n<li>two <a href=\"https://ex.example/a\">link</a> repo</li>\n</ul>\n\
             <pre><code>echo &lt;hi&gt;\n</code></pre>\n<pre>| a | b |\n|---|---|\n</pre>\n"
        );
    }

    #[test]
    fn the_shipped_document_has_sections() {
        assert!(section(DOCUMENT, "HostHighCpuUsage").is_some());
        assert!(names(DOCUMENT).len() > 30);
    }
}

//! Text helpers every layer needs: splitting on UTF-8 boundaries, one-segment paths, and URLs
//! that no markup reads as syntax.

/// Split `text` into parts of at most `max_bytes` bytes, preferring line breaks, never cutting
/// a UTF-8 character.
pub fn split_utf8(text: &str, max_bytes: usize) -> Vec<String> {
    let max_bytes = max_bytes.max(4);
    let mut parts = Vec::new();
    let mut rest = text;
    while rest.len() > max_bytes {
        let mut cut = max_bytes;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        // Prefer the last newline in the second half of the window.
        if let Some(nl) = rest[..cut].rfind('\n')
            && nl >= cut / 2
        {
            cut = nl + 1;
        }
        parts.push(rest[..cut].to_string());
        rest = &rest[cut..];
    }
    if !rest.is_empty() || parts.is_empty() {
        parts.push(rest.to_string());
    }
    parts
}

/// Percent-encode everything but unreserved characters: a fingerprint is sender-chosen, and a
/// link must stay one path segment that no markup reads as syntax.
pub fn path_segment(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            o.push(char::from(b));
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

/// An absolute http(s) URL written so that no markup reads any of it as syntax: characters
/// that close a markdown link, open a tag or mention, or split a Slack link are
/// percent-encoded after the host. URLs with credentials are refused (they would be shown).
pub fn safe_url(u: &str) -> Option<String> {
    let url = reqwest::Url::parse(u.trim()).ok()?;
    if !matches!(url.scheme(), "http" | "https")
        || !url.username().is_empty()
        || url.password().is_some()
        || url.host_str().is_none()
    {
        return None;
    }
    let s = url.as_str();
    let origin = url.origin().ascii_serialization();
    let tail = s.strip_prefix(origin.as_str())?;
    let head = origin.as_str();
    let mut out = String::with_capacity(s.len() + 8);
    out.push_str(head);
    for c in tail.chars() {
        match c {
            '(' | ')' | '[' | ']' | '<' | '>' | '|' | '@' | '"' | '\'' | '`' | '*' | '{' | '}'
            | '\\' | '^' => out.push_str(&format!("%{:02X}", u32::from(c))),
            c => out.push(c),
        }
    }
    Some(out)
}

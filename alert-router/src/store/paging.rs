//! Keyset pagination of the listings (`/api/v1/alerts`, `/api/v1/notifications`, the status
//! page's firing alerts): a page ends with a [`Cursor`], the sort key of its last row, and the
//! next page is the rows after that key, read from an index in order. An offset would make
//! page k cost k pages; a key costs one index seek whatever the stored history, and a row
//! inserted or removed meanwhile neither repeats nor skips another.

/// A position in a listing: the sort key of the last row a page returned. `key` is a time or
/// an id; `tie` (a fingerprint) orders rows with the same key, empty where the key is unique.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub key: i64,
    pub tie: String,
}

/// Why a cursor from a client was refused (the API answers 400 with this reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "cursor {0:?} is not one this API returned (pass the \"next\" value of the previous page as is)"
)]
pub struct BadCursor(pub String);

/// Longest cursor accepted: a key and a hex-encoded fingerprint of at most 256 bytes.
const MAX_CURSOR: usize = 20 + 1 + 512;

impl Cursor {
    /// Before the first row of an ascending listing.
    pub fn start() -> Cursor {
        Cursor {
            key: i64::MIN,
            tie: String::new(),
        }
    }

    /// The opaque text a client passes back: `KEY` or `KEY.HEX(tie)`. Hex keeps any
    /// fingerprint (it is text from outside) out of the URL syntax.
    pub fn encode(&self) -> String {
        if self.tie.is_empty() {
            return self.key.to_string();
        }
        let mut s = format!("{}.", self.key);
        for b in self.tie.as_bytes() {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }

    pub fn parse(text: &str) -> Result<Cursor, BadCursor> {
        let bad = || BadCursor(text.chars().take(64).collect());
        if text.is_empty() || text.len() > MAX_CURSOR {
            return Err(bad());
        }
        let (key, hex) = text.split_once('.').unwrap_or((text, ""));
        // Only the form `encode` writes: digits with an optional leading minus.
        let digits = key.strip_prefix('-').unwrap_or(key);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let key: i64 = key.parse().map_err(|_| bad())?;
        if hex.len() % 2 != 0 || (text.contains('.') && hex.is_empty()) {
            return Err(bad());
        }
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("zz"), 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| bad())?;
        let tie = String::from_utf8(bytes).map_err(|_| bad())?;
        Ok(Cursor { key, tie })
    }
}

/// One page of a listing: its rows, and where the next page starts (`None` on the last).
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<Cursor>,
}

impl<T> Page<T> {
    /// `rows` fetched with `LIMIT limit + 1`: the extra row only says that a next page exists.
    pub(crate) fn from_rows(mut rows: Vec<T>, limit: i64, key: impl Fn(&T) -> Cursor) -> Page<T> {
        let limit = usize::try_from(limit.max(0)).unwrap_or(0);
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = if more { rows.last().map(key) } else { None };
        Page { items: rows, next }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_what_it_wrote() {
        for c in [
            Cursor {
                key: 1_767_225_600_000,
                tie: "fp-<b>&\"x\"".into(),
            },
            Cursor {
                key: -5,
                tie: "日本".into(),
            },
            Cursor {
                key: 42,
                tie: String::new(),
            },
        ] {
            assert_eq!(Cursor::parse(&c.encode()), Ok(c.clone()), "{}", c.encode());
        }
        assert_eq!(
            Cursor {
                key: 7,
                tie: "ab".into()
            }
            .encode(),
            "7.6162"
        );
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "",
            "x",
            "1.",
            "1.6",
            "1.zz",
            "+1",
            "1 ",
            ".61",
            "1.ff",
            "--1",
            "1.61.62",
            "99999999999999999999",
        ] {
            assert!(Cursor::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Cursor::parse(&"1".repeat(600)).is_err());
    }

    #[test]
    fn the_extra_row_makes_the_next_cursor() {
        let key = |n: &i64| Cursor {
            key: *n,
            tie: String::new(),
        };
        let p = Page::from_rows(vec![1, 2, 3], 2, key);
        assert_eq!((p.items, p.next.map(|c| c.key)), (vec![1, 2], Some(2)));
        let p = Page::from_rows(vec![1, 2], 2, key);
        assert_eq!((p.items, p.next), (vec![1, 2], None));
    }
}

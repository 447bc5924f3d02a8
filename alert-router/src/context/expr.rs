//! Which expression to plot and which threshold to draw, from an alert's PromQL.
//!
//! An alerting rule is usually `<signal> > 0.9`: Prometheus keeps only the series over the
//! threshold, so plotting the rule as written shows the moments it fired and nothing else.
//! We plot `<signal>` and draw `0.9` as a line instead. That is only sound for a *plain*
//! comparison against a number at the top level, so anything else (`and`/`or`/`unless`,
//! `bool`, vector-to-vector comparisons, several comparisons) is plotted whole, without a
//! threshold. The decision is made over PromQL tokens, not text, so an operator inside a
//! string (`{path=">1"}`), a label matcher (`!=`, `=~`) or brackets cannot fool it.

/// A top-level comparison operator, read as `plot <op> threshold`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Gt,
    Lt,
    Ge,
    Le,
    Eq,
    Ne,
}

impl CmpOp {
    fn parse(s: &str) -> Option<CmpOp> {
        Some(match s {
            ">" => CmpOp::Gt,
            "<" => CmpOp::Lt,
            ">=" => CmpOp::Ge,
            "<=" => CmpOp::Le,
            "==" => CmpOp::Eq,
            "!=" => CmpOp::Ne,
            _ => return None,
        })
    }

    /// `0.9 < x` is `x > 0.9`.
    fn flipped(self) -> CmpOp {
        match self {
            CmpOp::Gt => CmpOp::Lt,
            CmpOp::Lt => CmpOp::Gt,
            CmpOp::Ge => CmpOp::Le,
            CmpOp::Le => CmpOp::Ge,
            other => other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Gt => ">",
            CmpOp::Lt => "<",
            CmpOp::Ge => ">=",
            CmpOp::Le => "<=",
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
        }
    }

    /// True when the alert fires on high values (the series worth showing are the highest).
    pub fn fires_high(self) -> bool {
        matches!(self, CmpOp::Gt | CmpOp::Ge)
    }
}

/// What to chart for an alert expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The expression to query (the signal side of a plain comparison, else the whole).
    pub plot: String,
    /// The comparison and its number, when the expression is a plain comparison.
    pub threshold: Option<(CmpOp, f64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    Num,
    Ident,
    Op,
    Open,
    Close,
    Comma,
}

#[derive(Debug, Clone, Copy)]
struct Tok {
    kind: Kind,
    start: usize,
    end: usize,
}

/// PromQL tokens with byte spans; `None` when the text is not tokenizable (an unterminated
/// string, an unknown character), which sends the caller to "plot it whole".
fn tokenize(s: &str) -> Option<Vec<Tok>> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        let kind = match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'"' | b'\'' | b'`' => {
                i += 1;
                loop {
                    let ch = *b.get(i)?;
                    i += 1;
                    if ch == b'\\' && c != b'`' {
                        i += 1;
                    } else if ch == c {
                        break;
                    }
                }
                Kind::Str
            }
            b'0'..=b'9' | b'.' => {
                i += 1;
                while i < b.len() {
                    let ch = b[i];
                    if ch.is_ascii_alphanumeric() || ch == b'.' || ch == b'_' {
                        // An exponent's sign belongs to the number: 1e-3.
                        if (ch == b'e' || ch == b'E')
                            && matches!(b.get(i + 1), Some(b'+' | b'-'))
                            && !s[start..i].starts_with("0x")
                        {
                            i += 2;
                        } else {
                            i += 1;
                        }
                    } else {
                        break;
                    }
                }
                Kind::Num
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c == b':' => {
                i += 1;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':')
                {
                    i += 1;
                }
                if s[start..i] == *":" {
                    Kind::Op
                } else {
                    Kind::Ident
                }
            }
            b'(' | b'[' | b'{' => {
                i += 1;
                Kind::Open
            }
            b')' | b']' | b'}' => {
                i += 1;
                Kind::Close
            }
            b',' => {
                i += 1;
                Kind::Comma
            }
            b'=' | b'!' | b'<' | b'>' => {
                i += 1;
                if matches!(b.get(i), Some(b'=' | b'~')) {
                    i += 1;
                }
                Kind::Op
            }
            b'+' | b'-' | b'*' | b'/' | b'%' | b'^' | b'@' => {
                i += 1;
                Kind::Op
            }
            _ => return None,
        };
        out.push(Tok {
            kind,
            start,
            end: i,
        });
    }
    Some(out)
}

fn number(text: &str) -> Option<f64> {
    let t = text.to_ascii_lowercase();
    let v = if let Some(hex) = t.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).ok()? as f64
    } else {
        if !t
            .bytes()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'+' | b'-'))
        {
            return None; // a duration such as 5m
        }
        t.parse::<f64>().ok()?
    };
    v.is_finite().then_some(v)
}

/// The value of a side that is only a number literal, with an optional sign.
fn literal(s: &str, toks: &[Tok]) -> Option<f64> {
    match toks {
        [n] if n.kind == Kind::Num => number(&s[n.start..n.end]),
        [sign, n] if sign.kind == Kind::Op && n.kind == Kind::Num => {
            let v = number(&s[n.start..n.end])?;
            match &s[sign.start..sign.end] {
                "-" => Some(-v),
                "+" => Some(v),
                _ => None,
            }
        }
        [open, inner @ .., close]
            if &s[open.start..open.end] == "(" && &s[close.start..close.end] == ")" =>
        {
            literal(s, inner)
        }
        _ => None,
    }
}

/// Index of the token closing the one at `open`, if brackets balance.
fn matching(toks: &[Tok], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, t) in toks.iter().enumerate().skip(open) {
        match t.kind {
            Kind::Open => depth += 1,
            Kind::Close => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Decide what to plot for `expr`.
pub fn plan(expr: &str) -> Plan {
    let whole = || Plan {
        plot: expr.trim().to_string(),
        threshold: None,
    };
    let Some(all) = tokenize(expr) else {
        return whole();
    };
    let mut toks: &[Tok] = &all;
    // `(a > 1)` is `a > 1`.
    while toks.len() >= 2
        && &expr[toks[0].start..toks[0].end] == "("
        && matching(toks, 0) == Some(toks.len() - 1)
    {
        toks = &toks[1..toks.len() - 1];
    }
    let mut depth = 0i32;
    let mut cmp = None;
    for (i, t) in toks.iter().enumerate() {
        let text = &expr[t.start..t.end];
        match t.kind {
            Kind::Open => depth += 1,
            Kind::Close => depth -= 1,
            Kind::Ident if depth == 0 && matches!(text, "and" | "or" | "unless") => {
                return whole();
            }
            Kind::Op if depth == 0 => {
                if let Some(op) = CmpOp::parse(text) {
                    if cmp.is_some() {
                        return whole();
                    }
                    cmp = Some((i, op));
                }
            }
            _ => {}
        }
        if depth < 0 {
            return whole();
        }
    }
    if depth != 0 {
        return whole();
    }
    let Some((at, op)) = cmp else {
        return whole();
    };
    let (left, right) = (&toks[..at], &toks[at + 1..]);
    if left.is_empty() || right.is_empty() {
        return whole();
    }
    // `bool` turns the filter into 0/1; on(...)/ignoring(...)/group_* mean two vectors.
    if let Some(first) = right.first()
        && first.kind == Kind::Ident
        && matches!(
            &expr[first.start..first.end],
            "bool" | "on" | "ignoring" | "group_left" | "group_right"
        )
    {
        return whole();
    }
    let span = |side: &[Tok]| expr[side[0].start..side[side.len() - 1].end].to_string();
    if let Some(v) = literal(expr, right)
        && literal(expr, left).is_none()
    {
        return Plan {
            plot: span(left),
            threshold: Some((op, v)),
        };
    }
    if let Some(v) = literal(expr, left)
        && literal(expr, right).is_none()
    {
        return Plan {
            plot: span(right),
            threshold: Some((op.flipped(), v)),
        };
    }
    whole()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(expr: &str) -> (String, Option<(CmpOp, f64)>) {
        let p = plan(expr);
        (p.plot, p.threshold)
    }

    fn split(plot: &str, op: CmpOp, v: f64) -> (String, Option<(CmpOp, f64)>) {
        (plot.to_string(), Some((op, v)))
    }

    fn whole(e: &str) -> (String, Option<(CmpOp, f64)>) {
        (e.trim().to_string(), None)
    }

    #[test]
    fn plain_comparisons_split() {
        assert_eq!(
            t("trading_drawdown_ratio > 0.9"),
            split("trading_drawdown_ratio", CmpOp::Gt, 0.9)
        );
        assert_eq!(t("up == 0"), split("up", CmpOp::Eq, 0.0));
        assert_eq!(t("x != 1"), split("x", CmpOp::Ne, 1.0));
        assert_eq!(t("x >= 1e3"), split("x", CmpOp::Ge, 1000.0));
        assert_eq!(t("x <= 2.5e-1"), split("x", CmpOp::Le, 0.25));
        assert_eq!(t("x < -5"), split("x", CmpOp::Lt, -5.0));
        assert_eq!(t("x > 0x10"), split("x", CmpOp::Gt, 16.0));
        assert_eq!(t("x > (3)"), split("x", CmpOp::Gt, 3.0));
        // Number on the left: the operator is read from the signal's side.
        assert_eq!(t("0.9 < x"), split("x", CmpOp::Gt, 0.9));
        assert_eq!(t("10 >= x"), split("x", CmpOp::Le, 10.0));
        // Outer parentheses, arithmetic on the signal side, newlines and comments.
        assert_eq!(
            t(
                "(sum by (job) (rate(errors_total[5m])) / sum by (job) (rate(requests_total[5m])) > 0.05)"
            ),
            split(
                "sum by (job) (rate(errors_total[5m])) / sum by (job) (rate(requests_total[5m]))",
                CmpOp::Gt,
                0.05
            )
        );
        assert_eq!(
            t("  rate(x[5m:1m] offset 1h)\n  # the limit\n  > 3\n"),
            split("rate(x[5m:1m] offset 1h)", CmpOp::Gt, 3.0)
        );
        assert_eq!(
            t("job:request_latency_seconds:mean5m{job=\"api\"} > 0.5"),
            split(
                "job:request_latency_seconds:mean5m{job=\"api\"}",
                CmpOp::Gt,
                0.5
            )
        );
    }

    #[test]
    fn operators_inside_strings_matchers_and_brackets_do_not_count() {
        assert_eq!(
            t(r#"http_requests{path=">1", code!="200", h=~"a|b"} > 10"#),
            split(
                r#"http_requests{path=">1", code!="200", h=~"a|b"}"#,
                CmpOp::Gt,
                10.0
            )
        );
        assert_eq!(
            t(r#"x{a="a \" > 2 and b"} < 3"#),
            split(r#"x{a="a \" > 2 and b"}"#, CmpOp::Lt, 3.0)
        );
        assert_eq!(
            t("count(x{a='>'} > 1) > 2"),
            split("count(x{a='>'} > 1)", CmpOp::Gt, 2.0)
        );
        assert_eq!(
            t("label_replace(x, \"dst\", \"$1\", \"src\", \"(.*)>(.*)\")"),
            whole("label_replace(x, \"dst\", \"$1\", \"src\", \"(.*)>(.*)\")")
        );
        assert_eq!(
            t("x{a=`raw > 1 \\`} == 1"),
            split("x{a=`raw > 1 \\`}", CmpOp::Eq, 1.0)
        );
    }

    #[test]
    fn everything_else_is_plotted_whole() {
        for e in [
            "up",
            "x > bool 0.9",
            "x > y",
            "x > on(job) y",
            "x > 1 and y < 2",
            "x > 1 or vector(0)",
            "x unless y > 1",
            "x > 1 < 5",
            "x > 5m",
            "1 > 2",
            "x >",
            "> 1",
            "(x > 1",
            "x{a=\"unterminated > 1",
            "x > 1 \u{1F600}",
            "absent(up{job=\"a\"})",
            "x > 2 * 3",
        ] {
            assert_eq!(t(e), whole(e), "{e:?}");
        }
    }

    #[test]
    fn fires_high_follows_the_direction() {
        assert!(plan("x > 1").threshold.unwrap().0.fires_high());
        assert!(!plan("x < 1").threshold.unwrap().0.fires_high());
        assert!(plan("1 <= x").threshold.unwrap().0.fires_high());
    }
}

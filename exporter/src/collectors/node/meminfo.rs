//! `meminfo` collector: every line of /proc/meminfo as `node_memory_<Field>[_bytes]`.
//!
//! procfs-core's `Meminfo` is a struct of the fields it knows and drops the rest; the kernel
//! adds fields (this machine's has `SecPageTables`, `Unaccepted`…) and node_exporter publishes
//! whatever is there, so the lines are read generically here: `Key: value [kB]`.

use super::{Ctx, NodeCollector, NodeError, parse_err, read};
use crate::metrics::{Families, Family};

pub struct Meminfo;

impl NodeCollector for Meminfo {
    fn update(&self, ctx: &Ctx<'_>, out: &mut Families) -> Result<(), NodeError> {
        let path = ctx.paths.proc("meminfo");
        let text = read(&path)?;
        for (name, value) in
            parse(&text).map_err(|l| parse_err(&path, format!("bad line {l:?}")))?
        {
            let full = format!("node_memory_{name}");
            let mut f = Family::gauge(&full, &format!("Memory information field {name}."));
            f.add(&[], value);
            out.push(f);
        }
        Ok(())
    }
}

/// (metric suffix, value): `Active(anon)` → `Active_anon`, `kB` values in bytes with `_bytes`.
pub fn parse(text: &str) -> Result<Vec<(String, f64)>, String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut parts = line.split_ascii_whitespace();
        let (Some(key), Some(value)) = (parts.next(), parts.next()) else {
            continue;
        };
        let key = key.trim_end_matches(':');
        let mut value: f64 = value.parse().map_err(|_| line.to_string())?;
        let mut name = key.replace('(', "_").replace(')', "");
        if parts.next() == Some("kB") {
            value *= 1024.0;
            name.push_str("_bytes");
        }
        out.push((name, value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn fields_named_as_node_exporter() {
        let v = super::parse("MemTotal:  2 kB\nActive(anon):  1 kB\nHugePages_Total:  3\n")
            .expect("valid");
        assert_eq!(
            v,
            vec![
                ("MemTotal_bytes".to_string(), 2048.0),
                ("Active_anon_bytes".to_string(), 1024.0),
                ("HugePages_Total".to_string(), 3.0)
            ]
        );
    }
}

//! `filefd` collector: /proc/sys/fs/file-nr (allocated, unused, maximum).

use super::{Ctx, NodeCollector, NodeError, parse_err, read};
use crate::metrics::Families;

pub struct Filefd;

impl NodeCollector for Filefd {
    fn update(&self, ctx: &Ctx<'_>, out: &mut Families) -> Result<(), NodeError> {
        let path = ctx.paths.proc("sys/fs/file-nr");
        let text = read(&path)?;
        let v: Vec<f64> = text
            .split_ascii_whitespace()
            .map(|x| x.parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|e| parse_err(&path, e))?;
        let [allocated, _, maximum] = v[..] else {
            return Err(parse_err(&path, "expected three numbers"));
        };
        out.gauge(
            "node_filefd_allocated",
            "File descriptor statistics: allocated.",
            allocated,
        );
        out.gauge(
            "node_filefd_maximum",
            "File descriptor statistics: maximum.",
            maximum,
        );
        Ok(())
    }
}

//! `sockstat` collector: /proc/net/sockstat and sockstat6 as `node_sockstat_<PROTO>_<field>`
//! (procfs-core has no sockstat parser; the format is `PROTO: key value key value …`).

use super::{Ctx, NodeCollector, NodeError, read_or_nodata};
use crate::metrics::Families;

pub struct Sockstat;

impl NodeCollector for Sockstat {
    fn update(&self, ctx: &Ctx<'_>, out: &mut Families) -> Result<(), NodeError> {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as f64;
        for (file, v6) in [("net/sockstat", false), ("net/sockstat6", true)] {
            let text = match read_or_nodata(&ctx.paths.proc(file)) {
                Ok(t) => t,
                Err(NodeError::NoData) => continue,
                Err(e) => return Err(e),
            };
            for line in text.lines() {
                let Some((proto, rest)) = line.split_once(':') else {
                    continue;
                };
                let toks: Vec<&str> = rest.split_ascii_whitespace().collect();
                for pair in toks.chunks(2) {
                    let [key, value] = pair else { continue };
                    let Ok(v) = value.parse::<f64>() else {
                        continue;
                    };
                    if proto == "sockets" {
                        if !v6 && *key == "used" {
                            out.gauge(
                                "node_sockstat_sockets_used",
                                "Number of IPv4 sockets in use.",
                                v,
                            );
                        }
                        continue;
                    }
                    let name = format!("node_sockstat_{proto}_{key}");
                    out.gauge(
                        &name,
                        &format!("Number of {proto} sockets in state {key}."),
                        v,
                    );
                    if *key == "mem" {
                        out.gauge(
                            &format!("{name}_bytes"),
                            &format!("Number of {proto} sockets in state mem_bytes."),
                            v * page,
                        );
                    }
                }
            }
        }
        Ok(())
    }
}

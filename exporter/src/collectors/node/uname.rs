//! `uname` collector: `node_uname_info`, the family dashboards build their host pickers from.

use super::{Ctx, NodeCollector, NodeError};
use crate::metrics::{Families, Family};

pub struct Uname;

impl NodeCollector for Uname {
    fn update(&self, _ctx: &Ctx<'_>, out: &mut Families) -> Result<(), NodeError> {
        let u = rustix::system::uname();
        let s = |c: &std::ffi::CStr| c.to_string_lossy().into_owned();
        let mut f = Family::gauge(
            "node_uname_info",
            "Labeled system information as provided by the uname system call.",
        );
        f.add(
            &[
                ("domainname", &s(u.domainname())),
                ("machine", &s(u.machine())),
                ("nodename", &s(u.nodename())),
                ("release", &s(u.release())),
                ("sysname", &s(u.sysname())),
                ("version", &s(u.version())),
            ],
            1.0,
        );
        out.push(f);
        Ok(())
    }
}

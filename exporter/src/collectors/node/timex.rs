//! `timex` collector: the kernel clock discipline from adjtimex(2). Neither rustix nor nix
//! wraps adjtimex, so this is the one libc call here (read-only: `modes` is 0).

use super::{Ctx, NodeCollector, NodeError};
use crate::metrics::Families;

pub struct Timex;

const TIME_ERROR: i32 = 5;
const STA_NANO: i32 = 0x2000;
const PPM16FRAC: f64 = 1_000_000.0 * 65536.0;

impl NodeCollector for Timex {
    fn update(&self, _ctx: &Ctx<'_>, out: &mut Families) -> Result<(), NodeError> {
        // SAFETY: a zeroed timex with modes 0 only reads the kernel's state into our struct.
        let mut t: libc::timex = unsafe { std::mem::zeroed() };
        let status = unsafe { libc::adjtimex(&mut t) };
        if status < 0 {
            return Err(NodeError::Io {
                path: "adjtimex(2)".into(),
                source: std::io::Error::last_os_error(),
            });
        }
        let divisor = if t.status & STA_NANO != 0 { 1e9 } else { 1e6 };
        let g = |out: &mut Families, n: &str, h: &str, v: f64| {
            out.gauge(&format!("node_timex_{n}"), h, v)
        };
        let c = |out: &mut Families, n: &str, h: &str, v: f64| {
            out.counter(&format!("node_timex_{n}"), h, v)
        };
        g(
            out,
            "sync_status",
            "Is clock synchronized to a reliable server (1 = yes, 0 = no).",
            if status == TIME_ERROR { 0.0 } else { 1.0 },
        );
        g(
            out,
            "offset_seconds",
            "Time offset in between local system and reference clock.",
            t.offset as f64 / divisor,
        );
        g(
            out,
            "frequency_adjustment_ratio",
            "Local clock frequency adjustment.",
            1.0 + t.freq as f64 / PPM16FRAC,
        );
        g(
            out,
            "maxerror_seconds",
            "Maximum error in seconds.",
            t.maxerror as f64 / 1e6,
        );
        g(
            out,
            "estimated_error_seconds",
            "Estimated error in seconds.",
            t.esterror as f64 / 1e6,
        );
        g(
            out,
            "status",
            "Value of the status array bits.",
            f64::from(t.status),
        );
        g(
            out,
            "loop_time_constant",
            "Phase-locked loop time constant.",
            t.constant as f64,
        );
        g(
            out,
            "tick_seconds",
            "Seconds between clock ticks.",
            t.tick as f64 / 1e6,
        );
        g(
            out,
            "pps_frequency_hertz",
            "Pulse per second frequency.",
            t.ppsfreq as f64 / PPM16FRAC,
        );
        g(
            out,
            "pps_jitter_seconds",
            "Pulse per second jitter.",
            t.jitter as f64 / divisor,
        );
        g(
            out,
            "pps_shift_seconds",
            "Pulse per second interval duration.",
            f64::from(t.shift),
        );
        g(
            out,
            "pps_stability_hertz",
            "Pulse per second stability, average of recent frequency changes.",
            t.stabil as f64 / PPM16FRAC,
        );
        c(
            out,
            "pps_jitter_total",
            "Pulse per second count of jitter limit exceeded events.",
            t.jitcnt as f64,
        );
        c(
            out,
            "pps_calibration_total",
            "Pulse per second count of calibration intervals.",
            t.calcnt as f64,
        );
        c(
            out,
            "pps_error_total",
            "Pulse per second count of calibration errors.",
            t.errcnt as f64,
        );
        c(
            out,
            "pps_stability_exceeded_total",
            "Pulse per second count of stability limit exceeded events.",
            t.stbcnt as f64,
        );
        g(
            out,
            "tai_offset_seconds",
            "International Atomic Time (TAI) offset.",
            f64::from(t.tai),
        );
        Ok(())
    }
}

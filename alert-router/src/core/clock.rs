//! The wall clock. Only this module reads it; every other part takes `now` as an argument, so
//! planners and settles are plain functions of their inputs.

/// Now, Unix milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Now, as a UTC time (for the chart's axis and the context query's instant).
pub fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

/// Notices steps of the wall clock (an NTP step, `date -s`) by comparing how far it moved with
/// how far the monotonic clock moved since the last look. Stored schedules stay on wall time
/// (they are shared by replicas and outlive the process); what a running loop keeps in memory
/// as wall instants (a pause, its send limiter's window) is shifted by the step, so a clock
/// stepped back does not hold a channel for the length of the step.
#[derive(Debug)]
pub struct StepWatch {
    wall_ms: i64,
    mono: std::time::Instant,
}

/// Differences under this are jitter between the two readings, not a step.
const STEP_TOLERANCE_MS: i64 = 1000;

impl StepWatch {
    pub fn new() -> StepWatch {
        StepWatch {
            wall_ms: now_ms(),
            mono: std::time::Instant::now(),
        }
    }

    /// Now (Unix ms), and how far the wall clock stepped since the last call (positive:
    /// forward; 0 when it kept pace with the monotonic clock).
    pub fn look(&mut self) -> (i64, i64) {
        let (wall, mono) = (now_ms(), std::time::Instant::now());
        let elapsed = i64::try_from(mono.duration_since(self.mono).as_millis()).unwrap_or(0);
        let step = wall - (self.wall_ms + elapsed);
        self.wall_ms = wall;
        self.mono = mono;
        (
            wall,
            if step.abs() < STEP_TOLERANCE_MS {
                0
            } else {
                step
            },
        )
    }
}

impl Default for StepWatch {
    fn default() -> Self {
        StepWatch::new()
    }
}

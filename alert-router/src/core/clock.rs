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

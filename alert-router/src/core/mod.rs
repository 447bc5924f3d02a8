//! The bottom layer: what every other part speaks — the alert model, the `quantwatch_*`
//! annotation keys, the clock, configuration problems, text and time helpers, the message
//! language, link signing and the router's own metrics. It imports nothing of the crate.

pub mod annotations;
pub mod clock;
pub mod language;
pub mod metrics;
pub mod model;
pub mod settings;
pub mod signing;
pub mod text;
pub mod timefmt;

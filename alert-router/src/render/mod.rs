//! Render: what a reader sees — message templates, the links a message carries (ack, silence,
//! chart, runbook, dashboard) and the lines the pages show for calls.

pub mod calls;
pub mod chart;
pub mod template;

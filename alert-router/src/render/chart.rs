//! A message's chart as the channels receive it: a plain value (the PNG, its signed URL, a note),
//! and how each vendor shows it.

use std::sync::Arc;

/// What a message gets: the image (for WeCom's base64 message and email's inline part), its
/// URL (for DingTalk and Slack, whose servers fetch it), and a one-line note when there is no
/// chart for a reason the reader should know (`None` when charts are simply not configured or
/// the alert is resolved).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChartOutcome {
    pub png: Option<Arc<Vec<u8>>>,
    /// `{public_url}/charts/{token}.png`; `None` without `ROUTER_PUBLIC_URL` or
    /// `ROUTER_ACK_SECRET`.
    pub url: Option<String>,
    pub note: Option<String>,
}

impl ChartOutcome {
    pub fn note(text: String) -> ChartOutcome {
        ChartOutcome {
            note: Some(text),
            ..Default::default()
        }
    }
}

/// How a channel shows a firing alert's chart (see `chart`): each vendor as it allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChartDelivery {
    /// No chart (the context table and the note still reach the text).
    None,
    /// An image URL under the router's signed `/charts/` path, which the vendor's servers
    /// fetch (DingTalk markdown image, Slack image block): `ROUTER_PUBLIC_URL` must be
    /// reachable by them.
    Url,
    /// The PNG itself in an extra request (WeCom `image` message), counted by the limiter.
    Image,
    /// The PNG inline in the message (email `multipart/related`, `cid:` in the HTML).
    Inline,
}

/// The `Content-ID` of the chart in an email (`cid:` in the HTML part).
pub const EMAIL_CID: &str = "chart@quantwatch";

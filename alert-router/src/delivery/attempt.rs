//! One attempt on a message channel: render as many claimed rows as fit one message (giving
//! the rest back), split what one alert cannot fit, send the parts through the limiter, then
//! settle (`settle`).

use std::time::{Duration, Instant};

use crate::channels::{Channel, Message, SendError};
use crate::context::Attachments;
use crate::core::clock::now_ms;
use crate::core::model::AlertEvent;
use crate::core::text::split_utf8;
use crate::render::chart::{ChartDelivery, ChartOutcome};
use crate::store::OutboxRow;

use super::WorkerCtx;
use super::settle::{self, Attempted, ChannelState};

/// Deliver claimed rows of a message channel. Returns a channel-wide pause (ms instant) after
/// a failure that is likely to hit the next rows too.
pub async fn deliver(
    ch: &dyn Channel,
    ctx: &WorkerCtx,
    state: &mut ChannelState,
    rows: Vec<OutboxRow>,
) -> Option<i64> {
    let name = ch.name();
    let max = match (ch.limits().max_body_bytes, state.size_cap) {
        (Some(v), Some(c)) => Some(v.min(c)),
        (v, c) => v.or(c),
    };
    let attachments = attachments(ctx, &rows).await;
    let (msg, n) = match render_to_fit(ch, &rows, attachments.as_ref(), max) {
        Ok(fit) => fit,
        Err(reason) => {
            let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
            settle::permanent(ctx, name, &ids, &reason).await;
            return None;
        }
    };
    let (used, rest) = rows.split_at(n);
    if !rest.is_empty() {
        let ids: Vec<i64> = rest.iter().map(|r| r.id).collect();
        settle::release(ctx, name, &ids).await;
    }
    let parts: Vec<Message> = match max {
        Some(max) if ch.measure(&msg) > max => split_to_fit(ch, &msg, max),
        _ => vec![msg],
    };
    // The chart rides with the first part; a WeCom image is a request of its own.
    let chart = attachments
        .as_ref()
        .map(|a| &a.chart)
        .filter(|c| c.png.is_some() && n == 1);
    match send_parts(ch, ctx, state, &parts, chart).await {
        Ok(()) => {
            settle::sent(ctx, name, used, now_ms()).await;
            None
        }
        Err((error, refused_size)) => {
            let attempt = Attempted {
                rows: used,
                refused_size,
                what: "send",
            };
            settle::failed(ch, ctx, Some(state), attempt, error).await
        }
    }
}

/// A single firing alert gets its chart and context table, under one deadline for the
/// message; the render is shared with the other channels' workers (see `context`).
async fn attachments(ctx: &WorkerCtx, rows: &[OutboxRow]) -> Option<Attachments> {
    match (&ctx.charts, rows) {
        (Some(charts), [row])
            if charts.enabled()
                && row.event.status == crate::core::model::Status::Firing
                && !row
                    .event
                    .annotations
                    .contains_key(crate::core::annotations::ACKED_BY) =>
        {
            Some(charts.attachments(&row.event, charts.deadline()).await)
        }
        _ => None,
    }
}

/// The message of the first `n` rows, `n` as large as fits `max` (shrunk proportionally, at
/// least by one row each time); one row always goes. `Err`: the template failed.
fn render_to_fit(
    ch: &dyn Channel,
    rows: &[OutboxRow],
    attachments: Option<&Attachments>,
    max: Option<usize>,
) -> Result<(Message, usize), String> {
    let mut mentions: Vec<String> = Vec::new();
    for m in rows.iter().flat_map(|r| r.mentions.iter()) {
        if !mentions.contains(m) {
            mentions.push(m.clone());
        }
    }
    let mut n = rows.len();
    loop {
        let mut events: Vec<AlertEvent> = rows[..n].iter().map(|r| r.event.clone()).collect();
        if let (Some(a), [event]) = (attachments, events.as_mut_slice()) {
            a.annotate(event, ch.chart_delivery());
        }
        let mut m = ch
            .render(&events)
            .map_err(|e| format!("cannot render: {e}"))?;
        m.mentions = mentions.clone();
        m.step = rows[..n].iter().filter_map(|r| r.step).max();
        // Measured as the vendor counts it: the request as sent, mentions included.
        let size = ch.measure(&m);
        match max {
            Some(max) if n > 1 && size > max => {
                let estimate = n * max / size.max(1);
                n = estimate.clamp(1, n - 1);
            }
            _ => return Ok((m, n)),
        }
    }
}

/// Send the parts in order, each through the limiter (the first part's chart image counts as
/// a request of its own where the vendor sends it apart). `Err`: the vendor's refusal and the
/// size of the refused part.
async fn send_parts(
    ch: &dyn Channel,
    ctx: &WorkerCtx,
    state: &mut ChannelState,
    parts: &[Message],
    chart: Option<&ChartOutcome>,
) -> Result<(), (SendError, usize)> {
    let name = ch.name();
    let chart_requests =
        usize::from(chart.is_some() && ch.chart_delivery() == ChartDelivery::Image);
    for (i, part) in parts.iter().enumerate() {
        let requests = 1 + if i == 0 { chart_requests } else { 0 };
        if (i > 0 || requests > 1)
            && let Some(l) = state.limiter.as_mut()
        {
            let now = now_ms();
            let at = l.next_allowed_n(now, requests);
            if at > now {
                tokio::time::sleep(Duration::from_millis((at - now) as u64)).await;
            }
        }
        let sent_at = now_ms();
        if let Some(l) = state.limiter.as_mut() {
            for _ in 0..requests {
                l.record(sent_at);
                if let Err(e) = ctx.store.record_send(name, sent_at).await {
                    tracing::warn!(channel = %name, error = %e, "cannot record a send for the rate window");
                }
            }
        }
        let t0 = Instant::now();
        let r = if i == 0 && chart.is_some() {
            ch.send_with_chart(part, chart).await
        } else {
            ch.send(part).await
        };
        ctx.metrics
            .send_duration
            .with_label_values(&[name])
            .observe(t0.elapsed().as_secs_f64());
        r.map_err(|e| (e, ch.measure(part)))?;
    }
    Ok(())
}

/// Split one message's body into parts that each measure at most `max`, numbered in the title.
pub fn split_to_fit(ch: &dyn Channel, msg: &Message, max: usize) -> Vec<Message> {
    let overhead = ch.measure(&Message {
        body: String::new(),
        ..msg.clone()
    });
    let mut budget = max.saturating_sub(overhead).max(64);
    loop {
        let bodies = split_utf8(&msg.body, budget);
        let k = bodies.len();
        let parts: Vec<Message> = bodies
            .into_iter()
            .enumerate()
            .map(|(i, body)| Message {
                title: format!("{} ({}/{k})", msg.title, i + 1),
                body,
                html: None,
                mentions: msg.mentions.clone(),
                buttons: msg.buttons.clone(),
                severity: msg.severity.clone(),
                step: msg.step,
            })
            .collect();
        // Escaping grows some parts more than others: shrink until every part fits.
        if budget <= 64 || parts.iter().all(|p| ch.measure(p) <= max) {
            return parts;
        }
        budget = budget * 3 / 4;
    }
}

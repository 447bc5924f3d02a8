//! Drawing a chart of an alert's last hour into a PNG, with nothing from the host: plotters
//! draws into an RGB buffer, text comes from a font compiled into the binary (DejaVu Sans,
//! subset; `assets/`), and the `png` crate encodes. A bare container renders the same image
//! as a desktop.
//!
//! What the on-call needs at a glance decides the layout: one line per series (the ones
//! nearest to firing when there are too many), the threshold as a red horizontal line, the
//! alert's start as a vertical orange line, times on the axis in the operator's zone, and a
//! legend below the plot that names series by the labels that *differ* between them (the
//! shared ones say nothing).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use ab_glyph::Font;
use chrono::{TimeZone, Utc};
use chrono_tz::Tz;
use plotters::prelude::*;
use plotters::style::FontStyle;

use super::expr::CmpOp;
use super::prom::Series;
use super::settings::EMBEDDED_FONT;
use crate::core::timefmt;

const SANS: &str = "quantwatch-sans";

/// Series colours (Tableau 10 without its red and orange, which mean threshold and start, and
/// its grey, which anti-aliased text produces).
pub const PALETTE: [(u8, u8, u8); 8] = [
    (31, 119, 180),
    (44, 160, 44),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (57, 59, 121),
    (188, 189, 34),
    (23, 190, 207),
];
pub const THRESHOLD_COLOUR: (u8, u8, u8) = (214, 39, 40);
pub const START_COLOUR: (u8, u8, u8) = (255, 127, 14);
pub const BACKGROUND: (u8, u8, u8) = (255, 255, 255);

fn rgb(c: (u8, u8, u8)) -> RGBColor {
    RGBColor(c.0, c.1, c.2)
}

/// What to draw.
#[derive(Debug, Clone)]
pub struct ChartSpec<'a> {
    pub title: &'a str,
    /// The expression queried, for the "no data" text.
    pub expr: &'a str,
    pub series: &'a [Series],
    pub threshold: Option<(CmpOp, f64)>,
    /// Unix seconds of the alert's start, drawn when inside the window.
    pub start: Option<f64>,
    /// The window, Unix seconds.
    pub from: f64,
    pub to: f64,
    pub tz: Tz,
    pub width: u32,
    pub height: u32,
    pub max_series: usize,
    /// A font with CJK glyphs; without one such characters are drawn as `?`.
    pub cjk_font: Option<&'static [u8]>,
}

/// Where things landed, so tests can check pixels against values.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// Plot area in pixels: x range and y range (end exclusive).
    pub plot_x: (i32, i32),
    pub plot_y: (i32, i32),
    /// Value range of the y axis (bottom, top).
    pub y_range: (f64, f64),
    /// Series drawn, and how many were left out.
    pub drawn: usize,
    pub omitted: usize,
    /// The legend text of each drawn series, in drawing order (colour i of `PALETTE`).
    pub legend: Vec<String>,
}

/// A rendered chart.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub png: Vec<u8>,
    /// `None` for the "no data" chart.
    pub layout: Option<Layout>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot draw the chart: {0}")]
pub struct RenderError(String);

fn err<E: std::fmt::Debug>(e: E) -> RenderError {
    RenderError(format!("{e:?}"))
}

fn embedded() -> &'static ab_glyph::FontRef<'static> {
    static F: OnceLock<ab_glyph::FontRef<'static>> = OnceLock::new();
    F.get_or_init(|| {
        // Our own asset, checked by the tests; a broken build of it fails every chart test.
        let f = ab_glyph::FontRef::try_from_slice(EMBEDDED_FONT).expect("embedded font parses");
        if plotters::style::register_font(SANS, FontStyle::Normal, EMBEDDED_FONT).is_err() {
            tracing::error!("the embedded chart font did not register");
        }
        f
    })
}

/// The family for `text`: the embedded font when it has every glyph, else the configured
/// CJK font; without one, characters the embedded font lacks become `?`.
fn family_for(text: &str, cjk: Option<&'static [u8]>) -> (String, String) {
    let sans = embedded();
    if text
        .chars()
        .all(|c| sans.glyph_id(c).0 != 0 || c.is_control())
    {
        return (SANS.to_string(), text.to_string());
    }
    if let Some(bytes) = cjk {
        let name = format!("quantwatch-cjk-{:p}", bytes.as_ptr());
        static REGISTERED: OnceLock<std::sync::Mutex<BTreeSet<String>>> = OnceLock::new();
        let reg = REGISTERED.get_or_init(Default::default);
        let mut done = reg.lock().unwrap_or_else(|p| p.into_inner());
        if !done.contains(&name)
            && plotters::style::register_font(&name, FontStyle::Normal, bytes).is_ok()
        {
            done.insert(name.clone());
        }
        if done.contains(&name) {
            return (name, text.to_string());
        }
    }
    let cleaned = text
        .chars()
        .map(|c| if sans.glyph_id(c).0 != 0 { c } else { '?' })
        .collect();
    (SANS.to_string(), cleaned)
}

/// Shorten to `max` characters with an ellipsis.
fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// Legend text per series: the labels whose values differ between series; one series is
/// named by all its labels (but `__name__`, which the title's expression says).
pub fn legend_labels(series: &[Series]) -> Vec<String> {
    let keys: BTreeSet<&String> = series.iter().flat_map(|s| s.labels.keys()).collect();
    let differing: Vec<&String> = if series.len() <= 1 {
        keys.into_iter().filter(|k| *k != "__name__").collect()
    } else {
        keys.into_iter()
            .filter(|k| {
                let first = series[0].labels.get(*k);
                series.iter().any(|s| s.labels.get(*k) != first)
            })
            .collect()
    };
    series
        .iter()
        .map(|s| {
            let parts: Vec<String> = differing
                .iter()
                .filter_map(|k| s.labels.get(*k).map(|v| format!("{k}=\"{v}\"")))
                .collect();
            if parts.is_empty() {
                "{}".to_string()
            } else {
                format!("{{{}}}", parts.join(", "))
            }
        })
        .collect()
}

/// The series worth drawing when there are too many: those nearest to firing (highest peak
/// for `>`/`>=` or no threshold, lowest trough for `<`/`<=`).
fn pick(series: &[Series], threshold: Option<(CmpOp, f64)>, max: usize) -> Vec<usize> {
    let peak = |s: &Series| s.points.iter().map(|p| p.1).fold(f64::MIN, f64::max);
    let trough = |s: &Series| s.points.iter().map(|p| p.1).fold(f64::MAX, f64::min);
    let mut idx: Vec<usize> = (0..series.len()).collect();
    match threshold {
        Some((CmpOp::Lt | CmpOp::Le, _)) => {
            idx.sort_by(|a, b| trough(&series[*a]).total_cmp(&trough(&series[*b])))
        }
        _ => idx.sort_by(|a, b| peak(&series[*b]).total_cmp(&peak(&series[*a]))),
    }
    idx.truncate(max);
    // Keep Prometheus' order among the chosen, so colours follow the legend's order.
    idx.sort_unstable();
    idx
}

/// Axis numbers: short, without float noise (0.30000000000000004).
pub fn number(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e6).contains(&a) {
        format!("{v:.2e}")
    } else {
        let s = format!("{v:.4}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        if s == "-0" { "0".into() } else { s.into() }
    }
}

fn y_range(series: &[&Series], threshold: Option<f64>) -> (f64, f64) {
    let values = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .chain(threshold);
    let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(l, h), v| (l.min(v), h.max(v)));
    if lo > hi {
        return (0.0, 1.0);
    }
    let span = hi - lo;
    let pad = if span > 0.0 {
        span * 0.08
    } else if lo != 0.0 {
        lo.abs() * 0.1
    } else {
        1.0
    };
    (lo - pad, hi + pad)
}

/// Draw `spec` into a PNG of exactly `width`×`height`.
pub fn render(spec: &ChartSpec<'_>) -> Result<Rendered, RenderError> {
    let (w, h) = (spec.width, spec.height);
    let mut buf = vec![0u8; w as usize * h as usize * 3];
    let layout = {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&rgb(BACKGROUND)).map_err(err)?;
        let font = |text: &str, size: u32| {
            let (family, text) = family_for(text, spec.cjk_font);
            (family, text, size)
        };
        let style = |family: &str, size: u32, colour: RGBColor| -> TextStyle<'static> {
            let f: FontDesc<'static> = FontDesc::new(
                FontFamily::Name(leak_name(family)),
                f64::from(size),
                FontStyle::Normal,
            );
            f.color(&colour)
        };
        // Title: alert name and the plotted expression, clipped to the width.
        let max_chars = (w as usize / 8).max(20);
        let (tf, title, ts) = font(&clip(spec.title, max_chars), 14);
        root.draw_text(&title, &style(&tf, ts, BLACK), (8, 6))
            .map_err(err)?;
        let body = root.margin(26, 4, 4, 12);

        let picked = if spec.series.is_empty() {
            Vec::new()
        } else {
            pick(spec.series, spec.threshold, spec.max_series.max(1))
        };
        let drawn: Vec<&Series> = picked.iter().map(|i| &spec.series[*i]).collect();
        let omitted = spec.series.len() - drawn.len();
        let all_legend = legend_labels(spec.series);
        let legend: Vec<String> = picked.iter().map(|i| clip(&all_legend[*i], 70)).collect();

        // Legend strip under the plot: entries flow left to right, at most 3 rows.
        let mut rows: Vec<Vec<(usize, String, u32)>> = vec![Vec::new()];
        let mut x = 0u32;
        let avail = w.saturating_sub(24);
        let mut entries: Vec<(usize, String)> = legend.iter().cloned().enumerate().collect();
        if omitted > 0 {
            entries.push((usize::MAX, format!("+{omitted} more")));
        }
        for (i, text) in entries {
            let (f, t, s) = font(&text, 11);
            let tw = body
                .estimate_text_size(&t, &style(&f, s, BLACK))
                .map(|d| d.0)
                .unwrap_or(t.len() as u32 * 7);
            let need = 22 + tw + 14;
            if x + need > avail && x > 0 {
                rows.push(Vec::new());
                x = 0;
            }
            x += need;
            if let Some(r) = rows.last_mut() {
                r.push((i, t, x - need));
            }
        }
        rows.retain(|r| !r.is_empty());
        rows.truncate(3);
        let legend_h = if spec.series.is_empty() {
            0
        } else {
            rows.len() as u32 * 16 + 4
        };
        let (plot_area, legend_area) = body.split_vertically(body.dim_in_pixel().1 - legend_h);

        let (f, _, _) = font("x", 11);
        let label_style = style(&f, 11, BLACK);
        let zone = timefmt::zone_at(
            Utc.timestamp_opt(spec.to as i64, 0)
                .single()
                .unwrap_or_default(),
            spec.tz,
        );
        let day = Utc
            .timestamp_opt(spec.to as i64, 0)
            .single()
            .map(|t| t.with_timezone(&spec.tz).format("%Y-%m-%d").to_string())
            .unwrap_or_default();
        let threshold = spec.threshold.map(|t| t.1);
        let (ylo, yhi) = y_range(&drawn, threshold);
        let mut chart = ChartBuilder::on(&plot_area)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(spec.from..spec.to, ylo..yhi)
            .map_err(err)?;
        let tz = spec.tz;
        let seconds = spec.to - spec.from < 600.0;
        let xfmt = move |x: &f64| {
            Utc.timestamp_opt(*x as i64, 0)
                .single()
                .map(|t| timefmt::clock(t, tz, seconds))
                .unwrap_or_default()
        };
        let yfmt = |y: &f64| number(*y);
        chart
            .configure_mesh()
            .x_labels(7)
            .y_labels(6)
            .x_label_formatter(&xfmt)
            .y_label_formatter(&yfmt)
            .x_desc(format!("{day} ({zone})"))
            .label_style(label_style.clone())
            .axis_desc_style(label_style.clone())
            .light_line_style(RGBColor(238, 238, 238))
            .bold_line_style(RGBColor(225, 225, 225))
            .draw()
            .map_err(err)?;
        let (px, py) = chart.plotting_area().get_pixel_range();

        if drawn.is_empty() {
            let msg = format!(
                "no data for {} in this window",
                clip(spec.expr, max_chars.saturating_sub(30))
            );
            let (f, t, s) = font(&msg, 13);
            let st = style(&f, s, RGBColor(90, 90, 90));
            let tw = root.estimate_text_size(&t, &st).map(|d| d.0).unwrap_or(0) as i32;
            let cx = (px.start + px.end) / 2 - tw / 2;
            let cy = (py.start + py.end) / 2 - 8;
            root.draw_text(&t, &st, (cx.max(4), cy)).map_err(err)?;
            root.present().map_err(err)?;
            None
        } else {
            if let Some(start) = spec.start
                && (spec.from..=spec.to).contains(&start)
            {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(start, ylo), (start, yhi)],
                        rgb(START_COLOUR).stroke_width(1),
                    )))
                    .map_err(err)?;
            }
            for (i, s) in drawn.iter().enumerate() {
                let colour = rgb(PALETTE[i % PALETTE.len()]);
                chart
                    .draw_series(LineSeries::new(
                        s.points.iter().copied(),
                        colour.stroke_width(2),
                    ))
                    .map_err(err)?;
            }
            if let Some(t) = threshold {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(spec.from, t), (spec.to, t)],
                        rgb(THRESHOLD_COLOUR).stroke_width(1),
                    )))
                    .map_err(err)?;
            }
            for (r, row) in rows.iter().enumerate() {
                let y = r as i32 * 16 + 8;
                for (i, text, x) in row {
                    let x = *x as i32 + 12;
                    let colour = if *i == usize::MAX {
                        RGBColor(255, 255, 255)
                    } else {
                        rgb(PALETTE[i % PALETTE.len()])
                    };
                    if *i != usize::MAX {
                        legend_area
                            .draw(&PathElement::new(
                                vec![(x, y), (x + 16, y)],
                                colour.stroke_width(3),
                            ))
                            .map_err(err)?;
                    }
                    let (f, _, s) = font(text, 11);
                    legend_area
                        .draw_text(text, &style(&f, s, BLACK), (x + 22, y - 7))
                        .map_err(err)?;
                }
            }
            root.present().map_err(err)?;
            Some(Layout {
                plot_x: (px.start, px.end),
                plot_y: (py.start, py.end),
                y_range: (ylo, yhi),
                drawn: drawn.len(),
                omitted,
                legend,
            })
        }
    };
    let png = encode(&buf, w, h)?;
    Ok(Rendered { png, layout })
}

/// plotters names font families with `&'static str`; our two families are fixed strings and
/// one per CJK font, so interning them costs a few bytes once.
fn leak_name(name: &str) -> &'static str {
    static NAMES: OnceLock<std::sync::Mutex<BTreeMap<String, &'static str>>> = OnceLock::new();
    let mut m = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(s) = m.get(name) {
        return s;
    }
    let s: &'static str = Box::leak(name.to_string().into_boxed_str());
    m.insert(name.to_string(), s);
    s
}

fn encode(rgb: &[u8], w: u32, h: u32) -> Result<Vec<u8>, RenderError> {
    let mut out = Vec::with_capacity(64 * 1024);
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::Fast);
        let mut wr = enc.write_header().map_err(err)?;
        wr.write_image_data(rgb).map_err(err)?;
        wr.finish().map_err(err)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(labels: &[(&str, &str)], points: &[(f64, f64)]) -> Series {
        Series {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            points: points.to_vec(),
        }
    }

    #[test]
    fn legend_names_only_the_labels_that_differ() {
        let s = vec![
            series(
                &[("__name__", "x"), ("job", "a"), ("env", "prod")],
                &[(0.0, 1.0)],
            ),
            series(
                &[("__name__", "x"), ("job", "b"), ("env", "prod")],
                &[(0.0, 1.0)],
            ),
            series(
                &[
                    ("__name__", "x"),
                    ("job", "c"),
                    ("env", "prod"),
                    ("zone", "z1"),
                ],
                &[(0.0, 1.0)],
            ),
        ];
        assert_eq!(
            legend_labels(&s),
            ["{job=\"a\"}", "{job=\"b\"}", "{job=\"c\", zone=\"z1\"}"]
        );
        let one = vec![series(&[("__name__", "x"), ("job", "a")], &[(0.0, 1.0)])];
        assert_eq!(legend_labels(&one), ["{job=\"a\"}"]);
        assert_eq!(legend_labels(&[series(&[], &[(0.0, 1.0)])]), ["{}"]);
    }

    #[test]
    fn picks_the_series_nearest_to_firing() {
        let s: Vec<Series> = (0..5)
            .map(|i| {
                series(
                    &[("i", &i.to_string())],
                    &[(0.0, f64::from(i)), (1.0, f64::from(i * 2 % 7))],
                )
            })
            .collect();
        // Peaks: 0, 2, 4, 6, 4 -> the top two are 3 and then 2 (tie with 4, stable order).
        assert_eq!(pick(&s, Some((CmpOp::Gt, 1.0)), 2), [2, 3]);
        assert_eq!(pick(&s, None, 3), [2, 3, 4]);
        // Troughs: 0, 1, 2, 3, 1 -> lowest two are 0 and then 1 (tie with 4, stable order).
        assert_eq!(pick(&s, Some((CmpOp::Lt, 1.0)), 2), [0, 1]);
    }

    #[test]
    fn numbers_and_ranges() {
        assert_eq!(number(0.1 + 0.2), "0.3");
        assert_eq!(number(-0.0), "0");
        assert_eq!(number(1_500_000.0), "1.50e6");
        assert_eq!(number(0.0001), "1.00e-4");
        assert_eq!(number(42.0), "42");
        let a = series(&[], &[(0.0, 2.0), (1.0, 8.0)]);
        assert_eq!(y_range(&[&a], Some(5.0)), (2.0 - 0.48, 8.0 + 0.48));
        assert_eq!(y_range(&[&a], Some(10.0)), (2.0 - 0.64, 10.0 + 0.64));
        let flat = series(&[], &[(0.0, 0.0)]);
        assert_eq!(y_range(&[&flat], None), (-1.0, 1.0));
    }

    #[test]
    fn text_without_a_cjk_font_is_drawn_with_question_marks() {
        assert_eq!(family_for("job=\"交易\" ok", None).1, "job=\"??\" ok");
        assert_eq!(
            family_for("café – 5 €", None),
            (SANS.to_string(), "café – 5 €".to_string())
        );
    }

    #[test]
    fn clip_counts_characters() {
        assert_eq!(clip("交易策略回撤", 4), "交易策…");
        assert_eq!(clip("short", 10), "short");
    }
}

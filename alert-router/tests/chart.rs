//! Charts against the real Prometheus of the harness: series with known values (PromQL
//! `vector()`, evaluated by Prometheus over the whole window), the PNG read back pixel by
//! pixel; no data; Prometheus stopped or hanging; and the signed image URLs over HTTP.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use quantwatch_alert_router::app::config;
use quantwatch_alert_router::context::render::{self, PALETTE, THRESHOLD_COLOUR};
use quantwatch_alert_router::context::{ChartService, expr, images, prom};
use quantwatch_alert_router::core::model::{AlertEvent, Status};
use testkit::servers::Prometheus;
use tokio::time::Instant;

const SECRET: &str = "chart-secret-of-at-least-32-bytes!";
const PROM_YML: &str = "global:\n  scrape_interval: 15s\n";

/// Two series, s="a" at 2 and s="b" at 8, for the whole window; the rule fires above 5.
const RULE: &str = r#"(label_replace(vector(2), "s", "a", "", "") or label_replace(vector(8), "s", "b", "", "")) > 5"#;

/// The harness starts servers with blocking calls: off the async threads.
async fn start_prometheus() -> Prometheus {
    tokio::task::spawn_blocking(|| Prometheus::start(PROM_YML, &[]))
        .await
        .expect("Prometheus starts")
}

fn service(extra_yaml: &str, prom_url: &str) -> ChartService {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("router.yml");
    std::fs::write(
        &path,
        format!("timezone: Asia/Shanghai\nprometheus_url: \"{prom_url}\"\n{extra_yaml}"),
    )
    .unwrap();
    let env: HashMap<String, String> = [
        ("ROUTER_ACK_SECRET", SECRET),
        ("ROUTER_PUBLIC_URL", "https://router.example/"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let cfg = config::load(Some(&path), &env).unwrap_or_else(|e| panic!("{e}"));
    cfg.chart_service()
}

fn alert(expr: &str, starts_ago_s: i64) -> AlertEvent {
    let gen_url = reqwest::Url::parse_with_params(
        "http://prometheus:9090/graph",
        &[("g0.expr", expr), ("g0.tab", "1")],
    )
    .unwrap();
    AlertEvent {
        group_key: "g".into(),
        fingerprint: format!("fp{}", expr.len()),
        status: Status::Firing,
        labels: [("alertname".to_string(), "Known".to_string())].into(),
        annotations: Default::default(),
        starts_at: chrono::Utc::now().timestamp_millis() - starts_ago_s * 1000,
        ends_at: None,
        generator_url: Some(gen_url.to_string()),
        receiver: None,
    }
}

struct Image {
    w: u32,
    h: u32,
    rgb: Vec<u8>,
}

impl Image {
    fn decode(bytes: &[u8]) -> Image {
        let mut dec = png::Decoder::new(std::io::Cursor::new(bytes))
            .read_info()
            .expect("a PNG header");
        let mut rgb = vec![0; dec.output_buffer_size().expect("buffer size")];
        let info = dec.next_frame(&mut rgb).expect("PNG data");
        assert_eq!(info.color_type, png::ColorType::Rgb);
        Image {
            w: info.width,
            h: info.height,
            rgb,
        }
    }
    fn px(&self, x: i32, y: i32) -> (u8, u8, u8) {
        let i = (y as usize * self.w as usize + x as usize) * 3;
        (self.rgb[i], self.rgb[i + 1], self.rgb[i + 2])
    }
    /// Pixels of `colour` per row inside the x range.
    fn rows_of(&self, colour: (u8, u8, u8), xs: (i32, i32)) -> Vec<(i32, usize)> {
        (0..self.h as i32)
            .map(|y| (y, (xs.0..xs.1).filter(|x| self.px(*x, y) == colour).count()))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

/// The pixel row of value `v` for a plot area spanning rows `top..bottom` and values
/// `lo..hi` (top row is `hi`), computed independently of the plotting crate.
fn row_of(v: f64, (top, bottom): (i32, i32), (lo, hi): (f64, f64)) -> f64 {
    top as f64 + (hi - v) / (hi - lo) * (bottom - top) as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_series_are_drawn_where_their_values_say() {
    let prom = start_prometheus().await;
    let plan = expr::plan(RULE);
    assert_eq!(plan.threshold, Some((expr::CmpOp::Gt, 5.0)));
    let svc = service("", &prom.url());
    let client = prom::PromClient::new(svc.settings().prometheus.clone().unwrap());
    let end = chrono::Utc::now().timestamp() as f64;
    let series = client
        .query_range(
            &plan.plot,
            end,
            Duration::from_secs(3600),
            400,
            Instant::now() + Duration::from_secs(5),
        )
        .await
        .expect("Prometheus answers");
    assert_eq!(series.len(), 2);
    assert!(
        series.iter().all(|s| s.points.len() >= 399),
        "a point every 9 s over the hour"
    );
    let out = render::render(&render::ChartSpec {
        title: "Known: the plot",
        expr: &plan.plot,
        series: &series,
        threshold: plan.threshold,
        start: Some(end - 1800.0),
        from: end - 3600.0,
        to: end,
        tz: chrono_tz::Tz::Asia__Shanghai,
        width: 640,
        height: 240,
        max_series: 8,
        cjk_font: None,
    })
    .expect("render");
    let img = Image::decode(&out.png);
    assert_eq!((img.w, img.h), (640, 240), "the configured size");
    let l = out.layout.expect("a chart with data has a layout");
    assert_eq!(l.legend, ["{s=\"a\"}", "{s=\"b\"}"]);
    assert_eq!((l.drawn, l.omitted), (2, 0));
    // Known scale: values 2..8 padded by 8 % of the span.
    assert_eq!(l.y_range, (2.0 - 0.48, 8.0 + 0.48));
    let plot_w = (l.plot_x.1 - l.plot_x.0) as usize;
    assert!(plot_w > 450, "plot area {l:?}");
    for (colour, value) in [
        (PALETTE[0], 2.0),
        (PALETTE[1], 8.0),
        (THRESHOLD_COLOUR, 5.0),
    ] {
        let rows = img.rows_of(colour, l.plot_x);
        let (best_row, count) = rows
            .iter()
            .copied()
            .max_by_key(|r| r.1)
            .expect("the colour is drawn");
        assert!(
            count > plot_w * 9 / 10,
            "{colour:?} spans the plot: {count} of {plot_w} px in row {best_row}"
        );
        let expected = row_of(value, l.plot_y, l.y_range);
        assert!(
            (best_row as f64 - expected).abs() <= 1.5,
            "{colour:?} for {value} at row {best_row}, expected {expected:.1} ({rows:?})"
        );
    }
    // The legend swatches sit below the plot area.
    let below = |c| {
        img.rows_of(c, (0, 640))
            .iter()
            .any(|(y, _)| *y > l.plot_y.1 + 20)
    };
    assert!(below(PALETTE[0]) && below(PALETTE[1]), "legend swatches");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn for_alert_renders_once_per_alert_and_signs_a_url() {
    let prom = start_prometheus().await;
    let svc = service("chart:\n  width: 500\n  height: 200\n", &prom.url());
    let a = alert(RULE, 600);
    let deadline = svc.deadline();
    let (one, two) = tokio::join!(svc.for_alert(&a, deadline), svc.for_alert(&a, deadline));
    assert_eq!(one.note, None);
    let png = one.png.clone().expect("a chart");
    assert!(
        Arc::ptr_eq(&png, two.png.as_ref().unwrap()),
        "rendered once for both channels"
    );
    assert_eq!(one.url, two.url);
    let img = Image::decode(&png);
    if let Ok(dir) = std::env::var("CHART_TEST_OUT") {
        std::fs::write(format!("{dir}/known.png"), png.as_slice()).unwrap();
    }
    assert_eq!((img.w, img.h), (500, 200));
    assert!(img.rows_of(PALETTE[0], (0, 500)).len() > 1);
    assert!(!img.rows_of(THRESHOLD_COLOUR, (0, 500)).is_empty());
    let url = one.url.expect("public URL and secret are set");
    let file = url
        .strip_prefix("https://router.example/charts/")
        .expect("under /charts/ of ROUTER_PUBLIC_URL");
    // Serve it over real HTTP with the router's handler.
    let app = axum::Router::new().route(
        "/charts/{file}",
        axum::routing::get({
            let svc = svc.clone();
            move |axum::extract::Path(f): axum::extract::Path<String>| {
                let svc = svc.clone();
                async move {
                    quantwatch_alert_router::web::charts::respond(
                        &svc,
                        &f,
                        chrono::Utc::now().timestamp(),
                    )
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let r = reqwest::get(format!("{base}/charts/{file}")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/png");
    assert_eq!(r.bytes().await.unwrap().as_ref(), png.as_slice());
    // Resolved alerts get nothing, and no note.
    let mut resolved = a.clone();
    resolved.status = Status::Resolved;
    assert_eq!(
        svc.for_alert(&resolved, svc.deadline()).await,
        Default::default()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expression_without_data_renders_a_chart_that_says_so() {
    let prom = start_prometheus().await;
    let svc = service("", &prom.url());
    let out = svc
        .for_alert(&alert("quantwatch_no_such_metric > 3", 60), svc.deadline())
        .await;
    assert_eq!(out.note, None, "no data is a chart, not an error");
    if let Ok(dir) = std::env::var("CHART_TEST_OUT") {
        std::fs::write(
            format!("{dir}/nodata.png"),
            out.png.as_ref().unwrap().as_slice(),
        )
        .unwrap();
    }
    let img = Image::decode(out.png.as_ref().expect("a chart"));
    assert_eq!((img.w, img.h), (800, 300), "the default size");
    for c in PALETTE.iter().chain([&THRESHOLD_COLOUR]) {
        assert!(
            img.rows_of(*c, (0, 800)).is_empty(),
            "no series or threshold drawn"
        );
    }
    // The grey "no data for …" text sits in the middle of the plot (grid lines are lighter
    // than 220, the axes lie outside this box).
    let text = (120..160)
        .flat_map(|y| (150..700).map(move |x| (x, y)))
        .filter(|(x, y)| {
            let p = img.px(*x, *y);
            p.0 < 200 && p.0 == p.1 && p.1 == p.2
        })
        .count();
    assert!(text > 50, "the no-data text is drawn ({text} px)");
    // And Prometheus refusing the expression is a one-line note, not a chart.
    let bad = svc
        .for_alert(&alert("rate(x[5m]", 60), svc.deadline())
        .await;
    assert!(bad.png.is_none());
    let note = bad.note.unwrap();
    assert!(
        note.starts_with("chart unavailable: Prometheus refused the query: bad_data"),
        "{note}"
    );
    assert!(!note.contains('\n'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_stopped_means_no_chart_at_once() {
    let prom = start_prometheus().await;
    let url = prom.url();
    drop(prom); // kills it: the port now refuses connections
    let svc = service("", &url);
    let t0 = std::time::Instant::now();
    let out = svc.for_alert(&alert(RULE, 60), svc.deadline()).await;
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert!(out.png.is_none() && out.url.is_none());
    let note = out.note.unwrap();
    assert!(
        note.starts_with("chart unavailable: Prometheus is unreachable"),
        "{note}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_prometheus_costs_the_deadline_and_no_more() {
    // Accepts connections and never answers (a Prometheus answering after 10 s).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let svc = service("chart:\n  deadline: 2s\n", &url);
    let t0 = std::time::Instant::now();
    let out = svc.for_alert(&alert(RULE, 60), svc.deadline()).await;
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(1900),
        "waited for the deadline: {took:?}"
    );
    assert!(took < Duration::from_secs(3), "deadline + 1 s: {took:?}");
    assert!(out.png.is_none());
    assert_eq!(
        out.note.as_deref(),
        Some("chart unavailable: Prometheus did not answer within the deadline")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_urls_on_the_router_refuse_altered_and_expired_tokens() {
    let r = common::start(
        "language: en\n",
        &[
            ("ROUTER_ACK_SECRET", SECRET),
            ("ROUTER_PUBLIC_URL", "https://router.example"),
        ],
    )
    .await;
    let now = chrono::Utc::now().timestamp();
    let get = |path: String| {
        let url = format!("{}{path}", r.url);
        async move {
            let resp = reqwest::get(url).await.unwrap();
            let status = resp.status().as_u16();
            let body: serde_json::Value = resp.json().await.unwrap();
            (status, body)
        }
    };
    let valid = images::token(SECRET, "00112233445566778899aabbccddeeff", now + 3600);
    let (s, b) = get(format!("/charts/{valid}.png")).await;
    assert_eq!(
        s, 404,
        "authentic, but this router rendered no such chart: {b}"
    );
    assert!(
        b["reason"]
            .as_str()
            .unwrap()
            .contains("does not hold the chart")
    );
    let mut altered = valid.clone();
    altered.replace_range(0..1, "1");
    let (s, b) = get(format!("/charts/{altered}.png")).await;
    assert_eq!((s, b["error"].as_str()), (403, Some("forbidden")), "{b}");
    let expired = images::token(SECRET, "00112233445566778899aabbccddeeff", now - 1);
    let (s, b) = get(format!("/charts/{expired}.png")).await;
    assert_eq!((s, b["error"].as_str()), (410, Some("expired")), "{b}");
    assert_eq!(b["reason"], "the chart link expired");
    let ack = quantwatch_alert_router::core::signing::token(
        SECRET,
        "00112233445566778899aabbccddeeff",
        0,
        now + 3600,
    );
    let (s, _) = get(format!("/charts/{ack}.png")).await;
    assert_eq!(s, 403, "an ack token is not a chart token");
    let (s, _) = get(format!("/charts/{valid}")).await;
    assert_eq!(s, 403, "without .png");
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_table_reads_prometheus_with_label_values_as_data() {
    use quantwatch_alert_router::context::settings::trading_defaults;
    use quantwatch_alert_router::context::table as context;
    use quantwatch_alert_router::plan::routing::{ContextQuery, Unit};
    let prom = start_prometheus().await;
    let svc = service("", &prom.url());
    let client = prom::PromClient::new(svc.settings().prometheus.clone().unwrap());
    // A hostile strategy name: were it pasted into the query, `or vector(666)` would run.
    let hostile = r#"x"} or vector(666) #"#;
    let labels = [("strategy".to_string(), hostile.to_string())].into();
    let queries = vec![
        ContextQuery {
            title: "Equity".into(),
            query: r#"label_replace(vector(1234567.891), "strategy", "{{strategy}}", "", "")"#.into(),
            unit: Unit::Money,
            show_label: Some("strategy".into()),
        },
        ContextQuery {
            title: "Drawdown".into(),
            query: r#"vector(-0.0425) + 0 * count(label_replace(vector(1), "s", "{{strategy}}", "", ""))"#.into(),
            unit: Unit::Percent,
            show_label: None,
        },
        ContextQuery {
            title: "Needs a label the alert lacks".into(),
            query: r#"vector({{desk}})"#.into(),
            unit: Unit::Count,
            show_label: None,
        },
    ];
    let now = chrono::Utc::now().timestamp() as f64;
    let t = context::run(&client, &queries, &labels, now, svc.deadline()).await;
    assert_eq!(t.note, None);
    let rows: Vec<(&str, &str)> = t
        .rows
        .iter()
        .map(|r| (r.title.as_str(), r.value.as_str()))
        .collect();
    assert_eq!(
        rows,
        [
            ("Equity", format!("{hostile} 1,234,567.89").as_str()),
            ("Drawdown", "-4.25%")
        ]
    );
    // The trading defaults against a Prometheus without trading metrics: every row, no value.
    let labels = [("strategy".to_string(), "alpha".to_string())].into();
    let t = context::run(&client, &trading_defaults(), &labels, now, svc.deadline()).await;
    assert_eq!(t.note, None);
    assert_eq!(t.rows.len(), 6);
    assert!(t.rows.iter().all(|r| r.value == "—"), "{:?}", t.rows);
    // Prometheus gone: an empty table and one line.
    drop(prom);
    let t = context::run(&client, &trading_defaults(), &labels, now, svc.deadline()).await;
    assert!(t.rows.is_empty());
    assert!(
        t.note
            .unwrap()
            .starts_with("context unavailable: Prometheus is unreachable")
    );
}

/// The Alertmanager webhook alert for `RULE` with its real `generatorURL` (the chart's
/// expression) and a strategy label (the context table).
fn firing_payload(name: &str) -> serde_json::Value {
    let gen_url = reqwest::Url::parse_with_params(
        "http://prometheus:9090/graph",
        &[("g0.expr", RULE), ("g0.tab", "1")],
    )
    .unwrap();
    let mut a = common::alert(
        name,
        "firing",
        &(chrono::Utc::now() - chrono::Duration::minutes(10)).to_rfc3339(),
        &[("strategy", "alpha")],
    );
    a["generatorURL"] = gen_url.to_string().into();
    common::payload(&format!("g-{name}"), vec![a])
}

/// A context query over the alert's `strategy` label whose answer Prometheus computes.
const CONTEXT: &str = r#"chart:
  width: 640
  height: 240
  context:
    - title: Equity
      query: 'label_replace(vector(1234.5), "strategy", "{{strategy}}", "", "")'
      unit: money
      show_label: strategy
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_vendor_gets_the_chart_as_it_allows() {
    use mail_parser::{MessageParser, MimeHeaders, PartType};
    use testkit::fakes::{dingtalk::DingTalkFake, slack::SlackFake, wecom::WeComFake};
    use testkit::{Smtp, SmtpOptions, SmtpTls};
    let prom = start_prometheus().await;
    let (ding, wecom, slack) = (
        DingTalkFake::start("tok", None),
        WeComFake::start("key1"),
        SlackFake::start("T000/B000/XXXX"),
    );
    let smtp = tokio::task::spawn_blocking(|| {
        Smtp::start(SmtpOptions {
            tls: SmtpTls::None,
            auth: None,
        })
    })
    .await
    .unwrap();
    let yaml = format!(
        "language: en\nprometheus_url: \"{}\"\n{CONTEXT}channels:\n  - {{type: dingtalk, name: ding, webhook_url: \"{}\"}}\n  - {{type: wecom, name: wecom, webhook_url: \"{}\"}}\n  - {{type: slack, name: slack, webhook_url: \"{}\"}}\n  - {{type: email, name: mail, host: 127.0.0.1, port: {}, tls: none, from: \"a@quantwatch.test\", to: [\"b@quantwatch.test\"]}}\nroute:\n  channels: [ding, wecom, slack, mail]\n",
        prom.url(),
        ding.webhook_url(),
        wecom.webhook_url(),
        slack.webhook_url(),
        smtp.port(),
    );
    let r = common::start(
        &yaml,
        &[
            ("ROUTER_ACK_SECRET", SECRET),
            ("ROUTER_PUBLIC_URL", common::ROUTER_URL),
        ],
    )
    .await;
    assert_eq!(r.post(&firing_payload("Known")).await.0, 200);
    let wait = |f: &testkit::fakes::FakeServer, n| {
        tokio::task::block_in_place(|| f.wait_accepted(n, Duration::from_secs(20)))
    };

    // WeCom: the markdown (with the context table), then the image message the fake verified
    // (base64 of a PNG under 2 MB whose MD5 is the md5 field); two requests in the robot's
    // window.
    let w = wait(&wecom.server, 2);
    assert_eq!(w.len(), 2, "{w:?}");
    assert_eq!(w[0]["msgtype"], "markdown");
    let md = w[0]["markdown"]["content"].as_str().unwrap();
    assert!(md.contains("- **Equity**: alpha 1,234.50\n"), "{md}");
    assert!(
        !md.contains("/charts/"),
        "WeCom markdown shows no image URL: {md}"
    );
    assert_eq!(w[1]["msgtype"], "image");
    let images = wecom.images();
    assert_eq!(images.len(), 1);
    let img = Image::decode(&images[0]);
    assert_eq!((img.w, img.h), (640, 240));
    assert!(
        !img.rows_of(PALETTE[0], (0, 640)).is_empty(),
        "a line is drawn"
    );
    assert_eq!(wecom.server.received().len(), 2, "no refusal, no repeat");

    // DingTalk: the markdown image under the router's signed /charts/ path, fetched by the
    // fake from the router: a PNG, the same bytes WeCom got (rendered once).
    let d = wait(&ding.server, 1);
    let text = d[0]["markdown"]["text"].as_str().unwrap();
    let chart_url = format!("{}/charts/chart.", r.url);
    assert!(
        text.contains(&format!("![Last hour]({chart_url}")),
        "{text}"
    );
    assert!(text.contains("- **Equity**: alpha 1,234.50\n"), "{text}");
    let fetched = ding.server.fetched();
    assert_eq!(fetched.len(), 1);
    assert!(fetched[0].is_png(), "{:?}", fetched[0].status);
    assert_eq!(fetched[0].bytes, images[0], "one render for every channel");

    // Slack: an image block the fake downloaded before accepting the message.
    let s = wait(&slack.server, 1);
    let blocks = s[0]["blocks"].as_array().unwrap();
    let image = blocks
        .iter()
        .find(|b| b["type"] == "image")
        .expect("image block");
    assert!(image["image_url"].as_str().unwrap().starts_with(&chart_url));
    let fetched = slack.server.fetched();
    assert_eq!(fetched.len(), 1);
    assert!(fetched[0].is_png());
    assert_eq!(fetched[0].url, fetched[0].url.trim());

    // Email: multipart/related holding the HTML and the PNG whose Content-ID the HTML names.
    let msgs = tokio::task::block_in_place(|| smtp.wait_for_messages(1, Duration::from_secs(20)));
    assert_eq!(msgs.len(), 1);
    let m = MessageParser::default().parse(&msgs[0]).expect("MIME");
    let html = m.body_html(0).expect("HTML part").to_string();
    assert!(html.contains("<img src=\"cid:chart@quantwatch\""), "{html}");
    let related = m
        .parts
        .iter()
        .find(|p| {
            p.content_type()
                .is_some_and(|c| c.ctype() == "multipart" && c.subtype() == Some("related"))
        })
        .expect("a multipart/related part");
    assert!(matches!(related.body, PartType::Multipart(_)));
    let png_part = m
        .parts
        .iter()
        .find(|p| {
            p.content_type()
                .is_some_and(|c| c.ctype() == "image" && c.subtype() == Some("png"))
        })
        .expect("an image/png part");
    assert_eq!(png_part.content_id(), Some("chart@quantwatch"));
    assert_eq!(png_part.contents(), images[0].as_slice());
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_or_stopped_prometheus_does_not_hold_the_page() {
    use testkit::fakes::dingtalk::DingTalkFake;
    // Accepts connections and never answers (a Prometheus answering after 10 s).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hanging = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let stopped = {
        let prom = start_prometheus().await;
        prom.url()
    };
    for (prom_url, why) in [
        (hanging, "did not answer within the deadline"),
        (stopped, "Prometheus is unreachable"),
    ] {
        let ding = DingTalkFake::start("tok", None);
        let yaml = format!(
            "language: en\nprometheus_url: \"{prom_url}\"\nchart:\n  deadline: 2s\nchannels:\n  - {{type: dingtalk, name: ding, webhook_url: \"{}\"}}\nroute:\n  channels: [ding]\n",
            ding.webhook_url()
        );
        let r = common::start(
            &yaml,
            &[
                ("ROUTER_ACK_SECRET", SECRET),
                ("ROUTER_PUBLIC_URL", common::ROUTER_URL),
            ],
        )
        .await;
        let t0 = std::time::Instant::now();
        assert_eq!(r.post(&firing_payload("Slow")).await.0, 200);
        let d =
            tokio::task::block_in_place(|| ding.server.wait_accepted(1, Duration::from_secs(10)));
        let took = t0.elapsed();
        assert_eq!(d.len(), 1);
        assert!(
            took < Duration::from_secs(3),
            "within deadline + 1 s: {took:?}"
        );
        let text = d[0]["markdown"]["text"].as_str().unwrap();
        // One line says what is missing and why; no image.
        let notes: Vec<&str> = text.lines().filter(|l| l.contains("unavailable")).collect();
        assert_eq!(notes.len(), 1, "{text}");
        assert!(notes[0].starts_with("> chart unavailable: "), "{text}");
        assert!(notes[0].contains("context unavailable: "), "{text}");
        assert!(notes[0].contains(why), "{text}");
        assert!(!text.contains("/charts/"), "{text}");
        r.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wecom_chart_image_counts_against_the_robots_rate() {
    use testkit::fakes::wecom::WeComFake;
    let prom = start_prometheus().await;
    let wecom = WeComFake::start("key1");
    // 2 per minute: a message with its chart image fills the window on its own.
    let yaml = format!(
        "language: en\nprometheus_url: \"{}\"\nchannels:\n  - {{type: wecom, name: wecom, webhook_url: \"{}\", rate_per_minute: 2}}\nroute:\n  channels: [wecom]\n",
        prom.url(),
        wecom.webhook_url(),
    );
    let r = common::start(
        &yaml,
        &[
            ("ROUTER_ACK_SECRET", SECRET),
            ("ROUTER_PUBLIC_URL", common::ROUTER_URL),
        ],
    )
    .await;
    assert_eq!(r.post(&firing_payload("First")).await.0, 200);
    let first =
        tokio::task::block_in_place(|| wecom.server.wait_accepted(2, Duration::from_secs(20)));
    assert_eq!(first.len(), 2);
    assert_eq!(
        (first[0]["msgtype"].as_str(), first[1]["msgtype"].as_str()),
        (Some("markdown"), Some("image"))
    );
    let t0 = wecom.server.received()[0].at;
    assert_eq!(r.post(&firing_payload("Second")).await.0, 200);
    // Counted as one request, the next message could go 30.5 s later (60 s + 1 s margin over
    // 2); counted as two, not before the first pair leaves the window at 61 s.
    tokio::time::sleep(
        (t0 + Duration::from_secs(36)).saturating_duration_since(std::time::Instant::now()),
    )
    .await;
    let received = wecom.server.received();
    assert_eq!(received.len(), 2, "nothing more within 36 s: {received:?}");
    assert_eq!(wecom.server.count_errcode(45009), 0);
    r.shutdown().await;
}

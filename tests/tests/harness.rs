//! The harness itself: each server starts, answers, and comes back after a stop.

use std::time::Duration;
use testkit::{Alertmanager, Postgres, Prometheus, Redis, Smtp, SmtpOptions, SmtpTls};

#[test]
fn postgres_starts_stops_and_starts_again() {
    let mut pg = Postgres::start();
    assert_eq!(pg.psql("postgres", "SELECT 40 + 2"), "42");
    let url = pg.create_database("harness");
    assert!(url.ends_with("/harness"), "{url}");
    pg.psql("harness", "CREATE TABLE t(x int); INSERT INTO t VALUES (7)");
    pg.stop();
    assert!(!testkit::process::port_open(pg.port()));
    pg.start_again();
    assert_eq!(pg.psql("harness", "SELECT x FROM t"), "7");
}

#[test]
fn redis_answers_and_restarts() {
    let mut r = Redis::start();
    assert_eq!(r.cli(&["PING"]), "PONG");
    r.stop();
    assert!(!testkit::process::port_open(r.port()));
    r.start_again();
    assert_eq!(r.cli(&["SET", "k", "v"]), "OK");
}

#[test]
fn prometheus_scrapes_itself() {
    let port_cfg = "global:\n  scrape_interval: 1s\n";
    let prom = Prometheus::start(port_cfg, &[]);
    // With no scrape config there is no `up`, but the TSDB answers queries.
    let v = prom.query("vector(3)");
    assert_eq!(v[0]["value"][1], "3");
}

#[test]
fn alertmanager_accepts_alerts() {
    let cfg = "route:\n  receiver: none\nreceivers:\n  - name: none\n";
    let am = Alertmanager::start(cfg);
    am.post_alerts(&serde_json::json!([{"labels": {"alertname": "HarnessCheck"}}]));
    let (status, body) = testkit::http_get(&format!("{}/api/v2/alerts", am.url()));
    assert_eq!(status, 200);
    assert!(body.contains("HarnessCheck"), "{body}");
}

#[test]
fn smtp_accepts_plain_mail_and_stores_it() {
    let smtp = Smtp::start(SmtpOptions {
        tls: SmtpTls::None,
        auth: None,
    });
    // Speak SMTP by hand: the harness must not depend on the code under test.
    use std::io::{BufRead, BufReader, Write};
    let stream = std::net::TcpStream::connect(("127.0.0.1", smtp.port())).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut w = stream;
    let mut line = String::new();
    let mut expect = |reader: &mut BufReader<std::net::TcpStream>, code: &str| loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        assert!(line.starts_with(code), "expected {code}, got {line:?}");
        if line.as_bytes().get(3) == Some(&b' ') {
            break;
        }
    };
    expect(&mut reader, "220");
    for (cmd, code) in [
        ("EHLO test\r\n", "250"),
        ("MAIL FROM:<a@example.org>\r\n", "250"),
        ("RCPT TO:<b@example.org>\r\n", "250"),
        ("DATA\r\n", "354"),
        ("Subject: hi\r\n\r\nbody\r\n.\r\n", "250"),
    ] {
        w.write_all(cmd.as_bytes()).unwrap();
        expect(&mut reader, code);
    }
    let msgs = smtp.wait_for_messages(1, Duration::from_secs(10));
    let text = String::from_utf8_lossy(&msgs[0]);
    assert!(text.contains("Subject: hi"), "{text}");
    assert!(smtp.cert_pem().contains("BEGIN CERTIFICATE"));
}

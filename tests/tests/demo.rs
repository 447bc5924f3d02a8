//! The native demo keeps its promise: `scripts/demo` itself — not a copy of its steps — run as a
//! newcomer runs it, with the shipped rules and the deploy/ timings, pages a strategy's
//! drawdown to its desk robot catcher within minutes, and the router's status page lists it.
//! The same for the freqtrade bot the simulator writes in freqtrade's own tables (trading
//! source `ftbot`): its strategy's drawdown page, labelled with the source, arrives too.
//! Each wait has its own deadline and names the hop that did not happen: the exporter
//! publishing the strategy's drawdown, the drawdown crossing the rule's threshold, the rule
//! firing, the page reaching the catcher.

use std::time::{Duration, Instant};
use testkit::demo::Demo;
use testkit::wait_until;

/// Waits for `cond`; on the deadline, panics naming `what` with the demo's state.
fn wait_for(demo: &mut Demo, what: &str, timeout: Duration, mut cond: impl FnMut(&Demo) -> bool) {
    let ok = wait_until(timeout, || {
        demo.assert_running();
        cond(demo)
    });
    if !ok {
        panic!(
            "{what}: not within {timeout:?}.\n\
             alpha's drawdown in Prometheus: {}\n\
             the freqtrade bot's drawdown in Prometheus: {}\n\
             trading_source_up: {}\n\
             TradingStrategyDrawdown in Prometheus: {}\n\
             robot catcher: {:#?}\n\
             exporter log:\n{}\n\
             router log:\n{}\n\
             demo output:\n{}",
            demo.query("trading_drawdown_ratio{strategy=\"alpha\"}"),
            demo.query("trading_drawdown_ratio{source=\"ftbot\"}"),
            demo.query("trading_source_up"),
            demo.query("ALERTS{alertname=\"TradingStrategyDrawdown\"}"),
            demo.robot_messages(),
            demo.log_tail("exporter.log", 20),
            demo.log_tail("router.log", 20),
            demo.output()
        );
    }
}

fn non_empty(v: &serde_json::Value) -> bool {
    v.as_array().is_some_and(|a| !a.is_empty())
}

#[test]
fn the_demo_script_pages_a_strategy_drawdown_to_its_robot_catcher() {
    let started = Instant::now();
    // initdb, PostgreSQL, Redis, migrate, the exporter, the router, Prometheus, Alertmanager,
    // each waited for by the script: seconds, a minute on a busy 2-core machine.
    let mut demo = Demo::start(&[], Duration::from_secs(180));
    let up = started.elapsed();
    assert_eq!(demo.var("DRAWDOWN_STRATEGY"), "alpha");

    // The exporter publishes the simulator's strategies (the demo once started it without
    // TRADING_DATABASE_URL: no trading series at all). First scrape: within 15 s.
    wait_for(
        &mut demo,
        "Prometheus has no trading_drawdown_ratio for alpha (does the exporter publish the trading families?)",
        Duration::from_secs(90),
        |d| non_empty(&d.query("trading_drawdown_ratio{strategy=\"alpha\"}")),
    );
    let strategies = demo.query("count(trading_drawdown_ratio{source=\"\"})");
    assert_eq!(
        strategies[0]["value"][1], "4",
        "the simulator's four strategies are published: {strategies}"
    );
    assert_eq!(demo.var("FREQTRADE_SOURCE"), "ftbot");
    assert_eq!(demo.var("FREQTRADE_STRATEGY"), "SampleStrategy");

    // 1 % per 2 s snapshot: -15 % after about 17 snapshots.
    wait_for(
        &mut demo,
        "alpha's drawdown did not fall below the rule's -15 % in Prometheus",
        Duration::from_secs(150),
        |d| non_empty(&d.query("trading_drawdown_ratio{strategy=\"alpha\"} < -0.15")),
    );
    let crossed = started.elapsed();

    // for: 1m, evaluated every 15 s on samples scraped every 15 s.
    wait_for(
        &mut demo,
        "TradingStrategyDrawdown for alpha did not fire in Prometheus",
        Duration::from_secs(150),
        |d| {
            non_empty(&d.query(
                "ALERTS{alertname=\"TradingStrategyDrawdown\",strategy=\"alpha\",alertstate=\"firing\"}",
            ))
        },
    );
    let fired = started.elapsed();

    // Alertmanager's critical group_wait is 10 s; the router pages desk-dingtalk at step 0.
    wait_for(
        &mut demo,
        "no TradingStrategyDrawdown page for alpha reached the desk robot catcher",
        Duration::from_secs(90),
        |d| {
            d.robot_messages().iter().any(|m| {
                m.robot == "/dingtalk/desk"
                    && m.text.contains("TradingStrategyDrawdown")
                    && m.text.contains("Strategy alpha is in a")
            })
        },
    );
    let paged = started.elapsed();

    // The freqtrade bot: every trade loses about 2 % of its equity, a trade closes every
    // second or two, so it crossed -15 % long before alpha; its page may already be there.
    wait_for(
        &mut demo,
        "TradingStrategyDrawdown for the freqtrade bot (source ftbot, strategy SampleStrategy) did not fire in Prometheus",
        Duration::from_secs(150),
        |d| {
            non_empty(&d.query(
                "ALERTS{alertname=\"TradingStrategyDrawdown\",source=\"ftbot\",strategy=\"SampleStrategy\",alertstate=\"firing\"}",
            ))
        },
    );
    wait_for(
        &mut demo,
        "no TradingStrategyDrawdown page for the freqtrade bot (strategy SampleStrategy) reached the desk robot catcher",
        Duration::from_secs(90),
        |d| {
            d.robot_messages().iter().any(|m| {
                m.robot == "/dingtalk/desk"
                    && m.text.contains("TradingStrategyDrawdown")
                    && m.text.contains("Strategy SampleStrategy is in a")
            })
        },
    );
    let ft_paged = started.elapsed();

    // What the newcomer looks at: the router's status page lists the page, not "Nothing is
    // firing".
    let (status, page) = demo.router_page();
    assert_eq!(
        status, 200,
        "the router's status page with the demo's login"
    );
    assert!(
        page.contains("<b>TradingStrategyDrawdown</b>") && page.contains("Strategy alpha is in a"),
        "the status page lists alpha's drawdown:\n{page}"
    );
    assert!(!page.contains("Nothing is firing"), "{page}");

    eprintln!(
        "scripts/demo: every service up {:.1} s, alpha below -15 % {:.1} s, \
         TradingStrategyDrawdown firing {:.1} s, page at the desk robot catcher {:.1} s, \
         the freqtrade bot's page {:.1} s after start",
        up.as_secs_f64(),
        crossed.as_secs_f64(),
        fired.as_secs_f64(),
        paged.as_secs_f64(),
        ft_paged.as_secs_f64()
    );

    // Stopped as `kill PID` stops it, the demo takes everything down with it, PostgreSQL too.
    let exit = demo.stop(Duration::from_secs(60));
    assert_eq!(
        exit.and_then(|s| s.code()),
        Some(143),
        "scripts/demo exits 143 on SIGTERM after its clean-up:\n{}",
        demo.output()
    );
    assert!(
        !demo.postgres_running(),
        "scripts/demo stopped its PostgreSQL:\n{}",
        demo.output()
    );
}

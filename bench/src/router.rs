//! The router started in-process for a benchmark, the way its binary starts: the config
//! loaded (a file, or zero-config) with the environment given, a free loopback port, `serve`,
//! and a wait until `/readyz` says the store answers, so no figure includes the start.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use quantwatch_alert_router::app::{RunError, config, serve};

/// A router serving on `base` until [`Router::stop`].
pub struct Router {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), RunError>>,
}

/// Longest wait for `/readyz`: migrations of a large store run before it answers.
const READY_WITHIN: Duration = Duration::from_secs(60);

/// Start the router with the config file `config` (zero-config with `None`) and `env` as its
/// environment (`ROUTER_DATABASE_URL`, tokens, ...), and wait until it is ready.
pub async fn start(config: Option<&Path>, env: &[(&str, &str)]) -> anyhow::Result<Router> {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let cfg = config::load(config, &env).map_err(|e| anyhow::anyhow!("{e}"))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(
        cfg,
        None,
        listener,
        async move {
            let _ = stopped.await;
        },
        None,
    ));
    let client = reqwest::Client::new();
    let deadline = Instant::now() + READY_WITHIN;
    loop {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status().is_success()
        {
            break;
        }
        if task.is_finished() {
            let out = task.await.context("router task")?;
            anyhow::bail!("the router stopped before it was ready: {out:?}");
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the router on {base} was not ready within {} s",
            READY_WITHIN.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(Router { base, stop, task })
}

impl Router {
    /// Shut down gracefully and return how the router ended.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task
            .await
            .context("router task")?
            .map_err(|e| anyhow::anyhow!("{e}"))
    }
}

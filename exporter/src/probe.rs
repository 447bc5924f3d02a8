//! Multi-target scraping: `GET /probe?target=T[&auth_module=M]` (postgres_exporter's
//! convention) and `GET /scrape?target=T` (redis_exporter's), so one exporter serves a whole
//! fleet's PostgreSQL and Redis servers.
//!
//! A target is served only when it is listed in `probe.targets` exactly as Prometheus sends
//! it; anything else answers 400 with a JSON reason before any connection is attempted, so
//! the endpoint can never be used to reach arbitrary hosts. Credentials never travel in the
//! URL: `auth_module` names a set in `probe.auth_modules`. `redis://` and `rediss://` targets
//! are Redis, everything else PostgreSQL (`host:port/dbname` or `postgres://host:port/db`).
//! Each (target, auth module) keeps its own collector — its own pool or multiplexed
//! connection and its caches — built on first use.

use crate::collectors::postgres::PostgresCollector;
use crate::collectors::postgres::user_queries::UserQueries;
use crate::collectors::redis::RedisCollector;
use crate::collectors::{Collector, ScrapeContext};
use crate::config::{Config, ProbeConfig};
use crate::metrics::encode;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sqlx::postgres::PgConnectOptions;
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The probe-able targets and the collectors built for them so far.
pub struct Probes {
    config: ProbeConfig,
    postgres: crate::config::PostgresConfig,
    redis: crate::config::RedisConfig,
    user: Arc<UserQueries>,
    built: Mutex<HashMap<(String, String), Arc<dyn Collector>>>,
}

#[derive(Debug, serde::Deserialize)]
pub struct Params {
    target: Option<String>,
    auth_module: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("the target parameter is missing")]
    MissingTarget,
    #[error("target {0:?} is not in probe.targets")]
    NotAllowed(String),
    #[error("auth_module {0:?} is not in probe.auth_modules")]
    UnknownAuthModule(String),
    #[error("target {0:?} is not a usable address: {1}")]
    BadTarget(String, String),
}

fn is_redis(target: &str) -> bool {
    target.starts_with("redis://") || target.starts_with("rediss://")
}

impl Probes {
    pub fn new(config: &Config) -> Probes {
        let user = Arc::new(
            config
                .postgres
                .extend_query_path
                .as_deref()
                .filter(|_| config.probe.targets.iter().any(|t| !is_redis(t)))
                .map(UserQueries::load)
                .unwrap_or_default(),
        );
        Probes {
            config: config.probe.clone(),
            postgres: config.postgres.clone(),
            redis: config.redis.clone(),
            user,
            built: Mutex::new(HashMap::new()),
        }
    }

    /// The collector for `target` with `auth_module`, after checking both are configured.
    pub fn collector(
        &self,
        target: &str,
        auth_module: Option<&str>,
    ) -> Result<Arc<dyn Collector>, ProbeError> {
        if !self.config.targets.iter().any(|t| t == target) {
            return Err(ProbeError::NotAllowed(target.to_string()));
        }
        let auth = match auth_module {
            Some(m) => Some(
                self.config
                    .auth_modules
                    .get(m)
                    .ok_or_else(|| ProbeError::UnknownAuthModule(m.to_string()))?,
            ),
            None => None,
        };
        let key = (target.to_string(), auth_module.unwrap_or("").to_string());
        let mut built = self.built.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = built.get(&key) {
            return Ok(c.clone());
        }
        let bad = |e: String| ProbeError::BadTarget(target.to_string(), e);
        let c: Arc<dyn Collector> = if is_redis(target) {
            use redis::IntoConnectionInfo;
            let mut info = target
                .into_connection_info()
                .map_err(|e| bad(e.to_string()))?;
            if let Some(a) = auth {
                let mut rs = info.redis_settings().clone();
                if !a.username.is_empty() {
                    rs = rs.set_username(&a.username);
                }
                if let Some(p) = &a.password {
                    rs = rs.set_password(p.expose());
                }
                info = info.set_redis_settings(rs);
            }
            Arc::new(
                RedisCollector::new(info, self.redis.connect_timeout)
                    .map_err(|e| bad(e.to_string()))?,
            )
        } else {
            let url = if target.starts_with("postgres://") || target.starts_with("postgresql://") {
                target.to_string()
            } else {
                format!("postgres://{target}")
            };
            let mut opts = PgConnectOptions::from_str(&url).map_err(|e| bad(e.to_string()))?;
            if let Some(a) = auth {
                if !a.username.is_empty() {
                    opts = opts.username(&a.username);
                }
                if let Some(p) = &a.password {
                    opts = opts.password(p.expose());
                }
            }
            Arc::new(PostgresCollector::with_options(
                opts,
                &self.postgres,
                self.user.clone(),
            ))
        };
        built.insert(key, c.clone());
        Ok(c)
    }
}

fn bad_request(e: ProbeError) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(serde_json::json!({"status": "error", "error": e.to_string()})),
    )
        .into_response()
}

/// `/probe` and `/scrape`: that one target's families, under the scrape deadline.
pub async fn handler(
    State(state): State<crate::web::AppState>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Response {
    let Some(target) = params.target.as_deref().filter(|t| !t.is_empty()) else {
        return bad_request(ProbeError::MissingTarget);
    };
    let live = state.live.get();
    let collector = match live.probes.collector(target, params.auth_module.as_deref()) {
        Ok(c) => c,
        Err(e) => return bad_request(e),
    };
    let budget: Duration = live.scraper.budget(
        headers
            .get("x-prometheus-scrape-timeout-seconds")
            .and_then(|v| v.to_str().ok()),
    );
    let fams = match tokio::time::timeout(budget, collector.collect(ScrapeContext { budget })).await
    {
        Ok(Ok(f)) => f,
        Ok(Err(e)) => {
            tracing::warn!(target = %target, error = %e, "probe failed");
            collector.down()
        }
        Err(_) => {
            tracing::warn!(target = %target, "probe timed out");
            collector.down()
        }
    };
    (
        [(header::CONTENT_TYPE, crate::metrics::TEXT_FORMAT)],
        encode(&fams.0),
    )
        .into_response()
}

//! What changes rarely and costs the most: settings, database sizes, the server version and
//! which optional sources exist. Read in one statement, at most every
//! `postgres.database_size_refresh` (pg_database_size() stats every file of every database:
//! milliseconds, where the rest of a scrape takes microseconds), and again after a reconnect.

use super::json;
use super::settings;
use serde_json::Value;

pub fn sql() -> String {
    format!(
        "SELECT json_build_object(\
           'settings', ({settings}), \
           'sizes', (SELECT json_agg(json_build_array(datname, pg_database_size(datname)::float8) \
                     ORDER BY datname) FROM pg_database \
                     WHERE has_database_privilege(datname, 'CONNECT') OR datname = 'template0'), \
           'version', version(), \
           'server_version', current_setting('server_version'), \
           'server_version_num', current_setting('server_version_num')::int, \
           'statements', (SELECT quote_ident(n.nspname) FROM pg_extension e \
                          JOIN pg_namespace n ON n.oid = e.extnamespace \
                          WHERE e.extname = 'pg_stat_statements'), \
           'waldir', has_function_privilege('pg_ls_waldir()', 'EXECUTE')\
         )::text",
        settings = settings::SQL
    )
}

#[derive(Clone, Debug, Default)]
pub struct Catalog {
    pub settings: Vec<settings::Row>,
    pub sizes: Vec<(String, f64)>,
    /// `version()`, the `version` label of `pg_static`.
    pub version: String,
    /// `15.18.0`: the `short_version` label of `pg_static` (postgres_exporter's semver form).
    pub short_version: String,
    pub version_num: i64,
    /// The (quoted) schema pg_stat_statements is installed in, in the database we connect
    /// to; the statement names it, so a schema outside `search_path` still works.
    pub statements_schema: Option<String>,
    /// We may call pg_ls_waldir() (superuser or pg_monitor).
    pub can_list_wal: bool,
}

/// `15.18 (Debian 15.18-0+deb12u1)` → `15.18.0`.
pub fn short_version(server_version: &str) -> String {
    let first = server_version.split_whitespace().next().unwrap_or("");
    let mut parts: Vec<String> = first
        .split('.')
        .map(|p| {
            p.chars()
                .take_while(|c| c.is_ascii_digit())
                .collect::<String>()
        })
        .filter(|p| !p.is_empty())
        .collect();
    while parts.len() < 3 {
        parts.push("0".into());
    }
    parts.join(".")
}

impl Catalog {
    pub fn parse(doc: &Value) -> Catalog {
        let mut settings = Vec::new();
        for r in json::rows(doc.get("settings")) {
            let s = |i: usize| json::label(r.get(i));
            settings.push((s(0), s(1), s(2), s(3), s(4)));
        }
        let sizes = json::rows(doc.get("sizes"))
            .iter()
            .map(|r| (json::label(r.get(0)), json::number_or_zero(r.get(1))))
            .collect();
        Catalog {
            settings,
            sizes,
            version: json::label(doc.get("version")),
            short_version: short_version(&json::label(doc.get("server_version"))),
            version_num: doc
                .get("server_version_num")
                .and_then(Value::as_i64)
                .unwrap_or(0),
            statements_schema: doc
                .get("statements")
                .and_then(Value::as_str)
                .map(str::to_string),
            can_list_wal: doc.get("waldir") == Some(&Value::Bool(true)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_version_is_semver_like_postgres_exporter() {
        assert_eq!(short_version("15.18 (Debian 15.18-0+deb12u1)"), "15.18.0");
        assert_eq!(short_version("16.1"), "16.1.0");
        assert_eq!(short_version("9.6.24"), "9.6.24");
        assert_eq!(short_version("17beta1"), "17.0.0");
    }
}

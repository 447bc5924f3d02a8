//! The one statement of a scrape and the families it becomes.
//!
//! Everything that moves between scrapes — activity, locks, bgwriter, archiver,
//! pg_stat_database (+ conflicts), replication, slots, long-running transactions, user tables,
//! their I/O, WAL files and pg_stat_statements — comes back as one JSON document from one
//! statement (see `json.rs` for why). The parts that need an extension or a privilege are in
//! the statement only when the catalog says they will work, so a missing extension or a
//! restricted role never fails the whole scrape.

use super::catalog::Catalog;
use super::json::{label, number, number_or_zero, rows};
use crate::metrics::{Families, Family};
use serde_json::Value;

const ACTIVITY: &str = "(SELECT json_agg(json_build_array(pg_database.datname, tmp.state, \
    COALESCE(count, 0), COALESCE(max_tx_duration, 0)) ORDER BY pg_database.datname, tmp.state) \
    FROM (VALUES ('active'), ('idle'), ('idle in transaction'), ('idle in transaction (aborted)'), \
                 ('fastpath function call'), ('disabled')) AS tmp(state) \
    CROSS JOIN pg_database \
    LEFT JOIN (SELECT datname, state, count(*) AS count, \
                      MAX(EXTRACT(EPOCH FROM now() - xact_start))::float8 AS max_tx_duration \
               FROM pg_stat_activity GROUP BY datname, state) AS tmp2 \
    ON tmp.state = tmp2.state AND pg_database.datname = tmp2.datname)";

const LOCKS: &str = "(SELECT json_agg(json_build_array(pg_database.datname, tmp.mode, \
    COALESCE(count, 0)) ORDER BY pg_database.datname, tmp.mode) \
    FROM (VALUES ('accesssharelock'), ('rowsharelock'), ('rowexclusivelock'), \
                 ('shareupdateexclusivelock'), ('sharelock'), ('sharerowexclusivelock'), \
                 ('exclusivelock'), ('accessexclusivelock'), ('sireadlock')) AS tmp(mode) \
    CROSS JOIN pg_database \
    LEFT JOIN (SELECT database, lower(mode) AS mode, count(*) AS count FROM pg_locks \
               WHERE database IS NOT NULL GROUP BY database, lower(mode)) AS tmp2 \
    ON tmp.mode = tmp2.mode AND pg_database.oid = tmp2.database)";

const TABLES: &str = "(SELECT json_agg(json_build_array(current_database(), n.nspname, \
    c.relname, pg_stat_get_numscans(c.oid), pg_stat_get_tuples_returned(c.oid), ix.scans, \
    ix.fetched + pg_stat_get_tuples_fetched(c.oid), pg_stat_get_tuples_inserted(c.oid), \
    pg_stat_get_tuples_updated(c.oid), pg_stat_get_tuples_deleted(c.oid), \
    pg_stat_get_tuples_hot_updated(c.oid), pg_stat_get_live_tuples(c.oid), \
    pg_stat_get_dead_tuples(c.oid), pg_stat_get_mod_since_analyze(c.oid), \
    COALESCE(EXTRACT(EPOCH FROM pg_stat_get_last_vacuum_time(c.oid)), 0), \
    COALESCE(EXTRACT(EPOCH FROM pg_stat_get_last_autovacuum_time(c.oid)), 0), \
    COALESCE(EXTRACT(EPOCH FROM pg_stat_get_last_analyze_time(c.oid)), 0), \
    COALESCE(EXTRACT(EPOCH FROM pg_stat_get_last_autoanalyze_time(c.oid)), 0), \
    pg_stat_get_vacuum_count(c.oid), pg_stat_get_autovacuum_count(c.oid), \
    pg_stat_get_analyze_count(c.oid), pg_stat_get_autoanalyze_count(c.oid), \
    pg_indexes_size(c.oid), pg_table_size(c.oid), c.relkind <> 'p', \
    pg_stat_get_blocks_fetched(c.oid) - pg_stat_get_blocks_hit(c.oid), \
    pg_stat_get_blocks_hit(c.oid), ix.blks_read, ix.blks_hit, \
    CASE WHEN c.reltoastrelid <> 0 THEN pg_stat_get_blocks_fetched(c.reltoastrelid) \
         - pg_stat_get_blocks_hit(c.reltoastrelid) END, \
    CASE WHEN c.reltoastrelid <> 0 THEN pg_stat_get_blocks_hit(c.reltoastrelid) END, \
    tix.blks_read, tix.blks_hit)) \
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
    LEFT JOIN LATERAL (SELECT sum(pg_stat_get_numscans(indexrelid)) AS scans, \
        sum(pg_stat_get_tuples_fetched(indexrelid)) AS fetched, \
        sum(pg_stat_get_blocks_fetched(indexrelid) - pg_stat_get_blocks_hit(indexrelid)) AS blks_read, \
        sum(pg_stat_get_blocks_hit(indexrelid)) AS blks_hit \
        FROM pg_index WHERE indrelid = c.oid) ix ON true \
    LEFT JOIN LATERAL (SELECT \
        sum(pg_stat_get_blocks_fetched(indexrelid) - pg_stat_get_blocks_hit(indexrelid)) AS blks_read, \
        sum(pg_stat_get_blocks_hit(indexrelid)) AS blks_hit \
        FROM pg_index WHERE c.reltoastrelid <> 0 AND indrelid = c.reltoastrelid) tix ON true \
    WHERE c.relkind IN ('r', 't', 'm', 'p') \
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast')";

/// The current WAL position on a primary, the last replayed one on a standby (where
/// pg_current_wal_lsn() raises an error).
const WAL_POSITION: &str =
    "CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END";

/// pg_stat_user_tables columns in the order the statement returns them after
/// (datname, schemaname, relname): (metric suffix, counter, help).
const USER_TABLES: [(&str, bool, &str); 21] = [
    (
        "seq_scan",
        true,
        "Number of sequential scans initiated on this table",
    ),
    (
        "seq_tup_read",
        true,
        "Number of live rows fetched by sequential scans",
    ),
    (
        "idx_scan",
        true,
        "Number of index scans initiated on this table",
    ),
    (
        "idx_tup_fetch",
        true,
        "Number of live rows fetched by index scans",
    ),
    ("n_tup_ins", true, "Number of rows inserted"),
    ("n_tup_upd", true, "Number of rows updated"),
    ("n_tup_del", true, "Number of rows deleted"),
    (
        "n_tup_hot_upd",
        true,
        "Number of rows HOT updated (i.e., with no separate index update required)",
    ),
    ("n_live_tup", false, "Estimated number of live rows"),
    ("n_dead_tup", false, "Estimated number of dead rows"),
    (
        "n_mod_since_analyze",
        false,
        "Estimated number of rows changed since last analyze",
    ),
    (
        "last_vacuum",
        false,
        "Last time at which this table was manually vacuumed (not counting VACUUM FULL)",
    ),
    (
        "last_autovacuum",
        false,
        "Last time at which this table was vacuumed by the autovacuum daemon",
    ),
    (
        "last_analyze",
        false,
        "Last time at which this table was manually analyzed",
    ),
    (
        "last_autoanalyze",
        false,
        "Last time at which this table was analyzed by the autovacuum daemon",
    ),
    (
        "vacuum_count",
        true,
        "Number of times this table has been manually vacuumed (not counting VACUUM FULL)",
    ),
    (
        "autovacuum_count",
        true,
        "Number of times this table has been vacuumed by the autovacuum daemon",
    ),
    (
        "analyze_count",
        true,
        "Number of times this table has been manually analyzed",
    ),
    (
        "autoanalyze_count",
        true,
        "Number of times this table has been analyzed by the autovacuum daemon",
    ),
    (
        "index_size_bytes",
        false,
        "Total disk space used by indexes on this table, in bytes",
    ),
    (
        "table_size_bytes",
        false,
        "Total disk space used by this table, in bytes",
    ),
];

const STATIO: [(&str, &str); 8] = [
    (
        "heap_blocks_read",
        "Number of disk blocks read from this table",
    ),
    ("heap_blocks_hit", "Number of buffer hits in this table"),
    (
        "idx_blocks_read",
        "Number of disk blocks read from all indexes on this table",
    ),
    (
        "idx_blocks_hit",
        "Number of buffer hits in all indexes on this table",
    ),
    (
        "toast_blocks_read",
        "Number of disk blocks read from this table's TOAST table (if any)",
    ),
    (
        "toast_blocks_hit",
        "Number of buffer hits in this table's TOAST table (if any)",
    ),
    (
        "tidx_blocks_read",
        "Number of disk blocks read from this table's TOAST table indexes (if any)",
    ),
    (
        "tidx_blocks_hit",
        "Number of buffer hits in this table's TOAST table indexes (if any)",
    ),
];

const STATEMENTS: [(&str, &str); 5] = [
    ("calls_total", "Number of times executed"),
    (
        "seconds_total",
        "Total time spent in the statement, in seconds",
    ),
    (
        "rows_total",
        "Total number of rows retrieved or affected by the statement",
    ),
    (
        "block_read_seconds_total",
        "Total time the statement spent reading blocks, in seconds",
    ),
    (
        "block_write_seconds_total",
        "Total time the statement spent writing blocks, in seconds",
    ),
];

/// How many pg_stat_statements entries (by total time) are published, as upstream's default.
const STATEMENTS_LIMIT: usize = 100;

/// The statement for a server described by `cat`.
pub fn sql(cat: &Catalog) -> String {
    let mut parts: Vec<(&str, String)> = vec![
        (
            "start_time",
            "EXTRACT(EPOCH FROM pg_postmaster_start_time())::float8".into(),
        ),
        (
            "lag",
            "(CASE WHEN pg_is_in_recovery() THEN COALESCE(GREATEST(0, EXTRACT(EPOCH FROM \
             (now() - pg_last_xact_replay_timestamp()))), 0) ELSE 0 END)::float8"
                .into(),
        ),
        ("activity", ACTIVITY.into()),
        ("locks", LOCKS.into()),
        (
            "bgwriter",
            "(SELECT row_to_json(b) FROM pg_stat_bgwriter b)".into(),
        ),
        (
            "archiver",
            "(SELECT json_build_object('archived_count', archived_count, 'failed_count', \
             failed_count, 'last_archive_age', EXTRACT(EPOCH FROM now() - last_archived_time)) \
             FROM pg_stat_archiver)"
                .into(),
        ),
        (
            "database",
            "(SELECT json_agg(d) FROM pg_stat_database d)".into(),
        ),
        (
            "conflicts",
            "(SELECT json_agg(c) FROM pg_stat_database_conflicts c)".into(),
        ),
        (
            "replication",
            "(SELECT json_agg(to_jsonb(r) || jsonb_build_object(\
             'pg_current_wal_lsn_bytes', CASE WHEN pg_is_in_recovery() THEN NULL \
               ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8 END, \
             'pg_wal_lsn_diff', CASE WHEN pg_is_in_recovery() THEN NULL \
               ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::float8 END)) \
             FROM pg_stat_replication r)"
                .into(),
        ),
        (
            "slots",
            format!(
                "(SELECT json_agg(json_build_array(slot_name, database, active, \
                 pg_wal_lsn_diff({WAL_POSITION}, restart_lsn)::float8)) FROM pg_replication_slots)"
            ),
        ),
        (
            "long_tx",
            "(SELECT json_build_array(count(*), \
             COALESCE(max(EXTRACT(EPOCH FROM clock_timestamp() - xact_start)), 0)) \
             FROM pg_stat_activity WHERE state IS DISTINCT FROM 'idle' \
             AND query NOT LIKE 'autovacuum:%' AND xact_start IS NOT NULL \
             AND pid <> pg_backend_pid())"
                .into(),
        ),
        // pg_stat_user_tables and pg_statio_user_tables in one pass over pg_class (each view
        // scans it, with pg_index, on its own): the views' own definitions, spelled out with
        // the pg_stat_get_* functions; indexes are summed per table through pg_index's
        // indrelid index. Columns 3..24 are the user-tables row, 24 says whether the
        // relation has a statio row (the view leaves partitioned tables out), 25..33 statio.
        ("tables", TABLES.into()),
    ];
    if cat.can_list_wal {
        parts.push((
            "wal",
            "(SELECT json_build_array(count(*), COALESCE(sum(size), 0)) FROM pg_ls_waldir() \
             WHERE name ~ '^[0-9A-F]{24}$')"
                .into(),
        ));
    }
    if let Some(schema) = cat.statements_schema.as_deref()
        && cat.version_num >= 130000
    {
        let (read, write) = if cat.version_num >= 170000 {
            ("shared_blk_read_time", "shared_blk_write_time")
        } else {
            ("blk_read_time", "blk_write_time")
        };
        parts.push((
            "statements",
            format!(
                "(SELECT json_agg(json_build_array(u, d, q, c, t, r, br, bw)) FROM (\
                 SELECT pg_get_userbyid(s.userid) AS u, pg_database.datname AS d, \
                 s.queryid::text AS q, s.calls AS c, s.total_exec_time / 1000.0 AS t, \
                 s.rows AS r, s.{read} / 1000.0 AS br, s.{write} / 1000.0 AS bw \
                 FROM {schema}.pg_stat_statements(false) s \
                 JOIN pg_database ON pg_database.oid = s.dbid \
                 ORDER BY s.total_exec_time DESC LIMIT {STATEMENTS_LIMIT}) top)"
            ),
        ));
    }
    let body: Vec<String> = parts.iter().map(|(k, v)| format!("'{k}', {v}")).collect();
    format!("SELECT json_build_object({})::text", body.join(", "))
}

fn labels3(r: &[String; 3]) -> [(&'static str, &str); 3] {
    [
        ("datname", r[0].as_str()),
        ("schemaname", r[1].as_str()),
        ("relname", r[2].as_str()),
    ]
}

/// Publishes the columns of a view row the way postgres_exporter's column map does: `labels`
/// become labels, `typed` columns get their type and help, `discard` columns are dropped, and
/// any other column with a numeric value becomes an untyped family ("Unknown metric from").
struct ViewMap {
    namespace: &'static str,
    labels: &'static [&'static str],
    typed: &'static [(&'static str, bool, &'static str)],
    discard: &'static [&'static str],
}

impl ViewMap {
    fn families(&self, rows: &[Value], fams: &mut Families) {
        let mut out: Vec<(String, Family)> = Vec::new();
        for row in rows {
            let Some(obj) = row.as_object() else { continue };
            let label_values: Vec<String> =
                self.labels.iter().map(|l| label(obj.get(*l))).collect();
            let labels: Vec<(&str, &str)> = self
                .labels
                .iter()
                .zip(&label_values)
                .map(|(k, v)| (*k, v.as_str()))
                .collect();
            for (col, v) in obj {
                if self.labels.contains(&col.as_str()) || self.discard.contains(&col.as_str()) {
                    continue;
                }
                let typed = self.typed.iter().find(|(c, _, _)| c == col);
                let Some(x) = number(v) else { continue };
                let name = format!("{}_{}", self.namespace, col);
                let fam = match out.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, f)) => f,
                    None => {
                        let f = match typed {
                            Some((_, true, help)) => Family::counter(&name, help),
                            Some((_, false, help)) => Family::gauge(&name, help),
                            None => Family::untyped(
                                &name,
                                &format!("Unknown metric from {}", self.namespace),
                            ),
                        };
                        out.push((name, f));
                        &mut out.last_mut().expect("just pushed").1
                    }
                };
                fam.add(&labels, x);
            }
        }
        for (_, f) in out {
            fams.push(f);
        }
    }
}

const STAT_DATABASE: ViewMap = ViewMap {
    namespace: "pg_stat_database",
    labels: &["datid", "datname"],
    typed: &[
        (
            "numbackends",
            false,
            "Number of backends currently connected to this database. This is the only column in this view that returns a value reflecting current state; all other columns return the accumulated values since the last reset.",
        ),
        (
            "xact_commit",
            true,
            "Number of transactions in this database that have been committed",
        ),
        (
            "xact_rollback",
            true,
            "Number of transactions in this database that have been rolled back",
        ),
        (
            "blks_read",
            true,
            "Number of disk blocks read in this database",
        ),
        (
            "blks_hit",
            true,
            "Number of times disk blocks were found already in the buffer cache, so that a read was not necessary (this only includes hits in the PostgreSQL buffer cache, not the operating system's file system cache)",
        ),
        (
            "tup_returned",
            true,
            "Number of rows returned by queries in this database",
        ),
        (
            "tup_fetched",
            true,
            "Number of rows fetched by queries in this database",
        ),
        (
            "tup_inserted",
            true,
            "Number of rows inserted by queries in this database",
        ),
        (
            "tup_updated",
            true,
            "Number of rows updated by queries in this database",
        ),
        (
            "tup_deleted",
            true,
            "Number of rows deleted by queries in this database",
        ),
        (
            "conflicts",
            true,
            "Number of queries canceled due to conflicts with recovery in this database. (Conflicts occur only on standby servers; see pg_stat_database_conflicts for details.)",
        ),
        (
            "temp_files",
            true,
            "Number of temporary files created by queries in this database. All temporary files are counted, regardless of why the temporary file was created (e.g., sorting or hashing), and regardless of the log_temp_files setting.",
        ),
        (
            "temp_bytes",
            true,
            "Total amount of data written to temporary files by queries in this database. All temporary files are counted, regardless of why the temporary file was created, and regardless of the log_temp_files setting.",
        ),
        (
            "deadlocks",
            true,
            "Number of deadlocks detected in this database",
        ),
        (
            "blk_read_time",
            true,
            "Time spent reading data file blocks by backends in this database, in milliseconds",
        ),
        (
            "blk_write_time",
            true,
            "Time spent writing data file blocks by backends in this database, in milliseconds",
        ),
        (
            "stats_reset",
            true,
            "Time at which these statistics were last reset",
        ),
    ],
    discard: &[],
};

const STAT_DATABASE_CONFLICTS: ViewMap = ViewMap {
    namespace: "pg_stat_database_conflicts",
    labels: &["datid", "datname"],
    typed: &[
        (
            "confl_tablespace",
            true,
            "Number of queries in this database that have been canceled due to dropped tablespaces",
        ),
        (
            "confl_lock",
            true,
            "Number of queries in this database that have been canceled due to lock timeouts",
        ),
        (
            "confl_snapshot",
            true,
            "Number of queries in this database that have been canceled due to old snapshots",
        ),
        (
            "confl_bufferpin",
            true,
            "Number of queries in this database that have been canceled due to pinned buffers",
        ),
        (
            "confl_deadlock",
            true,
            "Number of queries in this database that have been canceled due to deadlocks",
        ),
    ],
    discard: &[],
};

const STAT_REPLICATION: ViewMap = ViewMap {
    namespace: "pg_stat_replication",
    labels: &["application_name", "client_addr", "state"],
    typed: &[
        ("pg_current_wal_lsn_bytes", false, "WAL position in bytes"),
        (
            "pg_wal_lsn_diff",
            false,
            "Lag in bytes between master and slave",
        ),
    ],
    discard: &[
        "pid",
        "usesysid",
        "usename",
        "client_hostname",
        "client_port",
        "backend_start",
        "backend_xmin",
        "sent_lsn",
        "write_lsn",
        "flush_lsn",
        "replay_lsn",
        "sync_priority",
        "sync_state",
        "write_lag",
        "flush_lag",
        "replay_lag",
        "slot_name",
    ],
};

const BGWRITER: [(&str, &str); 11] = [
    (
        "checkpoints_timed",
        "Number of scheduled checkpoints that have been performed",
    ),
    (
        "checkpoints_req",
        "Number of requested checkpoints that have been performed",
    ),
    (
        "checkpoint_write_time",
        "Total amount of time that has been spent in the portion of checkpoint processing where files are written to disk, in milliseconds",
    ),
    (
        "checkpoint_sync_time",
        "Total amount of time that has been spent in the portion of checkpoint processing where files are synchronized to disk, in milliseconds",
    ),
    (
        "buffers_checkpoint",
        "Number of buffers written during checkpoints",
    ),
    (
        "buffers_clean",
        "Number of buffers written by the background writer",
    ),
    (
        "maxwritten_clean",
        "Number of times the background writer stopped a cleaning scan because it had written too many buffers",
    ),
    (
        "buffers_backend",
        "Number of buffers written directly by a backend",
    ),
    (
        "buffers_backend_fsync",
        "Number of times a backend had to execute its own fsync call (normally the background writer handles those even when the backend does its own write)",
    ),
    ("buffers_alloc", "Number of buffers allocated"),
    (
        "stats_reset",
        "Time at which these statistics were last reset",
    ),
];

/// Every family of the live document.
pub fn families(doc: &Value, fams: &mut Families) {
    fams.gauge(
        "pg_postmaster_start_time_seconds",
        "Time at which postmaster started",
        number_or_zero(doc.get("start_time")),
    );
    fams.gauge(
        "pg_replication_lag_seconds",
        "Replication lag behind master in seconds",
        number_or_zero(doc.get("lag")),
    );

    let mut count = Family::gauge(
        "pg_stat_activity_count",
        "number of connections in this state",
    );
    let mut max_tx = Family::gauge(
        "pg_stat_activity_max_tx_duration",
        "max duration in seconds any active transaction has been running",
    );
    for r in rows(doc.get("activity")) {
        let (d, s) = (label(r.get(0)), label(r.get(1)));
        let l = [("datname", d.as_str()), ("state", s.as_str())];
        count.add(&l, number_or_zero(r.get(2)));
        max_tx.add(&l, number_or_zero(r.get(3)));
    }
    fams.push(count);
    fams.push(max_tx);

    let mut locks = Family::gauge("pg_locks_count", "Number of locks");
    for r in rows(doc.get("locks")) {
        let (d, m) = (label(r.get(0)), label(r.get(1)));
        locks.add(&[("datname", &d), ("mode", &m)], number_or_zero(r.get(2)));
    }
    fams.push(locks);

    if let Some(b) = doc.get("bgwriter").and_then(Value::as_object) {
        for (col, help) in BGWRITER {
            if let Some(v) = b.get(col) {
                // postgres_exporter reads these as integers/timestamps: NULL reads as 0.
                fams.counter(
                    &format!("pg_stat_bgwriter_{col}_total"),
                    help,
                    number_or_zero(Some(v)),
                );
            }
        }
    }

    if let Some(a) = doc.get("archiver").and_then(Value::as_object) {
        fams.counter(
            "pg_stat_archiver_archived_count",
            "Number of WAL files that have been successfully archived",
            number_or_zero(a.get("archived_count")),
        );
        fams.counter(
            "pg_stat_archiver_failed_count",
            "Number of failed attempts for archiving WAL files",
            number_or_zero(a.get("failed_count")),
        );
        fams.gauge(
            "pg_stat_archiver_last_archive_age",
            "Time in seconds since last WAL segment was successfully archived",
            a.get("last_archive_age")
                .and_then(number)
                .unwrap_or(f64::NAN),
        );
    }

    STAT_DATABASE.families(rows(doc.get("database")), fams);
    STAT_DATABASE_CONFLICTS.families(rows(doc.get("conflicts")), fams);
    STAT_REPLICATION.families(rows(doc.get("replication")), fams);

    let mut active = Family::gauge(
        "pg_replication_slots_active",
        "Flag indicating if the slot is active",
    );
    let mut slot_lag = Family::gauge(
        "pg_replication_slots_pg_wal_lsn_diff",
        "Replication lag in bytes",
    );
    for r in rows(doc.get("slots")) {
        let (s, d) = (label(r.get(0)), label(r.get(1)));
        let l = [("slot_name", s.as_str()), ("database", d.as_str())];
        active.add(&l, number_or_zero(r.get(2)));
        slot_lag.add(&l, r.get(3).and_then(number).unwrap_or(f64::NAN));
    }
    fams.push(active);
    fams.push(slot_lag);

    if let Some(r) = doc.get("long_tx") {
        fams.gauge(
            "pg_long_running_transactions",
            "Current number of long running transactions",
            number_or_zero(r.get(0)),
        );
        fams.gauge(
            "pg_long_running_transactions_oldest_timestamp_seconds",
            "The current maximum transaction age in seconds",
            number_or_zero(r.get(1)),
        );
    }

    let mut tables: Vec<Family> = USER_TABLES
        .iter()
        .map(|(c, counter, help)| {
            let n = format!("pg_stat_user_tables_{c}");
            if *counter {
                Family::counter(&n, help)
            } else {
                Family::gauge(&n, help)
            }
        })
        .collect();
    for r in rows(doc.get("tables")) {
        let id = [label(r.get(0)), label(r.get(1)), label(r.get(2))];
        for (i, f) in tables.iter_mut().enumerate() {
            f.add(&labels3(&id), number_or_zero(r.get(i + 3)));
        }
    }
    for f in tables {
        fams.push(f);
    }

    let mut statio: Vec<Family> = STATIO
        .iter()
        .map(|(c, help)| Family::counter(&format!("pg_statio_user_tables_{c}"), help))
        .collect();
    for r in rows(doc.get("tables")) {
        if r.get(USER_TABLES.len() + 3) != Some(&Value::Bool(true)) {
            continue;
        }
        let id = [label(r.get(0)), label(r.get(1)), label(r.get(2))];
        for (i, f) in statio.iter_mut().enumerate() {
            f.add(
                &labels3(&id),
                number_or_zero(r.get(i + USER_TABLES.len() + 4)),
            );
        }
    }
    for f in statio {
        fams.push(f);
    }

    if let Some(w) = doc.get("wal") {
        fams.gauge(
            "pg_wal_segments",
            "Number of WAL segments",
            number_or_zero(w.get(0)),
        );
        fams.gauge(
            "pg_wal_size_bytes",
            "Total size of WAL segments",
            number_or_zero(w.get(1)),
        );
    }

    let mut statements: Vec<Family> = STATEMENTS
        .iter()
        .map(|(c, help)| Family::counter(&format!("pg_stat_statements_{c}"), help))
        .collect();
    for r in rows(doc.get("statements")) {
        let (u, d, q) = (label(r.get(0)), label(r.get(1)), label(r.get(2)));
        let l = [
            ("user", u.as_str()),
            ("datname", d.as_str()),
            ("queryid", q.as_str()),
        ];
        for (i, f) in statements.iter_mut().enumerate() {
            f.add(&l, number_or_zero(r.get(i + 3)));
        }
    }
    for f in statements {
        fams.push(f);
    }
}

/// `pg_static`, `pg_settings_*` and `pg_database_size_bytes` from the cached catalog.
pub fn catalog_families(cat: &Catalog, fams: &mut Families) {
    let mut st = Family::untyped("pg_static", "Version string as reported by postgres");
    st.add(
        &[
            ("short_version", cat.short_version.as_str()),
            ("version", cat.version.as_str()),
        ],
        1.0,
    );
    fams.push(st);
    super::settings::families(&cat.settings, fams);
    let mut size = Family::gauge("pg_database_size_bytes", "Disk space used by the database");
    for (datname, bytes) in &cat.sizes {
        size.add(&[("datname", datname)], *bytes);
    }
    fams.push(size);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::encode;
    use serde_json::json;

    #[test]
    fn view_rows_map_like_postgres_exporter_columns() {
        let doc = json!({
            "database": [
                {"datid": "0", "datname": null, "numbackends": 0, "xact_commit": 3,
                 "stats_reset": null, "session_time": 1.5, "checksum_last_failure": null},
                {"datid": "5", "datname": "postgres", "numbackends": 2, "xact_commit": 9,
                 "stats_reset": "2026-11-30T02:34:05+00:00", "session_time": 2.5,
                 "checksum_last_failure": null}
            ],
            "bgwriter": {"checkpoints_timed": 4, "stats_reset": "2026-11-30T02:34:05+00:00"},
            "archiver": {"archived_count": 0, "failed_count": 0, "last_archive_age": null},
            "long_tx": [1, 75.5],
        });
        let mut f = Families::default();
        families(&doc, &mut f);
        let text = encode(&f.0);
        for want in [
            "pg_stat_database_numbackends{datid=\"0\",datname=\"\"} 0\n",
            "# TYPE pg_stat_database_xact_commit counter\n",
            "pg_stat_database_xact_commit{datid=\"5\",datname=\"postgres\"} 9\n",
            "pg_stat_database_stats_reset{datid=\"0\",datname=\"\"} NaN\n",
            "pg_stat_database_stats_reset{datid=\"5\",datname=\"postgres\"} 1796006045\n",
            "# TYPE pg_stat_database_session_time untyped\n",
            "pg_stat_database_session_time{datid=\"5\",datname=\"postgres\"} 2.5\n",
            "pg_stat_database_checksum_last_failure{datid=\"5\",datname=\"postgres\"} NaN\n",
            "pg_stat_bgwriter_checkpoints_timed_total 4\n",
            "pg_stat_bgwriter_stats_reset_total 1796006045\n",
            "pg_stat_archiver_last_archive_age NaN\n",
            "pg_long_running_transactions 1\n",
            "pg_long_running_transactions_oldest_timestamp_seconds 75.5\n",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert!(
            !text.contains("pg_wal_segments"),
            "no WAL without the privilege"
        );
    }

    #[test]
    fn optional_parts_follow_the_catalog() {
        let mut cat = Catalog {
            version_num: 150000,
            ..Catalog::default()
        };
        let plain = sql(&cat);
        assert!(!plain.contains("pg_ls_waldir") && !plain.contains("pg_stat_statements("));
        cat.can_list_wal = true;
        cat.statements_schema = Some("public".into());
        let full = sql(&cat);
        assert!(full.contains("pg_ls_waldir") && full.contains("blk_read_time / 1000.0"));
        assert!(full.contains("FROM public.pg_stat_statements(false)"));
        cat.version_num = 170000;
        assert!(sql(&cat).contains("shared_blk_read_time"));
    }
}

-- One retention runner among the replicas sharing this database (src/store/retention.rs,
-- "One runner"): a lease row per singleton job, taken like an outbox row's claim
-- (claimed_by, lease_until; free once lease_until has passed, so a replica that dies loses
-- it by expiry) with the rota claims' upsert. done_at: when a run last finished, by any
-- replica, for the skipping replicas' quantwatch_router_retention_last_run_timestamp_seconds.
--
-- PostgreSQL only: a SQLite file has one router process, which needs no lease.
CREATE TABLE store_leases (
    name         TEXT    PRIMARY KEY,
    claimed_by   TEXT    NOT NULL,
    lease_until  BIGINT  NOT NULL,
    done_at      BIGINT
);

-- Summary tables maintained by triggers, so that every all-time aggregate of the collector
-- (order and fill counters, fees, the fill-latency histogram, equity peak and maximum drawdown)
-- is one small indexed read per scrape whatever the history holds. See ARCHITECTURE.md,
-- "Exporter — trading". The triggers run in the writer's transaction (exact, never drifting)
-- as SECURITY DEFINER, so the trading application needs no grants on these tables and the
-- exporter only needs SELECT.

CREATE TABLE trading_order_counts (
    strategy_id BIGINT NOT NULL,
    side        TEXT NOT NULL,
    status      TEXT NOT NULL,
    n           BIGINT NOT NULL,
    PRIMARY KEY (strategy_id, side, status)
);

CREATE TABLE trading_fill_totals (
    strategy_id BIGINT NOT NULL,
    side        TEXT NOT NULL,
    fills       BIGINT NOT NULL,
    notional    NUMERIC NOT NULL,
    fees        NUMERIC NOT NULL,
    PRIMARY KEY (strategy_id, side)
);

-- Upper bounds (seconds) of the fill-latency histogram; 'Infinity' is the +Inf bucket.
-- `quantwatch-exporter migrate` replaces them with trading.histogram_buckets and rebuilds.
CREATE TABLE trading_fill_latency_buckets (
    le DOUBLE PRECISION PRIMARY KEY
);
INSERT INTO trading_fill_latency_buckets (le) VALUES
    (0.005), (0.01), (0.025), (0.05), (0.1), (0.25), (0.5), (1), (2.5), (5), (10), (30), (60),
    ('Infinity');

-- Non-cumulative counts per bucket (the collector accumulates them).
CREATE TABLE trading_fill_latency (
    strategy_id BIGINT NOT NULL,
    le          DOUBLE PRECISION NOT NULL,
    n           BIGINT NOT NULL,
    sum_seconds NUMERIC NOT NULL,
    PRIMARY KEY (strategy_id, le)
);

CREATE TABLE trading_equity_stats (
    strategy_id  BIGINT PRIMARY KEY,
    snapshots    BIGINT NOT NULL,
    last_ts      TIMESTAMPTZ NOT NULL,
    peak         NUMERIC NOT NULL,
    -- min over t of equity_t / running peak_t - 1; NULL while the running peak is <= 0.
    max_drawdown NUMERIC NULL
);

CREATE FUNCTION trading_count_order(sid BIGINT, sd TEXT, st TEXT, delta BIGINT) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path FROM CURRENT AS $$
    INSERT INTO trading_order_counts AS c (strategy_id, side, status, n)
    VALUES (sid, sd, st, delta)
    ON CONFLICT (strategy_id, side, status) DO UPDATE SET n = c.n + EXCLUDED.n;
$$;

CREATE FUNCTION trading_orders_trigger() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        IF TG_OP = 'DELETE' OR (OLD.strategy_id, OLD.side, OLD.status)
                IS DISTINCT FROM (NEW.strategy_id, NEW.side, NEW.status) THEN
            PERFORM trading_count_order(OLD.strategy_id, OLD.side, OLD.status, -1);
        ELSE
            RETURN NULL;
        END IF;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM trading_count_order(NEW.strategy_id, NEW.side, NEW.status, 1);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER trading_orders_summary AFTER INSERT OR UPDATE OR DELETE ON orders
    FOR EACH ROW EXECUTE FUNCTION trading_orders_trigger();

-- Adds (dir = 1) or removes (dir = -1) one fill from the fill summaries.
CREATE FUNCTION trading_count_fill(f fills, dir INT) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    o RECORD;
    latency NUMERIC;
    bucket DOUBLE PRECISION;
BEGIN
    SELECT strategy_id, side, created_at INTO o FROM orders WHERE id = f.order_id;
    latency := EXTRACT(EPOCH FROM (f.filled_at - o.created_at));
    SELECT min(le) INTO bucket FROM trading_fill_latency_buckets WHERE le >= latency;
    INSERT INTO trading_fill_totals AS t (strategy_id, side, fills, notional, fees)
    VALUES (o.strategy_id, o.side, dir, dir * f.quantity * f.price, dir * f.fee)
    ON CONFLICT (strategy_id, side) DO UPDATE
        SET fills = t.fills + EXCLUDED.fills,
            notional = t.notional + EXCLUDED.notional,
            fees = t.fees + EXCLUDED.fees;
    INSERT INTO trading_fill_latency AS h (strategy_id, le, n, sum_seconds)
    VALUES (o.strategy_id, bucket, dir, dir * latency)
    ON CONFLICT (strategy_id, le) DO UPDATE
        SET n = h.n + EXCLUDED.n, sum_seconds = h.sum_seconds + EXCLUDED.sum_seconds;
END;
$$;

CREATE FUNCTION trading_fills_trigger() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM trading_count_fill(OLD, -1);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM trading_count_fill(NEW, 1);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER trading_fills_summary AFTER INSERT OR UPDATE OR DELETE ON fills
    FOR EACH ROW EXECUTE FUNCTION trading_fills_trigger();

-- Recomputes one strategy's equity summary from all its snapshots: the rare path, taken when
-- a snapshot arrives out of time order or is updated or deleted.
CREATE FUNCTION trading_recompute_equity_stats(sid BIGINT) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    DELETE FROM trading_equity_stats WHERE strategy_id = sid;
    INSERT INTO trading_equity_stats (strategy_id, snapshots, last_ts, peak, max_drawdown)
    SELECT sid, count(*), max(ts), max(equity),
           min(CASE WHEN runmax > 0 THEN equity / runmax - 1 END)
    FROM (SELECT ts, equity, max(equity) OVER (ORDER BY ts) AS runmax
          FROM equity_snapshots WHERE strategy_id = sid) s
    HAVING count(*) > 0;
END;
$$;

-- Serializes the equity-summary work of one strategy until the writer's transaction ends.
-- Without it, a recompute (DELETE + INSERT) could race another writer's recompute and fail
-- on the primary key, or miss rows that writer commits meanwhile. Writers of different
-- strategies never wait for each other. Writers must use READ COMMITTED (the default).
CREATE FUNCTION trading_lock_equity(sid BIGINT) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path FROM CURRENT AS $$
    SELECT pg_advisory_xact_lock(1364283729, (sid % 2147483647)::int);
$$;

CREATE FUNCTION trading_equity_trigger() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    s trading_equity_stats%ROWTYPE;
    new_peak NUMERIC;
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM trading_lock_equity(least(OLD.strategy_id, NEW.strategy_id));
        PERFORM trading_lock_equity(greatest(OLD.strategy_id, NEW.strategy_id));
        PERFORM trading_recompute_equity_stats(OLD.strategy_id);
        IF TG_OP = 'UPDATE' AND NEW.strategy_id <> OLD.strategy_id THEN
            PERFORM trading_recompute_equity_stats(NEW.strategy_id);
        END IF;
        RETURN NULL;
    END IF;
    PERFORM trading_lock_equity(NEW.strategy_id);
    SELECT * INTO s FROM trading_equity_stats WHERE strategy_id = NEW.strategy_id FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO trading_equity_stats (strategy_id, snapshots, last_ts, peak, max_drawdown)
        VALUES (NEW.strategy_id, 1, NEW.ts, NEW.equity, CASE WHEN NEW.equity > 0 THEN 0 END)
        ON CONFLICT (strategy_id) DO NOTHING;
        IF NOT FOUND THEN
            PERFORM trading_recompute_equity_stats(NEW.strategy_id);
        END IF;
    ELSIF NEW.ts > s.last_ts THEN
        new_peak := greatest(s.peak, NEW.equity);
        UPDATE trading_equity_stats
           SET snapshots = s.snapshots + 1,
               last_ts = NEW.ts,
               peak = new_peak,
               max_drawdown = CASE WHEN new_peak > 0
                                   THEN least(s.max_drawdown, NEW.equity / new_peak - 1)
                                   ELSE s.max_drawdown END
         WHERE strategy_id = NEW.strategy_id;
    ELSE
        PERFORM trading_recompute_equity_stats(NEW.strategy_id);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER trading_equity_summary AFTER INSERT OR UPDATE OR DELETE ON equity_snapshots
    FOR EACH ROW EXECUTE FUNCTION trading_equity_trigger();

-- Rebuilds every summary from the base tables: after a bulk load done with the triggers
-- disabled, or when the histogram buckets change (`quantwatch-exporter migrate` does it then).
CREATE FUNCTION trading_rebuild_summaries() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    LOCK TABLE orders, fills, equity_snapshots IN SHARE MODE;
    TRUNCATE trading_order_counts, trading_fill_totals, trading_fill_latency,
             trading_equity_stats;
    INSERT INTO trading_order_counts (strategy_id, side, status, n)
    SELECT strategy_id, side, status, count(*) FROM orders GROUP BY 1, 2, 3;
    INSERT INTO trading_fill_totals (strategy_id, side, fills, notional, fees)
    SELECT o.strategy_id, o.side, count(*), sum(f.quantity * f.price), sum(f.fee)
    FROM fills f JOIN orders o ON o.id = f.order_id GROUP BY 1, 2;
    INSERT INTO trading_fill_latency (strategy_id, le, n, sum_seconds)
    SELECT strategy_id, le, count(*), sum(latency)
    FROM (SELECT o.strategy_id, l.latency,
                 (SELECT min(b.le) FROM trading_fill_latency_buckets b
                   WHERE b.le >= l.latency) AS le
          FROM fills f JOIN orders o ON o.id = f.order_id
          CROSS JOIN LATERAL (SELECT EXTRACT(EPOCH FROM (f.filled_at - o.created_at))
                                     AS latency) l) x
    GROUP BY 1, 2;
    INSERT INTO trading_equity_stats (strategy_id, snapshots, last_ts, peak, max_drawdown)
    SELECT strategy_id, count(*), max(ts), max(equity),
           min(CASE WHEN runmax > 0 THEN equity / runmax - 1 END)
    FROM (SELECT strategy_id, ts, equity,
                 max(equity) OVER (PARTITION BY strategy_id ORDER BY ts) AS runmax
          FROM equity_snapshots) s
    GROUP BY strategy_id;
END;
$$;

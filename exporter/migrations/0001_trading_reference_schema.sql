-- The trading reference schema of the interface contract (docs/trading.md), exactly.
CREATE TABLE strategies (
    id           BIGSERIAL PRIMARY KEY,
    name         TEXT UNIQUE NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('active', 'paused', 'stopped', 'error')),
    risk_budget  NUMERIC NULL,
    heartbeat_at TIMESTAMPTZ NULL
);

CREATE TABLE orders (
    id          BIGSERIAL PRIMARY KEY,
    strategy_id BIGINT NOT NULL REFERENCES strategies,
    symbol      TEXT NOT NULL,
    side        TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
    quantity    NUMERIC NOT NULL CHECK (quantity > 0),
    price       NUMERIC NULL,
    status      TEXT NOT NULL CHECK (status IN
                ('new', 'partially_filled', 'filled', 'cancelled', 'rejected')),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE fills (
    id        BIGSERIAL PRIMARY KEY,
    order_id  BIGINT NOT NULL REFERENCES orders,
    quantity  NUMERIC NOT NULL CHECK (quantity > 0),
    price     NUMERIC NOT NULL,
    fee       NUMERIC NOT NULL DEFAULT 0,
    filled_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE positions (
    strategy_id  BIGINT REFERENCES strategies,
    symbol       TEXT,
    PRIMARY KEY (strategy_id, symbol),
    quantity     NUMERIC NOT NULL,
    avg_price    NUMERIC NOT NULL,
    market_price NUMERIC NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE equity_snapshots (
    strategy_id  BIGINT REFERENCES strategies,
    ts           TIMESTAMPTZ,
    PRIMARY KEY (strategy_id, ts),
    equity       NUMERIC NOT NULL,
    realized_pnl NUMERIC NOT NULL
);

-- Indexes the collector needs (every scrape query is an index range scan, see ARCHITECTURE.md):
-- orders created since the trading-day start (execution rate),
CREATE INDEX orders_strategy_created_at_idx ON orders (strategy_id, created_at) INCLUDE (status);
-- the fill trigger and operators joining fills to their order,
CREATE INDEX fills_order_id_idx ON fills (order_id);
-- snapshots newer than the portfolio's settled instant, across strategies.
CREATE INDEX equity_snapshots_ts_idx ON equity_snapshots (ts);

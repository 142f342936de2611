CREATE TABLE IF NOT EXISTS orders (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    consumer_id          INTEGER NOT NULL,
    restaurant_id        INTEGER NOT NULL,
    lines_json           TEXT    NOT NULL,
    total_cents          INTEGER NOT NULL,
    state                TEXT    NOT NULL,
    ticket_id            INTEGER,
    rejection_step       TEXT,
    rejection_kind       TEXT,
    rejection_code       TEXT,
    rejection_reason     TEXT,
    compensation_pending BOOLEAN NOT NULL DEFAULT FALSE,
    idempotency_key      TEXT UNIQUE,
    request_fingerprint  TEXT    NOT NULL,
    created_at_ms        INTEGER NOT NULL,
    updated_at_ms        INTEGER NOT NULL
);

CREATE INDEX IF NOT EXISTS orders_state ON orders (state, updated_at_ms);

CREATE TABLE IF NOT EXISTS order_history (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id INTEGER NOT NULL REFERENCES orders (id),
    state    TEXT    NOT NULL,
    note     TEXT,
    at_ms    INTEGER NOT NULL
);

CREATE INDEX IF NOT EXISTS order_history_order ON order_history (order_id);

CREATE TABLE IF NOT EXISTS accounts (
    consumer_id INTEGER PRIMARY KEY,
    holder      TEXT NOT NULL,
    card_token  TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS authorizations (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id           INTEGER NOT NULL UNIQUE,
    consumer_id        INTEGER NOT NULL,
    amount_cents       INTEGER NOT NULL,
    state              TEXT    NOT NULL,
    provider_reference TEXT,
    reason             TEXT,
    created_at_ms      INTEGER NOT NULL,
    updated_at_ms      INTEGER NOT NULL
);

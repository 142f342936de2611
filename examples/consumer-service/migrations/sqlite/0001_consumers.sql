CREATE TABLE IF NOT EXISTS consumers (
    id                INTEGER PRIMARY KEY,
    name              TEXT    NOT NULL,
    email             TEXT    NOT NULL,
    blocked           BOOLEAN NOT NULL DEFAULT FALSE,
    order_limit_cents INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS validations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    consumer_id INTEGER NOT NULL,
    total_cents INTEGER NOT NULL,
    approved    BOOLEAN NOT NULL,
    reason      TEXT,
    at_ms       INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS restaurants (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS menu_items (
    id            INTEGER PRIMARY KEY,
    restaurant_id INTEGER NOT NULL REFERENCES restaurants (id),
    name          TEXT    NOT NULL,
    price_cents   INTEGER NOT NULL,
    available     BOOLEAN NOT NULL DEFAULT TRUE
);

CREATE TABLE IF NOT EXISTS tickets (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id      INTEGER NOT NULL UNIQUE,
    restaurant_id INTEGER NOT NULL,
    state         TEXT    NOT NULL,
    total_cents   INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS ticket_lines (
    ticket_id        INTEGER NOT NULL REFERENCES tickets (id),
    menu_item_id     INTEGER NOT NULL,
    name             TEXT    NOT NULL,
    quantity         INTEGER NOT NULL,
    unit_price_cents INTEGER NOT NULL
);

CREATE INDEX IF NOT EXISTS ticket_lines_ticket ON ticket_lines (ticket_id);

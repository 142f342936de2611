-- Demo data: an ordinary customer, a blocked one, one with a low order limit, one whose card
-- the accounting service's simulated provider declines, and one without a payment account.
INSERT OR IGNORE INTO consumers (id, name, email, blocked, order_limit_cents) VALUES
    (1, 'Alice Example', 'alice@example.test', FALSE, 100000),
    (2, 'Bob Example',   'bob@example.test',   FALSE, 100000),
    (3, 'Mallory Blocked', 'mallory@example.test', TRUE, 100000),
    (4, 'Carol Thrifty', 'carol@example.test', FALSE, 2000),
    (5, 'Dave Declined', 'dave@example.test',  FALSE, 100000),
    (6, 'Erin NoAccount', 'erin@example.test', FALSE, 100000);

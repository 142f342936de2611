-- Demo data: payment accounts. The simulated provider declines card tokens starting with
-- `tok_decline` (Dave, consumer 5); Erin (6) has no account.
INSERT OR IGNORE INTO accounts (consumer_id, holder, card_token) VALUES
    (1, 'Alice Example',   'tok_visa_4242'),
    (2, 'Bob Example',     'tok_mastercard_4444'),
    (3, 'Mallory Blocked', 'tok_visa_1111'),
    (4, 'Carol Thrifty',   'tok_visa_5556'),
    (5, 'Dave Declined',   'tok_decline_0002');

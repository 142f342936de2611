-- Demo data: two restaurants with menus; item 13 is sold out.
INSERT OR IGNORE INTO restaurants (id, name) VALUES
    (1, 'Ajanta Curry House'),
    (2, 'Pizzeria Napoli');

INSERT OR IGNORE INTO menu_items (id, restaurant_id, name, price_cents, available) VALUES
    (11, 1, 'Chicken Vindaloo', 1250, TRUE),
    (12, 1, 'Garlic Naan',       350, TRUE),
    (13, 1, 'Lamb Biryani',     1490, FALSE),
    (21, 2, 'Margherita',        900, TRUE),
    (22, 2, 'Quattro Formaggi', 1150, TRUE),
    (23, 2, 'Tiramisu',          550, TRUE);

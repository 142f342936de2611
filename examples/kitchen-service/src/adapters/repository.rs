//! The SQLite kitchen repository.

use sqlx::SqlitePool;

use super::db::now_ms;
use crate::domain::{
    KitchenRepository, MenuItem, NewTicket, RepositoryError, Restaurant, Ticket, TicketLine,
    TicketState,
};

/// Restaurants and tickets in the service's SQLite database.
pub(crate) struct SqliteKitchenRepository {
    pool: SqlitePool,
}

impl SqliteKitchenRepository {
    /// A repository over `pool`.
    pub(crate) fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    async fn menu(&self, restaurant_id: i64) -> Result<Vec<MenuItem>, RepositoryError> {
        let rows: Vec<MenuRow> = sqlx::query_as(
            "SELECT id, name, price_cents, available FROM menu_items \
             WHERE restaurant_id = ? ORDER BY id",
        )
        .bind(restaurant_id)
        .fetch_all(&self.pool)
        .await
        .map_err(storage)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn load_ticket(&self, row: Option<TicketRow>) -> Result<Option<Ticket>, RepositoryError> {
        let Some(row) = row else { return Ok(None) };
        let lines: Vec<LineRow> = sqlx::query_as(
            "SELECT menu_item_id, name, quantity, unit_price_cents FROM ticket_lines \
             WHERE ticket_id = ? ORDER BY rowid",
        )
        .bind(row.id)
        .fetch_all(&self.pool)
        .await
        .map_err(storage)?;
        to_ticket(row, lines).map(Some)
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct RestaurantRow {
    pub(super) id: i64,
    pub(super) name: String,
}

#[derive(sqlx::FromRow)]
pub(super) struct MenuRow {
    id: i64,
    name: String,
    price_cents: i64,
    available: bool,
}

#[derive(sqlx::FromRow)]
pub(super) struct TicketRow {
    pub(super) id: i64,
    order_id: i64,
    restaurant_id: i64,
    state: String,
    total_cents: i64,
}

#[derive(sqlx::FromRow)]
pub(super) struct LineRow {
    menu_item_id: i64,
    name: String,
    quantity: i64,
    unit_price_cents: i64,
}

impl From<MenuRow> for MenuItem {
    fn from(r: MenuRow) -> Self {
        MenuItem {
            id: r.id,
            name: r.name,
            price_cents: r.price_cents,
            available: r.available,
        }
    }
}

/// The ticket stored as `row` with its `lines`.
pub(super) fn to_ticket(row: TicketRow, lines: Vec<LineRow>) -> Result<Ticket, RepositoryError> {
    let state = TicketState::parse(&row.state).ok_or_else(|| {
        RepositoryError(format!("ticket {} has an unknown state {:?}", row.id, row.state).into())
    })?;
    Ok(Ticket {
        id: row.id,
        order_id: row.order_id,
        restaurant_id: row.restaurant_id,
        state,
        total_cents: row.total_cents,
        lines: lines
            .into_iter()
            .map(|l| TicketLine {
                menu_item_id: l.menu_item_id,
                name: l.name,
                quantity: l.quantity,
                unit_price_cents: l.unit_price_cents,
            })
            .collect(),
    })
}

/// The update that would take ticket `id` out of `CANCELLED`: refused, since the compensation
/// that cancelled it has run (a confirmation racing a cancellation loses).
pub(super) fn cancelled_meanwhile(id: i64, state: TicketState) -> RepositoryError {
    RepositoryError(format!("ticket {id} was cancelled meanwhile; it cannot become {state}").into())
}

pub(super) fn storage(e: sqlx::Error) -> RepositoryError {
    RepositoryError(Box::new(e))
}

#[async_trait::async_trait]
impl KitchenRepository for SqliteKitchenRepository {
    async fn restaurants(&self) -> Result<Vec<Restaurant>, RepositoryError> {
        let rows: Vec<RestaurantRow> =
            sqlx::query_as("SELECT id, name FROM restaurants ORDER BY id")
                .fetch_all(&self.pool)
                .await
                .map_err(storage)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let menu = self.menu(r.id).await?;
            out.push(Restaurant {
                id: r.id,
                name: r.name,
                menu,
            });
        }
        Ok(out)
    }

    async fn restaurant(&self, id: i64) -> Result<Option<Restaurant>, RepositoryError> {
        let row: Option<RestaurantRow> =
            sqlx::query_as("SELECT id, name FROM restaurants WHERE id = ?")
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(storage)?;
        match row {
            None => Ok(None),
            Some(r) => Ok(Some(Restaurant {
                id: r.id,
                name: r.name,
                menu: self.menu(id).await?,
            })),
        }
    }

    async fn ticket(&self, id: i64) -> Result<Option<Ticket>, RepositoryError> {
        let row: Option<TicketRow> = sqlx::query_as(
            "SELECT id, order_id, restaurant_id, state, total_cents FROM tickets WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(storage)?;
        self.load_ticket(row).await
    }

    async fn ticket_for_order(&self, order_id: i64) -> Result<Option<Ticket>, RepositoryError> {
        let row: Option<TicketRow> =
            sqlx::query_as("SELECT id, order_id, restaurant_id, state, total_cents FROM tickets WHERE order_id = ?")
                .bind(order_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(storage)?;
        self.load_ticket(row).await
    }

    async fn insert_ticket(&self, t: &NewTicket) -> Result<Ticket, RepositoryError> {
        let mut tx = self.pool.begin().await.map_err(storage)?;
        let now = now_ms();
        // One ticket per order: a concurrent retry finds the first one.
        let inserted = sqlx::query(
            "INSERT INTO tickets (order_id, restaurant_id, state, total_cents, created_at_ms, updated_at_ms) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (order_id) DO NOTHING",
        )
        .bind(t.order_id)
        .bind(t.restaurant_id)
        .bind(TicketState::CreatePending.as_str())
        .bind(t.total_cents)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(storage)?;
        if inserted.rows_affected() == 1 {
            let id = inserted.last_insert_rowid();
            for l in &t.lines {
                sqlx::query(
                    "INSERT INTO ticket_lines (ticket_id, menu_item_id, name, quantity, unit_price_cents) \
                     VALUES (?, ?, ?, ?, ?)",
                )
                .bind(id)
                .bind(l.menu_item_id)
                .bind(&l.name)
                .bind(l.quantity)
                .bind(l.unit_price_cents)
                .execute(&mut *tx)
                .await
                .map_err(storage)?;
            }
        }
        tx.commit().await.map_err(storage)?;
        self.ticket_for_order(t.order_id)
            .await?
            .ok_or_else(|| RepositoryError("the ticket vanished after insert".into()))
    }

    async fn set_state(&self, id: i64, state: TicketState) -> Result<(), RepositoryError> {
        // One statement: a cancelled ticket stays cancelled whoever writes at the same time.
        let done = sqlx::query(
            "UPDATE tickets SET state = ?1, updated_at_ms = ?2 \
             WHERE id = ?3 AND (state <> 'CANCELLED' OR ?1 = 'CANCELLED')",
        )
        .bind(state.as_str())
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(storage)?;
        if done.rows_affected() == 0 && self.ticket(id).await?.is_some() {
            return Err(cancelled_meanwhile(id, state));
        }
        Ok(())
    }
}

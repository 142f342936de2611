//! The PostgreSQL kitchen repository: the same rows as the SQLite one, in a database several
//! replicas share. One ticket per order is the table's unique key, so two replicas creating the
//! ticket of one order at once store one ticket with one set of lines; a state change is one
//! `UPDATE` that never takes a ticket out of `CANCELLED`, so a confirmation racing the saga's
//! compensation on another replica cannot revive a cancelled ticket.

use sqlx::PgPool;

use super::db::now_ms;
use super::repository::{
    LineRow, MenuRow, RestaurantRow, TicketRow, cancelled_meanwhile, storage, to_ticket,
};
use crate::domain::{
    KitchenRepository, MenuItem, NewTicket, RepositoryError, Restaurant, Ticket, TicketState,
};

/// Restaurants and tickets in a PostgreSQL database.
pub(crate) struct PgKitchenRepository {
    pool: PgPool,
}

impl PgKitchenRepository {
    /// A repository over `pool`.
    pub(crate) fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    async fn menu(&self, restaurant_id: i64) -> Result<Vec<MenuItem>, RepositoryError> {
        let rows: Vec<MenuRow> = sqlx::query_as(
            "SELECT id, name, price_cents, available FROM menu_items \
             WHERE restaurant_id = $1 ORDER BY id",
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
             WHERE ticket_id = $1 ORDER BY id",
        )
        .bind(row.id)
        .fetch_all(&self.pool)
        .await
        .map_err(storage)?;
        to_ticket(row, lines).map(Some)
    }
}

#[async_trait::async_trait]
impl KitchenRepository for PgKitchenRepository {
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
            sqlx::query_as("SELECT id, name FROM restaurants WHERE id = $1")
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
            "SELECT id, order_id, restaurant_id, state, total_cents FROM tickets WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(storage)?;
        self.load_ticket(row).await
    }

    async fn ticket_for_order(&self, order_id: i64) -> Result<Option<Ticket>, RepositoryError> {
        let row: Option<TicketRow> = sqlx::query_as(
            "SELECT id, order_id, restaurant_id, state, total_cents FROM tickets \
             WHERE order_id = $1",
        )
        .bind(order_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(storage)?;
        self.load_ticket(row).await
    }

    async fn insert_ticket(&self, t: &NewTicket) -> Result<Ticket, RepositoryError> {
        let mut tx = self.pool.begin().await.map_err(storage)?;
        let now = now_ms();
        // One ticket per order: a concurrent insert waits for the first to commit, then does
        // nothing (no id returned, no lines written) and reads the first one.
        let inserted: Option<(i64,)> = sqlx::query_as(
            "INSERT INTO tickets (order_id, restaurant_id, state, total_cents, created_at_ms, \
             updated_at_ms) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (order_id) DO NOTHING RETURNING id",
        )
        .bind(t.order_id)
        .bind(t.restaurant_id)
        .bind(TicketState::CreatePending.as_str())
        .bind(t.total_cents)
        .bind(now)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(storage)?;
        if let Some((id,)) = inserted {
            for l in &t.lines {
                sqlx::query(
                    "INSERT INTO ticket_lines (ticket_id, menu_item_id, name, quantity, \
                     unit_price_cents) VALUES ($1, $2, $3, $4, $5)",
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
        // One statement: an update waiting on a concurrent one re-checks the condition on the
        // row it committed, so a cancelled ticket stays cancelled.
        let done = sqlx::query(
            "UPDATE tickets SET state = $1, updated_at_ms = $2 \
             WHERE id = $3 AND (state <> 'CANCELLED' OR $1 = 'CANCELLED')",
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

//! The HTTP controller (`KitchenController` of figure 26) and the problem+json mapping of
//! domain errors.

use std::sync::Arc;

use aiods::Problem;
use aiods::error::ProblemDetails;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::{
    KitchenError, KitchenService, MenuItem, Restaurant, Ticket, TicketLineRequest,
};

type Service = Arc<KitchenService>;

/// The service's routes, documented.
pub(crate) fn router(service: Service) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(list_restaurants))
        .routes(routes!(get_restaurant))
        .routes(routes!(create_ticket, find_tickets))
        .routes(routes!(get_ticket))
        .routes(routes!(confirm_ticket))
        .routes(routes!(cancel_ticket))
        .with_state(service)
}

/// A food item.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct MenuItemView {
    /// Its id.
    id: i64,
    /// Its name.
    name: String,
    /// Its price, in cents.
    price_cents: i64,
    /// Whether the kitchen can make it now.
    available: bool,
}

/// A restaurant with its menu.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct RestaurantView {
    /// Its id.
    id: i64,
    /// Its name.
    name: String,
    /// Its food items.
    menu: Vec<MenuItemView>,
}

impl From<MenuItem> for MenuItemView {
    fn from(i: MenuItem) -> Self {
        Self {
            id: i.id,
            name: i.name,
            price_cents: i.price_cents,
            available: i.available,
        }
    }
}

impl From<Restaurant> for RestaurantView {
    fn from(r: Restaurant) -> Self {
        Self {
            id: r.id,
            name: r.name,
            menu: r.menu.into_iter().map(Into::into).collect(),
        }
    }
}

/// A line of a ticket request.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct TicketLineInput {
    /// The food item.
    menu_item_id: i64,
    /// How many (positive).
    #[schema(minimum = 1)]
    quantity: i64,
}

/// Asks the kitchen to cook an order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct CreateTicketRequest {
    /// The order (one ticket per order: repeating returns the same ticket).
    order_id: i64,
    /// The restaurant.
    restaurant_id: i64,
    /// What to cook (at least one line).
    #[schema(min_items = 1)]
    lines: Vec<TicketLineInput>,
}

/// A priced ticket line.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct TicketLineView {
    /// The food item.
    menu_item_id: i64,
    /// Its name.
    name: String,
    /// How many.
    quantity: i64,
    /// Its price, in cents.
    unit_price_cents: i64,
}

/// A kitchen ticket.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct TicketView {
    /// Its id.
    id: i64,
    /// The order.
    order_id: i64,
    /// The restaurant.
    restaurant_id: i64,
    /// `CREATE_PENDING`, `ACCEPTED` or `CANCELLED`.
    state: String,
    /// The sum of the lines, in cents.
    total_cents: i64,
    /// Its lines.
    lines: Vec<TicketLineView>,
}

impl From<Ticket> for TicketView {
    fn from(t: Ticket) -> Self {
        Self {
            id: t.id,
            order_id: t.order_id,
            restaurant_id: t.restaurant_id,
            state: t.state.as_str().to_owned(),
            total_cents: t.total_cents,
            lines: t
                .lines
                .into_iter()
                .map(|l| TicketLineView {
                    menu_item_id: l.menu_item_id,
                    name: l.name,
                    quantity: l.quantity,
                    unit_price_cents: l.unit_price_cents,
                })
                .collect(),
        }
    }
}

/// Filters of `GET /tickets`.
#[derive(Debug, Deserialize, IntoParams)]
pub(crate) struct TicketQuery {
    /// The order whose ticket is wanted.
    order_id: i64,
}

/// Lists the restaurants and their menus.
#[utoipa::path(get, path = "/restaurants", tag = "restaurants",
    responses((status = 200, description = "All restaurants", body = [RestaurantView])))]
async fn list_restaurants(State(svc): State<Service>) -> aiods::Result<Json<Vec<RestaurantView>>> {
    let all = svc.restaurants().await?;
    Ok(Json(all.into_iter().map(Into::into).collect()))
}

/// Gets a restaurant and its menu.
#[utoipa::path(get, path = "/restaurants/{id}", tag = "restaurants",
    params(("id" = i64, Path, description = "The restaurant's id")),
    responses(
        (status = 200, description = "The restaurant", body = RestaurantView),
        (status = 404, description = "No such restaurant", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
async fn get_restaurant(
    State(svc): State<Service>,
    Path(id): Path<i64>,
) -> aiods::Result<Json<RestaurantView>> {
    Ok(Json(svc.restaurant(id).await?.into()))
}

/// Creates the ticket of an order in `CREATE_PENDING` (`createTicket`).
#[utoipa::path(post, path = "/tickets", tag = "tickets",
    request_body = CreateTicketRequest,
    responses(
        (status = 201, description = "The ticket (or the order's existing ticket)", body = TicketView),
        (status = 404, description = "No such restaurant", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Unknown or unavailable item, no lines, or a non-positive quantity", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
async fn create_ticket(
    State(svc): State<Service>,
    Json(request): Json<CreateTicketRequest>,
) -> aiods::Result<(StatusCode, Json<TicketView>)> {
    let lines: Vec<TicketLineRequest> = request
        .lines
        .iter()
        .map(|l| TicketLineRequest {
            menu_item_id: l.menu_item_id,
            quantity: l.quantity,
        })
        .collect();
    let ticket = svc
        .create_ticket(request.order_id, request.restaurant_id, &lines)
        .await?;
    Ok((StatusCode::CREATED, Json(ticket.into())))
}

/// Finds the ticket of an order (empty when it has none).
#[utoipa::path(get, path = "/tickets", tag = "tickets", params(TicketQuery),
    responses((status = 200, description = "The order's ticket, if any", body = [TicketView])))]
async fn find_tickets(
    State(svc): State<Service>,
    Query(query): Query<TicketQuery>,
) -> aiods::Result<Json<Vec<TicketView>>> {
    let found = svc.ticket_for_order(query.order_id).await?;
    Ok(Json(found.into_iter().map(Into::into).collect()))
}

/// Gets a ticket.
#[utoipa::path(get, path = "/tickets/{id}", tag = "tickets",
    params(("id" = i64, Path, description = "The ticket's id")),
    responses(
        (status = 200, description = "The ticket", body = TicketView),
        (status = 404, description = "No such ticket", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
async fn get_ticket(
    State(svc): State<Service>,
    Path(id): Path<i64>,
) -> aiods::Result<Json<TicketView>> {
    Ok(Json(svc.ticket(id).await?.into()))
}

/// Confirms a ticket once the payment is authorized.
#[utoipa::path(post, path = "/tickets/{id}/confirm", tag = "tickets",
    params(("id" = i64, Path, description = "The ticket's id")),
    responses(
        (status = 200, description = "The ticket, `ACCEPTED`", body = TicketView),
        (status = 404, description = "No such ticket", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "The ticket was cancelled", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
async fn confirm_ticket(
    State(svc): State<Service>,
    Path(id): Path<i64>,
) -> aiods::Result<Json<TicketView>> {
    Ok(Json(svc.confirm(id).await?.into()))
}

/// Rejects a ticket (`rejectTicket`): the saga's compensation. Repeating it is harmless.
#[utoipa::path(post, path = "/tickets/{id}/cancel", tag = "tickets",
    params(("id" = i64, Path, description = "The ticket's id")),
    responses(
        (status = 200, description = "The ticket, `CANCELLED`", body = TicketView),
        (status = 404, description = "No such ticket", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
async fn cancel_ticket(
    State(svc): State<Service>,
    Path(id): Path<i64>,
) -> aiods::Result<Json<TicketView>> {
    Ok(Json(svc.cancel(id).await?.into()))
}

impl From<KitchenError> for aiods::Error {
    fn from(e: KitchenError) -> Self {
        let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
        let Some(code) = e.code() else {
            return aiods::Error::internal(e);
        };
        let status = match &e {
            KitchenError::UnknownRestaurant(_) | KitchenError::UnknownTicket(_) => {
                StatusCode::NOT_FOUND
            }
            KitchenError::InvalidTransition { .. } => StatusCode::CONFLICT,
            _ => unprocessable,
        };
        Problem::new(status)
            .with_type(format!("https://aiods.dev/problems/{code}"))
            .with_detail(e.to_string())
            .with_extension("code", code)
            .into()
    }
}

//! The HTTP controller (`OrderController` of figure 24) and the problem+json mapping of
//! domain errors: a rejected order names the failing step (`"step": "consumer"`).

use std::sync::Arc;

use aiods::Problem;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::{
    Order, OrderError, OrderLineRequest, OrderState, Orders, PlaceOrder, StepFailure,
};

type Service = Arc<dyn Orders>;

/// The request header carrying the client's idempotency key.
pub(crate) const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The service's routes, documented.
pub(crate) fn router(service: Service) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(create_order, list_orders))
        .routes(routes!(get_order))
        .with_state(service)
}

/// A line of an order request.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct OrderLineInput {
    /// The food item (see the kitchen's `GET /restaurants/{id}`).
    menu_item_id: i64,
    /// How many, 1 to 100.
    #[schema(minimum = 1, maximum = 100)]
    quantity: i64,
}

/// A customer's order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct CreateOrderRequest {
    /// The customer.
    consumer_id: i64,
    /// The restaurant.
    restaurant_id: i64,
    /// What to deliver; at least one line.
    #[schema(min_items = 1)]
    lines: Vec<OrderLineInput>,
}

/// A priced order line.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct OrderLineView {
    /// The food item.
    menu_item_id: i64,
    /// Its name.
    name: String,
    /// How many.
    quantity: i64,
    /// Its price, in cents.
    unit_price_cents: i64,
}

/// Why an order was rejected.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct RejectionView {
    /// The saga step that failed: `consumer`, `kitchen`, `accounting` or `reconciler`.
    step: String,
    /// `not_found`, `refused`, `unavailable`, `timed_out` or `expired`.
    failure: String,
    /// The failing service's problem code (`consumer-blocked`, `item-unavailable`, …).
    code: Option<String>,
    /// What went wrong.
    reason: String,
}

/// One state change of an order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct TransitionView {
    /// The state entered.
    state: String,
    /// When (RFC 3339, UTC).
    at: String,
    /// What happened.
    note: Option<String>,
}

/// An order, its state and its history.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct OrderView {
    /// Its id.
    id: i64,
    /// `APPROVAL_PENDING`, `CREATE_PENDING`, `PAYMENT_CONFIRMED`, `APPROVED` or `REJECTED`.
    state: String,
    /// The customer.
    consumer_id: i64,
    /// The restaurant.
    restaurant_id: i64,
    /// Its lines.
    lines: Vec<OrderLineView>,
    /// The sum of the lines, in cents.
    total_cents: i64,
    /// The kitchen's ticket, once created.
    ticket_id: Option<i64>,
    /// Why it was rejected.
    rejection: Option<RejectionView>,
    /// A compensation failed and is being retried.
    compensation_pending: bool,
    /// When it was created (RFC 3339).
    created_at: String,
    /// Every transition, oldest first.
    history: Vec<TransitionView>,
}

fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

impl From<Order> for OrderView {
    fn from(o: Order) -> Self {
        Self {
            id: o.id,
            state: o.state.as_str().to_owned(),
            consumer_id: o.consumer_id,
            restaurant_id: o.restaurant_id,
            lines: o
                .lines
                .into_iter()
                .map(|l| OrderLineView {
                    menu_item_id: l.menu_item_id,
                    name: l.name,
                    quantity: l.quantity,
                    unit_price_cents: l.unit_price_cents,
                })
                .collect(),
            total_cents: o.total_cents,
            ticket_id: o.ticket_id,
            rejection: o.rejection.map(|r| RejectionView {
                step: r.step.as_str().to_owned(),
                failure: r.failure.as_str().to_owned(),
                code: r.code,
                reason: r.reason,
            }),
            compensation_pending: o.compensation_pending,
            created_at: rfc3339(o.created_at_ms),
            history: o
                .history
                .into_iter()
                .map(|t| TransitionView {
                    state: t.state.as_str().to_owned(),
                    at: rfc3339(t.at_ms),
                    note: t.note,
                })
                .collect(),
        }
    }
}

/// Filters of `GET /orders`.
#[derive(Debug, Deserialize, IntoParams)]
pub(crate) struct ListQuery {
    /// Only orders in this state.
    #[param(inline, value_type = OrderStateName, required = false)]
    state: Option<String>,
    /// At most this many (default 50, at most 500), newest first.
    limit: Option<u32>,
}

/// The states an order can be in, as `GET /orders?state=` takes them.
#[derive(ToSchema, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(dead_code)]
pub(crate) enum OrderStateName {
    /// Checking the consumer, reserving the kitchen, authorizing the payment.
    ApprovalPending,
    /// Not yet started.
    CreatePending,
    /// Paid, not yet approved.
    PaymentConfirmed,
    /// Done.
    Approved,
    /// A step said no.
    Rejected,
}

/// An RFC 7807 problem document (`application/problem+json`). A rejected order adds `step`,
/// `order_id`, `state` and the failing service's `code`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct ProblemDetails {
    /// A URI naming the problem type.
    #[schema(rename = "type")]
    type_uri: String,
    /// A short summary.
    title: String,
    /// The HTTP status.
    status: u16,
    /// What happened.
    detail: Option<String>,
    /// The saga step that failed: `consumer`, `kitchen`, `accounting`, `reconciler`, or
    /// `validation`.
    step: Option<String>,
    /// The rejected order.
    order_id: Option<i64>,
    /// The rejected order's state (`REJECTED`).
    state: Option<String>,
    /// A machine-readable code.
    code: Option<String>,
}

/// Places an order and runs the saga: consumer verification, kitchen ticket, payment
/// authorization, ticket confirmation, notification. With `saga.mode = events` the order is
/// stored and answered at once (202), and the saga runs on events.
///
/// Send an `Idempotency-Key` header to make retries safe: a repeated key returns the first
/// order (200, `Idempotent-Replayed: true`) instead of creating another.
#[utoipa::path(post, path = "/orders", tag = "orders",
    request_body = CreateOrderRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries return the same order")),
    responses(
        (status = 201, description = "The order, `APPROVED`", body = OrderView),
        (status = 202, description = "The order, `APPROVAL_PENDING`: with `saga.mode = events` the saga runs on events; follow it at `Location`", body = OrderView),
        (status = 200, description = "The order created earlier with this idempotency key", body = OrderView),
        (status = 400, description = "Malformed JSON", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Invalid order, or rejected by a step (`step` names it)", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 502, description = "A step's service failed or is down (`step` names it); the order is rejected", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 504, description = "A step's service timed out (`step` names it); the order is rejected", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
async fn create_order(
    State(svc): State<Service>,
    headers: HeaderMap,
    Json(request): Json<CreateOrderRequest>,
) -> Result<Response, OrderProblem> {
    let key = match headers.get(IDEMPOTENCY_KEY) {
        None => None,
        Some(v) => match v.to_str() {
            Ok(k) if !k.is_empty() && k.len() <= 200 => Some(k.to_owned()),
            _ => {
                return Err(OrderProblem(OrderError::Invalid(
                    "the Idempotency-Key header must be 1 to 200 visible ASCII characters".into(),
                )));
            }
        },
    };
    let request = PlaceOrder {
        consumer_id: request.consumer_id,
        restaurant_id: request.restaurant_id,
        lines: request
            .lines
            .into_iter()
            .map(|l| OrderLineRequest {
                menu_item_id: l.menu_item_id,
                quantity: l.quantity,
            })
            .collect(),
    };
    let placed = svc.place(request, key).await.map_err(OrderProblem)?;
    let id = placed.order.id;
    let status = if placed.replayed {
        StatusCode::OK
    } else if placed.order.state.is_pending() {
        // The choreographed saga settles the order later: GET its Location to follow it.
        StatusCode::ACCEPTED
    } else {
        StatusCode::CREATED
    };
    let mut response = (status, Json(OrderView::from(placed.order))).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/orders/{id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    if placed.replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// Lists the latest orders.
#[utoipa::path(get, path = "/orders", tag = "orders", params(ListQuery),
    responses(
        (status = 200, description = "Orders, newest first", body = [OrderView]),
        (status = 422, description = "Unknown state", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
async fn list_orders(
    State(svc): State<Service>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Vec<OrderView>>, OrderProblem> {
    let state = match query.state.as_deref() {
        None => None,
        Some(s) => Some(OrderState::parse(s).ok_or_else(|| {
            OrderProblem(OrderError::Invalid(format!("unknown order state {s:?}")))
        })?),
    };
    let limit = query.limit.unwrap_or(50).min(500);
    let orders = svc.list(state, limit).await.map_err(OrderProblem)?;
    Ok(Json(orders.into_iter().map(Into::into).collect()))
}

/// Gets an order: its state and its history.
#[utoipa::path(get, path = "/orders/{id}", tag = "orders",
    params(("id" = i64, Path, description = "The order's id")),
    responses(
        (status = 200, description = "The order", body = OrderView),
        (status = 404, description = "No such order", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
async fn get_order(
    State(svc): State<Service>,
    Path(id): Path<i64>,
) -> Result<Json<OrderView>, OrderProblem> {
    Ok(Json(svc.get(id).await.map_err(OrderProblem)?.into()))
}

/// A domain error on its way to the client as problem+json.
#[derive(Debug)]
pub(crate) struct OrderProblem(OrderError);

impl IntoResponse for OrderProblem {
    fn into_response(self) -> Response {
        aiods::Error::from(self.0).into_response()
    }
}

fn problem(status: StatusCode, code: &str, detail: String) -> Problem {
    Problem::new(status)
        .with_type(format!("https://aiods.dev/problems/{code}"))
        .with_detail(detail)
        .with_extension("code", code)
}

fn failure_status(failure: StepFailure) -> StatusCode {
    match failure {
        StepFailure::NotFound | StepFailure::Refused => StatusCode::UNPROCESSABLE_ENTITY,
        StepFailure::Unavailable => StatusCode::BAD_GATEWAY,
        StepFailure::TimedOut | StepFailure::Expired => StatusCode::GATEWAY_TIMEOUT,
    }
}

impl From<OrderError> for aiods::Error {
    fn from(e: OrderError) -> Self {
        let detail = e.to_string();
        let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
        let p = match e {
            OrderError::Invalid(_) => {
                problem(unprocessable, "invalid-order", detail).with_extension("step", "validation")
            }
            OrderError::UnknownRestaurant(id) => {
                problem(unprocessable, "unknown-restaurant", detail)
                    .with_extension("step", "validation")
                    .with_extension("restaurant_id", id)
            }
            OrderError::UnknownMenuItem { menu_item_id, .. } => {
                problem(unprocessable, "unknown-menu-item", detail)
                    .with_extension("step", "validation")
                    .with_extension("menu_item_id", menu_item_id)
            }
            OrderError::NotFound(id) => problem(StatusCode::NOT_FOUND, "unknown-order", detail)
                .with_extension("order_id", id),
            OrderError::IdempotencyMismatch(_) => {
                problem(unprocessable, "idempotency-key-reused", detail)
            }
            OrderError::StepFailed { step, error } => {
                problem(failure_status(error.failure), "step-failed", detail)
                    .with_extension("step", step.as_str())
                    .with_extension("failure", error.failure.as_str())
            }
            OrderError::Rejected(order) => {
                let Some(r) = order.rejection.as_ref() else {
                    return aiods::Error::internal(format!(
                        "order {} rejected without a reason",
                        order.id
                    ));
                };
                let code = r
                    .code
                    .clone()
                    .unwrap_or_else(|| format!("{}-{}", r.step, r.failure));
                Problem::new(failure_status(r.failure))
                    .with_type("https://aiods.dev/problems/order-rejected")
                    .with_title("Order rejected")
                    .with_detail(format!(
                        "order {} was rejected at the {} step ({}): {}",
                        order.id, r.step, r.failure, r.reason
                    ))
                    .with_instance(format!("/orders/{}", order.id))
                    .with_extension("step", r.step.as_str())
                    .with_extension("failure", r.failure.as_str())
                    .with_extension("code", code)
                    .with_extension("order_id", order.id)
                    .with_extension("state", order.state.as_str())
            }
            OrderError::Repository(_) => return aiods::Error::internal(e),
        };
        p.into()
    }
}

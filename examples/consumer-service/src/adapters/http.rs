//! The HTTP controller (`ConsumerController` of figure 25) and the problem+json mapping of
//! domain errors.

use std::sync::Arc;

use aiods::Problem;
use aiods::error::ProblemDetails;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::{Consumer, ConsumerError, ConsumerService};

type Service = Arc<ConsumerService>;

/// The service's routes, documented.
pub(crate) fn router(service: Service) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(list_consumers))
        .routes(routes!(get_consumer))
        .routes(routes!(validate_consumer))
        .with_state(service)
}

/// A consumer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct ConsumerView {
    /// Its id.
    id: i64,
    /// Full name.
    name: String,
    /// E-mail address.
    email: String,
    /// A blocked consumer cannot order.
    blocked: bool,
    /// The largest order total accepted, in cents.
    order_limit_cents: i64,
}

impl From<Consumer> for ConsumerView {
    fn from(c: Consumer) -> Self {
        Self {
            id: c.id,
            name: c.name,
            email: c.email,
            blocked: c.blocked,
            order_limit_cents: c.order_limit_cents,
        }
    }
}

/// What the order service asks: may this consumer order this much?
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct ValidateRequest {
    /// The order's total, in cents (positive).
    #[schema(minimum = 1)]
    order_total_cents: i64,
}

/// A positive verification.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct ValidationView {
    /// The consumer verified.
    consumer_id: i64,
    /// Always true: refusals are problem documents.
    approved: bool,
}

/// Lists the consumers.
#[utoipa::path(get, path = "/consumers", tag = "consumers",
    responses((status = 200, description = "All consumers", body = [ConsumerView])))]
async fn list_consumers(State(svc): State<Service>) -> aiods::Result<Json<Vec<ConsumerView>>> {
    let consumers = svc.list().await?;
    Ok(Json(consumers.into_iter().map(Into::into).collect()))
}

/// Gets one consumer.
#[utoipa::path(get, path = "/consumers/{id}", tag = "consumers",
    params(("id" = i64, Path, description = "The consumer's id")),
    responses(
        (status = 200, description = "The consumer", body = ConsumerView),
        (status = 404, description = "No such consumer", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
async fn get_consumer(
    State(svc): State<Service>,
    Path(id): Path<i64>,
) -> aiods::Result<Json<ConsumerView>> {
    Ok(Json(svc.get(id).await?.into()))
}

/// Verifies that a consumer may place an order of the given total (`verifyConsumerDetails`).
#[utoipa::path(post, path = "/consumers/{id}/validate", tag = "consumers",
    params(("id" = i64, Path, description = "The consumer's id")),
    request_body = ValidateRequest,
    responses(
        (status = 200, description = "The consumer may order", body = ValidationView),
        (status = 404, description = "No such consumer", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Blocked, over the order limit, or a non-positive total", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
async fn validate_consumer(
    State(svc): State<Service>,
    Path(id): Path<i64>,
    Json(request): Json<ValidateRequest>,
) -> aiods::Result<Json<ValidationView>> {
    let consumer = svc.verify(id, request.order_total_cents).await?;
    Ok(Json(ValidationView {
        consumer_id: consumer.id,
        approved: true,
    }))
}

impl From<ConsumerError> for aiods::Error {
    fn from(e: ConsumerError) -> Self {
        let Some(code) = e.code() else {
            return aiods::Error::internal(e);
        };
        let status = match &e {
            ConsumerError::UnknownConsumer(_) => StatusCode::NOT_FOUND,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        Problem::new(status)
            .with_type(format!("https://aiods.dev/problems/{code}"))
            .with_detail(e.to_string())
            .with_extension("code", code)
            .into()
    }
}

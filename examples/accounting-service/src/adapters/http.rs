//! The HTTP controller (`AccountingController` of figure 27) and the problem+json mapping of
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

use crate::domain::{AccountingError, AccountingService, Authorization};

type Service = Arc<AccountingService>;

/// The service's routes, documented.
pub(crate) fn router(service: Service) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(authorize_payment))
        .routes(routes!(void_authorization))
        .routes(routes!(get_authorization))
        .with_state(service)
}

/// Asks for the payment of an order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct AuthorizeRequest {
    /// The order (one authorization per order: repeating returns the stored outcome).
    order_id: i64,
    /// The paying consumer.
    consumer_id: i64,
    /// The amount, in cents (positive).
    #[schema(minimum = 1)]
    amount_cents: i64,
}

/// Voids an order's authorization.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct VoidRequest {
    /// The order.
    order_id: i64,
}

/// A payment authorization.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct AuthorizationView {
    /// Its id.
    id: i64,
    /// The order paid.
    order_id: i64,
    /// The paying consumer.
    consumer_id: i64,
    /// The amount, in cents.
    amount_cents: i64,
    /// `AUTHORIZED`, `DECLINED` or `VOIDED`.
    state: String,
    /// The provider's reference when approved.
    provider_reference: Option<String>,
    /// The provider's reason when declined.
    reason: Option<String>,
}

impl From<Authorization> for AuthorizationView {
    fn from(a: Authorization) -> Self {
        Self {
            id: a.id,
            order_id: a.order_id,
            consumer_id: a.consumer_id,
            amount_cents: a.amount_cents,
            state: a.state.as_str().to_owned(),
            provider_reference: a.provider_reference,
            reason: a.reason,
        }
    }
}

/// The outcome of a void.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct VoidView {
    /// The order.
    order_id: i64,
    /// Its authorization, if it had one.
    authorization: Option<AuthorizationView>,
}

/// Authorizes the payment of an order through the payment provider (`authorizePayment`).
#[utoipa::path(post, path = "/authorizations", tag = "payments",
    request_body = AuthorizeRequest,
    responses(
        (status = 201, description = "Authorized", body = AuthorizationView),
        (status = 404, description = "The consumer has no account", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "The order was submitted with other terms", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Declined, or a non-positive amount", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 502, description = "The payment provider failed", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
async fn authorize_payment(
    State(svc): State<Service>,
    Json(r): Json<AuthorizeRequest>,
) -> aiods::Result<(StatusCode, Json<AuthorizationView>)> {
    let a = svc
        .authorize(r.order_id, r.consumer_id, r.amount_cents)
        .await?;
    Ok((StatusCode::CREATED, Json(a.into())))
}

/// Voids an order's authorization (the saga's compensation). Harmless when there is none.
#[utoipa::path(post, path = "/authorizations/void", tag = "payments",
    request_body = VoidRequest,
    responses((status = 200, description = "Voided, or nothing to void", body = VoidView)))]
async fn void_authorization(
    State(svc): State<Service>,
    Json(r): Json<VoidRequest>,
) -> aiods::Result<Json<VoidView>> {
    let a = svc.void(r.order_id).await?;
    Ok(Json(VoidView {
        order_id: r.order_id,
        authorization: a.map(Into::into),
    }))
}

/// Gets an authorization.
#[utoipa::path(get, path = "/authorizations/{id}", tag = "payments",
    params(("id" = i64, Path, description = "The authorization's id")),
    responses(
        (status = 200, description = "The authorization", body = AuthorizationView),
        (status = 404, description = "No such authorization", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
async fn get_authorization(
    State(svc): State<Service>,
    Path(id): Path<i64>,
) -> aiods::Result<Json<AuthorizationView>> {
    let a = svc
        .authorization(id)
        .await?
        .ok_or_else(|| aiods::Error::not_found(format!("authorization {id} does not exist")))?;
    Ok(Json(a.into()))
}

impl From<AccountingError> for aiods::Error {
    fn from(e: AccountingError) -> Self {
        let status = match &e {
            AccountingError::UnknownAccount(_) => StatusCode::NOT_FOUND,
            AccountingError::InvalidAmount(_) | AccountingError::Declined { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            AccountingError::Conflict(_) => StatusCode::CONFLICT,
            AccountingError::Provider(_) => StatusCode::BAD_GATEWAY,
            AccountingError::Repository(_) => return aiods::Error::internal(e),
        };
        let code = e.code();
        Problem::new(status)
            .with_type(format!("https://aiods.dev/problems/{code}"))
            .with_detail(e.to_string())
            .with_extension("code", code)
            .into()
    }
}

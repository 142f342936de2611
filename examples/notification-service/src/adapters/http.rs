//! The HTTP controller (`NotificationController` of figure 28) and the problem+json mapping of
//! domain errors.

use std::sync::Arc;

use aiods::Problem;
use aiods::error::ProblemDetails;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::{Notification, NotificationError, NotificationService};

type Service = Arc<NotificationService>;

/// The service's routes, documented.
pub(crate) fn router(service: Service) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(notify_user, list_notifications))
        .with_state(service)
}

/// A message for a customer about an order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct NotifyRequest {
    /// The order.
    order_id: i64,
    /// The customer.
    consumer_id: i64,
    /// The address; the customer's alias when absent.
    recipient: Option<String>,
    /// The subject line (not blank).
    #[schema(pattern = r"\S")]
    subject: String,
    /// The text (not blank).
    #[schema(pattern = r"\S")]
    message: String,
}

/// A notification in the outbox.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct NotificationView {
    /// Its id.
    id: i64,
    /// The order.
    order_id: i64,
    /// The customer.
    consumer_id: i64,
    /// `email`.
    channel: String,
    /// The address.
    recipient: String,
    /// The subject line.
    subject: String,
    /// `SENT` or `FAILED`.
    status: String,
}

impl From<Notification> for NotificationView {
    fn from(n: Notification) -> Self {
        Self {
            id: n.id,
            order_id: n.order_id,
            consumer_id: n.consumer_id,
            channel: n.channel,
            recipient: n.email.to,
            subject: n.email.subject,
            status: n.status,
        }
    }
}

/// Filters of `GET /notifications`.
#[derive(Debug, Deserialize, IntoParams)]
pub(crate) struct ListQuery {
    /// The order whose notifications are wanted.
    order_id: i64,
}

/// Sends a notification to a customer (`notifyUser`) and records it in the outbox.
#[utoipa::path(post, path = "/notifications", tag = "notifications",
    request_body = NotifyRequest,
    responses(
        (status = 201, description = "Sent and recorded", body = NotificationView),
        (status = 422, description = "Empty subject or message", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 502, description = "The e-mail could not be sent (recorded as FAILED)", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
async fn notify_user(
    State(svc): State<Service>,
    Json(r): Json<NotifyRequest>,
) -> aiods::Result<(StatusCode, Json<NotificationView>)> {
    let n = svc
        .notify(r.order_id, r.consumer_id, r.recipient, r.subject, r.message)
        .await?;
    Ok((StatusCode::CREATED, Json(n.into())))
}

/// Lists the notifications about an order.
#[utoipa::path(get, path = "/notifications", tag = "notifications", params(ListQuery),
    responses((status = 200, description = "The order's notifications", body = [NotificationView])))]
async fn list_notifications(
    State(svc): State<Service>,
    Query(q): Query<ListQuery>,
) -> aiods::Result<Json<Vec<NotificationView>>> {
    let all = svc.for_order(q.order_id).await?;
    Ok(Json(all.into_iter().map(Into::into).collect()))
}

impl From<NotificationError> for aiods::Error {
    fn from(e: NotificationError) -> Self {
        let (status, code) = match &e {
            NotificationError::Empty => (StatusCode::UNPROCESSABLE_ENTITY, "empty-notification"),
            NotificationError::Email(_) => (StatusCode::BAD_GATEWAY, "email-not-sent"),
            NotificationError::Repository(_) => return aiods::Error::internal(e),
        };
        Problem::new(status)
            .with_type(format!("https://aiods.dev/problems/{code}"))
            .with_detail(e.to_string())
            .with_extension("code", code)
            .into()
    }
}

//! A service exercising every chassis feature; the chassis's integration tests run it.
//!
//! `GET /hello/{name}`, `GET /slow?ms=N`, `GET /block?ms=N` (blocks its worker thread, as a
//! wedged handler would), `GET /panic`, `GET /fail`, `POST /items`,
//! `GET /users/{id}`, `GET /layers` (the `probe.layers` table of the configuration). Readiness check `flag-file` is DOWN while the file named by
//! `probe.down_file` exists.

use std::time::Duration;

use aiods::prelude::*;
use aiods::utoipa;
use aiods::utoipa_axum::{router::OpenApiRouter, routes};
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Deserialize)]
struct ProbeConfig {
    down_file: Option<String>,
    /// Free keys echoed by `GET /layers`, to show which configuration layer set each.
    #[serde(default)]
    layers: std::collections::BTreeMap<String, String>,
}

#[aiods::service(name = "probe")]
async fn main(ctx: ServiceContext) -> aiods::Result<OpenApiRouter> {
    let cfg: ProbeConfig = ctx.settings().section_or_default("probe")?;
    let layers = Json(cfg.layers.clone());
    if let Some(file) = cfg.down_file {
        ctx.health().register("flag-file", move || {
            let file = file.clone();
            async move {
                match tokio::fs::metadata(&file).await {
                    Ok(_) => Err(format!("flag file {file} is present")),
                    Err(_) => Ok(()),
                }
            }
        });
    }
    Ok(OpenApiRouter::new()
        .routes(routes!(hello))
        .routes(routes!(create_item))
        .route("/slow", get(slow))
        .route("/block", get(block))
        .route("/layers", get(move || async move { layers }))
        .route("/panic", get(panics))
        .route("/fail", get(fails))
        .route("/users/{id}", get(user))
        .route("/log", get(log_inside))
        .route("/call/{upstream}", get(call_upstream))
        .with_state(ctx.client().clone()))
}

async fn log_inside() -> &'static str {
    tracing::info!(marker = "inside", "a log line inside the request");
    "logged"
}

/// Calls `GET /hello/from-probe` on `upstream` through the chassis client.
async fn call_upstream(
    State(client): State<aiods::Client>,
    Path(upstream): Path<String>,
) -> aiods::Result<String> {
    let res = client
        .call(
            aiods::axum::http::Method::GET,
            &upstream,
            "/hello/from-probe",
            None::<&()>,
        )
        .await?;
    res.text()
        .await
        .map_err(|e| aiods::Error::internal(format!("unreadable: {e}")))
}

/// Greets someone.
#[utoipa::path(get, path = "/hello/{name}", params(("name" = String, Path, description = "who")),
    responses((status = 200, description = "A greeting", body = String)))]
async fn hello(Path(name): Path<String>) -> String {
    format!("hello {name}")
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
struct Item {
    name: String,
    quantity: u32,
}

/// Creates an item.
#[utoipa::path(post, path = "/items", request_body = Item,
    responses((status = 200, description = "The item", body = Item), (status = 422, description = "Invalid item")))]
async fn create_item(Json(item): Json<Item>) -> aiods::Result<Json<Item>> {
    if item.quantity == 0 {
        return Err(aiods::Error::unprocessable("quantity must be positive"));
    }
    Ok(Json(item))
}

#[derive(Deserialize)]
struct SlowParams {
    ms: u64,
}

async fn slow(Query(p): Query<SlowParams>) -> String {
    tokio::time::sleep(Duration::from_millis(p.ms)).await;
    format!("slept {}ms", p.ms)
}

/// Blocks the runtime worker that runs it: what a handler stuck in a blocking call does.
async fn block(Query(p): Query<SlowParams>) -> String {
    std::thread::sleep(Duration::from_millis(p.ms));
    format!("blocked {}ms", p.ms)
}

async fn panics() -> String {
    panic!("the probe handler panicked on purpose")
}

async fn fails() -> aiods::Result<String> {
    Err(aiods::Error::internal(std::io::Error::other(
        "secret database password rejected",
    )))
}

async fn user(Path(id): Path<u32>) -> String {
    format!("user {id}")
}

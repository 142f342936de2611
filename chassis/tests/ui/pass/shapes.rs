// Every supported shape compiles; `main` itself is plain so the test does not serve.
use aiods::prelude::*;
use aiods::utoipa_axum::router::OpenApiRouter;

#[aiods::service]
async fn plain() -> Router {
    Router::new().route("/", get(|| async { "hi" }))
}

#[aiods::service(name = "greeter")]
async fn with_context(ctx: ServiceContext) -> aiods::Result<Router> {
    let _ = ctx.settings().chassis().port;
    Ok(Router::new())
}

#[aiods::service]
async fn with_parts(_health: HealthRegistry, _client: Client, _settings: Settings) -> OpenApiRouter {
    OpenApiRouter::new()
}

#[aiods::service]
async fn fallible_with_any_error() -> Result<Router, std::io::Error> {
    Ok(Router::new())
}

// Generated names never clash with the user's.
#[aiods::service]
async fn shadowing(__aiods_ctx: ServiceContext) -> Router {
    let __aiods_value = 1;
    let _ = (__aiods_ctx, __aiods_value);
    Router::new()
}

fn main() {
    let _ = (plain, with_context, with_parts, fallible_with_any_error, shadowing);
}

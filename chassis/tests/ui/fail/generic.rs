use aiods::prelude::*;

#[aiods::service]
async fn main<T>() -> Router {
    Router::new()
}

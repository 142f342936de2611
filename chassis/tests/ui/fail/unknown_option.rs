use aiods::prelude::*;

#[aiods::service(port = "8080")]
async fn main() -> Router {
    Router::new()
}

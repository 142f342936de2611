use aiods::prelude::*;

#[aiods::service]
fn main() -> Router {
    Router::new()
}

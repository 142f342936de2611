use aiods::prelude::*;

#[aiods::service]
async fn main() -> Router {
    let port: u16 = "8080";
    Router::new()
}

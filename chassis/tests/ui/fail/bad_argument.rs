use aiods::prelude::*;

#[aiods::service]
async fn main(database_url: String) -> Router {
    let _ = database_url;
    Router::new()
}

//! The smallest aiods service, exactly as in the README.

use aiods::prelude::*;

#[aiods::service]
async fn main() -> Router {
    Router::new().route("/hello/{name}", get(hello))
}

async fn hello(Path(name): Path<String>) -> String {
    format!("hello {name}")
}

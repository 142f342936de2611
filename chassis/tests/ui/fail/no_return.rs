#[aiods::service]
async fn main() {}

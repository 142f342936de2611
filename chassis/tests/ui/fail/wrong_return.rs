#[aiods::service]
async fn main() -> String {
    "not a router".to_owned()
}

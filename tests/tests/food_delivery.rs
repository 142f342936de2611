//! End-to-end: the five food-delivery services as real processes on real sockets, with their
//! own SQLite files. Placing orders that are approved, rejected at each step, retried with an
//! idempotency key, and placed while a downstream service is killed with SIGKILL.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use aiods_e2e::{FoodDelivery, eventually, http_client, one_str, order_request};
use serde_json::{Value, json};
use sqlx::SqlitePool;

fn start(extra: &[(&str, &str)]) -> FoodDelivery {
    let mut env = vec![("AIODS_ORDERS__RECONCILE_INTERVAL_MS", "200")];
    env.extend_from_slice(extra);
    FoodDelivery::start(&aiods_e2e::food_binaries!(), &env).unwrap()
}

struct Answer {
    status: u16,
    content_type: String,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

async fn post_order(fd: &FoodDelivery, body: &Value, key: Option<&str>) -> Answer {
    let mut req = http_client()
        .post(format!("{}/orders", fd.order_url()))
        .json(body);
    if let Some(key) = key {
        req = req.header("Idempotency-Key", key);
    }
    answer(req.send().await.unwrap()).await
}

async fn answer(res: reqwest::Response) -> Answer {
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = res.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        content_type,
        headers,
        body,
    }
}

async fn get(url: String) -> Answer {
    answer(http_client().get(url).send().await.unwrap()).await
}

async fn count(pool: &SqlitePool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

fn assert_problem(a: &Answer, status: u16, step: &str) {
    assert_eq!(a.status, status, "{:#}", a.body);
    assert_eq!(a.content_type, "application/problem+json", "{:#}", a.body);
    assert_eq!(a.body["status"], status);
    assert_eq!(a.body["step"], step, "{:#}", a.body);
}

#[tokio::test]
async fn an_approved_order_goes_through_all_five_services() {
    let fd = start(&[]);
    let a = post_order(&fd, &order_request(1, &[(11, 2), (12, 1)]), None).await;
    assert_eq!(a.status, 201, "{:#}", a.body);
    let id = a.body["id"].as_i64().unwrap();
    assert_eq!(a.body["state"], "APPROVED");
    assert_eq!(a.body["total_cents"], 2 * 1250 + 350);
    assert_eq!(a.headers["location"], format!("/orders/{id}").as_str());

    let got = get(format!("{}/orders/{id}", fd.order_url())).await;
    assert_eq!(got.status, 200);
    let states: Vec<&str> = got.body["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states,
        [
            "APPROVAL_PENDING",
            "CREATE_PENDING",
            "PAYMENT_CONFIRMED",
            "APPROVED",
            "APPROVED"
        ]
    );
    assert!(
        got.body["history"][0]["at"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );

    // Every service stored its part.
    let orders = fd.db("order").await.unwrap();
    assert_eq!(
        one_str(&orders, "SELECT state FROM orders WHERE id = ?", id)
            .await
            .unwrap()
            .as_deref(),
        Some("APPROVED")
    );
    let kitchen = fd.db("kitchen").await.unwrap();
    assert_eq!(
        one_str(&kitchen, "SELECT state FROM tickets WHERE order_id = ?", id)
            .await
            .unwrap()
            .as_deref(),
        Some("ACCEPTED")
    );
    let accounting = fd.db("accounting").await.unwrap();
    assert_eq!(
        one_str(
            &accounting,
            "SELECT state FROM authorizations WHERE order_id = ?",
            id
        )
        .await
        .unwrap()
        .as_deref(),
        Some("AUTHORIZED")
    );
    let notification = fd.db("notification").await.unwrap();
    assert_eq!(
        one_str(
            &notification,
            "SELECT status FROM outbox WHERE order_id = ?",
            id
        )
        .await
        .unwrap()
        .as_deref(),
        Some("SENT")
    );
    let consumer = fd.db("consumer").await.unwrap();
    assert_eq!(
        count(&consumer, "SELECT count(*) FROM validations WHERE approved").await,
        1
    );

    // Every service documents its API and is ready (its database check passes).
    for (svc, path) in [
        (&fd.order, "/orders"),
        (&fd.consumer, "/consumers/{id}/validate"),
        (&fd.kitchen, "/tickets/{id}/cancel"),
        (&fd.accounting, "/authorizations"),
        (&fd.notification, "/notifications"),
    ] {
        let api = get(format!("{}/openapi.json", svc.url())).await;
        assert!(
            api.body["paths"].get(path).is_some(),
            "{} lacks {path}",
            svc.name
        );
        let ready = get(format!("{}/health/ready", svc.url())).await;
        assert_eq!(ready.status, 200, "{}: {:#}", svc.name, ready.body);
        assert!(
            ready.body.to_string().contains("database"),
            "{:#}",
            ready.body
        );
    }
}

#[tokio::test]
async fn a_rejection_at_each_step_names_the_step_and_compensates() {
    let fd = start(&[]);
    let orders = fd.db("order").await.unwrap();
    let kitchen = fd.db("kitchen").await.unwrap();
    let accounting = fd.db("accounting").await.unwrap();

    // Consumer step: blocked, unknown, over the limit.
    let a = post_order(&fd, &order_request(3, &[(11, 1)]), None).await;
    assert_problem(&a, 422, "consumer");
    assert_eq!(a.body["code"], "consumer-blocked");
    assert_eq!(a.body["state"], "REJECTED");
    let blocked = a.body["order_id"].as_i64().unwrap();
    assert_eq!(
        one_str(&orders, "SELECT state FROM orders WHERE id = ?", blocked)
            .await
            .unwrap()
            .as_deref(),
        Some("REJECTED")
    );
    assert_eq!(
        one_str(
            &orders,
            "SELECT rejection_step FROM orders WHERE id = ?",
            blocked
        )
        .await
        .unwrap()
        .as_deref(),
        Some("consumer")
    );
    assert_eq!(
        one_str(
            &kitchen,
            "SELECT state FROM tickets WHERE order_id = ?",
            blocked
        )
        .await
        .unwrap(),
        None
    );

    let a = post_order(&fd, &order_request(99, &[(11, 1)]), None).await;
    assert_problem(&a, 422, "consumer");
    assert_eq!(a.body["failure"], "not_found");
    assert_eq!(a.body["code"], "unknown-consumer");

    let a = post_order(&fd, &order_request(4, &[(11, 2)]), None).await;
    assert_problem(&a, 422, "consumer");
    assert_eq!(a.body["code"], "order-limit-exceeded");

    // Kitchen step: a sold-out item.
    let a = post_order(&fd, &order_request(1, &[(11, 1), (13, 1)]), None).await;
    assert_problem(&a, 422, "kitchen");
    assert_eq!(a.body["code"], "item-unavailable");
    let sold_out = a.body["order_id"].as_i64().unwrap();
    assert_eq!(
        one_str(
            &kitchen,
            "SELECT state FROM tickets WHERE order_id = ?",
            sold_out
        )
        .await
        .unwrap(),
        None
    );

    // Accounting step: a declined card; the ticket is cancelled (compensation).
    let a = post_order(&fd, &order_request(5, &[(11, 1)]), None).await;
    assert_problem(&a, 422, "accounting");
    assert_eq!(a.body["code"], "payment-declined");
    let declined = a.body["order_id"].as_i64().unwrap();
    assert_eq!(
        one_str(
            &kitchen,
            "SELECT state FROM tickets WHERE order_id = ?",
            declined
        )
        .await
        .unwrap()
        .as_deref(),
        Some("CANCELLED")
    );
    assert_eq!(
        one_str(
            &accounting,
            "SELECT state FROM authorizations WHERE order_id = ?",
            declined
        )
        .await
        .unwrap()
        .as_deref(),
        Some("DECLINED")
    );
    let got = get(format!("{}/orders/{declined}", fd.order_url())).await;
    assert_eq!(got.body["state"], "REJECTED");
    assert_eq!(got.body["rejection"]["step"], "accounting");
    assert_eq!(got.body["compensation_pending"], false);
    let last_note = got.body["history"].as_array().unwrap().last().unwrap()["note"].to_string();
    assert!(last_note.contains("cancelled"), "{last_note}");

    // No account at all: the accounting step again, not found.
    let a = post_order(&fd, &order_request(6, &[(11, 1)]), None).await;
    assert_problem(&a, 422, "accounting");
    assert_eq!(a.body["code"], "unknown-account");

    assert_eq!(
        count(
            &orders,
            "SELECT count(*) FROM orders WHERE state <> 'REJECTED'"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn invalid_requests_get_problem_json_and_store_nothing() {
    let fd = start(&[]);
    let cases = [
        (
            json!({"consumer_id": 1, "restaurant_id": 1, "lines": []}),
            "invalid-order",
        ),
        (order_request(1, &[(11, 0)]), "invalid-order"),
        (order_request(1, &[(11, -3)]), "invalid-order"),
        (order_request(1, &[(99, 1)]), "unknown-menu-item"),
        (
            json!({"consumer_id": 1, "restaurant_id": 42, "lines": [{"menu_item_id": 11, "quantity": 1}]}),
            "unknown-restaurant",
        ),
    ];
    for (body, code) in cases {
        let a = post_order(&fd, &body, None).await;
        assert_problem(&a, 422, "validation");
        assert_eq!(a.body["code"], code, "{body}");
    }
    let malformed = answer(
        http_client()
            .post(format!("{}/orders", fd.order_url()))
            .header("content-type", "application/json")
            .body("{\"consumer_id\": 1, \"lines\": [")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(
        (400..500).contains(&malformed.status),
        "{}",
        malformed.status
    );
    assert_eq!(malformed.content_type, "application/problem+json");

    let missing = get(format!("{}/orders/424242", fd.order_url())).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.content_type, "application/problem+json");

    let orders = fd.db("order").await.unwrap();
    assert_eq!(count(&orders, "SELECT count(*) FROM orders").await, 0);
}

#[tokio::test]
async fn an_idempotency_key_makes_retries_return_the_same_order() {
    let fd = start(&[]);
    let body = order_request(2, &[(12, 1)]);
    let first = post_order(&fd, &body, Some("retry-me")).await;
    assert_eq!(first.status, 201, "{:#}", first.body);
    let again = post_order(&fd, &body, Some("retry-me")).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.body["id"], first.body["id"]);

    // Concurrent retries of a new key still make one order.
    let fd_url = fd.order_url();
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let url = fd_url.clone();
            let body = body.clone();
            tokio::spawn(async move {
                let res = http_client()
                    .post(format!("{url}/orders"))
                    .header("Idempotency-Key", "burst")
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                let v: Value = res.json().await.unwrap();
                v["id"].as_i64()
            })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");

    // A different request under a used key is refused.
    let other = post_order(&fd, &order_request(2, &[(12, 5)]), Some("retry-me")).await;
    assert_eq!(other.status, 422);
    assert_eq!(other.body["code"], "idempotency-key-reused");

    // A rejected order replays as the same rejection.
    let r1 = post_order(&fd, &order_request(3, &[(11, 1)]), Some("blocked")).await;
    let r2 = post_order(&fd, &order_request(3, &[(11, 1)]), Some("blocked")).await;
    assert_problem(&r2, 422, "consumer");
    assert_eq!(r1.body["order_id"], r2.body["order_id"]);

    let orders = fd.db("order").await.unwrap();
    assert_eq!(count(&orders, "SELECT count(*) FROM orders").await, 3);
}

#[tokio::test]
async fn killing_a_downstream_service_fails_orders_cleanly_and_nothing_stays_pending() {
    let mut fd = start(&[]);
    let ok = post_order(&fd, &order_request(1, &[(11, 1)]), None).await;
    assert_eq!(ok.status, 201);

    fd.accounting.kill();
    let a = post_order(&fd, &order_request(1, &[(12, 1)]), None).await;
    assert_problem(&a, 502, "accounting");
    assert_eq!(a.body["failure"], "unavailable");
    let failed_at_accounting = a.body["order_id"].as_i64().unwrap();
    let kitchen = fd.db("kitchen").await.unwrap();
    assert_eq!(
        one_str(
            &kitchen,
            "SELECT state FROM tickets WHERE order_id = ?",
            failed_at_accounting
        )
        .await
        .unwrap()
        .as_deref(),
        Some("CANCELLED")
    );
    // The payment could not be voided while accounting is down: retried later.
    let got = get(format!("{}/orders/{failed_at_accounting}", fd.order_url())).await;
    assert_eq!(got.body["compensation_pending"], true);

    fd.consumer.kill();
    let a = post_order(&fd, &order_request(1, &[(11, 1)]), None).await;
    assert_problem(&a, 502, "consumer");

    fd.kitchen.kill();
    let a = post_order(&fd, &order_request(1, &[(11, 1)]), None).await;
    assert_problem(&a, 502, "kitchen");

    fd.consumer.restart(&[]).unwrap();
    fd.kitchen.restart(&[]).unwrap();
    fd.accounting.restart(&[]).unwrap();
    // The chassis client may hold a circuit breaker open for a moment after the failures.
    let again = eventually(Duration::from_secs(15), || {
        let fd = &fd;
        async move {
            let a = post_order(fd, &order_request(1, &[(11, 1)]), None).await;
            (a.status == 201).then_some(a)
        }
    })
    .await;
    assert!(
        again.is_some(),
        "orders never succeeded again:\n{}",
        fd.order.output()
    );

    let orders = fd.db("order").await.unwrap();
    let settled = eventually(Duration::from_secs(10), || {
        let orders = orders.clone();
        async move {
            let open: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM orders WHERE compensation_pending \
                 OR state NOT IN ('APPROVED', 'REJECTED')",
            )
            .fetch_one(&orders)
            .await
            .ok()?;
            (open == 0).then_some(())
        }
    })
    .await;
    assert!(
        settled.is_some(),
        "orders left pending:\n{}",
        fd.order.output()
    );
    let history = get(format!("{}/orders/{failed_at_accounting}", fd.order_url())).await;
    assert!(
        history.body["history"]
            .to_string()
            .contains("compensation retried")
    );
}

#[tokio::test]
async fn an_order_left_pending_by_a_crashed_order_service_is_reconciled_after_restart() {
    let mut fd = start(&[("AIODS_ORDERS__PENDING_TIMEOUT_MS", "1000")]);
    // Accounting hangs, so the saga waits there with the kitchen ticket already created.
    fd.accounting.signal("STOP").unwrap();
    let url = fd.order_url();
    let placing = tokio::spawn(async move {
        let _ = http_client()
            .post(format!("{url}/orders"))
            .json(&order_request(1, &[(11, 1)]))
            .send()
            .await;
    });
    let orders = fd.db("order").await.unwrap();
    let id = eventually(Duration::from_secs(10), || {
        let orders = orders.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT id FROM orders WHERE state = 'CREATE_PENDING'")
                .fetch_optional(&orders)
                .await
                .ok()
                .flatten()
        }
    })
    .await
    .expect("the saga reached CREATE_PENDING");

    fd.order.kill();
    placing.abort();
    fd.accounting.signal("CONT").unwrap();
    fd.order.restart(&[]).unwrap();

    let rejected = eventually(Duration::from_secs(10), || {
        let orders = orders.clone();
        async move {
            let state: String = sqlx::query_scalar("SELECT state FROM orders WHERE id = ?")
                .bind(id)
                .fetch_one(&orders)
                .await
                .ok()?;
            (state == "REJECTED").then_some(())
        }
    })
    .await;
    assert!(rejected.is_some(), "not reconciled:\n{}", fd.order.output());
    let got = get(format!("{}/orders/{id}", fd.order_url())).await;
    assert_eq!(got.body["rejection"]["step"], "reconciler");
    assert_eq!(got.body["rejection"]["failure"], "expired");
    let kitchen = fd.db("kitchen").await.unwrap();
    assert_eq!(
        one_str(&kitchen, "SELECT state FROM tickets WHERE order_id = ?", id)
            .await
            .unwrap()
            .as_deref(),
        Some("CANCELLED")
    );
    let accounting = fd.db("accounting").await.unwrap();
    let payment = one_str(
        &accounting,
        "SELECT state FROM authorizations WHERE order_id = ?",
        id,
    )
    .await
    .unwrap();
    assert!(
        payment.is_none() || payment.as_deref() == Some("VOIDED"),
        "{payment:?}"
    );
}

/// An OTLP/HTTP JSON receiver on a free port, keeping every `resourceSpans` it is sent.
async fn otlp_receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    use axum::routing::post;
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                if let Ok(v) = serde_json::from_slice::<Value>(&body)
                    && let Some(resources) = v["resourceSpans"].as_array()
                {
                    sink.lock().unwrap().extend(resources.iter().cloned());
                }
                axum::Json(json!({}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

/// `(trace id, service name, span name)` of every span received.
fn spans(received: &[Value]) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for resource in received {
        let service = resource["resource"]["attributes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["key"] == "service.name")
            .and_then(|a| a["value"]["stringValue"].as_str())
            .unwrap_or_default()
            .to_owned();
        for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
            for span in scope["spans"].as_array().into_iter().flatten() {
                out.push((
                    span["traceId"].as_str().unwrap_or_default().to_owned(),
                    service.clone(),
                    span["name"].as_str().unwrap_or_default().to_owned(),
                ));
            }
        }
    }
    out
}

/// One approved order is one trace whose spans cover all five services, as received by a
/// real OTLP receiver: the chassis exports spans and propagates `traceparent` through
/// `aiods::Client`.
#[tokio::test(flavor = "multi_thread")]
async fn one_order_is_one_trace_across_five_services() {
    let (endpoint, received) = otlp_receiver().await;
    let fd = start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
    ]);
    let a = post_order(&fd, &order_request(1, &[(11, 1)]), None).await;
    assert_eq!(a.status, 201, "{:#}", a.body);

    let all_five = [
        "order-service",
        "consumer-service",
        "kitchen-service",
        "accounting-service",
        "notification-service",
    ];
    let trace = eventually(Duration::from_secs(20), || {
        let received = received.clone();
        async move {
            let spans = spans(&received.lock().unwrap());
            let root = spans
                .iter()
                .find(|(_, svc, name)| svc == "order-service" && name == "POST /orders")?;
            let services: std::collections::BTreeSet<&str> = spans
                .iter()
                .filter(|(trace, _, _)| *trace == root.0)
                .map(|(_, svc, _)| svc.as_str())
                .collect();
            all_five
                .iter()
                .all(|s| services.contains(s))
                .then(|| root.0.clone())
        }
    })
    .await;
    assert!(
        trace.is_some(),
        "no trace covers the five services; spans received: {:#?}",
        spans(&received.lock().unwrap())
    );
}

/// The problem responses an operation's document must list, whoever wrote the handler: the
/// chassis answers them itself (axum's rejections, the body limit, panics).
fn chassis_statuses(op: &Value) -> Vec<&'static str> {
    let has_params = op["parameters"].as_array().is_some_and(|p| !p.is_empty());
    let has_body = op.get("requestBody").is_some();
    let mut want = vec!["500"];
    if has_params || has_body {
        want.push("400");
    }
    if has_body {
        want.extend(["413", "415", "422"]);
    }
    want
}

/// Follows a `$ref` to `#/components/responses/…` (or returns the response itself).
fn resolve<'a>(api: &'a Value, response: &'a Value) -> &'a Value {
    match response["$ref"].as_str() {
        Some(r) => {
            let name = r.trim_start_matches("#/components/responses/");
            &api["components"]["responses"][name]
        }
        None => response,
    }
}

#[tokio::test]
async fn every_operation_documents_the_chassis_problems_and_what_validation_enforces() {
    let fd = start(&[]);
    let mut checked = 0;
    for svc in [
        &fd.order,
        &fd.consumer,
        &fd.kitchen,
        &fd.accounting,
        &fd.notification,
    ] {
        let api = get(format!("{}/openapi.json", svc.url())).await.body;
        let paths = api["paths"].as_object().unwrap();
        for (path, item) in paths {
            for (method, op) in item.as_object().unwrap() {
                if op.get("responses").is_none() {
                    continue;
                }
                for status in chassis_statuses(op) {
                    let response = resolve(&api, &op["responses"][status]);
                    assert!(
                        response["content"]
                            .get("application/problem+json")
                            .is_some(),
                        "{}: {method} {path} does not document its {status} problem: {:#}",
                        svc.name,
                        op["responses"]
                    );
                    checked += 1;
                }
            }
        }
        assert!(
            api["components"]["schemas"].get("ProblemDetails").is_some(),
            "{}",
            svc.name
        );
    }
    assert!(checked > 40, "only {checked} responses checked");

    // The schemas say what the validation enforces: a schema-valid body is not refused by it.
    let schema = |api: &Value, name: &str, field: &str| -> Value {
        api["components"]["schemas"][name]["properties"][field].clone()
    };
    let kitchen = get(format!("{}/openapi.json", fd.kitchen.url())).await.body;
    assert_eq!(
        schema(&kitchen, "TicketLineInput", "quantity")["minimum"],
        1
    );
    assert_eq!(
        schema(&kitchen, "CreateTicketRequest", "lines")["minItems"],
        1
    );
    let orders = get(format!("{}/openapi.json", fd.order.url())).await.body;
    let quantity = schema(&orders, "OrderLineInput", "quantity");
    assert_eq!(
        (quantity["minimum"].clone(), quantity["maximum"].clone()),
        (json!(1), json!(100))
    );
    assert_eq!(
        schema(&orders, "CreateOrderRequest", "lines")["minItems"],
        1
    );
    let accounting = get(format!("{}/openapi.json", fd.accounting.url()))
        .await
        .body;
    assert_eq!(
        schema(&accounting, "AuthorizeRequest", "amount_cents")["minimum"],
        1
    );
    let consumer = get(format!("{}/openapi.json", fd.consumer.url()))
        .await
        .body;
    assert_eq!(
        schema(&consumer, "ValidateRequest", "order_total_cents")["minimum"],
        1
    );
    let notification = get(format!("{}/openapi.json", fd.notification.url()))
        .await
        .body;
    for field in ["subject", "message"] {
        assert_eq!(
            schema(&notification, "NotifyRequest", field)["pattern"],
            "\\S"
        );
    }
    // An order state outside the enumeration is a 400 the schema now rules out.
    let list = &orders["paths"]["/orders"]["get"]["parameters"];
    let state = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "state")
        .unwrap();
    let states = state.to_string();
    assert!(
        [
            "APPROVAL_PENDING",
            "CREATE_PENDING",
            "PAYMENT_CONFIRMED",
            "APPROVED",
            "REJECTED"
        ]
        .iter()
        .all(|s| states.contains(s)),
        "state parameter: {state:#}"
    );
}

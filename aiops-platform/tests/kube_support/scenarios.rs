//! Each scenario drives a [`KubernetesActuator`] against the scripted API server and asserts
//! every request and every lifecycle event; it panics on the first difference.

use std::net::SocketAddr;
use std::time::Duration;

use aiops_platform::incident::Signal;
use aiops_platform::supervisor::actuator::kubernetes::{
    AnnotatedSet, Discovered, DiscoveryChange, deployment_replicas, discover, watch_annotated,
};
use aiops_platform::supervisor::actuator::{
    Actuator, ActuatorError, KubernetesActuator, KubernetesError, KubernetesWorkload,
    LifecycleEvent, LifecycleStream, Reason, Traffic, WorkloadSpec,
};
use aiops_platform::supervisor::{ExitReason, InstanceId};
use serde_json::{Value, json};

use super::api_server::{ApiServer, Call, mocked};
use super::fixtures::{self, DEPLOYMENT, NS, POD_A, POD_B, SELECTOR, Stage};

const IP_A: &str = "10.244.1.7";
const IP_B: &str = "10.244.2.9";
const PODS: &str = "/api/v1/namespaces/aiods/pods";
const EVENTS: &str = "/api/v1/namespaces/aiods/events";
const DEPLOY: &str = "/apis/apps/v1/namespaces/aiods/deployments/order-service";
const SCALE: &str = "/apis/apps/v1/namespaces/aiods/deployments/order-service/scale";
const HPAS: &str = "/apis/autoscaling/v2/namespaces/aiods/horizontalpodautoscalers";
/// 2026-12-02T10:00:00Z in ns since the epoch.
const T0: u64 = 1_796_205_600_000_000_000;
const SECOND: u64 = 1_000_000_000;

/// Every scenario, one after another (the RBAC test's source of requests).
pub async fn all() {
    watch_reports_pod_lifecycle_with_pod_times().await;
    watch_relists_after_expiry().await;
    restart_deletes_the_pod_and_its_successor_takes_the_id().await;
    forbidden_is_a_typed_error_and_the_actuator_goes_on().await;
    scale_patches_the_scale_subresource().await;
    hpa_owning_the_deployment_refuses_scaling().await;
    conflict_on_scale_is_retried_once_then_typed().await;
    traffic_relabels_out_and_back_in_order().await;
    rollout_restart_patches_the_template().await;
    stop_marks_the_pod_cheapest_and_scales_back().await;
    discovery_finds_annotated_deployments().await;
    deployment_replicas_reads_the_spec().await;
    discovery_watch_finds_and_lets_go().await;
}

fn workload() -> KubernetesWorkload {
    KubernetesWorkload {
        service: DEPLOYMENT.into(),
        namespace: NS.into(),
        deployment: Some(DEPLOYMENT.into()),
        selector: None,
        port: 8080,
    }
}

fn spec() -> WorkloadSpec {
    WorkloadSpec {
        service: DEPLOYMENT.into(),
        command: Vec::new(),
        env: Vec::new(),
        port_env: "AIODS_PORT".into(),
        cwd: None,
        data_dir: std::env::temp_dir(),
        drain_grace: Duration::from_secs(1),
    }
}

fn id(index: u32) -> InstanceId {
    InstanceId::new(DEPLOYMENT, index)
}

fn addr(ip: &str) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap_or_else(|e| panic!("{e}")), 8080)
}

async fn next(stream: &mut LifecycleStream) -> LifecycleEvent {
    match tokio::time::timeout(Duration::from_secs(5), stream.recv()).await {
        Ok(Some(e)) => e,
        other => panic!("no lifecycle event: {other:?}"),
    }
}

fn list_query() -> [(&'static str, &'static str); 2] {
    [("labelSelector", SELECTOR), ("limit", "500")]
}

async fn expect_watch(server: &mut ApiServer, rv: &str) -> Call {
    server
        .expect(
            "GET",
            PODS,
            &[
                ("watch", "true"),
                ("timeoutSeconds", "290"),
                ("labelSelector", SELECTOR),
                ("allowWatchBookmarks", "true"),
                ("resourceVersion", rv),
            ],
        )
        .await
}

/// An Event create: asserts the object, reason and source; answers 201. Returns the body.
async fn expect_event(server: &mut ApiServer, reason: &str, kind: &str, name: &str) -> Value {
    let call = server.expect("POST", EVENTS, &[]).await;
    let body = call.body.clone();
    assert_eq!(
        (body["apiVersion"].as_str(), body["kind"].as_str()),
        (Some("v1"), Some("Event"))
    );
    assert_eq!(body["reason"], reason, "{body}");
    let object = &body["involvedObject"];
    assert_eq!(
        (object["kind"].as_str(), object["name"].as_str()),
        (Some(kind), Some(name))
    );
    assert_eq!(object["namespace"], NS);
    let api_version = if kind == "Pod" { "v1" } else { "apps/v1" };
    assert_eq!(object["apiVersion"], api_version);
    assert_eq!(body["metadata"]["namespace"], NS);
    assert!(
        body["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n.starts_with(&format!("{name}."))),
        "{body}"
    );
    assert_eq!(body["source"]["component"], "aiops");
    assert_eq!(body["reportingComponent"], "aiops");
    assert_eq!(body["count"], 1);
    assert!(
        body["firstTimestamp"].is_string() && body["eventTime"].is_string(),
        "{body}"
    );
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    call.json(201, &fixtures::created(body.clone()));
    body
}

/// Starts the watch with `pods` listed at resourceVersion 4600; answers the pods'
/// `Started` events and leaves the first watch request unanswered (returned).
async fn watching(pods: Vec<Value>) -> (KubernetesActuator, LifecycleStream, ApiServer, Call) {
    let (client, mut server) = mocked();
    let actuator = KubernetesActuator::new(client, workload());
    let mut stream = actuator.watch().unwrap_or_else(|e| panic!("{e}"));
    assert!(actuator.watch().is_err(), "the stream is answered once");
    server
        .expect("GET", DEPLOY, &[])
        .await
        .json(200, &fixtures::deployment());
    let n = pods.len();
    server
        .expect("GET", PODS, &list_query())
        .await
        .json(200, &fixtures::pod_list("4600", pods));
    for _ in 0..n {
        assert!(matches!(
            next(&mut stream).await,
            LifecycleEvent::Started { .. }
        ));
    }
    let watch = expect_watch(&mut server, "4600").await;
    (actuator, stream, server, watch)
}

/// Pod added (pending, then with an IP: `Started`), ready, OOM-killed and restarted by
/// the kubelet (evidence at the container's own `finishedAt`), then — after the watch
/// ended and was resumed from the last resourceVersion — deleted (`Exited`).
pub async fn watch_reports_pod_lifecycle_with_pod_times() {
    let (actuator, mut stream, mut server, watch) = watching(Vec::new()).await;
    watch.watch(&[
        fixtures::event("ADDED", fixtures::pod(POD_A, IP_A, Stage::Pending, "4601")),
        fixtures::event(
            "MODIFIED",
            fixtures::pod(POD_A, IP_A, Stage::Starting, "4602"),
        ),
        fixtures::event("MODIFIED", fixtures::pod(POD_A, IP_A, Stage::Ready, "4603")),
        fixtures::event(
            "MODIFIED",
            fixtures::pod(POD_A, IP_A, Stage::RestartedOom, "4604"),
        ),
    ]);
    let LifecycleEvent::Started {
        id: got,
        generation,
        addr: at,
        pid,
        ..
    } = next(&mut stream).await
    else {
        panic!("expected Started");
    };
    assert_eq!((got, generation, at, pid), (id(0), 1, addr(IP_A), None));
    let LifecycleEvent::Observed {
        id: got,
        signal,
        healthy,
        at,
        ..
    } = next(&mut stream).await
    else {
        panic!("expected readiness");
    };
    assert_eq!(
        (got, signal, healthy, at),
        (id(0), Signal::Readiness, true, T0 + 8 * SECOND)
    );
    let LifecycleEvent::Observed {
        signal,
        healthy,
        detail,
        at,
        ..
    } = next(&mut stream).await
    else {
        panic!("expected the container restart");
    };
    assert_eq!(
        (signal, healthy, at),
        (Signal::ProcessExit, false, T0 + 302 * SECOND)
    );
    assert_eq!(
        (detail["reason"].as_str(), detail["exit_code"].as_i64()),
        (Some("OOMKilled"), Some(137))
    );
    assert_eq!(
        (detail["pod"].as_str(), detail["restarts"].as_i64()),
        (Some(POD_A), Some(1))
    );
    let listed = actuator.list().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((listed.len(), listed[0].addr), (1, addr(IP_A)));
    assert_eq!(actuator.pods(), [(0, POD_A.to_owned())]);

    // The watch body ended (a dropped connection): it resumes from resourceVersion 4604.
    expect_watch(&mut server, "4604")
        .await
        .watch(&[fixtures::event(
            "DELETED",
            fixtures::pod(POD_A, IP_A, Stage::Terminating, "4605"),
        )]);
    let LifecycleEvent::Exited {
        id: got,
        generation,
        exit,
        at,
    } = next(&mut stream).await
    else {
        panic!("expected Exited");
    };
    assert_eq!((got, generation), (id(0), 1));
    assert_eq!(exit, ExitReason::Unknown(format!("pod {POD_A} deleted")));
    assert_eq!(at, T0 + 600 * SECOND, "the pod's deletionTimestamp");
    let _open = expect_watch(&mut server, "4605").await;
    assert!(actuator.list().await.is_ok_and(|l| l.is_empty()));
}

/// A watch answered 410 Expired re-lists: a pod missing from the new list is reported
/// gone, a new one started.
pub async fn watch_relists_after_expiry() {
    let ready = fixtures::pod(POD_A, IP_A, Stage::Ready, "4590");
    let (_actuator, mut stream, mut server, watch) = watching(vec![ready]).await;
    watch.watch(&[fixtures::expired("4600")]);
    server.expect("GET", PODS, &list_query()).await.json(
        200,
        &fixtures::pod_list(
            "4700",
            vec![fixtures::pod(POD_B, IP_B, Stage::Ready, "4690")],
        ),
    );
    let LifecycleEvent::Started {
        id: got, addr: at, ..
    } = next(&mut stream).await
    else {
        panic!("expected the new pod");
    };
    assert_eq!((got, at), (id(1), addr(IP_B)));
    let LifecycleEvent::Exited { id: got, .. } = next(&mut stream).await else {
        panic!("expected the missing pod gone");
    };
    assert_eq!(got, id(0));
    let _open = expect_watch(&mut server, "4700").await;
}

/// restart = DELETE the pod + an Event saying why; the pod its ReplicaSet makes takes the
/// same instance id, next generation.
pub async fn restart_deletes_the_pod_and_its_successor_takes_the_id() {
    let ready = fixtures::pod(POD_A, IP_A, Stage::Ready, "4590");
    let (actuator, mut stream, mut server, watch) = watching(vec![ready]).await;
    let why = Reason::incident(
        "INC-1",
        "order-service#0 not live (3 failed liveness probes)",
    );
    let server_side = async {
        let delete = server
            .expect("DELETE", &format!("{PODS}/{POD_A}"), &[])
            .await;
        delete.json(200, &fixtures::pod(POD_A, IP_A, Stage::Terminating, "4610"));
        let event = expect_event(&mut server, "AiopsRestart", "Pod", POD_A).await;
        assert_eq!(event["type"], "Normal");
        let message = event["message"].as_str().unwrap_or_default();
        assert!(message.contains("restart order-service#0"), "{message}");
        assert!(
            message.contains("incident INC-1: order-service#0 not live (3 failed liveness probes)"),
            "{message}"
        );
    };
    let target = id(0);
    let (restarted, ()) =
        tokio::join!(actuator.restart(&target, Duration::ZERO, &why), server_side);
    restarted.unwrap_or_else(|e| panic!("{e}"));
    watch.watch(&[
        fixtures::event("ADDED", fixtures::pod(POD_B, IP_B, Stage::Starting, "4611")),
        fixtures::event(
            "MODIFIED",
            fixtures::pod(POD_A, IP_A, Stage::Terminating, "4612"),
        ),
    ]);
    let LifecycleEvent::Started {
        id: got,
        generation,
        addr: at,
        ..
    } = next(&mut stream).await
    else {
        panic!("expected the successor");
    };
    assert_eq!((got, generation, at), (id(0), 2, addr(IP_B)));
    let LifecycleEvent::Exited {
        id: got,
        generation,
        ..
    } = next(&mut stream).await
    else {
        panic!("expected the deleted pod's end");
    };
    assert_eq!((got, generation), (id(0), 1));
    assert_eq!(actuator.pods(), [(0, POD_B.to_owned())]);
    let _open = expect_watch(&mut server, "4612").await;
}

/// A 403 is a typed error naming verb and resource (no Event, no crash); the next call works.
pub async fn forbidden_is_a_typed_error_and_the_actuator_goes_on() {
    let ready = fixtures::pod(POD_A, IP_A, Stage::Ready, "4590");
    let (actuator, _stream, mut server, _watch) = watching(vec![ready]).await;
    let path = format!("{PODS}/{POD_A}");
    let server_side = async {
        server
            .expect("DELETE", &path, &[])
            .await
            .json(403, &fixtures::forbidden("delete", "pods", "", POD_A));
    };
    let target = id(0);
    let why = Reason::default();
    let (result, ()) = tokio::join!(actuator.restart(&target, Duration::ZERO, &why), server_side);
    let Err(ActuatorError::Kubernetes(
        error @ KubernetesError::Forbidden {
            verb: "delete",
            resource: "pods",
            ..
        },
    )) = result
    else {
        panic!("expected Forbidden, got {result:?}");
    };
    let text = error.to_string();
    assert!(
        text.starts_with("missing RBAC permission: cannot delete pods in namespace aiods"),
        "{text}"
    );
    assert!(text.contains("Role aiops-actuator"), "{text}");

    let server_side = async {
        server
            .expect("DELETE", &path, &[])
            .await
            .json(200, &fixtures::pod(POD_A, IP_A, Stage::Terminating, "4610"));
        expect_event(&mut server, "AiopsRestart", "Pod", POD_A).await;
    };
    let target = id(0);
    let why = Reason::default();
    let (result, ()) = tokio::join!(actuator.restart(&target, Duration::ZERO, &why), server_side);
    result.unwrap_or_else(|e| panic!("{e}"));
}

/// scale: no autoscaler targets the Deployment, so its scale subresource is read and
/// merge-patched with the read resourceVersion; an Event on the Deployment.
pub async fn scale_patches_the_scale_subresource() {
    let (client, mut server) = mocked();
    let actuator = KubernetesActuator::new(client, workload());
    let why = Reason::incident("INC-7", "in-flight requests per ready instance 12.0 > 8");
    let server_side = async {
        server.expect("GET", HPAS, &[]).await.json(
            200,
            &fixtures::hpa_list(&[("kitchen-service", "kitchen-service")]),
        );
        server
            .expect("GET", SCALE, &[])
            .await
            .json(200, &fixtures::scale(2, "4800"));
        let patch = server.expect("PATCH", SCALE, &[]).await;
        patch.assert_merge_patch();
        assert_eq!(
            patch.body,
            json!({"metadata": {"resourceVersion": "4800"}, "spec": {"replicas": 3}})
        );
        patch.json(200, &fixtures::scale(3, "4801"));
        let event = expect_event(&mut server, "AiopsScale", "Deployment", DEPLOYMENT).await;
        let message = event["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("from 2 to 3 replicas: incident INC-7: in-flight requests"),
            "{message}"
        );
    };
    let template = spec();
    let (result, ()) = tokio::join!(actuator.scale(&template, 3, &why), server_side);
    assert_eq!(
        result.map(|o| o.started.len()).ok(),
        Some(0),
        "pods come on the stream"
    );
}

/// An autoscaler targets the Deployment: no scale call, a typed error naming it, and a
/// Warning Event saying so.
pub async fn hpa_owning_the_deployment_refuses_scaling() {
    let (client, mut server) = mocked();
    let actuator = KubernetesActuator::new(client, workload());
    let server_side = async {
        server
            .expect("GET", HPAS, &[])
            .await
            .json(200, &fixtures::hpa_list(&[("order-service", DEPLOYMENT)]));
        let event = expect_event(&mut server, "AiopsScaleRefused", "Deployment", DEPLOYMENT).await;
        assert_eq!(event["type"], "Warning");
    };
    let template = spec();
    let why = Reason::default();
    let (result, ()) = tokio::join!(actuator.scale(&template, 4, &why), server_side);
    let Err(ActuatorError::Kubernetes(error @ KubernetesError::HpaOwnsScale { .. })) = result
    else {
        panic!("expected HpaOwnsScale, got {result:?}");
    };
    assert!(
        error.to_string().contains(
            "HorizontalPodAutoscaler order-service owns the replicas of deployment order-service"
        ),
        "{error}"
    );
    server.expect_nothing(300).await;
}

/// A 409 on the scale patch: read again and patch with the fresh resourceVersion; a
/// second 409 is a typed error.
pub async fn conflict_on_scale_is_retried_once_then_typed() {
    let (client, mut server) = mocked();
    let actuator = KubernetesActuator::new(client, workload());
    let server_side = async {
        server
            .expect("GET", HPAS, &[])
            .await
            .json(200, &fixtures::hpa_list(&[]));
        server
            .expect("GET", SCALE, &[])
            .await
            .json(200, &fixtures::scale(2, "4800"));
        server
            .expect("PATCH", SCALE, &[])
            .await
            .json(409, &fixtures::conflict());
        server
            .expect("GET", SCALE, &[])
            .await
            .json(200, &fixtures::scale(4, "4805"));
        let patch = server.expect("PATCH", SCALE, &[]).await;
        assert_eq!(
            patch.body,
            json!({"metadata": {"resourceVersion": "4805"}, "spec": {"replicas": 3}})
        );
        patch.json(200, &fixtures::scale(3, "4806"));
        let event = expect_event(&mut server, "AiopsScale", "Deployment", DEPLOYMENT).await;
        assert!(
            event["message"]
                .as_str()
                .is_some_and(|m| m.contains("from 4 to 3"))
        );
    };
    let template = spec();
    let why = Reason::default();
    let (result, ()) = tokio::join!(actuator.scale(&template, 3, &why), server_side);
    result.unwrap_or_else(|e| panic!("{e}"));

    let server_side = async {
        server
            .expect("GET", HPAS, &[])
            .await
            .json(200, &fixtures::hpa_list(&[]));
        server
            .expect("GET", SCALE, &[])
            .await
            .json(200, &fixtures::scale(3, "4810"));
        server
            .expect("PATCH", SCALE, &[])
            .await
            .json(409, &fixtures::conflict());
        server
            .expect("GET", SCALE, &[])
            .await
            .json(200, &fixtures::scale(3, "4811"));
        server
            .expect("PATCH", SCALE, &[])
            .await
            .json(409, &fixtures::conflict());
    };
    let template = spec();
    let why = Reason::default();
    let (result, ()) = tokio::join!(actuator.scale(&template, 5, &why), server_side);
    assert!(
        matches!(result, Err(ActuatorError::Kubernetes(KubernetesError::Conflict { ref deployment })) if deployment == DEPLOYMENT),
        "{result:?}"
    );
}

/// Out of traffic = the serving label removed (merge patch, null), back = "true"; queued
/// in order, a repeated wish sends nothing; each with an Event.
pub async fn traffic_relabels_out_and_back_in_order() {
    let ready = fixtures::pod(POD_A, IP_A, Stage::Ready, "4590");
    let (actuator, _stream, mut server, _watch) = watching(vec![ready]).await;
    actuator.set_traffic(&id(0), Traffic::Out);
    actuator.set_traffic(&id(0), Traffic::Out);
    actuator.set_traffic(&id(0), Traffic::In(addr(IP_A)));
    actuator.set_traffic(&id(0), Traffic::In(addr(IP_A)));
    let path = format!("{PODS}/{POD_A}");
    let away = server.expect("PATCH", &path, &[]).await;
    away.assert_merge_patch();
    assert_eq!(
        away.body,
        json!({"metadata": {"labels": {"aiods.dev/serving": null}}})
    );
    away.json(200, &fixtures::pod(POD_A, IP_A, Stage::Ready, "4620"));
    expect_event(&mut server, "AiopsRouteAway", "Pod", POD_A).await;
    let back = server.expect("PATCH", &path, &[]).await;
    assert_eq!(
        back.body,
        json!({"metadata": {"labels": {"aiods.dev/serving": "true"}}})
    );
    back.json(200, &fixtures::pod(POD_A, IP_A, Stage::Ready, "4621"));
    expect_event(&mut server, "AiopsRouteBack", "Pod", POD_A).await;
    server.expect_nothing(300).await;
}

/// `kubectl rollout restart`: the template's restartedAt annotation, and an Event.
pub async fn rollout_restart_patches_the_template() {
    let (client, mut server) = mocked();
    let actuator = KubernetesActuator::new(client, workload());
    let server_side = async {
        let patch = server.expect("PATCH", DEPLOY, &[]).await;
        patch.assert_merge_patch();
        let at = patch.body["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"].clone();
        assert!(
            at.as_str()
                .is_some_and(|t| t.parse::<k8s_openapi::jiff::Timestamp>().is_ok()),
            "{}",
            patch.body
        );
        patch.json(200, &fixtures::deployment());
        let event =
            expect_event(&mut server, "AiopsRolloutRestart", "Deployment", DEPLOYMENT).await;
        let message = event["message"].as_str().unwrap_or_default();
        assert_eq!(
            message, "aiops restarted the rollout: a new configuration",
            "the reason given with the verb is the Event's"
        );
    };
    let why = Reason::platform("a new configuration");
    let (result, ()) = tokio::join!(actuator.rollout_restart(&why), server_side);
    result.unwrap_or_else(|e| panic!("{e}"));
}

/// Retiring a replaced pod: deletion cost -1000 on it, then the Deployment scaled back by
/// one so that its ReplicaSet removes that pod; Events on both.
pub async fn stop_marks_the_pod_cheapest_and_scales_back() {
    let ready = fixtures::pod(POD_A, IP_A, Stage::Ready, "4590");
    let (actuator, _stream, mut server, _watch) = watching(vec![ready]).await;
    let server_side = async {
        let mark = server
            .expect("PATCH", &format!("{PODS}/{POD_A}"), &[])
            .await;
        mark.assert_merge_patch();
        assert_eq!(
            mark.body,
            json!({"metadata": {"annotations": {"controller.kubernetes.io/pod-deletion-cost": "-1000"}}})
        );
        mark.json(200, &fixtures::pod(POD_A, IP_A, Stage::Ready, "4630"));
        server
            .expect("GET", HPAS, &[])
            .await
            .json(200, &fixtures::hpa_list(&[]));
        server
            .expect("GET", SCALE, &[])
            .await
            .json(200, &fixtures::scale(3, "4900"));
        let patch = server.expect("PATCH", SCALE, &[]).await;
        assert_eq!(patch.body["spec"]["replicas"], 2);
        patch.json(200, &fixtures::scale(2, "4901"));
        expect_event(&mut server, "AiopsScale", "Deployment", DEPLOYMENT).await;
        expect_event(&mut server, "AiopsRetire", "Pod", POD_A).await;
    };
    let target = id(0);
    let why = Reason::default();
    let (result, ()) = tokio::join!(actuator.stop(&target, Duration::ZERO, &why), server_side);
    result.unwrap_or_else(|e| panic!("{e}"));
}

/// Discovery lists the Deployments of each namespace and keeps those annotated
/// `aiods.dev/watch: "true"`, probed on their first container port.
pub async fn discovery_finds_annotated_deployments() {
    let (client, mut server) = mocked();
    let mut other = fixtures::deployment();
    other["metadata"]["name"] = json!("legacy-service");
    other["metadata"]["annotations"] = json!({"deployment.kubernetes.io/revision": "1"});
    let list = json!({
        "apiVersion": "apps/v1", "kind": "DeploymentList",
        "metadata": {"resourceVersion": "5000"},
        "items": [fixtures::deployment(), other]
    });
    let server_side = async {
        server
            .expect("GET", "/apis/apps/v1/namespaces/aiods/deployments", &[])
            .await
            .json(200, &list);
    };
    let namespaces = [NS.to_owned()];
    let (found, ()) = tokio::join!(discover(&client, &namespaces), server_side);
    assert_eq!(
        found.unwrap_or_else(|e| panic!("{e}")),
        [Discovered {
            workload: workload(),
            replicas: 2
        }]
    );
}

/// The floor of a named Deployment: the replicas its spec asks for.
pub async fn deployment_replicas_reads_the_spec() {
    let (client, mut server) = mocked();
    let server_side = async {
        server
            .expect("GET", DEPLOY, &[])
            .await
            .json(200, &fixtures::deployment());
    };
    let (replicas, ()) = tokio::join!(deployment_replicas(&client, NS, DEPLOYMENT), server_side);
    assert_eq!(replicas.unwrap_or_else(|e| panic!("{e}")), 2);
}

/// The discovery watch: listed at start (found), a Deployment annotated later (found while
/// running), one losing its annotation and one deleted (let go).
pub async fn discovery_watch_finds_and_lets_go() {
    let (client, mut server) = mocked();
    let (tx, mut changes) = tokio::sync::mpsc::unbounded_channel();
    let watch = tokio::spawn(watch_annotated(
        client,
        vec![NS.to_owned()],
        AnnotatedSet::default(),
        tx,
    ));
    let deployments = "/apis/apps/v1/namespaces/aiods/deployments";
    let mut kitchen = fixtures::deployment();
    kitchen["metadata"]["name"] = json!("kitchen-service");
    kitchen["metadata"]["resourceVersion"] = json!("5002");
    kitchen["spec"]["replicas"] = json!(3);
    server
        .expect("GET", deployments, &[("limit", "500")])
        .await
        .json(
            200,
            &json!({
                "apiVersion": "apps/v1", "kind": "DeploymentList",
                "metadata": {"resourceVersion": "5000"},
                "items": [fixtures::deployment()]
            }),
        );
    let next_change = |changes: &mut tokio::sync::mpsc::UnboundedReceiver<DiscoveryChange>| {
        let got = changes.try_recv();
        got.unwrap_or_else(|e| panic!("no change: {e}"))
    };
    let watch_call = server
        .expect(
            "GET",
            deployments,
            &[
                ("watch", "true"),
                ("timeoutSeconds", "290"),
                ("allowWatchBookmarks", "true"),
                ("resourceVersion", "5000"),
            ],
        )
        .await;
    // The list's Deployment was sent before the watch started.
    assert_eq!(
        next_change(&mut changes),
        DiscoveryChange::Found(Discovered {
            workload: workload(),
            replicas: 2
        })
    );
    let mut unannotated = fixtures::deployment();
    unannotated["metadata"]["annotations"] = json!({"deployment.kubernetes.io/revision": "3"});
    unannotated["metadata"]["resourceVersion"] = json!("5003");
    let mut deleted = kitchen.clone();
    deleted["metadata"]["resourceVersion"] = json!("5004");
    watch_call.watch(&[
        fixtures::event("ADDED", kitchen),
        fixtures::event("MODIFIED", unannotated),
        fixtures::event("DELETED", deleted),
    ]);
    let mut got = Vec::new();
    for _ in 0..3 {
        let change = tokio::time::timeout(Duration::from_secs(5), changes.recv()).await;
        got.push(
            change
                .ok()
                .flatten()
                .unwrap_or_else(|| panic!("after {got:?}")),
        );
    }
    let DiscoveryChange::Found(found) = &got[0] else {
        panic!("{got:?}");
    };
    assert_eq!(
        (found.workload.service.as_str(), found.replicas),
        ("kitchen-service", 3)
    );
    assert_eq!(
        got[1..],
        [
            DiscoveryChange::Lost {
                namespace: NS.into(),
                service: DEPLOYMENT.into()
            },
            DiscoveryChange::Lost {
                namespace: NS.into(),
                service: "kitchen-service".into()
            },
        ]
    );
    watch.abort();
}

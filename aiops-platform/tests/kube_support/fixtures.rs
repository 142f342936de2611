//! Kubernetes objects as a real API server (1.30+) sends them: a Deployment of
//! `order-service` in namespace `aiods`, its pods at each stage of their life, scales,
//! autoscalers, Events, `Status` failures and watch events.

use serde_json::{Value, json};

/// The namespace.
pub const NS: &str = "aiods";
/// The Deployment (and service).
pub const DEPLOYMENT: &str = "order-service";
/// The Deployment's selector as a query value.
pub const SELECTOR: &str = "app.kubernetes.io/name=order-service";
/// The first pod.
pub const POD_A: &str = "order-service-7c9f6b8d5-x2k4p";
/// The pod its ReplicaSet makes after a deletion.
pub const POD_B: &str = "order-service-7c9f6b8d5-q8w3z";

/// The Deployment, as `GET .../deployments/order-service` answers.
pub fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": DEPLOYMENT, "namespace": NS, "uid": "5f1b2c3d-0a9e-4c1f-9d7e-2b6a8e0f4c11",
            "resourceVersion": "4501", "generation": 3,
            "creationTimestamp": "2026-12-02T09:00:00Z",
            "labels": {"app.kubernetes.io/name": DEPLOYMENT, "app.kubernetes.io/part-of": "aiods"},
            "annotations": {"deployment.kubernetes.io/revision": "2", "aiods.dev/watch": "true"}
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app.kubernetes.io/name": DEPLOYMENT}},
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": DEPLOYMENT, "app.kubernetes.io/part-of": "aiods", "aiods.dev/serving": "true"}},
                "spec": {"containers": [{"name": "app", "image": "aiods/order-service:0.1.0", "ports": [{"containerPort": 8080, "protocol": "TCP"}]}]}
            },
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
            "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600
        },
        "status": {"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2}
    })
}

/// How far a pod is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Scheduled, no IP yet.
    Pending,
    /// Running with an IP, readiness not passed yet.
    Starting,
    /// Running and Ready.
    Ready,
    /// Its container was OOM-killed once and runs again (Ready again).
    RestartedOom,
    /// Being deleted (deletionTimestamp set).
    Terminating,
}

/// A pod of the Deployment at `stage`, with `resourceVersion` `rv`.
pub fn pod(name: &str, ip: &str, stage: Stage, rv: &str) -> Value {
    let ready = matches!(
        stage,
        Stage::Ready | Stage::RestartedOom | Stage::Terminating
    );
    let ready_text = if ready { "True" } else { "False" };
    let ready_at = match stage {
        Stage::RestartedOom => "2026-12-02T10:05:09Z",
        _ => "2026-12-02T10:00:08Z",
    };
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name, "generateName": "order-service-7c9f6b8d5-", "namespace": NS,
            "uid": format!("uid-{name}"), "resourceVersion": rv,
            "creationTimestamp": "2026-12-02T10:00:00Z",
            "labels": {
                "app.kubernetes.io/name": DEPLOYMENT, "app.kubernetes.io/part-of": "aiods",
                "aiods.dev/serving": "true", "pod-template-hash": "7c9f6b8d5"
            },
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "order-service-7c9f6b8d5",
                "uid": "0c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f", "controller": true, "blockOwnerDeletion": true
            }]
        },
        "spec": {
            "containers": [{"name": "app", "image": "aiods/order-service:0.1.0",
                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                "readinessProbe": {"httpGet": {"path": "/health/ready", "port": 8080, "scheme": "HTTP"}, "periodSeconds": 5}}],
            "nodeName": "node-1", "restartPolicy": "Always", "serviceAccountName": "default"
        },
        "status": {
            "phase": if stage == Stage::Pending { "Pending" } else { "Running" },
            "hostIP": "172.18.0.2",
            "startTime": "2026-12-02T10:00:00Z",
            "qosClass": "Burstable",
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2026-12-02T10:00:00Z"},
                {"type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2026-12-02T10:00:01Z"},
                {"type": "ContainersReady", "status": ready_text, "lastProbeTime": null, "lastTransitionTime": ready_at},
                {"type": "Ready", "status": ready_text, "lastProbeTime": null, "lastTransitionTime": ready_at}
            ]
        }
    });
    if stage != Stage::Pending {
        pod["status"]["podIP"] = json!(ip);
        pod["status"]["podIPs"] = json!([{"ip": ip}]);
        let restarted = stage == Stage::RestartedOom;
        let mut container = json!({
            "name": "app", "image": "aiods/order-service:0.1.0",
            "imageID": "docker.io/aiods/order-service@sha256:3f2a", "containerID": "containerd://a1b2",
            "ready": ready, "started": true, "restartCount": if restarted { 1 } else { 0 },
            "state": {"running": {"startedAt": if restarted { "2026-12-02T10:05:04Z" } else { "2026-12-02T10:00:03Z" }}},
            "lastState": {}
        });
        if restarted {
            container["lastState"] = json!({"terminated": {
                "exitCode": 137, "reason": "OOMKilled",
                "startedAt": "2026-12-02T10:00:03Z", "finishedAt": "2026-12-02T10:05:02Z",
                "containerID": "containerd://a1b0"
            }});
        }
        pod["status"]["containerStatuses"] = json!([container]);
    }
    if stage == Stage::Terminating {
        pod["metadata"]["deletionTimestamp"] = json!("2026-12-02T10:10:00Z");
        pod["metadata"]["deletionGracePeriodSeconds"] = json!(30);
    }
    pod
}

/// `GET .../pods` (a list) at `rv`.
pub fn pod_list(rv: &str, pods: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": rv}, "items": pods})
}

/// A watch event.
pub fn event(kind: &str, object: Value) -> Value {
    json!({"type": kind, "object": object})
}

/// The watch event a server sends when the resourceVersion is too old.
pub fn expired(rv: &str) -> Value {
    event(
        "ERROR",
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": format!("too old resource version: {rv} (4600)"), "reason": "Expired", "code": 410}),
    )
}

/// The Deployment's scale subresource.
pub fn scale(replicas: i32, rv: &str) -> Value {
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": DEPLOYMENT, "namespace": NS, "uid": "5f1b2c3d-0a9e-4c1f-9d7e-2b6a8e0f4c11",
                     "resourceVersion": rv, "creationTimestamp": "2026-12-02T09:00:00Z"},
        "spec": {"replicas": replicas},
        "status": {"replicas": replicas, "selector": SELECTOR}
    })
}

/// `GET .../horizontalpodautoscalers`, with autoscalers targeting these Deployments.
pub fn hpa_list(targets: &[(&str, &str)]) -> Value {
    let items: Vec<Value> = targets
        .iter()
        .map(|(name, deployment)| {
            json!({
                "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": name, "namespace": NS, "resourceVersion": "77"},
                "spec": {
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
                    "minReplicas": 2, "maxReplicas": 10,
                    "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]
                },
                "status": {"currentReplicas": 2, "desiredReplicas": 2}
            })
        })
        .collect();
    json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscalerList", "metadata": {"resourceVersion": "4600"}, "items": items})
}

/// A `Status` failure, as the API server answers a refused call.
pub fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

/// The 403 of a service account without the permission.
pub fn forbidden(verb: &str, resource: &str, group: &str, name: &str) -> Value {
    status(
        403,
        "Forbidden",
        &format!(
            "{resource} \"{name}\" is forbidden: User \"system:serviceaccount:aiods:aiops\" cannot {verb} resource \"{resource}\" in API group \"{group}\" in the namespace \"{NS}\""
        ),
    )
}

/// The 409 of a write with a stale resourceVersion.
pub fn conflict() -> Value {
    status(
        409,
        "Conflict",
        &format!(
            "Operation cannot be fulfilled on deployments.apps \"{DEPLOYMENT}\": the object has been modified; please apply your changes to the latest version and try again"
        ),
    )
}

/// The API server's answer to an Event create: the Event as stored.
pub fn created(mut event: Value) -> Value {
    event["metadata"]["uid"] = json!("e7a1c2d3-0000-4000-8000-000000000001");
    event["metadata"]["resourceVersion"] = json!("4700");
    event["metadata"]["creationTimestamp"] = json!("2026-12-02T10:10:00Z");
    event
}

//! The Kubernetes actuator against a scripted API server (kube's mocked client): every
//! request asserted, every answer shaped like a real API server's. No real cluster runs here.

mod kube_support;

use kube_support::scenarios;

#[tokio::test]
async fn watch_reports_pod_lifecycle_with_pod_times() {
    scenarios::watch_reports_pod_lifecycle_with_pod_times().await;
}

#[tokio::test]
async fn watch_relists_after_expiry() {
    scenarios::watch_relists_after_expiry().await;
}

#[tokio::test]
async fn restart_deletes_the_pod_and_its_successor_takes_the_id() {
    scenarios::restart_deletes_the_pod_and_its_successor_takes_the_id().await;
}

#[tokio::test]
async fn forbidden_is_a_typed_error_and_the_actuator_goes_on() {
    scenarios::forbidden_is_a_typed_error_and_the_actuator_goes_on().await;
}

#[tokio::test]
async fn scale_patches_the_scale_subresource() {
    scenarios::scale_patches_the_scale_subresource().await;
}

#[tokio::test]
async fn hpa_owning_the_deployment_refuses_scaling() {
    scenarios::hpa_owning_the_deployment_refuses_scaling().await;
}

#[tokio::test]
async fn conflict_on_scale_is_retried_once_then_typed() {
    scenarios::conflict_on_scale_is_retried_once_then_typed().await;
}

#[tokio::test]
async fn traffic_relabels_out_and_back_in_order() {
    scenarios::traffic_relabels_out_and_back_in_order().await;
}

#[tokio::test]
async fn rollout_restart_patches_the_template() {
    scenarios::rollout_restart_patches_the_template().await;
}

#[tokio::test]
async fn stop_marks_the_pod_cheapest_and_scales_back() {
    scenarios::stop_marks_the_pod_cheapest_and_scales_back().await;
}

#[tokio::test]
async fn discovery_finds_annotated_deployments() {
    scenarios::discovery_finds_annotated_deployments().await;
}

#[tokio::test]
async fn deployment_replicas_reads_the_spec() {
    scenarios::deployment_replicas_reads_the_spec().await;
}

#[tokio::test]
async fn discovery_watch_finds_and_lets_go() {
    scenarios::discovery_watch_finds_and_lets_go().await;
}

#!/usr/bin/env bash
# Live end-to-end test of deploy/kubernetes on a real cluster (kind). NOT RUN in aiods's CI:
# the machines that build aiods have no Docker daemon and no Kubernetes API server. Run it on a
# workstation with docker, kind, kubectl, curl and jq:
#
#   bash deploy/kubernetes/e2e-kind.sh        # KEEP=1 keeps the cluster afterwards
#
# It creates a kind cluster, builds the six images and loads them into it, applies the dev
# overlay, waits until everything is ready, then
#   1. deletes a kitchen-service pod: the ReplicaSet replaces it (the cluster's own repair);
#   2. hangs another one through the fault API: aiops's probes fail, it opens an incident and
#      repairs the pod through the Kubernetes API; the script asserts, through aiops's API,
#      that the incident opened and resolved, and prints the Events aiops wrote;
# and deletes the cluster.
set -euo pipefail
cd "$(dirname "$0")/../.."

CLUSTER="${CLUSTER:-aiods-e2e}"
KEEP="${KEEP:-0}"
TAG="0.1.0"
NS="aiods"
VICTIM="kitchen-service"
AIOPS_LOCAL_PORT=14318
POD_LOCAL_PORT=18080

# The images of deploy/kubernetes/base: image name, Cargo package, binary, listening port.
# (tests/tests/kubernetes_deploy.rs checks each against the workspace and the manifests.)
images=(
  "order-service order-service order-service 8080"
  "consumer-service consumer-service consumer-service 8080"
  "kitchen-service kitchen-service kitchen-service 8080"
  "accounting-service accounting-service accounting-service 8080"
  "notification-service notification-service notification-service 8080"
  "aiops aiops-platform aiops 4318"
)

say() { printf '\n== %s\n' "$*"; }
fail() { printf 'e2e-kind: FAILED: %s\n' "$*" >&2; exit 1; }
for tool in docker kind kubectl curl jq; do
  command -v "$tool" >/dev/null || fail "$tool is required"
done
[ -f deploy/kubernetes/base/aiops/rbac.yaml ] || fail "deploy/kubernetes/base/aiops/rbac.yaml is missing"

forwards=()
cleanup() {
  for pid in "${forwards[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [ "$KEEP" = 1 ]; then
    echo "cluster kept: kind delete cluster --name $CLUSTER"
  else
    kind delete cluster --name "$CLUSTER" || true
  fi
}
trap cleanup EXIT

# `forward LOCAL TARGET PORT`: a kubectl port-forward in the background, until it answers.
forward() {
  kubectl -n "$NS" port-forward "$2" "$1:$3" >/dev/null 2>&1 &
  forwards+=("$!")
  for _ in $(seq 1 50); do
    curl -s -o /dev/null "http://127.0.0.1:$1/health/live" && return 0
    sleep 0.2
  done
  fail "port-forward to $2 does not answer"
}

say "cluster $CLUSTER"
kind create cluster --name "$CLUSTER" --wait 180s

say "images"
for line in "${images[@]}"; do
  read -r image package bin port <<<"$line"
  docker build -f deploy/docker/Dockerfile \
    --build-arg PACKAGE="$package" --build-arg BIN="$bin" --build-arg PORT="$port" \
    -t "aiods/$image:$TAG" .
  kind load docker-image "aiods/$image:$TAG" --name "$CLUSTER"
done

say "apply the dev overlay"
kubectl apply -k deploy/kubernetes/overlays/dev
kubectl -n "$NS" rollout status statefulset/postgres --timeout=300s
for d in aiops order-service consumer-service kitchen-service accounting-service notification-service; do
  kubectl -n "$NS" rollout status "deployment/$d" --timeout=300s
done
kubectl -n "$NS" get pods -o wide

TOKEN="$(kubectl -n "$NS" get secret aiops-secrets -o jsonpath='{.data.api-token}' | base64 -d)"
FAULT_TOKEN="$(kubectl -n "$NS" get secret aiods-faults -o jsonpath='{.data.token}' | base64 -d)"
forward "$AIOPS_LOCAL_PORT" svc/aiops 4318
api() { curl -fsS -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$AIOPS_LOCAL_PORT/api/v1/$1"; }
api health | jq -c '{status, durable}'

pods() {
  kubectl -n "$NS" get pods -l "app.kubernetes.io/name=$VICTIM" \
    --field-selector=status.phase=Running -o jsonpath='{.items[*].metadata.name}'
}

say "1. kubectl delete pod: the ReplicaSet makes a new one"
first="$(pods | awk '{print $1}')"
[ -n "$first" ] || fail "no running $VICTIM pod"
kubectl -n "$NS" delete pod "$first" --wait=true
kubectl -n "$NS" rollout status "deployment/$VICTIM" --timeout=120s
kubectl -n "$NS" get pods -l "app.kubernetes.io/name=$VICTIM"

say "2. hang a pod: aiops opens an incident and repairs it"
before="$(api "incidents?service=$VICTIM" | jq '[.items[].id]')"
target="$(pods | awk '{print $1}')"
forward "$POD_LOCAL_PORT" "pod/$target" 8080
curl -fsS -X POST -H "Authorization: Bearer $FAULT_TOKEN" -H 'content-type: application/json' \
  -d '{"hang": true}' "http://127.0.0.1:$POD_LOCAL_PORT/admin/faults"
echo "hung $target at $(date -u +%H:%M:%S)"

incident=""
for _ in $(seq 1 60); do
  incident="$(api "incidents?service=$VICTIM" | jq -r --argjson before "$before" \
    '[.items[] | select(.id | IN($before[]) | not)][0].id // empty')"
  [ -n "$incident" ] && break
  sleep 1
done
[ -n "$incident" ] || fail "aiops opened no incident for $VICTIM within 60 s"
echo "incident $incident opened"

status=""
for _ in $(seq 1 180); do
  status="$(api "incidents/$incident" | jq -r .status)"
  [ "$status" = resolved ] && break
  sleep 1
done
api "incidents/$incident" | jq '{id, service, status, title, detected_at, actions}'
[ "$status" = resolved ] || fail "incident $incident still $status after 180 s"

say "what kubectl shows"
kubectl -n "$NS" get events --sort-by=.lastTimestamp | grep -i aiops || fail "no Events written by aiops"
kubectl -n "$NS" describe deployment "$VICTIM" | sed -n '/Events:/,$p'
kubectl -n "$NS" get pods -l "app.kubernetes.io/name=$VICTIM"

say "PASSED"

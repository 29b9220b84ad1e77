#!/usr/bin/env bash
# Tessera end to end on a real Kubernetes cluster (kind). Needs Docker, kind, kubectl, helm, curl
# and python3 on the machine, and ports 80 and 443 free.
#
#   kind-config/e2e.sh                 build, create the cluster, test, delete the cluster
#   KEEP_CLUSTER=1 kind-config/e2e.sh  keep the cluster afterwards (it is reused by the next run)
#
# Steps: build the image from the Dockerfile; create the kind cluster of kind-config/cluster.yaml
# and load the image into it; install ingress-nginx; install the chart (helm/tessera: CRDs first,
# then the core, worker and operator, with an ingress on tessera.localtest.me); wait for every
# rollout; apply the samples in examples/; wait until the Grafana provider is Ready, its
# credentials Secret exists and the discovery URL it names answers through the ingress with the
# same issuer; and check that Grafana sends browsers to Tessera's authorize endpoint with the
# client_id of that Secret. The client secret is never printed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLUSTER_CONFIG="$ROOT/kind-config/cluster.yaml"
CHART="$ROOT/helm/tessera"
EXAMPLES="$ROOT/examples"
DOCKERFILE="$ROOT/Dockerfile"

CLUSTER="${CLUSTER:-tessera-e2e}"
IMAGE_REPOSITORY="${IMAGE_REPOSITORY:-tessera}"
IMAGE_TAG="${IMAGE_TAG:-e2e}"
TIMEOUT="${TIMEOUT:-300}" # seconds, for each wait
KEEP_CLUSTER="${KEEP_CLUSTER:-0}"
INGRESS_NGINX_MANIFEST="${INGRESS_NGINX_MANIFEST:-https://raw.githubusercontent.com/kubernetes/ingress-nginx/controller-v1.13.2/deploy/static/provider/kind/deploy.yaml}"
# Fixed by examples/grafana.yaml, which reaches the core at tessera-server.tessera.svc.
RELEASE="tessera"
NAMESPACE="tessera"
HOST="tessera.localtest.me"
GRAFANA_HOST="grafana.localtest.me"
IMAGE="$IMAGE_REPOSITORY:$IMAGE_TAG"

log() { printf '==> %s\n' "$*" >&2; }

fail() {
  printf 'e2e: FAILED: %s\n' "$*" >&2
  exit 1
}

require() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || fail "$tool is required"
  done
}

# wait_for DESCRIPTION COMMAND...: run COMMAND every 3 s until it succeeds, at most TIMEOUT s.
wait_for() {
  local what="$1"
  shift
  local deadline=$((SECONDS + TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "timed out after ${TIMEOUT}s waiting for $what"
    sleep 3
  done
}

# On exit: show the cluster's state if something failed, then delete the cluster unless kept.
finish() {
  local status=$?
  if ((status != 0)); then
    log "cluster state after the failure:"
    kubectl get pods --all-namespaces -o wide || true
    kubectl get tessera --all-namespaces || true
    kubectl -n "$NAMESPACE" logs "deployment/$RELEASE-operator" --tail=100 || true
    kubectl -n "$NAMESPACE" logs "deployment/$RELEASE-server" --tail=100 || true
  fi
  if [[ "$KEEP_CLUSTER" != 1 ]]; then
    kind delete cluster --name "$CLUSTER" || true
  fi
  exit "$status"
}

secret_value() { # secret_value KEY: one key of Grafana's credentials Secret, decoded
  kubectl -n grafana get secret grafana-oidc -o "jsonpath={.data.$1}" | base64 -d
}

build_image() {
  log "building $IMAGE"
  docker build --tag "$IMAGE" --file "$DOCKERFILE" "$ROOT"
}

create_cluster() {
  if kind get clusters 2>/dev/null | grep -x "$CLUSTER" >/dev/null; then
    log "reusing the kind cluster $CLUSTER"
  else
    log "creating the kind cluster $CLUSTER"
    kind create cluster --name "$CLUSTER" --config "$CLUSTER_CONFIG" --wait 180s
  fi
  kubectl config use-context "kind-$CLUSTER"
  kind load docker-image "$IMAGE" --name "$CLUSTER"
}

install_ingress() {
  log "installing ingress-nginx"
  kubectl apply -f "$INGRESS_NGINX_MANIFEST"
  kubectl -n ingress-nginx rollout status deployment/ingress-nginx-controller --timeout="${TIMEOUT}s"
}

install_chart() {
  log "installing the chart (release $RELEASE in namespace $NAMESPACE)"
  helm upgrade --install "$RELEASE" "$CHART" \
    --namespace "$NAMESPACE" --create-namespace \
    --set image.repository="$IMAGE_REPOSITORY" \
    --set image.tag="$IMAGE_TAG" \
    --set ingress.enabled=true \
    --set ingress.className=nginx \
    --set ingress.host="$HOST" \
    --wait --timeout "${TIMEOUT}s"
  local workload
  for workload in $(kubectl -n "$NAMESPACE" get deployments,statefulsets -o name); do
    kubectl -n "$NAMESPACE" rollout status "$workload" --timeout="${TIMEOUT}s"
  done
  kubectl wait --for=condition=Established --timeout="${TIMEOUT}s" \
    crd/oauth2providers.tessera.dev crd/applications.tessera.dev \
    crd/proxyproviders.tessera.dev crd/outposts.tessera.dev \
    crd/samlproviders.tessera.dev crd/ldapproviders.tessera.dev
}

apply_examples() {
  log "applying the samples of examples/"
  kubectl apply -f "$EXAMPLES"
  kubectl -n grafana wait --for=condition=Ready --timeout="${TIMEOUT}s" \
    oauth2providers.tessera.dev/grafana applications.tessera.dev/grafana
  wait_for "the Secret grafana/grafana-oidc" kubectl -n grafana get secret grafana-oidc
  # The forward-auth sample: the operator runs its Outpost (same image as the core), whose
  # pods become ready once they have fetched their settings from the core.
  kubectl -n whoami wait --for=condition=Ready --timeout="${TIMEOUT}s" \
    proxyproviders.tessera.dev/whoami applications.tessera.dev/whoami outposts.tessera.dev/edge
  kubectl -n whoami rollout status deployment/tessera-outpost-edge --timeout="${TIMEOUT}s"
  # The SAML sample: its ConfigMap holds the IdP metadata once the Application names it.
  kubectl -n wiki-saml wait --for=condition=Ready --timeout="${TIMEOUT}s" \
    samlproviders.tessera.dev/wiki applications.tessera.dev/wiki
  wait_for "the ConfigMap wiki-saml/wiki-saml-idp" kubectl -n wiki-saml get configmap wiki-saml-idp
  # The LDAP sample: the provider, its application and the ldap Outpost serving them.
  kubectl -n media wait --for=condition=Ready --timeout="${TIMEOUT}s" \
    ldapproviders.tessera.dev/jellyfin applications.tessera.dev/jellyfin \
    outposts.tessera.dev/directory
  wait_for "the Secret media/jellyfin-ldap" kubectl -n media get secret jellyfin-ldap
  kubectl get tessera --all-namespaces
}

check_discovery() {
  local issuer discovery
  issuer="$(secret_value issuer)"
  discovery="$(secret_value discovery_url)"
  [[ "$issuer" == "http://$HOST/application/o/grafana/" ]] || fail "issuer is '$issuer'"
  [[ "$discovery" == "${issuer}.well-known/openid-configuration" ]] ||
    fail "discovery_url is '$discovery'"
  log "fetching $discovery through the ingress"
  wait_for "$discovery" curl -fsS --resolve "$HOST:80:127.0.0.1" "$discovery"
  curl -fsS --resolve "$HOST:80:127.0.0.1" "$discovery" |
    python3 -c 'import json, sys; sys.exit(json.load(sys.stdin)["issuer"] != sys.argv[1])' \
      "$issuer" || fail "the discovery document does not name the issuer $issuer"
}

check_grafana_login() {
  local client_id location
  client_id="$(secret_value client_id)"
  [[ -n "$client_id" ]] || fail "the credentials Secret has no client_id"
  kubectl -n grafana rollout status deployment/grafana --timeout="${TIMEOUT}s"
  wait_for "Grafana behind the ingress" \
    curl -fsS --resolve "$GRAFANA_HOST:80:127.0.0.1" "http://$GRAFANA_HOST/api/health"
  location="$(curl -sS -o /dev/null -w '%{redirect_url}' \
    --resolve "$GRAFANA_HOST:80:127.0.0.1" "http://$GRAFANA_HOST/login/generic_oauth")"
  [[ "$location" == "http://$HOST/application/o/authorize/?"* ]] ||
    fail "Grafana redirects to '$location'"
  [[ "$location" == *"client_id=$client_id"* ]] || fail "Grafana does not send the client_id"
}

main() {
  require docker kind kubectl helm curl python3 base64
  trap finish EXIT
  build_image
  create_cluster
  install_ingress
  install_chart
  apply_examples
  check_discovery
  check_grafana_login
  log "e2e: passed"
}

main "$@"

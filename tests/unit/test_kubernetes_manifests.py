"""deploy/kubernetes, validated offline: CloudNativePG kinds against the operator's CRD schemas, core kinds
against Kubernetes' own (kubernetes-validate), PodMonitors by their structure, and the manifests against
each other (selectors, secret and service names, the promises the runbook makes)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
KUBERNETES = REPO / "deploy" / "kubernetes"
CRDS = REPO.parent / "shared" / "k8s" / "cloudnative-pg"
KUBERNETES_VERSION = "1.33"
"""The oldest Kubernetes the manifests are meant for (the PreStop `sleep` action is on by default from 1.30)."""
CNPG_GROUP = "postgresql.cnpg.io"


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def kustomization() -> dict[str, Any]:
    return documents(KUBERNETES / "kustomization.yaml")[0]


def manifests() -> list[tuple[str, dict[str, Any]]]:
    """Every resource of the kustomization, and the recovery manifests applied by hand."""
    files = [KUBERNETES / name for name in kustomization()["resources"]]
    files += sorted((KUBERNETES / "recovery").glob("*.yaml"))
    return [(f"{path.relative_to(KUBERNETES)}:{doc['kind']}/{doc['metadata']['name']}", doc)
            for path in files for doc in documents(path)]


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for path, doc in manifests() if doc["kind"] == kind and not path.startswith("recovery/")]


def strict(schema: Any) -> Any:
    """The CRD's schema refusing fields it does not declare (the API server would drop them silently)."""
    if isinstance(schema, dict):
        schema = {key: strict(value) for key, value in schema.items()}
        if ("properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    return schema


@functools.cache
def crd_schemas() -> dict[str, dict[str, Any]]:
    """kind → the openAPIV3Schema of its served version, from the CloudNativePG CRDs in shared/k8s."""
    if not CRDS.is_dir():
        pytest.skip(f"the CloudNativePG CRDs are not at {CRDS} (shared/k8s beside the repository)")
    schemas = {}
    for path in CRDS.glob(f"{CNPG_GROUP}_*.yaml"):
        crd = documents(path)[0]
        served = [v for v in crd["spec"]["versions"] if v.get("served") and v.get("storage")]
        schemas[crd["spec"]["names"]["kind"]] = {"version": served[0]["name"],
                                                 "schema": strict(served[0]["schema"]["openAPIV3Schema"])}
    return schemas


@pytest.mark.parametrize(("where", "doc"), manifests(), ids=[where for where, _ in manifests()])
def test_every_manifest_is_valid_for_its_kind(where: str, doc: dict[str, Any]) -> None:
    group, _, version = doc["apiVersion"].rpartition("/")
    if group == CNPG_GROUP:
        crd = crd_schemas()[doc["kind"]]
        assert version == crd["version"], f"{where}: {CNPG_GROUP}/{crd['version']} is the version served"
        jsonschema.validate(doc, crd["schema"])
    elif group == "monitoring.coreos.com":
        check_pod_monitor(where, doc)
    else:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def check_pod_monitor(where: str, doc: dict[str, Any]) -> None:
    """The Prometheus Operator's CRD is not in shared/k8s: the fields these manifests use, checked by hand."""
    assert doc["apiVersion"] == "monitoring.coreos.com/v1" and doc["kind"] == "PodMonitor", where
    spec = doc["spec"]
    assert set(spec) <= {"selector", "podMetricsEndpoints", "namespaceSelector", "jobLabel"}, where
    assert isinstance(spec["selector"]["matchLabels"], dict) and spec["selector"]["matchLabels"], where
    assert spec["podMetricsEndpoints"], where
    for endpoint in spec["podMetricsEndpoints"]:
        assert set(endpoint) <= {"port", "path", "interval", "scheme", "authorization", "relabelings"}, where
        assert isinstance(endpoint["port"], str), f"{where}: endpoints name a container port"
        if "authorization" in endpoint:
            assert endpoint["authorization"]["type"] == "Bearer", where
            assert set(endpoint["authorization"]["credentials"]) == {"name", "key"}, where


def test_the_kustomization_lists_every_manifest_in_its_folder_and_nothing_missing() -> None:
    listed = set(kustomization()["resources"])
    beside = {path.name for path in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == beside
    assert all((KUBERNETES / name).is_file() for name in listed)


def test_the_database_is_three_instances_with_synchronous_durability_archiving_and_monitoring() -> None:
    (cluster,) = of_kind("Cluster")
    spec = cluster["spec"]
    assert spec["instances"] == 3
    assert spec["postgresql"]["synchronous"]["dataDurability"] == "required"
    assert spec["postgresql"]["synchronous"]["number"] >= 1
    assert spec["backup"]["barmanObjectStore"]["wal"], "WAL is archived continuously (point-in-time recovery)"
    (scheduled,) = of_kind("ScheduledBackup")
    assert scheduled["spec"]["cluster"]["name"] == cluster["metadata"]["name"]
    assert scheduled["spec"]["method"] == "barmanObjectStore"
    assert len(scheduled["spec"]["schedule"].split()) == 6, "CloudNativePG schedules start with seconds"
    monitors = {m["metadata"]["name"]: m for m in of_kind("PodMonitor")}
    db_monitor = [m for m in monitors.values()
                  if m["spec"]["selector"]["matchLabels"].get("cnpg.io/cluster") == cluster["metadata"]["name"]]
    assert db_monitor and db_monitor[0]["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    assert not of_kind("Pooler"), "no connection pooler: the writer and the live tail keep a session"


def test_the_service_runs_replicated_unprivileged_probed_and_pointed_at_the_primary() -> None:
    (deployment,) = of_kind("Deployment")
    (cluster,) = of_kind("Cluster")
    pod = deployment["spec"]["template"]
    labels = pod["metadata"]["labels"]
    (container,) = pod["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}

    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert isinstance(pod["spec"]["securityContext"]["runAsUser"], int)
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert f"@{cluster['metadata']['name']}-rw:" in env["DATABASE_URL"]["value"]
    assert f"@{cluster['metadata']['name']}-ro:" in env["DATABASE_READ_URL"]["value"]  # reads from the standbys
    for key in ("REGISTRY_TOKEN_KEY", "REGISTRY_CHECKPOINT_KEY", "REGISTRY_METRICS_TOKEN"):
        assert "secretKeyRef" in env[key]["valueFrom"], f"{key} comes from a Secret"
    # $(VAR) references resolve only to variables defined earlier in the list
    names = [e["name"] for e in container["env"]]
    for index, entry in enumerate(container["env"]):
        for earlier in ("APP_PASSWORD", "OWNER_PASSWORD"):
            if f"$({earlier})" in entry.get("value", ""):
                assert names.index(earlier) < index
    writable = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/tmp", env["REGISTRY_DATA_DIR"]["value"]} <= writable, "a read-only root still has somewhere to write"
    ports = {p["name"] for p in container["ports"]}

    (service,) = of_kind("Service")
    assert service["spec"]["selector"].items() <= labels.items()
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports
    (budget,) = of_kind("PodDisruptionBudget")
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert budget["spec"]["minAvailable"] < deployment["spec"]["replicas"], "a node can still be drained"
    (monitor,) = [m for m in of_kind("PodMonitor") if m["spec"]["selector"]["matchLabels"].items() <= labels.items()]
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["path"] == "/metrics" and endpoint["port"] in ports
    token = env["REGISTRY_METRICS_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert endpoint["authorization"]["credentials"] == {"name": token["name"], "key": token["key"]}


def test_the_point_in_time_recovery_reads_the_original_archive_and_writes_its_own() -> None:
    (cluster,) = of_kind("Cluster")
    (recovery,) = [doc for path, doc in manifests() if path.startswith("recovery/") and doc["kind"] == "Cluster"]
    source = recovery["spec"]["bootstrap"]["recovery"]
    assert source["recoveryTarget"]["targetTime"]
    (archive,) = [c for c in recovery["spec"]["externalClusters"] if c["name"] == source["source"]]
    original = cluster["spec"]["backup"]["barmanObjectStore"]["destinationPath"]
    assert archive["barmanObjectStore"]["destinationPath"] == original
    assert archive["barmanObjectStore"]["serverName"] == cluster["metadata"]["name"]
    assert recovery["spec"]["backup"]["barmanObjectStore"]["destinationPath"] != original

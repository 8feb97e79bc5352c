"""The Helm chart renders offline, is valid Kubernetes, and speaks the platform's settings.

The chart is rendered with Helm's own Go SDK (helm-python-sdk, no cluster, no helm binary)
and every built-in resource is checked against the Kubernetes OpenAPI schemas
(kubernetes-validate, strict: unknown fields are errors). No cluster runs here.
"""

from __future__ import annotations

import json
import tarfile
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import helm_python as helm
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from cityos.layers import LAYER_NAMES
from cityos_acquisition.settings import AcquisitionSettings
from cityos_interoperability.settings import InteroperabilitySettings
from cityos_kernel.settings import CityosSettings, PlatformSettings
from cityos_knowledge.settings import KnowledgeSettings
from cityos_support.settings import SupportSettings

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "cityos"
MONITORING = REPO / "deploy" / "monitoring"
# The oldest Kubernetes the chart declares (Chart.yaml kubeVersion) and the newest schemas.
KUBE_VERSIONS = ("1.27.0", kubernetes_validate.latest_version())
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}
SETTINGS_CLASSES: tuple[type[CityosSettings], ...] = (
    PlatformSettings,
    SupportSettings,
    AcquisitionSettings,
    KnowledgeSettings,
    InteroperabilitySettings,
)

REQUIRED: dict[str, Any] = {
    "auth": {"issuer": "https://id.city.example.org/realms/cityos"},
    "kafka": {"bootstrap": "kafka-0.kafka:9092,kafka-1.kafka:9092"},
    "secret": {
        "databaseUrl": "postgresql://cityos:s3cr3t-pw@timescale:5432/cityos",
        "mqttUrl": "mqtt://cityos:m0squ1tt0@mosquitto:1883",
        "auditSigningKey": "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=",
    },
}

# Every optional branch of the chart switched on.
EVERYTHING: dict[str, Any] = {
    **REQUIRED,
    "secret": {
        **REQUIRED["secret"],
        "keycloakAdminPassword": "kc-admin-pw",
        "smtpPassword": "smtp-pw",
    },
    "keycloak": {"adminUrl": "https://id.city.example.org"},
    "smtp": {"host": "smtp.city.example.org", "username": "cityos", "starttls": True},
    "extraEnv": {"CITYOS_AUTH_LEEWAY_SECONDS": "10"},
    "layers": {
        "knowledge": {"replicas": 5, "env": {"CITYOS_KNOWLEDGE_INGEST_CONSUMERS": "4"}},
        "interoperability": {"env": {"CITYOS_INTEROP_MAX_PAGE_SIZE": "500"}},
    },
    "ingress": {
        "enabled": True,
        "className": "nginx",
        "tls": [{"secretName": "cityos-tls", "hosts": ["cityos.example.org"]}],
    },
    "metrics": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}},
    "monitoring": {"grafana": {"datasource": True, "prometheusUrl": "http://prom:9090"}},
}


def render(values: dict[str, Any], *, release: str = "city") -> list[dict[str, Any]]:
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values, name=release, namespace="cityos", is_install=True)
    docs: list[dict[str, Any]] = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        docs.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return docs


@pytest.fixture(scope="module")
def defaults() -> list[dict[str, Any]]:
    """The chart with only the values it requires."""
    return render(REQUIRED)


@pytest.fixture(scope="module")
def everything() -> list[dict[str, Any]]:
    return render(EVERYTHING)


def of_kind(docs: list[dict[str, Any]], *kinds: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] in kinds]


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} rendered"
    return found[0]


def workloads(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Layer name -> its Deployment or StatefulSet."""
    found = {
        doc["metadata"]["labels"]["app.kubernetes.io/component"]: doc
        for doc in of_kind(docs, "Deployment", "StatefulSet")
    }
    assert len(found) == len(of_kind(docs, "Deployment", "StatefulSet"))
    return found


def containers(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in of_kind(docs, "Deployment", "StatefulSet", "Job"):
        for container in doc["spec"]["template"]["spec"]["containers"]:
            yield f"{doc['kind']}/{doc['metadata']['name']}", container


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in container.get("env", [])}


def known_settings() -> set[str]:
    return {
        f"{cls.model_config.get('env_prefix', '')}{name}".upper()
        for cls in SETTINGS_CLASSES
        for name in cls.model_fields
    }


def unknown_settings(docs: list[dict[str, Any]]) -> set[str]:
    """CITYOS_ names the chart sets (env, Secret keys) that no settings class reads."""
    used: set[str] = set()
    for _, container in containers(docs):
        for name, entry in env_of(container).items():
            used.add(name)
            ref = entry.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                used.add(ref["key"])
    for secret in of_kind(docs, "Secret"):
        used |= set(secret.get("stringData", {}))
    return {name for name in used if name.startswith("CITYOS_")} - known_settings()


# -- rendering and validity ---------------------------------------------------------------


def test_chart_lints_without_warnings() -> None:
    report = helm.lint(CHART, EVERYTHING, strict=True, namespace="cityos")
    assert report["errors"] == []
    problems = [message for message in report["messages"] if message["severity"] >= 2]
    assert problems == []


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_rendered_resources_match_the_kubernetes_schemas(
    everything: list[dict[str, Any]], kube_version: str
) -> None:
    kinds = set()
    for doc in everything:
        kinds.add(doc["kind"])
        if doc["kind"] in OPERATOR_KINDS:
            continue  # Prometheus Operator CRDs: checked in test_operator_resources
        kubernetes_validate.validate(doc, kube_version, strict=True)
    assert {"Deployment", "StatefulSet", "Service", "Job", "Secret", "Ingress"} <= kinds
    assert {"ConfigMap", "PodDisruptionBudget"} <= kinds


def test_chart_app_version_is_the_platform_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    runtime = tomllib.loads((REPO / "platform" / "runtime" / "pyproject.toml").read_text())
    assert chart["appVersion"] == runtime["project"]["version"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({**REQUIRED, "auth": {"issuer": ""}}, "auth.issuer is required"),
        ({**REQUIRED, "kafka": {"bootstrap": ""}}, "kafka.bootstrap is required"),
        ({**REQUIRED, "secret": {**REQUIRED["secret"], "databaseUrl": ""}}, "databaseUrl"),
        ({**REQUIRED, "secret": {**REQUIRED["secret"], "auditSigningKey": ""}}, "auditSigningKey"),
    ],
)
def test_missing_required_values_fail_with_the_value_to_set(
    values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm.HelmError, match=message):
        render(values)


# -- workloads ----------------------------------------------------------------------------


def test_every_layer_runs_cityos_serve_with_probes_and_resources(
    defaults: list[dict[str, Any]],
) -> None:
    found = workloads(defaults)
    assert set(found) == set(LAYER_NAMES)
    chart_values = yaml.safe_load((CHART / "values.yaml").read_text())
    for layer, workload in found.items():
        assert workload["kind"] == ("StatefulSet" if layer == "acquisition" else "Deployment")
        assert workload["spec"]["replicas"] == chart_values["layers"][layer]["replicas"]
        pod = workload["spec"]["template"]
        (container,) = pod["spec"]["containers"]
        assert container["image"] == "cityos:0.1.0"
        assert container["args"] == ["serve", layer, "--port", "8080"]
        assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
        assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
        assert container["startupProbe"]["httpGet"] == {"path": "/health", "port": "http"}
        assert container["resources"]["requests"]["cpu"]
        assert container["resources"]["limits"]["memory"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
        assert pod["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"
        assert pod["metadata"]["annotations"]["prometheus.io/port"] == "8080"


def test_replicas_and_layer_settings_come_from_values(everything: list[dict[str, Any]]) -> None:
    knowledge = workloads(everything)["knowledge"]
    assert knowledge["spec"]["replicas"] == 5
    (container,) = knowledge["spec"]["template"]["spec"]["containers"]
    assert env_of(container)["CITYOS_KNOWLEDGE_INGEST_CONSUMERS"]["value"] == "4"
    for layer, workload in workloads(everything).items():
        (container,) = workload["spec"]["template"]["spec"]["containers"]
        env = env_of(container)
        assert env["CITYOS_AUTH_LEEWAY_SECONDS"]["value"] == "10", layer
        assert ("CITYOS_INTEROP_MAX_PAGE_SIZE" in env) == (layer == "interoperability")


def test_acquisition_replicas_have_their_own_mqtt_identity(defaults: list[dict[str, Any]]) -> None:
    statefulset = workloads(defaults)["acquisition"]
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    env = env_of(container)
    # Pod names of a StatefulSet survive restarts, so each replica resumes its MQTT session.
    assert env["CITYOS_ACQUISITION_MQTT_CLIENT_ID"]["valueFrom"] == {
        "fieldRef": {"fieldPath": "metadata.name"}
    }
    assert env["CITYOS_ACQUISITION_MQTT_SHARED_GROUP"]["value"] == "cityos-acquisition"
    governing = one(defaults, "Service", statefulset["spec"]["serviceName"])
    assert governing["spec"]["clusterIP"] == "None"


def test_production_keycloak_and_kafka_by_default(defaults: list[dict[str, Any]]) -> None:
    for layer, workload in workloads(defaults).items():
        (container,) = workload["spec"]["template"]["spec"]["containers"]
        env = env_of(container)
        assert env["CITYOS_AUTH"]["value"] == "keycloak", layer
        assert env["CITYOS_AUTH_ISSUER"]["value"] == REQUIRED["auth"]["issuer"]
        assert env["CITYOS_ENV"]["value"] == "production", layer
        assert env["CITYOS_BUS"]["value"] == "kafka", layer
        assert env["CITYOS_KAFKA_BOOTSTRAP"]["value"] == REQUIRED["kafka"]["bootstrap"]
        for secret in ("CITYOS_DATABASE_URL", "CITYOS_MQTT_URL"):
            assert env[secret]["valueFrom"]["secretKeyRef"] == {
                "name": "city-cityos",
                "key": secret,
            }
        # Only the support process keeps the audit log and signs its checkpoints.
        assert ("CITYOS_AUDIT_SIGNING_KEY" in env) == (layer == "support")


def test_auth_off_only_in_development() -> None:
    with pytest.raises(helm.HelmError, match="auth.mode off is refused"):
        render({**REQUIRED, "auth": {"mode": "off"}})
    docs = render({**REQUIRED, "environment": "development", "auth": {"mode": "off"}})
    for layer, workload in workloads(docs).items():
        (container,) = workload["spec"]["template"]["spec"]["containers"]
        env = env_of(container)
        assert env["CITYOS_AUTH"]["value"] == "off", layer
        assert env["CITYOS_ENV"]["value"] == "development", layer
        assert "CITYOS_AUTH_ISSUER" not in env


def test_the_chart_sets_only_settings_the_platform_reads(
    defaults: list[dict[str, Any]], everything: list[dict[str, Any]]
) -> None:
    assert unknown_settings(defaults) == set()
    assert unknown_settings(everything) == set()
    # The check notices a name no settings class declares.
    mistyped = render({**REQUIRED, "extraEnv": {"CITYOS_KAFKA_BOOTSTRAP_SERVERS": "k:9092"}})
    assert unknown_settings(mistyped) == {"CITYOS_KAFKA_BOOTSTRAP_SERVERS"}


def test_secret_values_never_appear_in_plain_env(everything: list[dict[str, Any]]) -> None:
    secrets = {
        "postgresql://",
        "mqtt://",
        REQUIRED["secret"]["auditSigningKey"],
        "kc-admin-pw",
        "smtp-pw",
    }
    for where, container in containers(everything):
        for entry in container.get("env", []):
            value = str(entry.get("value", ""))
            assert not any(secret in value for secret in secrets), (where, entry["name"])
    (secret,) = of_kind(everything, "Secret")
    assert set(secret["stringData"]) == {
        "CITYOS_DATABASE_URL",
        "CITYOS_MQTT_URL",
        "CITYOS_AUDIT_SIGNING_KEY",
        "CITYOS_KEYCLOAK_ADMIN_PASSWORD",
        "CITYOS_SMTP_PASSWORD",
    }


# -- migrations and secrets ---------------------------------------------------------------


def test_migrations_run_as_a_hook_before_install_and_upgrade(
    defaults: list[dict[str, Any]],
) -> None:
    job = one(defaults, "Job", "city-cityos-migrate")
    (secret,) = of_kind(defaults, "Secret")
    hooks = job["metadata"]["annotations"]
    assert hooks["helm.sh/hook"] == "pre-install,pre-upgrade"
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["db", "upgrade"]
    env = env_of(container)
    assert env["CITYOS_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "city-cityos"
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    # The Job reads the Secret, so on first install the Secret must be a hook created first.
    assert secret["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert int(secret["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
        hooks["helm.sh/hook-weight"]
    )


def test_an_existing_secret_replaces_the_charts_own() -> None:
    docs = render({**REQUIRED, "secret": {"existingSecret": "cityos-from-vault"}})
    assert of_kind(docs, "Secret") == []
    refs = [
        entry["valueFrom"]["secretKeyRef"]["name"]
        for _, container in containers(docs)
        for entry in container.get("env", [])
        if "secretKeyRef" in entry.get("valueFrom", {})
    ]
    assert refs
    assert set(refs) == {"cityos-from-vault"}
    for workload in workloads(docs).values():
        assert "checksum/secret" not in workload["spec"]["template"]["metadata"]["annotations"]


def test_pods_roll_when_the_charts_secret_changes() -> None:
    def checksums(docs: list[dict[str, Any]]) -> set[str]:
        return {
            w["spec"]["template"]["metadata"]["annotations"]["checksum/secret"]
            for w in workloads(docs).values()
        }

    rotated = {**REQUIRED, "secret": {**REQUIRED["secret"], "mqttUrl": "mqtt://other:1883"}}
    before, after = checksums(render(REQUIRED)), checksums(render(rotated))
    assert len(before) == len(after) == 1
    assert before != after


# -- services and ingress -----------------------------------------------------------------


def test_each_layer_service_selects_its_pods(defaults: list[dict[str, Any]]) -> None:
    for layer, workload in workloads(defaults).items():
        service = one(defaults, "Service", f"city-cityos-{layer}")
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()
        assert service["spec"]["selector"]["app.kubernetes.io/component"] == layer
        assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_ingress_is_optional_and_routes_the_public_api(
    defaults: list[dict[str, Any]], everything: list[dict[str, Any]]
) -> None:
    assert of_kind(defaults, "Ingress") == []
    (ingress,) = of_kind(everything, "Ingress")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    routes = {
        path["path"]: path["backend"]["service"]["name"]
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    assert routes["/ngsi-ld"] == "city-cityos-interoperability"
    assert routes["/iot"] == "city-cityos-acquisition"
    assert routes["/admin"] == "city-cityos-support"
    services = {service["metadata"]["name"] for service in of_kind(everything, "Service")}
    assert set(routes.values()) <= services


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"layers": {"knowlege": {"replicas": 2}}}, "/layers"),
        ({"layers": {"knowledge": {"replicas": -1}}}, "/layers/knowledge/replicas"),
        ({"extraEnv": {"KAFKA_BOOTSTRAP": "k:9092"}}, "KAFKA_BOOTSTRAP"),
        ({"auth": {"mode": "oidc", "issuer": "https://id"}}, "/auth/mode"),
        ({"environment": "staging"}, "/environment"),
        ({"ingress": {"enabled": True, "paths": [{"path": "/x", "layer": "ui"}]}}, "/ingress"),
        ({"replicas": 3}, "'replicas' not allowed"),
    ],
)
def test_values_schema_refuses_mistakes(values: dict[str, Any], where: str) -> None:
    with pytest.raises(helm.HelmError, match=f"(?s)schema.*{where}"):
        render({**REQUIRED, **values})


def test_values_schema_follows_the_platform() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())["properties"]
    assert list(schema["layers"]["properties"]) == list(LAYER_NAMES)
    assert schema["layers"]["required"] == list(LAYER_NAMES)
    ingress_layers = schema["ingress"]["properties"]["paths"]["items"]["properties"]["layer"]
    assert ingress_layers["enum"] == list(LAYER_NAMES)
    fields = PlatformSettings.model_fields
    assert set(schema["environment"]["enum"]) == set(get_args(fields["env"].annotation))
    assert set(schema["auth"]["properties"]["mode"]["enum"]) == set(
        get_args(fields["auth"].annotation)
    )


def test_disruption_budgets_only_for_layers_with_several_replicas(
    defaults: list[dict[str, Any]],
) -> None:
    budgets = {
        budget["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"]
        for budget in of_kind(defaults, "PodDisruptionBudget")
    }
    several = {
        layer for layer, workload in workloads(defaults).items() if workload["spec"]["replicas"] > 1
    }
    assert budgets == several
    assert "support" not in budgets


# -- monitoring: the same files as deploy/monitoring --------------------------------------


def test_the_charts_monitoring_files_are_deploy_monitoring() -> None:
    link = CHART / "files" / "monitoring"
    assert link.is_symlink(), "files/monitoring must stay a link to deploy/monitoring"
    assert link.resolve() == MONITORING.resolve()


def test_a_packaged_chart_carries_copies_of_deploy_monitoring(tmp_path: Path) -> None:
    archive = Path(helm.package(CHART, destination=tmp_path))
    with tarfile.open(archive) as tar:
        packaged = {
            member.name.removeprefix("cityos/files/monitoring/"): tar.extractfile(member)
            for member in tar.getmembers()
            if member.isfile() and member.name.startswith("cityos/files/monitoring/")
        }
        contents = {name: file.read() for name, file in packaged.items() if file}
    sources = {
        str(path.relative_to(MONITORING)): path.read_bytes()
        for path in MONITORING.rglob("*")
        if path.is_file()
    }
    assert contents == sources


def test_alert_rules_and_dashboard_configmaps_equal_deploy_monitoring(
    defaults: list[dict[str, Any]],
) -> None:
    prometheus = one(defaults, "ConfigMap", "city-cityos-prometheus")
    alerts = (MONITORING / "cityos-alerts.yml").read_text()
    assert prometheus["data"]["cityos-alerts.yml"].strip() == alerts.strip()
    dashboards = one(defaults, "ConfigMap", "city-cityos-grafana-dashboards")
    assert dashboards["metadata"]["labels"]["grafana_dashboard"] == "1"
    expected = {
        path.name: path.read_text().strip()
        for path in (MONITORING / "grafana" / "dashboards").glob("*.json")
    }
    assert expected
    assert {name: text.strip() for name, text in dashboards["data"].items()} == expected


def test_scrape_config_keeps_deploy_monitorings_jobs_with_pod_discovery(
    defaults: list[dict[str, Any]],
) -> None:
    source = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    prometheus = one(defaults, "ConfigMap", "city-cityos-prometheus")
    rendered = yaml.safe_load(prometheus["data"]["prometheus.yml"])
    assert rendered["global"] == source["global"]
    assert rendered["rule_files"] == source["rule_files"]
    # The rules file the config names is in the same ConfigMap (mounted at /etc/prometheus).
    assert {Path(rule).name for rule in rendered["rule_files"]} <= set(prometheus["data"])
    layer_jobs = {
        job["job_name"]: job
        for job in source["scrape_configs"]
        if any(s.get("labels", {}).get("layer") in LAYER_NAMES for s in job["static_configs"])
    }
    assert set(layer_jobs) == {job["job_name"] for job in rendered["scrape_configs"]}
    for job in rendered["scrape_configs"]:
        wanted = layer_jobs[job["job_name"]]
        assert job["metrics_path"] == wanted["metrics_path"]
        assert job["kubernetes_sd_configs"] == [
            {"role": "pod", "namespaces": {"names": ["cityos"]}}
        ]
        keep = {
            tuple(rule["source_labels"]): rule["regex"]
            for rule in job["relabel_configs"]
            if rule.get("action") == "keep"
        }
        component = ("__meta_kubernetes_pod_label_app_kubernetes_io_component",)
        assert set(keep[component].split("|")) == {
            s["labels"]["layer"] for s in wanted["static_configs"]
        }
        assert keep[("__meta_kubernetes_pod_label_app_kubernetes_io_instance",)] == "city"
        assert {
            "source_labels": list(component),
            "target_label": "layer",
        } in job["relabel_configs"]


def test_operator_resources_reuse_deploy_monitoring(
    defaults: list[dict[str, Any]], everything: list[dict[str, Any]]
) -> None:
    assert of_kind(defaults, *OPERATOR_KINDS) == []
    (rule,) = of_kind(everything, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["spec"] == yaml.safe_load((MONITORING / "cityos-alerts.yml").read_text())
    (monitor,) = of_kind(everything, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "http"
    assert endpoint["path"] == "/metrics"
    # The job and layer labels the alert rules and the dashboard group by.
    assert {"targetLabel": "job", "replacement": "cityos"} in endpoint["relabelings"]
    selector = monitor["spec"]["selector"]
    selected = [
        service
        for service in of_kind(everything, "Service")
        if selector["matchLabels"].items() <= service["metadata"]["labels"].items()
    ]
    # Each layer's ClusterIP Service once: the headless one would scrape acquisition twice.
    assert sorted(
        s["metadata"]["labels"]["app.kubernetes.io/component"] for s in selected
    ) == sorted(LAYER_NAMES)


def test_grafana_datasource_is_deploy_monitorings_with_the_configured_url(
    everything: list[dict[str, Any]],
) -> None:
    configmap = one(everything, "ConfigMap", "city-cityos-grafana-datasource")
    assert configmap["metadata"]["labels"]["grafana_datasource"] == "1"
    rendered = yaml.safe_load(configmap["data"]["cityos-datasource.yml"])
    source = yaml.safe_load(
        (MONITORING / "grafana" / "provisioning" / "datasources.yml").read_text()
    )
    for datasource in source["datasources"]:
        datasource["url"] = "http://prom:9090"
    assert rendered == source

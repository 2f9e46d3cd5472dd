"""Services, config, cluster, storage, RBAC and networking kinds; the strategy table itself."""

from __future__ import annotations

import base64
import copy

import pytest

from apiserver.registry import Strategy, strategy_for
from skiff.api.kinds import BUILTIN_RESOURCES, BUILTINS


def strategy(group: str, kind: str, version: str = "v1") -> Strategy:
    return strategy_for(BUILTINS.by_kind(group, version, kind))


SERVICES = strategy("", "Service")
ENDPOINTS = strategy("", "Endpoints")
SLICES = strategy("discovery.k8s.io", "EndpointSlice")
CONFIGMAPS = strategy("", "ConfigMap")
SECRETS = strategy("", "Secret")
NAMESPACES = strategy("", "Namespace")
NODES = strategy("", "Node")
EVENTS = strategy("", "Event")
PVS = strategy("", "PersistentVolume")
PVCS = strategy("", "PersistentVolumeClaim")
STORAGECLASSES = strategy("storage.k8s.io", "StorageClass")
ROLES = strategy("rbac.authorization.k8s.io", "Role")
CLUSTERROLEBINDINGS = strategy("rbac.authorization.k8s.io", "ClusterRoleBinding")
NETPOLS = strategy("networking.k8s.io", "NetworkPolicy")
INGRESSES = strategy("networking.k8s.io", "Ingress")


def fields(causes: list) -> list[tuple[str, str]]:
    return [(c.field, c.message) for c in causes]


def defaulted(rules: Strategy, obj: dict) -> dict:
    obj.setdefault("metadata", {"name": "x", "namespace": "default"})
    rules.default(obj)
    rules.prepare_for_create(obj)
    return obj


# -- strategy table ---------------------------------------------------------------------------------


@pytest.mark.parametrize("resource", BUILTIN_RESOURCES, ids=lambda r: f"{r.group or 'core'}/{r.kind}")
def test_every_builtin_kind_has_consistent_rules(resource) -> None:
    rules = strategy_for(resource)
    assert rules.status_subresource == resource.has_subresource("status")
    columns = rules.table_columns()
    row = rules.table_row({"metadata": {"name": "x", "creationTimestamp": "2020-01-01T00:00:00Z"}})
    assert len(row) == len(columns)
    assert "metadata.name" in rules.selectable_fields()


def test_unknown_kinds_get_the_plain_strategy() -> None:
    resource = BUILTINS.by_kind("", "v1", "Binding")
    assert type(strategy_for(resource)) is Strategy


# -- services ---------------------------------------------------------------------------------------


def _service(**spec: object) -> dict:
    return defaulted(SERVICES, {"metadata": {"name": "web", "namespace": "default"}, "spec": spec})


def test_service_defaults() -> None:
    spec = _service(ports=[{"port": 80}], selector={"app": "web"})["spec"]
    assert spec["type"] == "ClusterIP"
    assert spec["sessionAffinity"] == "None"
    assert spec["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80}]
    assert (spec["ipFamilyPolicy"], spec["ipFamilies"]) == ("SingleStack", ["IPv4"])
    assert spec["internalTrafficPolicy"] == "Cluster"
    assert "externalTrafficPolicy" not in spec
    assert _service(type="NodePort", ports=[{"port": 80}])["spec"]["externalTrafficPolicy"] == "Cluster"


def test_service_port_rules() -> None:
    assert fields(SERVICES.validate(_service())) == [("spec.ports", "Required value")]
    assert SERVICES.validate(_service(clusterIP="None")) == []
    causes = fields(SERVICES.validate(_service(ports=[{"port": 80}, {"port": 0, "name": "b"}])))
    assert ("spec.ports[0].name", "Required value") in causes
    assert ("spec.ports[1].port", "Invalid value: 0: must be between 1 and 65535, inclusive") in causes


def test_node_ports_only_for_node_port_services_and_in_range() -> None:
    causes = fields(SERVICES.validate(_service(ports=[{"port": 80, "nodePort": 30080}])))
    assert causes == [("spec.ports[0].nodePort", "Forbidden: may not be used when `type` is 'ClusterIP'")]
    causes = fields(SERVICES.validate(_service(type="NodePort", ports=[{"port": 80, "nodePort": 80}])))
    assert causes == [
        (
            "spec.ports[0].nodePort",
            "Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767",
        )
    ]


def test_service_type_and_cluster_ip_values() -> None:
    causes = fields(SERVICES.validate(_service(type="Magic", ports=[{"port": 80}])))
    assert causes[0] == (
        "spec.type",
        'Unsupported value: "Magic": supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"',
    )
    causes = fields(SERVICES.validate(_service(clusterIP="not-an-ip", ports=[{"port": 80}])))
    assert causes == [
        (
            "spec.clusterIPs[0]",
            'Invalid value: "not-an-ip": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)',
        )
    ]


def test_cluster_ip_is_kept_when_omitted_and_cannot_change() -> None:
    old = _service(clusterIP="10.96.0.10", ports=[{"port": 80}])
    resent = {"metadata": dict(old["metadata"]), "spec": {"ports": [{"port": 80}]}}
    SERVICES.prepare_for_update(resent, old)
    SERVICES.default(resent)
    assert resent["spec"]["clusterIP"] == "10.96.0.10"
    assert SERVICES.validate_update(resent, old) == []
    changed = copy.deepcopy(old)
    changed["spec"]["clusterIP"] = "10.96.0.11"
    changed["spec"]["clusterIPs"] = ["10.96.0.11"]
    assert [c.field for c in SERVICES.validate_update(changed, old)] == ["spec.clusterIPs[0]"]


def test_service_rows() -> None:
    service = _service(type="LoadBalancer", clusterIP="10.96.0.10", ports=[{"port": 80, "nodePort": 31000}])
    row = SERVICES.table_row(service)
    assert row[:5] == ["web", "LoadBalancer", "10.96.0.10", "<pending>", "80:31000/TCP"]
    assert row[6] == "<none>"
    assert SERVICES.selectable_fields()["spec.type"](service) == "LoadBalancer"


def test_service_names_are_dns_1035_labels() -> None:
    causes = SERVICES.validate_metadata({"metadata": {"name": "1web", "namespace": "default"}})
    assert "a DNS-1035 label must consist of" in causes[0].message


def test_endpoints_row_truncates_after_three() -> None:
    endpoints = {
        "metadata": {"name": "web"},
        "subsets": [{"addresses": [{"ip": f"10.0.0.{i}"} for i in range(5)], "ports": [{"port": 80}]}],
    }
    assert ENDPOINTS.table_row(endpoints)[1] == "10.0.0.0:80,10.0.0.1:80,10.0.0.2:80 + 2 more..."


def test_endpoint_slices_limit_endpoints_and_address_types() -> None:
    too_many = {"addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"]}] * 1001}
    assert fields(SLICES.validate(too_many)) == [("endpoints", "Too many: 1001: must have at most 1000 items")]
    assert SLICES.validate({"addressType": "IPX"})[0].reason == "FieldValueNotSupported"


# -- config -----------------------------------------------------------------------------------------


def test_configmap_keys_and_immutability() -> None:
    assert fields(CONFIGMAPS.validate({"data": {"bad key": "x"}}))[0][1].startswith(
        'Invalid value: "bad key": a valid config key must consist of alphanumeric characters'
    )
    old = {"metadata": {"name": "c"}, "data": {"a": "1"}, "immutable": True}
    new = {**old, "data": {"a": "2"}}
    assert fields(CONFIGMAPS.validate_update(new, old)) == [
        ("data", "Forbidden: field is immutable when `immutable` is set")
    ]
    assert CONFIGMAPS.table_row({"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}})[1] == 2


def test_secret_defaults_and_string_data() -> None:
    secret = defaulted(SECRETS, {"stringData": {"password": "hunter2"}})
    assert secret["type"] == "Opaque"
    assert secret["data"] == {"password": base64.b64encode(b"hunter2").decode()}
    assert "stringData" not in secret
    assert SECRETS.selectable_fields()["type"](secret) == "Opaque"
    assert SECRETS.table_row(secret)[1:3] == ["Opaque", 1]


def test_typed_secrets_need_their_keys() -> None:
    tls = defaulted(SECRETS, {"type": "kubernetes.io/tls", "data": {"tls.crt": "YQ=="}})
    assert fields(SECRETS.validate(tls)) == [("data[tls.key]", "Required value")]
    token = defaulted(SECRETS, {"type": "kubernetes.io/service-account-token"})
    assert fields(SECRETS.validate(token)) == [
        ("metadata.annotations[kubernetes.io/service-account.name]", "Required value")
    ]
    bad = defaulted(SECRETS, {"data": {"a": "not base64!"}})
    assert SECRETS.validate(bad)[0].field == "data[a]"


def test_secret_type_is_immutable() -> None:
    old = defaulted(SECRETS, {"data": {}})
    new = {**old, "type": "kubernetes.io/basic-auth"}
    assert fields(SECRETS.validate_update(new, old)) == [
        ("type", 'Invalid value: "kubernetes.io/basic-auth": field is immutable')
    ]


# -- namespaces, nodes, events ----------------------------------------------------------------------


def test_namespace_defaults_status_and_row() -> None:
    namespace = defaulted(NAMESPACES, {"metadata": {"name": "team"}})
    assert namespace["spec"] == {"finalizers": ["kubernetes"]}
    assert namespace["status"] == {"phase": "Active"}
    assert namespace["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team"}
    assert NAMESPACES.table_row(namespace)[:2] == ["team", "Active"]
    assert NAMESPACES.selectable_fields()["status.phase"](namespace) == "Active"


def test_node_row() -> None:
    node = {
        "metadata": {"name": "n1", "labels": {"node-role.kubernetes.io/control-plane": ""}},
        "spec": {"unschedulable": True},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "addresses": [{"type": "InternalIP", "address": "172.18.0.2"}],
            "nodeInfo": {
                "kubeletVersion": "v1.33.0",
                "osImage": "Skiff",
                "kernelVersion": "6.1",
                "containerRuntimeVersion": "sim://1",
            },
        },
    }
    row = NODES.table_row(node)
    assert row[1:3] == ["Ready,SchedulingDisabled", "control-plane"]
    assert row[4:] == ["v1.33.0", "172.18.0.2", "<none>", "Skiff", "6.1", "sim://1"]
    assert NODES.selectable_fields()["spec.unschedulable"](node) == "true"


def test_event_row_and_selectors() -> None:
    event = {
        "metadata": {"name": "web.1", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default", "uid": "u1"},
        "reason": "BackOff",
        "type": "Warning",
        "message": "Back-off restarting failed container ",
        "source": {"component": "kubelet", "host": "n1"},
        "count": 4,
    }
    row = EVENTS.table_row(event)
    assert row[1:8] == [
        "Warning",
        "BackOff",
        "pod/web",
        "",
        "kubelet, n1",
        "Back-off restarting failed container",
        "<unknown>",
    ]
    assert row[8:] == [4, "web.1"]
    selectors = EVENTS.selectable_fields()
    assert selectors["involvedObject.uid"](event) == "u1"
    assert selectors["source"](event) == "kubelet"
    assert selectors["type"](event) == "Warning"
    mismatch = {**event, "involvedObject": {**event["involvedObject"], "namespace": "other"}}
    assert fields(EVENTS.validate(mismatch)) == [
        ("involvedObject.namespace", 'Invalid value: "other": does not match event.namespace')
    ]


# -- storage ----------------------------------------------------------------------------------------


def _pv(**spec: object) -> dict:
    return defaulted(PVS, {"metadata": {"name": "pv1"}, "spec": spec})


def test_persistent_volume_defaults_and_rules() -> None:
    volume = _pv(capacity={"storage": "1Gi"}, accessModes=["ReadWriteOnce"], hostPath={"path": "/d"})
    assert volume["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert volume["spec"]["volumeMode"] == "Filesystem"
    assert volume["status"] == {"phase": "Pending"}
    assert PVS.validate(volume) == []
    causes = fields(PVS.validate(_pv(accessModes=["ReadWriteSometimes"])))
    assert ("spec.capacity", "Required value") in causes
    assert ("spec", "Required value: must specify a volume type") in causes
    assert any(f == "spec.accessModes" and m.startswith("Unsupported value") for f, m in causes)
    changed = copy.deepcopy(volume)
    changed["spec"]["hostPath"] = {"path": "/other"}
    assert [c.field for c in PVS.validate_update(changed, volume)] == ["spec.persistentvolumesource"]
    row = PVS.table_row(volume)
    assert row[1:5] == ["1Gi", "RWO", "Retain", "Pending"]


def _pvc(**spec: object) -> dict:
    return defaulted(PVCS, {"metadata": {"name": "data", "namespace": "default"}, "spec": spec})


def test_claims_need_storage_and_keep_their_spec() -> None:
    claim = _pvc(accessModes=["ReadWriteOnce"], resources={"requests": {"storage": "1Gi"}})
    assert claim["spec"]["volumeMode"] == "Filesystem"
    assert claim["status"] == {"phase": "Pending"}
    assert PVCS.validate(claim) == []
    assert ("spec.resources[storage]", "Required value") in fields(PVCS.validate(_pvc(accessModes=["ReadWriteOnce"])))
    grown = copy.deepcopy(claim)
    grown["spec"]["resources"]["requests"]["storage"] = "2Gi"
    grown["spec"]["volumeName"] = "pv1"
    assert PVCS.validate_update(grown, claim) == []
    other = copy.deepcopy(claim)
    other["spec"]["accessModes"] = ["ReadWriteMany"]
    (cause,) = PVCS.validate_update(other, claim)
    assert cause.message.startswith("Forbidden: spec is immutable after creation except resources.requests")


def test_storage_class_defaults_row_and_updates() -> None:
    annotations = {"storageclass.kubernetes.io/is-default-class": "true"}
    sc = defaulted(
        STORAGECLASSES,
        {"metadata": {"name": "standard", "annotations": annotations}, "provisioner": "skiff.io/hostpath"},
    )
    assert (sc["reclaimPolicy"], sc["volumeBindingMode"]) == ("Delete", "Immediate")
    assert STORAGECLASSES.table_row(sc)[:5] == [
        "standard (default)",
        "skiff.io/hostpath",
        "Delete",
        "Immediate",
        False,
    ]
    assert fields(STORAGECLASSES.validate(defaulted(STORAGECLASSES, {}))) == [("provisioner", "Required value")]
    changed = {**sc, "parameters": {"type": "ssd"}}
    assert fields(STORAGECLASSES.validate_update(changed, sc)) == [
        ("parameters", "Forbidden: updates to parameters are forbidden.")
    ]


# -- RBAC and networking ----------------------------------------------------------------------------


def test_role_rules_need_verbs_and_resources() -> None:
    role = {
        "metadata": {"name": "reader"},
        "rules": [
            {"apiGroups": [""], "resources": ["pods"]},
            {"verbs": ["get"], "nonResourceURLs": ["/healthz"]},
        ],
    }
    assert fields(ROLES.validate(role)) == [
        ("rules[0].verbs", "Required value: verbs must contain at least one value"),
        (
            "rules[1].nonResourceURLs",
            'Invalid value: []string{"/healthz"}: namespaced rules cannot apply to non-resource URLs',
        ),
    ]
    assert ROLES.validate_metadata({"metadata": {"name": "system:reader", "namespace": "default"}}) == []


def test_cluster_role_binding_rules() -> None:
    binding = {
        "metadata": {"name": "b"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
        "subjects": [{"kind": "ServiceAccount", "name": "default"}, {"kind": "Robot", "name": "x"}],
    }
    assert fields(CLUSTERROLEBINDINGS.validate(binding)) == [
        ("roleRef.kind", 'Unsupported value: "Role": supported values: "ClusterRole"'),
        ("subjects[0].namespace", "Required value"),
        (
            "subjects[1].kind",
            'Unsupported value: "Robot": supported values: "ServiceAccount", "User", "Group"',
        ),
    ]
    changed = {**binding, "roleRef": {**binding["roleRef"], "name": "other"}}
    assert CLUSTERROLEBINDINGS.validate_update(changed, binding)[0].message.endswith("cannot change roleRef")


def test_network_policy_types_are_derived() -> None:
    ingress_only = defaulted(NETPOLS, {"spec": {"podSelector": {}}})
    assert ingress_only["spec"]["policyTypes"] == ["Ingress"]
    both = defaulted(NETPOLS, {"spec": {"podSelector": {}, "egress": [{"ports": [{"port": 53}]}]}})
    assert both["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert both["spec"]["egress"][0]["ports"][0]["protocol"] == "TCP"
    assert NETPOLS.table_row(both)[1] == "<none>"


def test_ingress_paths_need_a_type_and_an_absolute_path() -> None:
    backend = {"service": {"name": "web", "port": {"number": 80}}}
    ingress = {
        "spec": {
            "rules": [
                {
                    "host": "example.com",
                    "http": {
                        "paths": [
                            {"path": "app", "pathType": "Prefix", "backend": backend},
                            {"path": "/", "backend": backend},
                        ]
                    },
                }
            ]
        }
    }
    assert fields(INGRESSES.validate(ingress)) == [
        ("spec.rules[0].http.paths[0].path", 'Invalid value: "app": must be an absolute path'),
        ("spec.rules[0].http.paths[1].pathType", "Required value: pathType must be specified"),
    ]
    ingress["metadata"] = {"name": "web"}
    assert INGRESSES.table_row(ingress)[1:5] == ["<none>", "example.com", "", "80"]

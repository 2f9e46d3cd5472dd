"""What the volume controllers and the scheduler's volume plugin share: kube's annotation names, and the
rules that decide whether a volume can serve a claim and whether a node can reach a volume."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fractions import Fraction
from typing import Any

from skiff.api.errors import ApiError
from skiff.api.kinds import BUILTINS, ResourceType
from skiff.api.quantity import QuantityError, parse_quantity
from skiff.api.selectors import selector_from_object


def _kind(group: str, kind: str) -> ResourceType:
    found = BUILTINS.by_kind(group, "v1", kind)
    assert found is not None
    return found


CLAIMS = _kind("", "PersistentVolumeClaim")
VOLUMES = _kind("", "PersistentVolume")
CLASSES = _kind("storage.k8s.io", "StorageClass")
PODS = _kind("", "Pod")
NODES = _kind("", "Node")

Obj = dict[str, Any]

# Annotations, as kube-controller-manager and the external provisioners write them.
ANN_BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
ANN_BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
ANN_PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
ANN_STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
ANN_BETA_STORAGE_PROVISIONER = "volume.beta.kubernetes.io/storage-provisioner"
ANN_SELECTED_NODE = "volume.kubernetes.io/selected-node"
ANN_BETA_CLASS = "volume.beta.kubernetes.io/storage-class"
PVC_PROTECTION = "kubernetes.io/pvc-protection"
PV_PROTECTION = "kubernetes.io/pv-protection"
HOSTNAME_LABEL = "kubernetes.io/hostname"

HOSTPATH_PROVISIONER = "skiff.dev/hostpath"
SIMULATED_PROVISIONER = "skiff.dev/simulated"
WAIT_FOR_FIRST_CONSUMER = "WaitForFirstConsumer"

RWO, ROX, RWX, RWOP = "ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"


def meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("spec") or {}


def annotations(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return meta(obj).get("annotations") or {}


def name_of(obj: Mapping[str, Any]) -> str:
    return str(meta(obj).get("name") or "")


def claim_key(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


def claim_class(claim: Mapping[str, Any]) -> str:
    """The claim's class: spec.storageClassName, else the beta annotation; "" for none."""
    class_name = spec(claim).get("storageClassName")
    if class_name is None:
        class_name = annotations(claim).get(ANN_BETA_CLASS)
    return str(class_name or "")


def volume_class(volume: Mapping[str, Any]) -> str:
    return str(spec(volume).get("storageClassName") or annotations(volume).get(ANN_BETA_CLASS) or "")


def storage_bytes(raw: object) -> Fraction | None:
    try:
        return parse_quantity(raw).value
    except (QuantityError, TypeError):
        return None


def requested(claim: Mapping[str, Any]) -> Fraction:
    raw = ((spec(claim).get("resources") or {}).get("requests") or {}).get("storage")
    return storage_bytes(raw) or Fraction(0)


def capacity(volume: Mapping[str, Any]) -> Fraction:
    return storage_bytes((spec(volume).get("capacity") or {}).get("storage")) or Fraction(0)


def access_modes(obj: Mapping[str, Any]) -> list[str]:
    return list(spec(obj).get("accessModes") or [])


def volume_mode(obj: Mapping[str, Any]) -> str:
    return str(spec(obj).get("volumeMode") or "Filesystem")


def is_deleting(obj: Mapping[str, Any]) -> bool:
    return bool(meta(obj).get("deletionTimestamp"))


def claim_ref_matches(ref: Mapping[str, Any] | None, claim: Mapping[str, Any]) -> bool:
    """A volume's claimRef names this claim (and, when the ref carries a uid, this very claim)."""
    if not ref:
        return False
    metadata = meta(claim)
    if ref.get("namespace") != metadata.get("namespace") or ref.get("name") != metadata.get("name"):
        return False
    return not ref.get("uid") or ref.get("uid") == metadata.get("uid")


def claim_ref_for(claim: Mapping[str, Any]) -> Obj:
    metadata = meta(claim)
    return {
        "kind": "PersistentVolumeClaim",
        "apiVersion": "v1",
        "namespace": metadata.get("namespace"),
        "name": metadata.get("name"),
        "uid": metadata.get("uid"),
        "resourceVersion": str(metadata.get("resourceVersion") or ""),
    }


def mismatch(volume: Mapping[str, Any], claim: Mapping[str, Any], *, check_class: bool = True) -> str:
    """Why `volume` cannot serve `claim` (kube's checkVolumeSatisfyClaim); "" when it can."""
    if capacity(volume) < requested(claim):
        return "requested PV is too small"
    if check_class and volume_class(volume) != claim_class(claim):
        return "storageClassName does not match"
    if volume_mode(volume) != volume_mode(claim):
        return "incompatible volumeMode"
    if not set(access_modes(claim)) <= set(access_modes(volume)):
        return "incompatible accessMode"
    return ""


def selector_matches(claim: Mapping[str, Any], volume: Mapping[str, Any]) -> bool:
    raw = spec(claim).get("selector")
    if not raw:
        return True
    try:
        return selector_from_object(raw).matches(meta(volume).get("labels") or {})
    except ApiError:
        return False


def node_affinity_terms(volume: Mapping[str, Any]) -> list[Mapping[str, Any]] | None:
    """The volume's required node selector terms; None when any node can reach it."""
    required = (spec(volume).get("nodeAffinity") or {}).get("required") or {}
    terms = required.get("nodeSelectorTerms")
    return list(terms) if terms else None


def _requirement_holds(requirement: Mapping[str, Any], values: Mapping[str, str]) -> bool:
    key, operator = requirement.get("key") or "", requirement.get("operator") or ""
    wanted = [str(v) for v in requirement.get("values") or []]
    present = key in values
    if operator == "In":
        return present and values[key] in wanted
    if operator == "NotIn":
        return not present or values[key] not in wanted
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if operator in ("Gt", "Lt") and present and len(wanted) == 1:
        try:
            have, want = int(values[key]), int(wanted[0])
        except ValueError:
            return False
        return have > want if operator == "Gt" else have < want
    return False


def node_can_reach(volume: Mapping[str, Any], node_name: str, labels: Mapping[str, str]) -> bool:
    """kube's CheckNodeAffinity: some term's expressions (labels) and fields (metadata.name) all hold."""
    terms = node_affinity_terms(volume)
    if terms is None:
        return True
    for term in terms:
        expressions = term.get("matchExpressions") or []
        fields = term.get("matchFields") or []
        if not expressions and not fields:
            continue
        if all(_requirement_holds(r, labels) for r in expressions) and all(
            f.get("key") == "metadata.name" and _requirement_holds(f, {"metadata.name": node_name}) for f in fields
        ):
            return True
    return False


def node_affinity_for(node_name: str) -> Obj:
    term = {"matchExpressions": [{"key": HOSTNAME_LABEL, "operator": "In", "values": [node_name]}]}
    return {"required": {"nodeSelectorTerms": [term]}}


def find_best_match(
    claim: Mapping[str, Any],
    volumes: Iterable[Mapping[str, Any]],
    taken: Mapping[str, str] | None = None,
    node: tuple[str, Mapping[str, str]] | None = None,
) -> Mapping[str, Any] | None:
    """The smallest volume that can serve `claim` (kube's FindMatchingVolume). A volume pre-bound to this
    claim wins outright. Volumes `taken` (volume name → claim key, binds in flight) are skipped, and
    with `node` (name, labels) only volumes that node can reach count."""
    key = claim_key(str(meta(claim).get("namespace") or ""), name_of(claim))
    best: Mapping[str, Any] | None = None
    for volume in volumes:
        if is_deleting(volume):
            continue
        holder = (taken or {}).get(name_of(volume))
        if holder is not None and holder != key:
            continue
        ref = spec(volume).get("claimRef")
        if ref and not claim_ref_matches(ref, claim):
            continue
        if mismatch(volume, claim):
            continue
        if node is not None and not node_can_reach(volume, node[0], node[1]):
            continue
        if ref:
            return volume  # pre-bound to this claim
        if (volume.get("status") or {}).get("phase") not in (None, "", "Available", "Pending"):
            continue
        if not selector_matches(claim, volume):
            continue
        if best is None or capacity(volume) < capacity(best):
            best = volume
    return best


def pod_claim_names(pod: Mapping[str, Any]) -> list[str]:
    volumes = spec(pod).get("volumes") or []
    return [
        v["persistentVolumeClaim"]["claimName"]
        for v in volumes
        if (v.get("persistentVolumeClaim") or {}).get("claimName")
    ]


def pod_is_active(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def index_pods_by_claim(pod: Obj) -> list[str]:
    namespace = str(meta(pod).get("namespace") or "")
    return [claim_key(namespace, name) for name in pod_claim_names(pod)]


CLAIM_INDEX = "volume.by-claim"


def ensure_pod_claim_index(pods: Any) -> None:
    """Index pods by the claims they use (`namespace/claim`); informers are shared, so only once."""
    if not pods.cache.has_indexer(CLAIM_INDEX):
        pods.add_indexer(CLAIM_INDEX, index_pods_by_claim)

"""Protobuf request bodies decode to the same objects their JSON encoding gives.

The fixtures are bodies that kubectl 1.33 sent (1.32 sends byte-identical ones); the expected `.json`
beside each is what the same kubectl prints for the command with `-o json --dry-run=client`.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from apiserver.http.protobuf import decode_protobuf_object
from skiff.api.errors import ApiError

FIXTURES = Path(__file__).parent / "fixtures" / "protobuf"
WITH_EXPECTED_JSON = sorted(path.stem for path in FIXTURES.glob("*.json"))


def body(name: str) -> bytes:
    return (FIXTURES / f"{name}.bin").read_bytes()


def expected(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


# --- a minimal encoder, to build bodies kubectl does not send --------------------------------------


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def num(field: int, value: int) -> bytes:
    return varint(field << 3) + varint(value)


def msg(field: int, *parts: bytes | str) -> bytes:
    payload = b"".join(p.encode() if isinstance(p, str) else p for p in parts)
    return varint(field << 3 | 2) + varint(len(payload)) + payload


def envelope(api_version: str, kind: str, raw: bytes, content_type: str = "") -> bytes:
    type_meta = msg(1, msg(1, api_version), msg(2, kind))
    return b"k8s\x00" + type_meta + msg(2, raw) + msg(3, "") + msg(4, content_type)


def decode_error(data: bytes) -> ApiError:
    with pytest.raises(ApiError) as caught:
        decode_protobuf_object(data)
    return caught.value


# --- what kubectl sends ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", WITH_EXPECTED_JSON)
def test_kubectl_bodies_decode_to_the_object_kubectl_would_send_as_json(name: str) -> None:
    assert decode_protobuf_object(body(name)) == expected(name)


def test_secret_values_come_back_base64_encoded_like_json() -> None:
    secret = decode_protobuf_object(body("secret_generic"))
    assert secret["data"] == {"password": "czNjcjN0", "user": "YWRtaW4="}


def test_binary_configmap_data_survives_as_base64() -> None:
    configmap = decode_protobuf_object(body("configmap"))
    assert configmap["data"] == {"level": "3", "mode": "fast"}
    assert len(configmap["binaryData"]["blob"]) == 88  # 64 random bytes


def test_zero_replicas_is_kept_because_replicas_is_a_pointer() -> None:
    deployment = decode_protobuf_object(body("deployment_command"))
    assert deployment["spec"]["replicas"] == 0
    assert deployment["metadata"]["namespace"] == "team"


def test_service_target_ports_keep_numbers_and_names_apart() -> None:
    assert decode_protobuf_object(body("service_clusterip"))["spec"]["ports"][0]["targetPort"] == 8080
    assert decode_protobuf_object(body("service_nodeport"))["spec"]["ports"][0]["targetPort"] == "http"


def test_owner_reference_from_create_job_from_cronjob() -> None:
    job = decode_protobuf_object(body("job_from_cronjob"))
    assert job["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "name": "rich",
            "uid": "0b7e1c2a-1111-2222-3333-444455556666",
            "controller": True,
        }
    ]
    assert job["spec"]["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"] == [42, -1]


def test_create_token_request() -> None:
    assert decode_protobuf_object(body("token_bound")) == {
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": {
            "audiences": ["api", "vault"],
            "expirationSeconds": 600,
            "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p1", "uid": "1234"},
        },
        "status": {"token": "", "expirationTimestamp": None},
    }
    assert decode_protobuf_object(body("token"))["spec"] == {"audiences": None}


def test_auth_can_i_resource_and_subresource() -> None:
    review = decode_protobuf_object(body("cani_sub"))
    assert review["apiVersion"] == "authorization.k8s.io/v1"
    assert review["kind"] == "SelfSubjectAccessReview"
    assert review["spec"] == {
        "resourceAttributes": {
            "namespace": "team",
            "verb": "create",
            "group": "apps",
            "resource": "deployments",
            "subresource": "scale",
        }
    }
    assert review["status"] == {"allowed": False}


def test_auth_can_i_named_object_and_non_resource_url() -> None:
    named = decode_protobuf_object(body("cani_name"))["spec"]["resourceAttributes"]
    assert named == {"namespace": "default", "verb": "delete", "resource": "secrets", "name": "creds"}
    url = decode_protobuf_object(body("cani_nonresource"))["spec"]
    assert url == {"nonResourceAttributes": {"path": "/logs", "verb": "get"}}


def test_auth_can_i_list() -> None:
    review = decode_protobuf_object(body("cani_list"))
    assert review["kind"] == "SelfSubjectRulesReview"
    assert review["spec"] == {"namespace": "team"}


def test_auth_whoami() -> None:
    assert decode_protobuf_object(body("whoami")) == {
        "kind": "SelfSubjectReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "status": {"userInfo": {}},
    }


def test_whoami_v1beta1_is_understood() -> None:
    raw = msg(1, msg(1, "")) + msg(2, msg(1, msg(1, "alice"), msg(3, "devs"), msg(4, msg(1, "k"), msg(2, msg(1, "v")))))
    review = decode_protobuf_object(envelope("authentication.k8s.io/v1beta1", "SelfSubjectReview", raw))
    assert review["apiVersion"] == "authentication.k8s.io/v1beta1"
    assert review["status"]["userInfo"] == {"username": "alice", "groups": ["devs"], "extra": {"k": ["v"]}}


# --- kinds kubectl does not send as protobuf today --------------------------------------------------


def test_lease_micro_times_and_managed_fields() -> None:
    managed = msg(
        17,
        msg(1, "kubelet"),
        msg(2, "Update"),
        msg(3, "coordination.k8s.io/v1"),
        msg(4, num(1, 1735689600)),
        msg(6, "FieldsV1"),
        msg(7, msg(1, b'{"f:spec":{"f:holderIdentity":{}}}')),
    )
    metadata = msg(1, msg(1, "leader"), msg(3, "kube-system"), msg(8, num(1, 1735689600)), managed)
    spec = msg(
        2,
        msg(1, "node-a"),
        num(2, 15),
        msg(3, num(1, 1735732800), num(2, 123456789)),
        msg(4, b""),
        num(5, 0),
    )
    lease = decode_protobuf_object(envelope("coordination.k8s.io/v1", "Lease", metadata + spec))
    assert lease == {
        "kind": "Lease",
        "apiVersion": "coordination.k8s.io/v1",
        "metadata": {
            "name": "leader",
            "namespace": "kube-system",
            "creationTimestamp": "2025-01-01T00:00:00Z",
            "managedFields": [
                {
                    "manager": "kubelet",
                    "operation": "Update",
                    "apiVersion": "coordination.k8s.io/v1",
                    "time": "2025-01-01T00:00:00Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:spec": {"f:holderIdentity": {}}},
                }
            ],
        },
        "spec": {
            "holderIdentity": "node-a",
            "leaseDurationSeconds": 15,
            "acquireTime": "2025-01-01T12:00:00.123456Z",
            "renewTime": None,
            "leaseTransitions": 0,
        },
    }


def test_core_event() -> None:
    raw = (
        msg(1, msg(1, "web-1.17f"), msg(3, "default"))
        + msg(2, msg(1, "Pod"), msg(2, "default"), msg(3, "web-1"))
        + msg(3, "Started")
        + msg(5, msg(1, "kubelet"), msg(2, "node-a"))
        + msg(6, num(1, 1735689600))
        + msg(7, num(1, 1735689660))
        + num(8, 2)
        + msg(9, "Normal")
        + msg(10, b"")
        + msg(14, "")
        + msg(15, "")
    )
    event = decode_protobuf_object(envelope("v1", "Event", raw))
    assert event == {
        "kind": "Event",
        "apiVersion": "v1",
        "metadata": {"name": "web-1.17f", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web-1"},
        "reason": "Started",
        "source": {"component": "kubelet", "host": "node-a"},
        "firstTimestamp": "2025-01-01T00:00:00Z",
        "lastTimestamp": "2025-01-01T00:01:00Z",
        "count": 2,
        "type": "Normal",
        "eventTime": None,
        "reportingComponent": "",
        "reportingInstance": "",
    }


def test_envelope_carrying_json_is_accepted() -> None:
    data = envelope("v1", "ConfigMap", b'{"metadata":{"name":"x"},"data":{"a":"1"}}', "application/json")
    assert decode_protobuf_object(data) == {
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {"name": "x"},
        "data": {"a": "1"},
    }


def test_fields_newer_than_the_server_are_ignored() -> None:
    raw = msg(1, msg(1, "demo")) + msg(99, "from the future") + num(98, 7)
    assert decode_protobuf_object(envelope("v1", "Namespace", raw))["metadata"] == {"name": "demo"}


# --- errors ----------------------------------------------------------------------------------------


def test_body_without_the_magic_prefix_is_a_bad_request() -> None:
    error = decode_error(b'{"kind":"Namespace"}')
    assert error.code == 400
    assert "k8s" in error.message


def test_kind_the_server_cannot_decode_is_unsupported_media_type() -> None:
    error = decode_error(envelope("apps/v1", "StatefulSet", b""))
    assert error.code == 415
    assert error.reason == "UnsupportedMediaType"
    assert "StatefulSet" in error.message and "apps/v1" in error.message


def test_envelope_without_type_is_a_bad_request() -> None:
    assert decode_error(b"k8s\x00" + msg(2, b"")).code == 400


@pytest.mark.parametrize("cut", [5, 20, 60, 200, -1])
def test_truncated_body_is_a_bad_request(cut: int) -> None:
    data = body("deployment")
    error = decode_error(data[:cut])
    assert error.code == 400
    assert error.reason == "BadRequest"


def test_length_larger_than_the_body_is_a_bad_request() -> None:
    huge = b"k8s\x00" + varint(2 << 3 | 2) + varint(1 << 62)
    assert "past the end" in decode_error(huge).message


def test_overlong_varint_is_a_bad_request() -> None:
    assert "varint" in decode_error(b"k8s\x00" + b"\xff" * 11).message


def test_wrong_wire_type_is_a_bad_request() -> None:
    raw = num(1, 5)  # metadata must be a message, not a number
    assert decode_error(envelope("v1", "Namespace", raw)).code == 400


def test_invalid_utf8_in_a_string_is_a_bad_request() -> None:
    raw = msg(1, msg(1, b"\xff\xfe"))
    assert "UTF-8" in decode_error(envelope("v1", "Namespace", raw)).message


def test_deeply_nested_embedded_objects_are_refused() -> None:
    inner = b""
    for _ in range(100):
        fields_v1 = msg(7, msg(1, envelope("coordination.k8s.io/v1", "Lease", inner)))
        inner = msg(1, msg(17, fields_v1))
    assert "nested" in decode_error(envelope("coordination.k8s.io/v1", "Lease", inner)).message


def test_mangled_bodies_never_crash_the_decoder() -> None:
    rng = random.Random(1234)
    originals = [body(name) for name in ("deployment", "job_from_cronjob", "secret_tls", "ingress")]
    for _ in range(3000):
        data = bytearray(rng.choice(originals))
        for _ in range(rng.randint(1, 4)):
            position = rng.randrange(4, len(data))
            data[position] = rng.randrange(256)
        try:
            decode_protobuf_object(bytes(data))
        except ApiError as error:
            assert error.code in (400, 415)

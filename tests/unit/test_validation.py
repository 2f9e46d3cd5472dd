"""Generic metadata validation and the wording of field errors."""

from __future__ import annotations

from skiff.api import validation as v
from skiff.api.kinds import BUILTINS
from skiff.api.timefmt import human_duration

PODS = BUILTINS.by_kind("", "v1", "Pod")
NAMESPACES = BUILTINS.by_kind("", "v1", "Namespace")


def _pod(**metadata: object) -> dict:
    return {"metadata": {"namespace": "default", **metadata}}


def test_bad_name_gets_kubernetes_wording() -> None:
    (cause,) = v.validate_metadata(_pod(name="Bad_Name"), PODS)
    assert cause.field == "metadata.name"
    assert cause.reason == "FieldValueInvalid"
    assert cause.message == (
        'Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric '
        "characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', "
        "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    )


def test_name_or_generate_name_is_required() -> None:
    (cause,) = v.validate_metadata(_pod(), PODS)
    assert (cause.field, cause.reason) == ("metadata.name", "FieldValueRequired")
    assert cause.message == "Required value: name or generateName is required"
    assert v.validate_metadata(_pod(generateName="web-"), PODS) == []


def test_namespaced_kinds_need_a_namespace_and_cluster_kinds_refuse_one() -> None:
    (missing,) = v.validate_metadata({"metadata": {"name": "web"}}, PODS)
    assert (missing.field, missing.message) == ("metadata.namespace", "Required value")
    (extra,) = v.validate_metadata({"metadata": {"name": "team", "namespace": "x"}}, NAMESPACES)
    assert extra.message == "Forbidden: not allowed on this type"


def test_dns_label_rule_rejects_dots() -> None:
    causes = v.validate_metadata({"metadata": {"name": "a.b"}}, NAMESPACES, v.name_is_dns_label)
    assert "a lowercase RFC 1123 label must consist of" in causes[0].message


def test_path_segment_names_allow_colons_but_not_slashes() -> None:
    assert v.name_is_path_segment("system:controller:foo", False) == []
    assert v.name_is_path_segment("a/b", False) == ["may not contain '/'"]
    assert v.name_is_path_segment("..", False) == ["may not be '..'"]


def test_label_keys_and_values_are_checked() -> None:
    causes = v.validate_metadata(_pod(name="web", labels={"bad key": "ok", "app": "x" * 64}), PODS)
    messages = [c.message for c in causes]
    assert all(c.field == "metadata.labels" for c in causes)
    assert any(m.startswith('Invalid value: "bad key": name part must consist of') for m in messages)
    assert any(m.endswith("must be no more than 63 characters") for m in messages)


def test_prefixed_label_keys_check_the_prefix() -> None:
    assert v.qualified_name("example.com/tier") == []
    assert v.qualified_name("Example_com/tier")[0].startswith("prefix part a lowercase RFC 1123 subdomain")


def test_annotations_are_limited_to_256_kib_in_total() -> None:
    causes = v.validate_metadata(_pod(name="web", annotations={"big": "x" * 262_144}), PODS)
    assert [(c.field, c.reason, c.message) for c in causes] == [
        ("metadata.annotations", "FieldValueTooLong", "Too long: may not be more than 262144 bytes")
    ]


def test_owner_references_need_their_identity_and_a_single_controller() -> None:
    owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "1", "controller": True}
    causes = v.validate_metadata(_pod(name="web", ownerReferences=[owner, {**owner, "name": "other"}]), PODS)
    assert any("Only one reference can have Controller set to true" in c.message for c in causes)
    causes = v.validate_metadata(_pod(name="web", ownerReferences=[{"apiVersion": "v1", "kind": "Node"}]), PODS)
    assert {c.field for c in causes} == {"metadata.ownerReferences.name", "metadata.ownerReferences.uid"}


def test_finalizers_must_be_qualified_names() -> None:
    causes = v.validate_metadata(_pod(name="web", finalizers=["example.com/cleanup", "bad finalizer"]), PODS)
    assert [c.field for c in causes] == ["metadata.finalizers"]


def test_unsupported_values_list_the_choices() -> None:
    cause = v.not_supported("spec.restartPolicy", "Sometimes", ["Always", "Never", "OnFailure"])
    assert cause.message == 'Unsupported value: "Sometimes": supported values: "Always", "Never", "OnFailure"'


def test_port_names_follow_iana_rules() -> None:
    assert v.port_name("http") == []
    assert "must contain at least one letter (a-z)" in v.port_name("8080")
    assert "must be no more than 15 characters" in v.port_name("a-very-long-port-name")


def test_environment_names_may_use_any_printable_ascii_but_equals() -> None:
    assert v.env_var_name("1_STARTS_WITH_DIGIT") == []
    assert v.env_var_name("A=B") == [v.ENV_VAR_NAME_ERROR]


def test_human_durations_match_kubectl() -> None:
    assert [human_duration(s) for s in (5, 119, 192, 600, 3 * 3600 + 60, 9 * 3600, 2 * 86400 + 3 * 3600)] == [
        "5s",
        "119s",
        "3m12s",
        "10m",
        "3h1m",
        "9h",
        "2d3h",
    ]
    assert human_duration(400 * 86400) == "400d"
    assert human_duration(3 * 365 * 86400) == "3y"
    assert human_duration(-5) == "<invalid>"

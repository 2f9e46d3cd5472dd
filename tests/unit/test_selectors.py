"""Label and field selectors: parsing, matching, printing and kube-apiserver's error messages."""

from __future__ import annotations

import pytest

from skiff.api.errors import ApiError
from skiff.api.fieldselectors import FieldRequirement, parse_field_selector
from skiff.api.selectors import (
    LabelSelector,
    parse_label_selector,
    selector_everything_if_none,
    selector_from_object,
    selector_to_string,
    validate_label_selector_object,
)

WEB_POD = {"app": "web", "tier": "frontend", "env": "prod"}
DB_POD = {"app": "db", "tier": "backend"}


def _parse_error(text: str) -> ApiError:
    with pytest.raises(ApiError) as caught:
        parse_label_selector(text)
    assert caught.value.code == 400
    assert caught.value.reason == "BadRequest"
    return caught.value


# --- label selector syntax ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "web", "db"),
    [
        ("app=web", True, False),
        ("app==web", True, False),
        ("app!=web", False, True),
        ("tier in (frontend, cache)", True, False),
        ("tier notin (frontend)", False, True),
        ("env", True, False),
        ("!env", False, True),
        ("app in (web,db),!canary", True, True),
        ("app=web,tier=backend", False, False),
        ("  app = web ,  env  ", True, False),
    ],
)
def test_label_selector_matches_like_kubectl_get_l(text: str, web: bool, db: bool) -> None:
    selector = parse_label_selector(text)
    assert selector.matches(WEB_POD) is web
    assert selector.matches(DB_POD) is db


def test_negative_operators_select_objects_without_the_label() -> None:
    assert parse_label_selector("canary!=true").matches({})
    assert parse_label_selector("canary notin (true)").matches({})
    assert not parse_label_selector("canary in (true)").matches({})


def test_numeric_comparison_operators() -> None:
    selector = parse_label_selector("generation>5,rank<10")
    assert selector.matches({"generation": "6", "rank": "9"})
    assert not selector.matches({"generation": "5", "rank": "9"})
    assert not selector.matches({"generation": "seven", "rank": "1"})


def test_empty_selector_selects_everything() -> None:
    selector = parse_label_selector("")
    assert selector.empty
    assert selector.matches({}) and selector.matches(WEB_POD)
    assert not parse_label_selector("app").empty


def test_canonical_string_sorts_keys_and_values() -> None:
    selector = parse_label_selector("tier in (b,a),app=web, !canary ,x notin (),y==1")
    assert str(selector) == "app=web,!canary,tier in (a,b),x notin (),y==1"


def test_in_and_notin_are_ordinary_words_as_values_and_empty_values_are_allowed() -> None:
    selector = parse_label_selector("mode in (in,notin,),kind=")
    assert selector.matches({"mode": "notin", "kind": ""})
    assert selector.matches({"mode": "", "kind": ""})
    assert not selector.matches({"mode": "in", "kind": "x"})


def test_requires_exact_match_reports_the_single_demanded_value() -> None:
    selector = parse_label_selector("app=web,tier in (a),env in (x,y)")
    assert selector.requires_exact_match("app") == "web"
    assert selector.requires_exact_match("tier") == "a"
    assert selector.requires_exact_match("env") is None
    assert selector.requires_exact_match("missing") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("app=web,", "found '', expected: identifier after ','"),
        ("app=web tier=x", "found 'tier', expected: ',' or 'end of string'"),
        ("=web", "found '=', expected: !, identifier, or 'end of string'"),
        ("app web", "unable to parse requirement: found 'web', expected: in, notin, =, ==, !=, gt, lt"),
        ("app in web", "unable to parse requirement: found 'web' expected: '('"),
        ("app in (web", "unable to parse requirement: found '', expected: ',' or ')'"),
        ("app in (a b)", "unable to parse requirement: found 'b', expected: ',' or ')'"),
        ("! =web", "unable to parse requirement: found '=', expected: identifier"),
        ("!=web", "found '!=', expected: !, identifier, or 'end of string'"),
        ("!app=web", "found '=', expected: ',' or 'end of string'"),
    ],
)
def test_syntax_errors_are_400_with_kube_messages(text: str, message: str) -> None:
    assert _parse_error(text).message == message


def test_invalid_key_is_rejected_with_the_validation_message() -> None:
    message = _parse_error("-app=web").message
    assert message.startswith('unable to parse requirement: <nil>: Invalid value: "-app": name part must consist')
    assert "regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]'" in message


def test_prefixed_keys_are_accepted_and_bad_prefixes_rejected() -> None:
    assert parse_label_selector("app.kubernetes.io/name=web").matches({"app.kubernetes.io/name": "web"})
    assert "prefix part a lowercase RFC 1123 subdomain" in _parse_error("Example.COM/name=x").message
    assert "a qualified name must consist" in _parse_error("a/b/c=x").message


def test_label_values_longer_than_63_characters_are_rejected() -> None:
    message = _parse_error("app=" + "v" * 64).message
    assert message.startswith("unable to parse requirement: values[0][app]: Invalid value:")
    assert message.endswith("must be no more than 63 characters")
    parse_label_selector("app=" + "v" * 63)


def test_numeric_operators_need_an_integer() -> None:
    message = _parse_error("generation>five").message
    assert message.endswith("for 'Gt', 'Lt' operators, the value must be an integer")


# --- metav1.LabelSelector objects --------------------------------------------------------------------


DEPLOYMENT_SELECTOR = {
    "matchLabels": {"app": "web"},
    "matchExpressions": [
        {"key": "tier", "operator": "In", "values": ["frontend", "cache"]},
        {"key": "canary", "operator": "DoesNotExist"},
        {"key": "env", "operator": "Exists"},
        {"key": "zone", "operator": "NotIn", "values": ["eu"]},
    ],
}


def test_selector_object_combines_match_labels_and_expressions() -> None:
    selector = selector_from_object(DEPLOYMENT_SELECTOR)
    assert selector.matches(WEB_POD)
    assert not selector.matches({**WEB_POD, "canary": "yes"})
    assert not selector.matches({**WEB_POD, "zone": "eu"})
    assert not selector.matches({"app": "web", "tier": "frontend"})


def test_nil_selector_selects_nothing_and_empty_selects_everything() -> None:
    nothing = selector_from_object(None)
    assert not nothing.matches({}) and not nothing.matches(WEB_POD)
    assert not nothing.empty
    everything = selector_from_object({})
    assert everything.empty and everything.matches(WEB_POD)
    assert selector_everything_if_none(None).matches(WEB_POD)
    assert selector_from_object({"matchLabels": {}, "matchExpressions": []}) == LabelSelector.everything()


def test_selector_to_string_is_what_scale_status_and_kubectl_show() -> None:
    assert selector_to_string(DEPLOYMENT_SELECTOR) == "app=web,!canary,env,tier in (cache,frontend),zone notin (eu)"
    assert selector_to_string({"matchLabels": {"tier": "b", "app": "web"}}) == "app=web,tier=b"
    # The printed form parses back into an equivalent selector.
    assert parse_label_selector(selector_to_string(DEPLOYMENT_SELECTOR)).matches(WEB_POD)


def test_selector_object_with_unknown_operator_is_rejected() -> None:
    with pytest.raises(ApiError) as caught:
        selector_from_object({"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]})
    assert caught.value.code == 400
    assert caught.value.message == '"Equals" is not a valid label selector operator'


def test_selector_object_with_invalid_label_value_is_rejected() -> None:
    with pytest.raises(ApiError) as caught:
        selector_from_object({"matchLabels": {"app": "not a label"}})
    assert caught.value.code == 400


def test_validation_reports_each_problem_at_its_field_path() -> None:
    causes = validate_label_selector_object(
        {
            "matchLabels": {"app": "web", "bad key": "x"},
            "matchExpressions": [
                {"key": "tier", "operator": "Equals", "values": ["a"]},
                {"key": "tier", "operator": "In"},
                {"key": "env", "operator": "Exists", "values": ["prod"]},
                {"key": "zone", "operator": "NotIn", "values": ["-eu-"]},
            ],
        },
        "spec.selector",
    )
    found = [(c.reason, c.field) for c in causes]
    assert found == [
        ("FieldValueInvalid", "spec.selector.matchLabels"),
        ("FieldValueInvalid", "spec.selector.matchExpressions[0].operator"),
        ("FieldValueRequired", "spec.selector.matchExpressions[1].values"),
        ("FieldValueForbidden", "spec.selector.matchExpressions[2].values"),
        ("FieldValueInvalid", "spec.selector.matchExpressions[3].values[0]"),
    ]
    assert causes[1].message == 'Invalid value: "Equals": not a valid selector operator'
    assert causes[2].message == "Required value: must be specified when `operator` is 'In' or 'NotIn'"


def test_valid_selector_object_has_no_causes() -> None:
    assert validate_label_selector_object(DEPLOYMENT_SELECTOR, "spec.selector") == []
    assert validate_label_selector_object(None, "spec.selector") == []


# --- field selectors ---------------------------------------------------------------------------------


POD_FIELDS = {"metadata.name": "web-1", "metadata.namespace": "default", "status.phase": "Running"}


def test_field_selector_terms_and_operators() -> None:
    selector = parse_field_selector("metadata.name=web-1,status.phase!=Pending,metadata.namespace==default")
    assert selector.requirements == [
        FieldRequirement("metadata.name", "=", "web-1"),
        FieldRequirement("metadata.namespace", "==", "default"),
        FieldRequirement("status.phase", "!=", "Pending"),
    ]
    assert selector.fields == {"metadata.name", "metadata.namespace", "status.phase"}
    assert selector.matches(POD_FIELDS)
    assert not selector.matches({**POD_FIELDS, "status.phase": "Pending"})


def test_missing_field_compares_as_empty_string() -> None:
    assert parse_field_selector("spec.nodeName=").matches(POD_FIELDS)
    assert not parse_field_selector("spec.nodeName!=").matches(POD_FIELDS)
    assert parse_field_selector("spec.nodeName!=node-1").matches(POD_FIELDS)


def test_value_for_serves_name_lookups() -> None:
    selector = parse_field_selector("involvedObject.name=web-1,metadata.name!=x,involvedObject.kind==Pod")
    assert selector.value_for("involvedObject.name") == "web-1"
    assert selector.value_for("involvedObject.kind") == "Pod"
    assert selector.value_for("metadata.name") is None
    assert selector.value_for("metadata.namespace") is None


def test_backslash_escapes_commas_equals_and_backslashes_in_values() -> None:
    selector = parse_field_selector(r"metadata.name=a\,b\=c\\d,status.phase=Running")
    assert selector.value_for("metadata.name") == "a,b=c\\d"
    assert str(selector) == r"metadata.name=a\,b\=c\\d,status.phase=Running"


def test_empty_field_selector_and_empty_terms_select_everything() -> None:
    assert parse_field_selector("").empty
    assert parse_field_selector(",,").matches({})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("status.phase", "invalid selector: 'status.phase'; can't understand 'status.phase'"),
        ("a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'"),
        (r"metadata.name=a\x", r"invalid field selector: invalid escape sequence: \x"),
        ("metadata.name=a\\", "invalid field selector: invalid escape sequence: \\"),
        ("metadata.name=a=b", "invalid field selector: unescaped character in value: ="),
    ],
)
def test_field_selector_errors_are_400(text: str, message: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_field_selector(text)
    assert caught.value.code == 400
    assert caught.value.message == message

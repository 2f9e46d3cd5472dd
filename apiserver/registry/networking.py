"""NetworkPolicies, Ingresses and IngressClasses."""

from __future__ import annotations

from typing import Any

from apiserver.registry import printing as p
from apiserver.registry.base import AGE_COLUMN, NAME_COLUMN, Column, Obj, Strategy, age_of
from skiff.api import validation as v
from skiff.api.errors import Cause

POLICY_TYPES = ("Ingress", "Egress")
PROTOCOLS = ("SCTP", "TCP", "UDP")
PATH_TYPES = ("Exact", "ImplementationSpecific", "Prefix")


# -- NetworkPolicy ----------------------------------------------------------------------------------


class NetworkPolicyStrategy(Strategy):
    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if not spec.get("policyTypes"):
            # Every policy restricts ingress; it restricts egress only when it lists egress rules.
            spec["policyTypes"] = ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]
        for direction in ("ingress", "egress"):
            for rule in spec.get(direction) or []:
                for port in rule.get("ports") or []:
                    port.setdefault("protocol", "TCP")

    def validate(self, obj: Obj) -> list[Cause]:
        spec = p.spec(obj)
        causes = v.validate_label_selector(spec.get("podSelector"), "spec.podSelector")
        policy_types = spec.get("policyTypes") or []
        for position, policy_type in enumerate(policy_types):
            path = f"spec.policyTypes[{position}]"
            causes += v.one_of(path, policy_type, POLICY_TYPES, allow_empty=False)
        if len(policy_types) > len(POLICY_TYPES):
            causes.append(v.invalid("spec.policyTypes", policy_types, "may not specify more than two policyTypes"))
        for direction, peers in (("ingress", "from"), ("egress", "to")):
            for position, rule in enumerate(spec.get(direction) or []):
                causes += _validate_rule(rule, f"spec.{direction}[{position}]", peers)
        return causes

    def table_columns(self) -> list[Column]:
        return [
            NAME_COLUMN,
            p.column("Pod-Selector", description="The pods the policy applies to."),
            AGE_COLUMN,
        ]

    def table_row(self, obj: Obj) -> list[Any]:
        return [p.name(obj), p.format_label_selector(p.spec(obj).get("podSelector")), age_of(obj)]


def _validate_rule(rule: Obj, path: str, peers_field: str) -> list[Cause]:
    causes: list[Cause] = []
    for position, port in enumerate(rule.get("ports") or []):
        causes += _validate_policy_port(port, f"{path}.ports[{position}]")
    for position, peer in enumerate(rule.get(peers_field) or []):
        causes += _validate_peer(peer, f"{path}.{peers_field}[{position}]")
    return causes


def _validate_policy_port(port: Obj, path: str) -> list[Cause]:
    causes = v.one_of(f"{path}.protocol", port.get("protocol"), PROTOCOLS)
    number, end = port.get("port"), port.get("endPort")
    if isinstance(number, str):
        causes += v.invalid_each(f"{path}.port", number, v.port_name(number))
    elif number is not None:
        causes += v.invalid_each(f"{path}.port", number, v.port_number(number))
    if end is not None:
        if not isinstance(number, int):
            causes.append(v.required(f"{path}.port", "must specify a numeric port when `endPort` is set"))
        elif end < number:
            causes.append(v.invalid(f"{path}.endPort", end, "must be greater than or equal to `port`"))
    return causes


def _validate_peer(peer: Obj, path: str) -> list[Cause]:
    selectors = [s for s in ("podSelector", "namespaceSelector") if peer.get(s) is not None]
    block = peer.get("ipBlock")
    if not selectors and block is None:
        return [v.required(path, "must specify a peer")]
    if block is not None and selectors:
        return [v.forbidden(path, "may not specify both ipBlock and another peer")]
    causes: list[Cause] = []
    for selector in selectors:
        causes += v.validate_label_selector(peer[selector], f"{path}.{selector}")
    if isinstance(block, dict):
        cidr = block.get("cidr") or ""
        if not cidr:
            causes.append(v.required(f"{path}.ipBlock.cidr"))
        else:
            causes += v.invalid_each(f"{path}.ipBlock.cidr", cidr, v.cidr(cidr))
        for position, excluded in enumerate(block.get("except") or []):
            causes += v.invalid_each(f"{path}.ipBlock.except[{position}]", excluded, v.cidr(excluded))
    return causes


# -- Ingress ----------------------------------------------------------------------------------------


class IngressStrategy(Strategy):
    status_subresource = True

    def validate(self, obj: Obj) -> list[Cause]:
        spec = p.spec(obj)
        causes: list[Cause] = []
        rules = spec.get("rules") or []
        if not rules and spec.get("defaultBackend") is None:
            detail = "either `defaultBackend` or `rules` must be specified"
            causes.append(v.invalid("spec", spec, detail))
        if spec.get("defaultBackend") is not None:
            causes += _validate_backend(spec["defaultBackend"], "spec.defaultBackend")
        for position, rule in enumerate(rules):
            causes += _validate_ingress_rule(rule, f"spec.rules[{position}]")
        class_name = spec.get("ingressClassName")
        if class_name:
            causes += v.invalid_each("spec.ingressClassName", class_name, v.dns1123_subdomain(class_name))
        return causes

    def table_columns(self) -> list[Column]:
        return [
            NAME_COLUMN,
            p.column("Class", description="The name of the IngressClass resource that should be used."),
            p.column("Hosts", description="Hosts that incoming requests are matched against."),
            p.column("Address", description="The addresses of the load balancer."),
            p.column("Ports", description="The ports the load balancer listens on."),
            AGE_COLUMN,
        ]

    def table_row(self, obj: Obj) -> list[Any]:
        spec = p.spec(obj)
        ingress = (p.status(obj).get("loadBalancer") or {}).get("ingress") or []
        address = ",".join(i.get("ip") or i.get("hostname") or "" for i in ingress)
        ports = "80, 443" if spec.get("tls") else "80"
        class_name = spec.get("ingressClassName") or p.NONE
        return [p.name(obj), class_name, _ingress_hosts(spec.get("rules") or []), address, ports, age_of(obj)]


def _ingress_hosts(rules: list[Obj]) -> str:
    hosts = [r["host"] for r in rules if r.get("host")]
    if not hosts:
        return "*"
    if len(rules) > 4:
        return f"{','.join(hosts[:4])} + {len(rules) - 4} more..."
    return ",".join(hosts)


def _validate_ingress_rule(rule: Obj, path: str) -> list[Cause]:
    causes: list[Cause] = []
    host = rule.get("host") or ""
    if host:
        if not v.ip_address(host):
            causes.append(v.invalid(f"{path}.host", host, "must be a DNS name, not an IP address"))
        elif "*" in host:
            causes += v.invalid_each(f"{path}.host", host, v.wildcard_dns1123_subdomain(host))
        else:
            causes += v.invalid_each(f"{path}.host", host, v.dns1123_subdomain(host))
    http = rule.get("http")
    if http is None:
        return causes
    paths = http.get("paths") or []
    if not paths:
        causes.append(v.required(f"{path}.http.paths"))
    for position, http_path in enumerate(paths):
        causes += _validate_http_path(http_path, f"{path}.http.paths[{position}]")
    return causes


def _validate_http_path(http_path: Obj, path: str) -> list[Cause]:
    path_type = http_path.get("pathType")
    causes: list[Cause] = []
    if not path_type:
        causes.append(v.required(f"{path}.pathType", "pathType must be specified"))
    else:
        causes += v.one_of(f"{path}.pathType", path_type, PATH_TYPES)
    url_path = http_path.get("path") or ""
    if path_type in ("Exact", "Prefix") and not url_path.startswith("/"):
        causes.append(v.invalid(f"{path}.path", url_path, "must be an absolute path"))
    backend = http_path.get("backend")
    if backend is None:
        return [*causes, v.required(f"{path}.backend")]
    return causes + _validate_backend(backend, f"{path}.backend")


def _validate_backend(backend: Obj, path: str) -> list[Cause]:
    service, resource = backend.get("service"), backend.get("resource")
    if service is not None and resource is not None:
        return [v.invalid(path, backend, "cannot set both resource and service backends")]
    if service is None and resource is None:
        return [v.invalid(path, backend, "resource or service backend is required")]
    if service is None:
        return []
    name = service.get("name") or ""
    causes = [v.required(f"{path}.service.name")] if not name else []
    if name:
        causes += v.invalid_each(f"{path}.service.name", name, v.dns1035_label(name))
    port = service.get("port") or {}
    if port.get("name") and port.get("number"):
        causes.append(v.invalid(f"{path}.service.port", port, "cannot set both port name & port number"))
    elif port.get("name"):
        causes += v.invalid_each(f"{path}.service.port.name", port["name"], v.port_name(port["name"]))
    elif port.get("number") is not None:
        number = port["number"]
        causes += v.invalid_each(f"{path}.service.port.number", number, v.port_number(number))
    else:
        causes.append(v.required(f"{path}.service.port", "port name or number is required"))
    return causes


# -- IngressClass -----------------------------------------------------------------------------------


class IngressClassStrategy(Strategy):
    def validate(self, obj: Obj) -> list[Cause]:
        controller = p.spec(obj).get("controller") or ""
        if not controller:
            return [v.required("spec.controller")]
        if len(controller) > 250:
            return [v.too_long("spec.controller", 250)]
        return []

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        if p.spec(new).get("controller") != p.spec(old).get("controller"):
            return [v.immutable("spec.controller", p.spec(new).get("controller"))]
        return []

    def table_columns(self) -> list[Column]:
        return [
            NAME_COLUMN,
            p.column("Controller", description="Controller that is responsible for handling this class"),
            p.column("Parameters", description="A reference to a resource with additional parameters"),
            AGE_COLUMN,
        ]

    def table_row(self, obj: Obj) -> list[Any]:
        spec = p.spec(obj)
        parameters = spec.get("parameters")
        cell = p.NONE
        if parameters:
            kind = parameters.get("kind", "")
            if parameters.get("apiGroup"):
                kind = f"{kind}.{parameters['apiGroup']}"
            cell = f"{kind}/{parameters.get('name', '')}"
        return [p.name(obj), spec.get("controller", ""), cell, age_of(obj)]

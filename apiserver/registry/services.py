"""Services, Endpoints and EndpointSlices."""

from __future__ import annotations

import ipaddress
from typing import Any

from apiserver.registry import printing as p
from apiserver.registry.base import AGE_COLUMN, NAME_COLUMN, Column, Obj, Strategy, age_of
from skiff.api import validation as v
from skiff.api.errors import Cause

SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
NODE_PORT_TYPES = ("NodePort", "LoadBalancer")
PROTOCOLS = ("SCTP", "TCP", "UDP")
NODE_PORT_RANGE = (30000, 32767)
HEADLESS = "None"
CLUSTER_IP_CHANGED = "may not change once set"
MAX_SLICE_ENDPOINTS = 1000
MAX_SLICE_ADDRESSES = 100
MAX_SLICE_PORTS = 20000


def _family_of(ip: str) -> str:
    try:
        return "IPv6" if ipaddress.ip_address(ip).version == 6 else "IPv4"
    except ValueError:
        return "IPv4"


class ServiceStrategy(Strategy):
    return_deleted_object = True

    tracks_generation = False
    status_subresource = True
    name_rule = staticmethod(v.name_is_dns1035_label)

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        kind = spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec["sessionAffinity"] == "ClientIP":
            config = spec.setdefault("sessionAffinityConfig", {}).setdefault("clientIP", {})
            config.setdefault("timeoutSeconds", 10800)
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            if port.get("targetPort") in (None, 0, ""):
                port["targetPort"] = port.get("port")
        if kind in NODE_PORT_TYPES:
            spec.setdefault("externalTrafficPolicy", "Cluster")
        if kind == "LoadBalancer":
            spec.setdefault("allocateLoadBalancerNodePorts", True)
        if kind != "ExternalName":
            spec.setdefault("internalTrafficPolicy", "Cluster")
            self._default_ip_families(spec)

    def _default_ip_families(self, spec: Obj) -> None:
        cluster_ip = spec.get("clusterIP")
        if cluster_ip and not spec.get("clusterIPs"):
            spec["clusterIPs"] = [cluster_ip]
        if spec.get("clusterIPs") and not cluster_ip:
            spec["clusterIP"] = spec["clusterIPs"][0]
        headless_without_selector = spec.get("clusterIP") == HEADLESS and not spec.get("selector")
        # Headless services without a selector take every family the cluster has.
        spec.setdefault("ipFamilyPolicy", "RequireDualStack" if headless_without_selector else "SingleStack")
        if not spec.get("ipFamilies"):
            ips = [ip for ip in spec.get("clusterIPs") or [] if ip != HEADLESS]
            spec["ipFamilies"] = [_family_of(ip) for ip in ips] or ["IPv4"]

    def initial_status(self, obj: Obj) -> Obj | None:
        return {"loadBalancer": {}}

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_update(new, old)
        # A client that re-sends its manifest without the allocated IP and node ports keeps them.
        new_spec, old_spec = new.setdefault("spec", {}), p.spec(old)
        if not new_spec.get("clusterIP") and old_spec.get("clusterIP") and _same_kind(new_spec, old_spec):
            new_spec["clusterIP"] = old_spec["clusterIP"]
            new_spec.setdefault("clusterIPs", old_spec.get("clusterIPs") or [old_spec["clusterIP"]])
        if new_spec.get("type") in NODE_PORT_TYPES and old_spec.get("type") in NODE_PORT_TYPES:
            _keep_node_ports(new_spec.get("ports") or [], old_spec.get("ports") or [])
        _drop_type_dependent_fields(new_spec, old_spec)

    def validate(self, obj: Obj) -> list[Cause]:
        spec = p.spec(obj)
        kind = spec.get("type")
        causes = v.one_of("spec.type", kind, SERVICE_TYPES, allow_empty=False)
        causes += self._validate_cluster_ips(spec)
        causes += _validate_service_ports(spec)
        causes += v.validate_labels(spec.get("selector"), "spec.selector")
        causes += v.one_of("spec.sessionAffinity", spec.get("sessionAffinity"), ("ClientIP", "None"))
        causes += _validate_traffic_policies(spec)
        if kind == "ExternalName":
            name = spec.get("externalName") or ""
            if not name:
                causes.append(v.required("spec.externalName"))
            else:
                causes += v.invalid_each("spec.externalName", name, v.dns1123_subdomain(name.rstrip(".")))
        for position, ip in enumerate(spec.get("externalIPs") or []):
            causes += v.invalid_each(f"spec.externalIPs[{position}]", ip, v.ip_address(ip))
        return causes

    def _validate_cluster_ips(self, spec: Obj) -> list[Cause]:
        ips = spec.get("clusterIPs") or []
        causes: list[Cause] = []
        if spec.get("clusterIP") and ips and ips[0] != spec["clusterIP"]:
            causes.append(v.invalid("spec.clusterIPs", ips, "first value must match `clusterIP`"))
        if spec.get("type") == "ExternalName":
            return causes
        for position, ip in enumerate(ips):
            if ip == HEADLESS and position == 0 and len(ips) == 1:
                continue
            causes += v.invalid_each(f"spec.clusterIPs[{position}]", ip, v.ip_address(ip))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        new_spec, old_spec = p.spec(new), p.spec(old)
        if not _same_kind(new_spec, old_spec):
            return []
        old_ips, new_ips = old_spec.get("clusterIPs") or [], new_spec.get("clusterIPs") or []
        if old_ips and new_ips[:1] != old_ips[:1]:
            return [v.invalid("spec.clusterIPs[0]", new_ips, CLUSTER_IP_CHANGED)]
        return []

    def table_columns(self) -> list[Column]:
        return [
            NAME_COLUMN,
            p.column("Type", description="How the service is exposed."),
            p.column("Cluster-IP", description="The IP address of the service inside the cluster."),
            p.column("External-IP", description="The addresses the service is reachable at from outside."),
            p.column("Port(s)", description="The ports the service exposes."),
            AGE_COLUMN,
            p.column("Selector", description="The labels of the pods that back the service.", wide=True),
        ]

    def table_row(self, obj: Obj) -> list[Any]:
        spec = p.spec(obj)
        return [
            p.name(obj),
            spec.get("type", ""),
            spec.get("clusterIP") or p.NONE,
            service_external_ip(obj),
            _port_summary(spec.get("ports") or []),
            age_of(obj),
            p.format_labels(spec.get("selector")),
        ]

    def field_selectors(self) -> dict[str, Any]:
        return {
            "spec.clusterIP": lambda o: p.spec(o).get("clusterIP", ""),
            "spec.type": lambda o: p.spec(o).get("type", ""),
        }


def _same_kind(new_spec: Obj, old_spec: Obj) -> bool:
    # Switching to or from ExternalName releases or allocates the cluster IP, so it may change then.
    return "ExternalName" not in (new_spec.get("type"), old_spec.get("type"))


def _keep_node_ports(new_ports: list[Obj], old_ports: list[Obj]) -> None:
    allocated = {(o.get("port"), o.get("protocol", "TCP")): o.get("nodePort") for o in old_ports}
    for port in new_ports:
        node_port = allocated.get((port.get("port"), port.get("protocol", "TCP")))
        if node_port and not port.get("nodePort"):
            port["nodePort"] = node_port


def _drop_type_dependent_fields(new_spec: Obj, old_spec: Obj) -> None:
    """Leaving NodePort/LoadBalancer (or externalTrafficPolicy Local) drops the values that came with it
    when the client left them as they were, so they are released; as kube-apiserver does."""
    local_lb = new_spec.get("type") == "LoadBalancer" and new_spec.get("externalTrafficPolicy") == "Local"
    old_check = old_spec.get("healthCheckNodePort")
    if local_lb and old_check and not new_spec.get("healthCheckNodePort"):
        new_spec["healthCheckNodePort"] = old_check
    elif not local_lb and old_check and new_spec.get("healthCheckNodePort") == old_check:
        del new_spec["healthCheckNodePort"]
    if new_spec.get("type") in NODE_PORT_TYPES:
        return
    old_node_ports = {port.get("nodePort") for port in old_spec.get("ports") or []}
    for port in new_spec.get("ports") or []:
        if port.get("nodePort") and port["nodePort"] in old_node_ports:
            del port["nodePort"]
    for name in ("externalTrafficPolicy", "allocateLoadBalancerNodePorts"):
        if name in new_spec and new_spec[name] == old_spec.get(name):
            del new_spec[name]


def _validate_service_ports(spec: Obj) -> list[Cause]:
    ports = spec.get("ports") or []
    kind = spec.get("type")
    headless = spec.get("clusterIP") == HEADLESS
    if not ports and kind != "ExternalName" and not headless:
        return [v.required("spec.ports")]
    causes: list[Cause] = []
    names: set[str] = set()
    seen: set[tuple[Any, Any]] = set()
    for position, port in enumerate(ports):
        path = f"spec.ports[{position}]"
        causes += _validate_port_name(port.get("name") or "", path, names, len(ports) > 1)
        causes += _validate_service_port(port, path, kind)
        identity = (port.get("port"), port.get("protocol"))
        if identity in seen:
            causes.append(v.duplicate(path, {"port": port.get("port"), "protocol": port.get("protocol")}))
        seen.add(identity)
    return causes


def _validate_port_name(name: str, path: str, names: set[str], several: bool) -> list[Cause]:
    if not name:
        return [v.required(f"{path}.name")] if several else []
    causes = v.invalid_each(f"{path}.name", name, v.dns1123_label(name))
    if name in names:
        causes.append(v.duplicate(f"{path}.name", name))
    names.add(name)
    return causes


def _validate_service_port(port: Obj, path: str, kind: object) -> list[Cause]:
    causes = v.invalid_each(f"{path}.port", port.get("port"), v.port_number(port.get("port")))
    causes += v.one_of(f"{path}.protocol", port.get("protocol"), PROTOCOLS, allow_empty=False)
    target = port.get("targetPort")
    if isinstance(target, str):
        causes += v.invalid_each(f"{path}.targetPort", target, v.port_name(target))
    elif target is not None:
        causes += v.invalid_each(f"{path}.targetPort", target, v.port_number(target))
    node_port = port.get("nodePort")
    if node_port:
        if kind not in NODE_PORT_TYPES:
            causes.append(v.forbidden(f"{path}.nodePort", f"may not be used when `type` is '{kind}'"))
        elif not NODE_PORT_RANGE[0] <= node_port <= NODE_PORT_RANGE[1]:
            low, high = NODE_PORT_RANGE
            detail = f"provided port is not in the valid range. The range of valid ports is {low}-{high}"
            causes.append(v.invalid(f"{path}.nodePort", node_port, detail))
    return causes


def _validate_traffic_policies(spec: Obj) -> list[Cause]:
    external = spec.get("externalTrafficPolicy")
    causes = v.one_of("spec.externalTrafficPolicy", external, ("Cluster", "Local"))
    if external and spec.get("type") not in NODE_PORT_TYPES:
        detail = "may only be set when `type` is 'NodePort' or 'LoadBalancer'"
        causes.append(v.invalid("spec.externalTrafficPolicy", external, detail))
    internal = spec.get("internalTrafficPolicy")
    causes += v.one_of("spec.internalTrafficPolicy", internal, ("Cluster", "Local"))
    return causes


def service_external_ip(obj: Obj) -> str:
    """The EXTERNAL-IP cell: external IPs, load balancer ingress, `<pending>` or the external name."""
    spec = p.spec(obj)
    kind = spec.get("type")
    external_ips = spec.get("externalIPs") or []
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external_ips) or p.NONE
    if kind == "LoadBalancer":
        ingress = (p.status(obj).get("loadBalancer") or {}).get("ingress") or []
        balancers = [i.get("ip") or i.get("hostname") or "" for i in ingress]
        addresses = [a for a in balancers if a] + external_ips
        return ",".join(addresses) or "<pending>"
    if kind == "ExternalName":
        return spec.get("externalName", "")
    return "<unknown>"


def _port_summary(ports: list[Obj]) -> str:
    cells = []
    for port in ports:
        protocol = port.get("protocol", "TCP")
        if port.get("nodePort"):
            cells.append(f"{port.get('port')}:{port['nodePort']}/{protocol}")
        else:
            cells.append(f"{port.get('port')}/{protocol}")
    return ",".join(cells) or p.NONE


# -- Endpoints --------------------------------------------------------------------------------------


def _joined_with_more(items: list[str], total: int, shown: int = 3) -> str:
    text = ",".join(items[:shown])
    return f"{text} + {total - shown} more..." if total > shown else text


def _host_port(ip: str, port: object) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


class EndpointsStrategy(Strategy):
    tracks_generation = False

    def default(self, obj: Obj) -> None:
        for subset in obj.get("subsets") or []:
            for port in subset.get("ports") or []:
                port.setdefault("protocol", "TCP")

    def validate(self, obj: Obj) -> list[Cause]:
        causes: list[Cause] = []
        for position, subset in enumerate(obj.get("subsets") or []):
            path = f"subsets[{position}]"
            for list_name in ("addresses", "notReadyAddresses"):
                for number, address in enumerate(subset.get(list_name) or []):
                    ip = address.get("ip") or ""
                    causes += v.invalid_each(f"{path}.{list_name}[{number}].ip", ip, v.ip_address(ip))
            ports = subset.get("ports") or []
            for number, port in enumerate(ports):
                port_path = f"{path}.ports[{number}]"
                if len(ports) > 1 and not port.get("name"):
                    causes.append(v.required(f"{port_path}.name"))
                causes += v.invalid_each(f"{port_path}.port", port.get("port"), v.port_number(port.get("port")))
                causes += v.one_of(f"{port_path}.protocol", port.get("protocol"), PROTOCOLS, allow_empty=False)
        return causes

    def table_columns(self) -> list[Column]:
        return [
            NAME_COLUMN,
            p.column("Endpoints", description="The addresses backing the service."),
            AGE_COLUMN,
        ]

    def table_row(self, obj: Obj) -> list[Any]:
        return [p.name(obj), format_endpoints(obj), age_of(obj)]


def format_endpoints(obj: Obj) -> str:
    """`10.0.0.1:80,10.0.0.2:80 + 3 more...` (ready addresses only), or `<none>`."""
    subsets = obj.get("subsets") or []
    if not subsets:
        return p.NONE
    pairs = [
        _host_port(address.get("ip", ""), port.get("port"))
        for subset in subsets
        for port in subset.get("ports") or []
        for address in subset.get("addresses") or []
    ]
    return _joined_with_more(pairs, len(pairs))


# -- EndpointSlice ----------------------------------------------------------------------------------

ADDRESS_TYPES = ("FQDN", "IPv4", "IPv6")


class EndpointSliceStrategy(Strategy):
    def default(self, obj: Obj) -> None:
        for port in obj.get("ports") or []:
            port.setdefault("name", "")
            port.setdefault("protocol", "TCP")

    def validate(self, obj: Obj) -> list[Cause]:
        address_type = obj.get("addressType")
        causes = v.one_of("addressType", address_type, ADDRESS_TYPES, allow_empty=False)
        if not address_type:
            causes = [v.required("addressType")]
        endpoints = obj.get("endpoints") or []
        if len(endpoints) > MAX_SLICE_ENDPOINTS:
            causes.append(v.too_many("endpoints", len(endpoints), MAX_SLICE_ENDPOINTS))
        for position, endpoint in enumerate(endpoints):
            causes += _validate_slice_endpoint(endpoint, f"endpoints[{position}]", address_type)
        ports = obj.get("ports") or []
        if len(ports) > MAX_SLICE_PORTS:
            causes.append(v.too_many("ports", len(ports), MAX_SLICE_PORTS))
        names: set[str] = set()
        for position, port in enumerate(ports):
            causes += _validate_slice_port(port, f"ports[{position}]", names)
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        if new.get("addressType") != old.get("addressType"):
            return [v.immutable("addressType", new.get("addressType"))]
        return []

    def table_columns(self) -> list[Column]:
        return [
            NAME_COLUMN,
            p.column("AddressType", description="The type of address carried by this slice."),
            p.column("Ports", description="The ports this slice serves."),
            p.column("Endpoints", description="The addresses in this slice."),
            AGE_COLUMN,
        ]

    def table_row(self, obj: Obj) -> list[Any]:
        ports = [str(port.get("port") if port.get("port") is not None else "*") for port in obj.get("ports") or []]
        addresses = [a for endpoint in obj.get("endpoints") or [] for a in endpoint.get("addresses") or []]
        return [
            p.name(obj),
            obj.get("addressType", ""),
            _joined_with_more(ports, len(ports)) or "<unset>",
            _joined_with_more(addresses, len(addresses)) or "<unset>",
            age_of(obj),
        ]


def _validate_slice_endpoint(endpoint: Obj, path: str, address_type: object) -> list[Cause]:
    addresses = endpoint.get("addresses") or []
    if not addresses:
        return [v.required(f"{path}.addresses", "must contain at least 1 address")]
    if len(addresses) > MAX_SLICE_ADDRESSES:
        return [v.too_many(f"{path}.addresses", len(addresses), MAX_SLICE_ADDRESSES)]
    causes: list[Cause] = []
    for position, address in enumerate(addresses):
        address_path = f"{path}.addresses[{position}]"
        if address_type == "FQDN":
            causes += v.invalid_each(address_path, address, v.dns1123_subdomain(address))
        elif address_type in ("IPv4", "IPv6") and _family_error(address, address_type):
            causes.append(v.invalid(address_path, address, f"must be a valid {address_type} address"))
    return causes


def _family_error(address: str, family: str) -> bool:
    try:
        version = ipaddress.ip_address(address).version
    except ValueError:
        return True
    return (version == 4) != (family == "IPv4")


def _validate_slice_port(port: Obj, path: str, names: set[str]) -> list[Cause]:
    name = port.get("name") or ""
    causes: list[Cause] = []
    if name:
        causes += v.invalid_each(f"{path}.name", name, v.dns1123_label(name))
    if name in names:
        causes.append(v.duplicate(f"{path}.name", name))
    names.add(name)
    if port.get("port") is not None:
        causes += v.invalid_each(f"{path}.port", port.get("port"), v.port_number(port.get("port")))
    return causes + v.one_of(f"{path}.protocol", port.get("protocol"), PROTOCOLS, allow_empty=False)

"""The proxy's sync loop, file backend, HTTP endpoint and `skiff routes`, without an API server."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path

import pytest

from proxy.backend import FileBackend
from proxy.main import Proxy
from proxy.server import ProxyHttp
from skiff.cli import routes
from skiff.net.render import Tables
from tests.unit.test_proxy_golden import changed_web_slice, cluster_objects


class RecordingBackend(FileBackend):
    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir)
        self.applied: list[Tables] = []

    def apply(self, tables: Tables) -> None:
        self.applied.append(tables)
        super().apply(tables)


def feed(proxy: Proxy) -> None:
    for obj in cluster_objects():
        proxy.handlers(obj["kind"])["on_add"](obj)


def rendered(proxy: Proxy, node: str) -> float:
    return (
        proxy.metrics.registry.get_sample_value(
            "kubeproxy_sync_proxy_rules_services_rendered_total", {"node": node, "mode": proxy.mode}
        )
        or 0.0
    )


async def test_a_burst_of_changes_is_one_sync_of_only_the_changed_services(tmp_path: Path) -> None:
    backend = RecordingBackend(tmp_path)
    proxy = Proxy(["n1", "n2"], "iptables", backend, {}, min_sync_period=0.3, sync_period=60)
    feed(proxy)
    loop = asyncio.create_task(proxy.run())
    try:
        while len(backend.applied) < 2:
            await asyncio.sleep(0.02)
        assert rendered(proxy, "n1") == len(proxy.state.services)  # the first sync renders everything
        # A burst: the web slice changes five times within the minimum sync period.
        web = changed_web_slice(proxy.state)
        for port in range(8081, 8086):
            version = copy.deepcopy(web)
            version["ports"][0]["port"] = port
            proxy.handlers("EndpointSlice")["on_update"]({}, version)
            await asyncio.sleep(0.01)
        while len(backend.applied) < 4:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)
        assert len(backend.applied) == 4  # one more sync per node, not five
        assert rendered(proxy, "n1") == len(proxy.state.services) + 1
        text = (tmp_path / "proxy" / "n1" / "iptables.rules").read_text()
        assert "--to-destination 10.244.1.11:8085" in text
        assert "10.244.1.11:8081" not in text
    finally:
        loop.cancel()


async def test_files_http_endpoint_and_metrics(tmp_path: Path) -> None:
    proxy = Proxy(["n1"], "nftables", FileBackend(tmp_path), {}, min_sync_period=0)
    feed(proxy)
    await proxy.sync_once()
    node_dir = tmp_path / "proxy" / "n1"
    assert (node_dir / "nftables.rules").read_text().startswith("table ip kube-proxy {")
    app = ProxyHttp(proxy.tables, lambda: list(proxy.proxiers), proxy.metrics)
    status, _type, body = app.route("GET", "/tables/n1/nftables")
    assert (
        status == 200
        and body.decode() == "# nft list table ip kube-proxy\n" + (node_dir / "nftables.rules").read_text()
    )
    assert app.route("GET", "/tables/n1/iptables")[0] == 404
    assert app.route("GET", "/tables/n9/nftables")[0] == 404
    assert app.route("GET", "/tables")[2] == b'{"n1":"nftables"}'
    metrics = app.route("GET", "/metrics")[2].decode()
    assert 'kubeproxy_sync_proxy_rules_duration_seconds_count{mode="nftables",node="n1"} 1.0' in metrics
    assert 'kubeproxy_sync_proxy_rules_last_timestamp_seconds{mode="nftables",node="n1"}' in metrics
    assert 'kubeproxy_sync_proxy_rules_total{mode="nftables",node="n1",table="rules"}' in metrics


async def test_deleting_a_service_removes_its_rules(tmp_path: Path) -> None:
    proxy = Proxy(["n1"], "iptables", FileBackend(tmp_path), {}, min_sync_period=0)
    feed(proxy)
    await proxy.sync_once()
    service = proxy.state.services["default/web"]
    assert "10.96.0.10" in proxy.tables("n1").text("iptables.rules")
    proxy.handlers("Service")["on_delete"](service)
    await proxy.sync_once()
    assert "10.96.0.10" not in proxy.tables("n1").text("iptables.rules")
    assert "10.96.0.10" not in (tmp_path / "proxy" / "n1" / "iptables.rules").read_text()


async def test_routes_prints_a_nodes_tables_from_the_data_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proxy = Proxy(["n1"], "ipvs", FileBackend(tmp_path), {}, min_sync_period=0)
    feed(proxy)
    await proxy.sync_once()
    routes.main(["--node", "n1", "--data-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert (
        "# ipvsadm -Sn\n-A -t 10.96.0.16:80 -s rr\n" in out and "-a -t 10.96.0.10:80 -r 10.244.2.11:8080 -m -w 1" in out
    )
    assert "# ipset save\ncreate KUBE-CLUSTER-IP hash:ip,port" in out
    assert "    inet 10.96.0.10/32 scope global kube-ipvs0" in out
    with pytest.raises(SystemExit):
        routes.main(["--node", "n1", "--mode", "nftables", "--data-dir", str(tmp_path)])
    assert "proxied in ipvs mode, not nftables" in capsys.readouterr().err

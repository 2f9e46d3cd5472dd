"""`skiff trace` and `skiff netpol check` on the fixed cluster of the golden tests."""

from __future__ import annotations

import argparse
import re

import pytest

from skiff.cli import netpol as netpol_cli
from skiff.cli import trace as trace_cli
from skiff.net.trace import TraceError, trace
from tests.unit.test_proxy_golden import cluster_state


def run_trace(*argv: str) -> str:
    args = trace_cli.build_parser().parse_args(list(argv))
    return trace_cli.run(cluster_state(), args)


@pytest.mark.parametrize("mode", ["iptables", "ipvs", "nftables"])
def test_service_with_three_endpoints_shows_three_equal_shares(mode: str) -> None:
    text = run_trace("client", "web", "--mode", mode)
    assert "service default/web:http (cluster IP 10.96.0.10:80/TCP)" in text
    shares = re.findall(r"-> (\S+)\s+pod (\S+)\s+node (\S+)\s+share ([\d.]+)%", text)
    assert shares == [
        ("10.244.1.10:8080", "default/web-1", "n1", "33.3"),
        ("10.244.2.10:8080", "default/web-2", "n2", "33.3"),
        ("10.244.2.11:8080", "default/web-3", "n2", "33.3"),
    ]
    assert "pod default/client  IP 10.244.1.20  node n1" in text
    assert "result: 3 of 3 destinations allowed by NetworkPolicy" in text


def test_iptables_trace_shows_the_rules_and_kube_probabilities() -> None:
    text = run_trace("client", "10.96.0.10:80")
    assert '-A KUBE-SERVICES -m comment --comment "default/web:http cluster IP"' in text
    # 1/3 of all, then 1/2 of the rest, then the rest: three equal shares.
    assert "probability 0.3333333333" in text
    assert "probability 0.5000000000" in text
    assert "unconditional (last rule)" in text
    assert "-j DNAT --to-destination 10.244.2.11:8080" in text


def test_ipvs_and_nftables_traces_name_their_scheduler_and_map_entry() -> None:
    ipvs = run_trace("client", "web", "--mode", "ipvs")
    assert "-A -t 10.96.0.10:80 -s rr" in ipvs and "endpoint choice: IPVS scheduler rr" in ipvs
    nft = run_trace("client", "web", "--mode", "nftables")
    assert "map service-ips: 10.96.0.10 . tcp . 80 : goto service-" in nft
    assert "numgen random mod 3" in nft


def test_deny_by_default_namespace_is_denied_naming_the_policy() -> None:
    text = run_trace("default/client", "db", "-n", "prod")
    assert "service prod/db:pg" in text
    assert "ingress: DENIED" in text
    assert "isolated for ingress by prod/allow-api, prod/default-deny" in text
    assert "verdict: denied" in text
    assert "result: 0 of 1 destinations allowed" in text


def test_allowed_peer_reaches_the_deny_by_default_namespace() -> None:
    text = run_trace("api-1", "prod/db")
    assert "allowed by prod/allow-api ingress rule 0: from pod default/api-1, TCP/5432" in text
    assert "verdict: allowed" in text


def test_node_port_is_traced_on_the_node_that_owns_the_address() -> None:
    text = run_trace("api-2", "10.0.0.1:30081")
    assert "to node n1 (10.0.0.1); its rules apply there" in text
    assert "-A KUBE-NODEPORTS -m comment --comment default/local:api -m tcp -p tcp --dport 30081" in text
    # Pod traffic to a Local service short-circuits to the cluster-wide chain.
    assert "pod traffic for default/local:api external destinations" in text


def test_load_balancer_address_and_service_without_endpoints() -> None:
    assert "load balancer IP 192.168.100.10:443" in run_trace("client", "192.168.100.10:443")
    empty = run_trace("client", "10.96.0.16:80")
    assert "has no endpoints" in empty and "-j REJECT" in empty
    assert "outcome: rejected: the Service has no endpoints" in empty


def test_pod_destinations_by_name_and_ip() -> None:
    for destination in ("pod/web-2", "10.244.2.10"):
        text = run_trace("client", destination)
        assert "direct to pod IP 10.244.2.10:8080/TCP: no service rule" in text
        assert "-> 10.244.2.10:8080  pod default/web-2  node n2  share 100.0%" in text


def test_unknown_destination_is_a_clear_error() -> None:
    with pytest.raises(TraceError, match='no Service or pod "nope" in namespace "default"'):
        trace(cluster_state(), "client", "nope")
    with pytest.raises(TraceError, match=r"nothing in the cluster answers at 10\.1\.2\.3:80"):
        trace(cluster_state(), "client", "10.1.2.3:80")


def test_netpol_check_explains_the_verdict() -> None:
    state = cluster_state()
    verdict = netpol_cli.check(state, "client", "prod/db-1", "5432", "TCP", "default")
    text = netpol_cli.format_verdict(verdict, "client", "prod/db-1")
    assert text.startswith("DENIED  client -> prod/db-1 (10.244.1.30:5432/TCP)")
    assert "decided by: prod/allow-api, prod/default-deny" in text
    named = netpol_cli.check(state, "api-1", "prod/db-1", "pg", "TCP", "default")
    assert named.allowed and named.port == 5432


def test_netpol_cli_exit_code_and_plain_output(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(netpol_cli, "cluster_or_exit", lambda kubeconfig: cluster_state())
    with pytest.raises(SystemExit) as exited:
        netpol_cli.main(["check", "client", "prod/db-1", "5432"])
    assert exited.value.code == 3
    assert capsys.readouterr().out.startswith("DENIED")
    with pytest.raises(SystemExit) as exited:
        netpol_cli.main(["check", "api-1", "prod/db-1", "5432"])
    assert exited.value.code == 0


def test_trace_cli_prints_plain_text_when_not_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(trace_cli, "cluster_or_exit", lambda kubeconfig: cluster_state())
    trace_cli.main(["client", "web"])
    out = capsys.readouterr().out
    assert out.startswith("trace default/client -> service default/web:http")
    assert "\x1b[" not in out  # no terminal styling in a pipe


def test_rich_output_renders_the_same_facts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "400")
    args = argparse.Namespace(
        source="client", destination="web", namespace="default", mode="iptables", port=None, protocol="TCP",
        cluster_cidr="10.244.0.0/16", ipvs_scheduler="rr",
    )  # fmt: skip
    trace_cli.run(cluster_state(), args, rich=True)
    out = capsys.readouterr().out
    assert out.count("33.3%") == 3
    assert "default/web-3" in out

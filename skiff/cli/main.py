"""The `skiff` command: component entry points, the local-cluster launcher and a kubectl-like client."""

from __future__ import annotations

import importlib
import sys

# Components are separate programs: the launcher reaches them by module entry point, never by import,
# so that no component depends on another.
COMPONENTS: dict[str, str] = {
    "apiserver": "apiserver.main",
    "kubelet": "kubelet_sim.main",
    "controller-manager": "controllers.manager",
    "proxy": "proxy.main",
    "dns": "skiff.dns.main",
    "scheduler": "controllers.scheduler.main",
}

# Commands of the launcher and client themselves: (module, function).
COMMANDS: dict[str, tuple[str, str]] = {
    "up": ("skiff.cli.up", "main_up"),
    "down": ("skiff.cli.local.status", "main_down"),
    "status": ("skiff.cli.local.status", "main_status"),
    "node": ("skiff.cli.node", "main"),
    "pki": ("skiff.cli.pki", "main"),
    "encryption": ("skiff.cli.encryption", "main"),
    "trace": ("skiff.cli.trace", "main"),
    "netpol": ("skiff.cli.netpol", "main"),
    "routes": ("skiff.cli.routes", "main"),
    "get": ("skiff.cli.client.get", "main"),
    "describe": ("skiff.cli.client.describe", "main"),
    "apply": ("skiff.cli.client.apply", "main_apply"),
    "create": ("skiff.cli.client.apply", "main_create"),
    "delete": ("skiff.cli.client.delete", "main"),
    "wait": ("skiff.cli.client.wait", "main"),
    "scale": ("skiff.cli.client.scale", "main"),
    "rollout": ("skiff.cli.client.rollout", "main"),
    "logs": ("skiff.cli.client.logs", "main"),
    "auth": ("skiff.cli.client.auth", "main"),
    "events": ("skiff.cli.client.events", "main"),
}

USAGE = """usage: skiff <command> [flags]

Local cluster:
  up            start a local cluster (API server and components) and print how to use it
  down          stop the local cluster started with `up --detach`
  status        show the local cluster
  node          run one node of a cluster: a kubelet and a proxy under one supervisor (docker-compose)

Cluster administration:
  pki           the cluster CA, user and component identities (init, show, user, components, node)
  encryption    encryption at rest for Secrets (new-config, rewrite)

Working with the cluster (like kubectl; --kubeconfig, --context and -n/--namespace on each):
  get           list objects in kubectl's columns (-o wide|yaml|json|name|jsonpath=..., -l, -A, -w)
  describe      a readable view of an object, its related objects and its events
  apply         create or update objects from files with server-side apply (-f FILE|DIR|-, -R)
  create        create objects from files (-f); `create token SA` asks for a service-account token
  delete        delete objects by name, file or label selector, and wait until they are gone
  scale         set the replicas of a deployment, replica set or stateful set
  rollout       status, history, undo, restart, pause and resume of a deployment
  logs          print or follow a container's log (-c, -f, --tail, --previous)
  events        list events, oldest first (-A, --for TYPE/NAME, --types, -w)
  wait          wait for a condition, a JSONPath value or deletion (--for=..., --timeout)
  auth          can-i VERB TYPE[/NAME] (exit 0 yes, 1 no) and whoami

Service networking:
  trace         follow a connection from a pod through a node's proxy rules (endpoints, NetworkPolicy)
  netpol        NetworkPolicy verdicts (check SRC DST PORT)
  routes        print a node's proxy tables (iptables, IPVS or nftables mode)

Components:
  apiserver           run the API server (HTTPS, SQLite or PostgreSQL)
  controller-manager  run the controllers (namespaces, node IPAM, service accounts, ...)
  proxy               run the node network agent (service tables in iptables, IPVS or nftables mode)
  dns                 serve cluster DNS for Services and pods (UDP and TCP)
  scheduler           assign pending pods to nodes (filters, scores, binding, leader election)

Run `skiff <command> --help` for a command's flags."""


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE)
        return
    command, rest = args[0], args[1:]
    if command in COMMANDS:
        module_name, function = COMMANDS[command]
        getattr(importlib.import_module(module_name), function)(rest)
        return
    module = COMPONENTS.get(command)
    if module is None:
        print(f"skiff: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
        sys.exit(2)
    importlib.import_module(module).main(rest)


if __name__ == "__main__":
    main()

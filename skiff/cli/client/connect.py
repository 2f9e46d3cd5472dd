"""Global flags shared by every client command, and the API client they configure."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from skiff.cli.client.resolve import Resolver
from skiff.client.kubeconfig import ClientConfig, load_kubeconfig
from skiff.client.rest import Client


def global_flags() -> argparse.ArgumentParser:
    """A parent parser with kubectl's connection flags: --kubeconfig, --context, -n/--namespace."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--kubeconfig", help="the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")
    parser.add_argument("--context", help="the kubeconfig context to use")
    parser.add_argument("-n", "--namespace", help="the namespace (default: the context's)")
    parser.add_argument("--request-timeout", type=float, default=30.0, help="seconds to wait for one reply")
    return parser


def command_parser(prog: str, description: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog=f"skiff {prog}", description=description, parents=[global_flags()])


@dataclass
class Session:
    """One command's connection: the client, the namespace it works in and name resolution."""

    client: Client
    namespace: str
    explicit_namespace: bool
    resolver: Resolver

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load_config(args: argparse.Namespace) -> ClientConfig:
    config = load_kubeconfig(args.kubeconfig, args.context)
    if args.namespace:
        config.namespace = args.namespace
    return config


def open_session(args: argparse.Namespace) -> Session:
    config = load_config(args)
    client = Client(config, timeout=args.request_timeout, user_agent=None)
    return Session(client, config.namespace, bool(args.namespace), Resolver(client))

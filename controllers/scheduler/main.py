"""`skiff scheduler`: place pending pods on nodes, under leader election.

With leader election (the default) only the holder of the `kube-system/kube-scheduler` Lease schedules;
the others keep their caches warm and wait. One that loses the lease exits, as kube-scheduler does, so
its supervisor restarts it as a candidate.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import sys
import uuid

from controllers.scheduler.binder import Binder
from controllers.scheduler.podinfo import DEFAULT_SCHEDULER
from controllers.scheduler.queue import DEFAULT_INITIAL_BACKOFF, DEFAULT_MAX_BACKOFF
from controllers.scheduler.recorder import ShardedRecorder
from controllers.scheduler.scheduler import DEFAULT_MAX_INFLIGHT_BINDINGS, Scheduler
from skiff.client.kubeconfig import load_kubeconfig
from skiff.client.rest import AsyncClient, default_user_agent
from skiff.runtime import LeaderElector, SharedInformerFactory
from skiff.runtime.process import run_until_stopped

log = logging.getLogger("skiff.scheduler")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="skiff scheduler", description="Assign pending pods to nodes.")
    parser.add_argument("--kubeconfig", default=None)
    parser.add_argument("--scheduler-name", default=DEFAULT_SCHEDULER,
                        help="schedule pods whose spec.schedulerName is this (or unset, for the default)")  # fmt: skip
    parser.add_argument("--leader-elect", default="true", choices=["true", "false"])
    parser.add_argument("--leader-elect-lease-duration", type=float, default=15.0)
    parser.add_argument("--leader-elect-renew-deadline", type=float, default=10.0)
    parser.add_argument("--leader-elect-retry-period", type=float, default=2.0)
    parser.add_argument("--leader-elect-resource-name", default="kube-scheduler")
    parser.add_argument("--leader-elect-resource-namespace", default="kube-system")
    parser.add_argument("--pod-initial-backoff-seconds", type=float, default=DEFAULT_INITIAL_BACKOFF)
    parser.add_argument("--pod-max-backoff-seconds", type=float, default=DEFAULT_MAX_BACKOFF)
    parser.add_argument("--max-inflight-bindings", type=int, default=DEFAULT_MAX_INFLIGHT_BINDINGS,
                        help="binding requests in flight at once")  # fmt: skip
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    if args.max_inflight_bindings < 1:
        parser.error("--max-inflight-bindings must be at least 1")
    return args


def build(args: argparse.Namespace) -> tuple[AsyncClient, SharedInformerFactory, ShardedRecorder, Scheduler]:
    config = load_kubeconfig(args.kubeconfig)
    client = AsyncClient(
        config, user_agent=default_user_agent("skiff-scheduler"), max_connections=args.max_inflight_bindings + 16
    )
    informers = SharedInformerFactory(client)
    recorder = ShardedRecorder(client, args.scheduler_name)
    scheduler = Scheduler(
        client,
        informers,
        Binder(client, recorder),
        scheduler_name=args.scheduler_name,
        max_inflight_bindings=args.max_inflight_bindings,
        initial_backoff=args.pod_initial_backoff_seconds,
        max_backoff=args.pod_max_backoff_seconds,
    )
    return client, informers, recorder, scheduler


def elector(args: argparse.Namespace, client: AsyncClient, scheduler: Scheduler) -> LeaderElector:
    return LeaderElector(
        client,
        args.leader_elect_resource_namespace,
        args.leader_elect_resource_name,
        f"{socket.gethostname()}_{uuid.uuid4()}",
        lease_duration=args.leader_elect_lease_duration,
        renew_deadline=args.leader_elect_renew_deadline,
        retry_period=args.leader_elect_retry_period,
        on_started_leading=scheduler.run,
        on_new_leader=lambda holder: log.info("the scheduler leader is %s", holder),
    )


async def run(args: argparse.Namespace) -> int:
    client, informers, recorder, scheduler = build(args)
    informers.start()  # followers keep warm caches, so a new leader starts at once
    leading = args.leader_elect == "true"
    work = elector(args, client, scheduler).run() if leading else scheduler.run()
    lost_lease = await run_until_stopped(work)
    await informers.shutdown()
    await recorder.aclose()
    await client.aclose()
    if lost_lease:
        log.error("leader election lost; exiting")
        return 1
    return 0


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()

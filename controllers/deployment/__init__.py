"""Deployment controller: rolls a Deployment's pod template out through one ReplicaSet per template.

- `controller`: informers, event handlers and the per-key sync dispatch
- `sync`: one sync's reads and writes (new ReplicaSet, scaling, clean-up, status)
- `strategies`: RollingUpdate, Recreate, and resizing (scaling events and paused Deployments)
- `rollout`: the surge/unavailability arithmetic and proportional scaling (pure)
- `history`: revisions, annotations passed to ReplicaSets, revisionHistoryLimit (pure)
- `status`: status counts and the Available/Progressing conditions (pure)
"""

from controllers.deployment.controller import start

__all__ = ["start"]

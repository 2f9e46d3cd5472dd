"""The kubectl-like client commands of `skiff`: get, describe, apply, delete, scale, rollout, logs, auth,
events and wait. Each module holds one command group; they talk to the cluster only through its API."""

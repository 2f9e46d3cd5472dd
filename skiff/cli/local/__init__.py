"""The local cluster of `skiff up`: what runs (`specs`), the identities it runs as (`identities`), the
state a running cluster leaves in its data directory (`state`), and `skiff status` and `skiff down`
(`status`). `skiff.cli.up` starts it."""

"""The service-routing and NetworkPolicy engine: one model of Services, endpoints and policies, rendered
into iptables, IPVS and nftables tables and explained hop by hop by route tracing.

The kube-proxy (`proxy/`) renders it for its nodes; `skiff trace` and `skiff netpol check` explain the
same rules, so what a user is told is what the tables do.
"""

"""`skiff scheduler`: assigns pending pods to nodes, as kube-scheduler's default profile does.

The scheduler is its own process. It keeps an in-memory picture of every node's free resources, fed by
pod and node informers; takes pods from a priority queue one at a time; runs filter plugins (which nodes
can host the pod at all) and score plugins (which of those is best); assumes the pod onto the winning
node at once, so the next pod already sees those resources taken; and binds it through
`pods/<name>/binding` concurrently with scheduling the next pods. A pod that fits nowhere gets
`PodScheduled=False` (reason `Unschedulable`) with kube's "0/N nodes are available: ..." message and a
`FailedScheduling` event, and is retried with backoff, or at once when the cluster changes in a way that
could help.

Modules: `resources` (quantities as integers), `podinfo` (what a pod asks for), `nodeinfo` and `cache`
(per-node aggregates and the assume cache), `framework` (the plugin interfaces), `plugins/` (filters and
scores), `algorithm` (filter, score, pick), `failure` (the unschedulable message), `queue` (the scheduling
queue with backoff), `binder` and `recorder` (API writes and events), `scheduler` (the loop) and `main` (flags, leader
election).
"""

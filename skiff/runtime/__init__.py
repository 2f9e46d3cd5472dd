"""The client-go of Skiff: informers, work queues, controllers, leader election and event recording.

Every component (controllers, the scheduler, kubelets, the proxy) builds on these and reaches the API
server only through `skiff.client`.
"""

from skiff.runtime.backoff import ExponentialBackoff, ReconnectBackoff
from skiff.runtime.cache import (
    NAMESPACE_INDEX,
    Cache,
    DeletedFinalStateUnknown,
    final_state,
    index_by_controller_uid,
    index_by_field,
    index_by_label,
    index_by_namespace,
    index_by_owner_uid,
    make_key,
    object_key,
    split_key,
)
from skiff.runtime.controller import Controller
from skiff.runtime.events import NORMAL, WARNING, EventRecorder
from skiff.runtime.factory import SharedInformerFactory
from skiff.runtime.informer import Informer
from skiff.runtime.leaderelection import LeaderElector
from skiff.runtime.workqueue import QueueShutDown, WorkQueue

__all__ = [
    "NAMESPACE_INDEX",
    "NORMAL",
    "WARNING",
    "Cache",
    "Controller",
    "DeletedFinalStateUnknown",
    "EventRecorder",
    "ExponentialBackoff",
    "Informer",
    "LeaderElector",
    "QueueShutDown",
    "ReconnectBackoff",
    "SharedInformerFactory",
    "WorkQueue",
    "final_state",
    "index_by_controller_uid",
    "index_by_field",
    "index_by_label",
    "index_by_namespace",
    "index_by_owner_uid",
    "make_key",
    "object_key",
    "split_key",
]

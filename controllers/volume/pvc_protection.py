"""`pvc-protection`: see `controllers.volume.protection`."""

from controllers.volume.protection import start_pvc_protection as start

__all__ = ["start"]

"""`pv-protection`: see `controllers.volume.protection`."""

from controllers.volume.protection import start_pv_protection as start

__all__ = ["start"]

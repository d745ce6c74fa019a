# jhplatform: the GPU-aware culler (python -m jhplatform.culler) as a hub-managed service, its
# role, and the owners' cull warnings on the hub's home page. Settings: custom.jhplatform.culler
# in the z2jh values (docs/culling.md). Runs in z2jh's loader, where `c` and z2jh's
# get_config(key, default) / get_name(name) are already defined.
import sys

from jhplatform.culler.hubconfig import CullerConfigError, register_culler

try:
    register_culler(
        c,  # noqa: F821
        get_config("custom.jhplatform.culler", {}),  # noqa: F821
        hub_host=get_name("hub"),  # noqa: F821
        cull_enabled=bool(get_config("cull.enabled", True)),  # noqa: F821
    )
except CullerConfigError as e:
    print(f"FATAL: {e}", file=sys.stderr)
    sys.exit(1)

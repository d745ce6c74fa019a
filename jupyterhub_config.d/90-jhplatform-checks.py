# jhplatform: refuse to start (FATAL lines in the hub log, exit 1) when the configuration cannot
# work: a GPU profile that is malformed (docs/gpu.md), storage settings that cannot work, such as
# a shared dataset with an inline hostPath/nfs volume (docs/storage.md), or a profile or option
# choice that can never meet Pod Security Standards "restricted" (docs/security.md).
#
# z2jh execs this file BEFORE hub.extraConfig, so checking here would miss what extraConfig sets.
# This registers the checks to run when the hub initialises, after its whole config file
# (extraConfig included) has been loaded and before it serves any request.
#
# custom.jhplatform.checkAtStart (values file, default true): false skips these checks, e.g. to
# get a hub up while fixing a profile; spawns are still checked one by one.
from jhplatform.spawner.checks import check_when_hub_starts
from jhplatform.spawner.dropin import custom_setting

if custom_setting(get_config, "jhplatform.checkAtStart", kind=bool, default=True):  # noqa: F821 (z2jh's get_config)
    check_when_hub_starts(c)  # noqa: F821 (z2jh's jupyterhub_config.py defines c)

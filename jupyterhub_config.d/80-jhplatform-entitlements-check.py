# jhplatform: refuse to start (FATAL lines in the hub log) if c.PlatformSpawner.entitlements or
# default_entitlement is malformed, or names a profile, option or choice the profile list does not
# have (a typo there would silently lock a group out). See docs/auth.md.
# Runs after hub.config and extraConfig have set the profiles and the entitlements.
from jhplatform.spawner.entitlements import fail_on_entitlement_problems

c = get_config()  # noqa: F821

fail_on_entitlement_problems(c)

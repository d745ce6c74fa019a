# jhplatform: refuse to start (FATAL lines in the hub log) if a GPU profile in the profile list
# cannot work: a bad resource name or count, a count option without numeric choices, or a
# kubespawner_override that disagrees with the profile's gpu entry. See docs/gpu.md.
# Runs after hub.config and extraConfig have set the profiles, before the security check.
from jhplatform.spawner.gpu import fail_on_gpu_problems

c = get_config()  # noqa: F821

fail_on_gpu_problems(c)

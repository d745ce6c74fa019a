# jhplatform: render every profile and profile-option choice for a sample user and refuse to
# start (FATAL lines in the hub log) if one can never meet the security policy.
# Runs last, after hub.config and extraConfig have set the profiles.
from jhplatform.spawner.checks import fail_on_problems

c = get_config()  # noqa: F821

fail_on_problems(c)

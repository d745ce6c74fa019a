# jhplatform: refuse to start (FATAL lines in the hub log) when the storage settings cannot work:
# a shared dataset with a volume type Pod Security Standards "restricted" forbids (inline nfs,
# hostPath, ...), a dataset limited to a profile that does not exist, a malformed size.
# See docs/storage.md. Runs before the profile check (90-jhplatform-check.py).
from jhplatform.spawner.storage import fail_on_storage_problems

c = get_config()  # noqa: F821

fail_on_storage_problems(c)

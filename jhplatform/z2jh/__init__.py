"""The z2jh hub-pod environment: what z2jh 4.4.0's hub pod has on disk and runs, reproduced here.

- :mod:`.values`: Helm's merge of the chart's ``values.yaml`` with the user's values files;
- :mod:`.pod`: :class:`~.pod.HubPod` lays out the pod's files and runs the hub (or any command)
  with them at the pod's own paths, in a private mount namespace;
- :mod:`.helm`: Helm's own schema validation of values files (helm-python-sdk), as
  ``helm upgrade`` runs it against z2jh 4.4.0's chart;
- ``hub/``: the pod's ``jupyterhub_config.py`` and ``z2jh.py``, written for jhplatform from the
  facts in docs/z2jh-loader.md; ``chart/``: the chart's default values and schema.

Used by the tests, ``make demo`` and ``jhplatform check`` / ``render``.
"""

from .pod import HubPod
from .values import helm_merge, release_values

__all__ = ["HubPod", "helm_merge", "release_values"]

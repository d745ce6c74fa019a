"""Pure decisions every jhplatform plugin shares. No I/O, and no JupyterHub, KubeSpawner,
Kubernetes client or web framework imports (an import-linter contract in pyproject.toml keeps it so).

- :mod:`.security`: Pod Security Standards checks and the hardening every user pod gets;
- :mod:`.gpu_ledger`: who may hold which GPUs right now (capacity, usage, reservations, caps);
- :mod:`.profiles`: the profile model, GPU profile normalisation, what the spawn form shows;
- :mod:`.storage`: home volumes, per-profile storage, shared datasets, scratch;
- :mod:`.quantity`: Kubernetes resource quantities.
"""

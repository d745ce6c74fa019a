# jhplatform: use PlatformSpawner. It reads all of z2jh's c.KubeSpawner settings (it is a
# KubeSpawner subclass) and makes every user pod Pod Security Standards "restricted".
#
# z2jh's jupyterhub_config.py execs the files in this directory in file name order, after it has
# applied the chart's values and hub.config, and before hub.extraConfig, all in its own namespace:
# `c` is the hub's config object and `get_config` is z2jh's get_config(key, default=None), which
# reads the chart's values (use it for non-trait settings under `custom.`).
c.JupyterHub.spawner_class = "jhplatform"  # noqa: F821 (z2jh's jupyterhub_config.py defines c)

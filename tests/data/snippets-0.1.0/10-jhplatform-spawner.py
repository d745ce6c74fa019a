# jhplatform: use PlatformSpawner. It reads all of z2jh's c.KubeSpawner settings (it is a
# KubeSpawner subclass) and makes every user pod Pod Security Standards "restricted".
c = get_config()  # noqa: F821

c.JupyterHub.spawner_class = "jhplatform"

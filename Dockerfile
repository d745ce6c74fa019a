# The jhplatform hub image: z2jh 4.4.0's hub image with jhplatform and its config snippets.
#   docker build -t registry.example.org/jhplatform-hub:0.1.0 .
# then point z2jh at it (helm-values/platform.yaml: hub.image).
FROM quay.io/jupyterhub/k8s-hub:4.4.0

USER root
COPY pyproject.toml README.md /tmp/jhplatform/
COPY jhplatform /tmp/jhplatform/jhplatform
# The base image already pins jupyterhub, kubespawner, oauthenticator and kubernetes_asyncio;
# --no-deps keeps those pins instead of letting pip resolve newer ones.
RUN pip install --no-cache-dir --no-deps /tmp/jhplatform \
 && pip install --no-cache-dir "jupyterhub-idle-culler==2.0.*" "jsonpatch>=1.33" \
 && rm -rf /tmp/jhplatform
# z2jh's jupyterhub_config.py loads every *.py here, in name order, after hub.config.
COPY jupyterhub_config.d/ /usr/local/etc/jupyterhub/jupyterhub_config.d/
USER ${NB_USER:-jovyan}

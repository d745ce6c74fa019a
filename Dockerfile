# The jhplatform hub image: z2jh 4.4.0's hub image with jhplatform and its config snippets.
#   docker build -t registry.example.org/jhplatform-hub:0.1.0 .
# then point z2jh at it (helm-values/platform.yaml: hub.image).
FROM quay.io/jupyterhub/k8s-hub:4.4.0

USER root
COPY pyproject.toml README.md /tmp/jhplatform/
COPY jhplatform /tmp/jhplatform/jhplatform
# The base image pins jupyterhub-kubespawner==7.0.0 and jupyterhub-idle-culler==1.4.0; jhplatform
# is built and tested on KubeSpawner 7.1 and idle-culler 2.0, so upgrade exactly those (and add
# jsonpatch, which the image lacks) under the image's own versions of everything else as
# constraints: no other pin of the image moves. jhplatform itself goes in with --no-deps: its
# dependencies are all in place by then.
# tests/contract/dropin/test_hub_image_env.py builds this environment without docker.
RUN pip freeze --exclude jupyterhub-kubespawner --exclude jupyterhub-idle-culler > /tmp/image-pins.txt \
 && pip install --no-cache-dir -c /tmp/image-pins.txt "jupyterhub-kubespawner==7.1.*" "jupyterhub-idle-culler==2.0.*" "jsonpatch>=1.33" \
 && pip install --no-cache-dir --no-deps /tmp/jhplatform \
 && rm -rf /tmp/jhplatform /tmp/image-pins.txt
# z2jh's jupyterhub_config.py execs every *.py here, in file name order, after the chart's values
# and hub.config and before hub.extraConfig (docs/z2jh-loader.md).
COPY jupyterhub_config.d/ /usr/local/etc/jupyterhub/jupyterhub_config.d/
USER ${NB_USER:-jovyan}

"""The troubleshooting lines in docs/admin-guide.md are the lines the code prints.

An admin searches the guide for the line in their hub log; a line the code no longer prints
(or prints differently) sends them nowhere. These tests produce each load-time failure the guide
quotes, with the same functions the image's jupyterhub_config.d snippets call, and with Helm's
validation, and look for every printed line verbatim in the guide.

We test these aspects:
- the FATAL lines of the security check (z2jh's iptables init container, a privileged
  profile, a root profile) and its closing line;
- the FATAL lines of the storage check (an inline nfs dataset) and of the GPU check (a GPU
  profile without a resource name);
- Helm's report for the seeds' misspelled ``singleuser.podSecurityContext``, and the line
  ``jhplatform check`` makes of it.
"""

from __future__ import annotations

import io

import pytest
from traitlets.config import Config

from helpers import REPO
from jhplatform.z2jh import helm

GUIDE = (REPO / "docs" / "admin-guide.md").read_text()


def printed(check, config: Config) -> list[str]:
    stream = io.StringIO()
    with pytest.raises(SystemExit) as exited:
        check(config, stream=stream)
    assert exited.value.code == 1
    return [line for line in stream.getvalue().splitlines() if line.strip()]


def assert_in_guide(lines: list[str]) -> None:
    missing = [line for line in lines if line not in GUIDE]
    assert not missing, "lines printed by the code but not quoted in docs/admin-guide.md:\n" + "\n".join(missing)


async def test_security_check_lines(cluster):
    from jhplatform.spawner.checks import fail_on_problems

    c = Config()
    c.KubeSpawner.profile_list = [
        {"display_name": "CPU", "slug": "cpu", "default": True},
        {"display_name": "Debug", "slug": "debug", "kubespawner_override": {"privileged": True}},
        {"display_name": "Root", "slug": "root", "kubespawner_override": {"uid": 0}},
    ]
    # What z2jh's loader appends with singleuser.cloudMetadata.blockWithIptables: true.
    c.KubeSpawner.init_containers = [
        {"name": "block-cloud-metadata", "image": "quay.io/jupyterhub/k8s-network-tools:4.4.0",
         "securityContext": {"privileged": True, "runAsUser": 0, "capabilities": {"add": ["NET_ADMIN"]}}},
    ]
    lines = printed(fail_on_problems, c)
    starts = [i for i, line in enumerate(lines) if line.startswith("FATAL: ")]
    blocks = {lines[i].split("'")[1]: lines[i:j] for i, j in zip(starts, starts[1:])}
    assert sorted(blocks) == ["cpu", "debug", "root"], lines
    # The whole block for the z2jh init container, the first line for the privileged profile,
    # the root line for the root profile, every fix and the closing line.
    assert_in_guide(blocks["cpu"])
    assert_in_guide(blocks["debug"][:1])
    assert_in_guide([line for line in blocks["root"] if "pod and containers" in line])
    assert_in_guide([line for line in lines if "Fix: " in line] + lines[-1:])


def test_storage_check_lines():
    from jhplatform.spawner.storage import fail_on_storage_problems

    c = Config()
    c.PlatformSpawner.shared_datasets = [{"name": "ref", "mount_path": "/data/ref", "nfs": {"server": "nfs.example.org", "path": "/ref"}}]
    assert_in_guide(printed(fail_on_storage_problems, c))


def test_gpu_check_lines():
    from jhplatform.spawner.gpu import fail_on_gpu_problems

    c = Config()
    c.KubeSpawner.profile_list = [{"display_name": "GPU", "slug": "gpu", "gpu": {"count": 1}}]
    assert_in_guide(printed(fail_on_gpu_problems, c))


def test_helm_lines(tmp_path):
    values = {"singleuser": {"podSecurityContext": {"runAsUser": 1000}}}
    report = helm.helm_schema_report(values)
    assert_in_guide(report.splitlines())
    path = tmp_path / "v.yaml"
    path.write_text("singleuser:\n  podSecurityContext:\n    runAsUser: 1000\n")
    assert_in_guide(helm.validate_values([path]))

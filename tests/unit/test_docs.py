"""The configuration reference (docs/reference.md, built by ``make docs``) covers the right settings.

``make docs`` builds the pages with warnings as errors; these tests check what a clean build
cannot see.

We test these aspects:
- docs/conf.py documents exactly the settings jhplatform declares (its own traits and the one it
  redefines), and leaves KubeSpawner's and JupyterHub's to their upstream documentation;
- every one of those settings has a help text (autodoc-traits would show it without one);
- the table of KubeSpawner defaults that PlatformSpawner changes states the defaults the code
  really has, and the KubeSpawner column states KubeSpawner's;
- reference.md generates the page from PlatformSpawner, and the index links every page.
"""

from __future__ import annotations

import importlib.util
import re

import pytest
from kubespawner import KubeSpawner
from traitlets import TraitType

from helpers import REPO
from jhplatform.spawner import PlatformSpawner

DOCS = REPO / "docs"


@pytest.fixture(scope="module")
def conf():
    spec = importlib.util.spec_from_file_location("jhplatform_docs_conf", DOCS / "conf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def documented(conf) -> set[str]:
    traits = PlatformSpawner.class_traits(config=True)
    return {name for name, trait in traits.items() if not conf._skip_inherited_traits(None, "attribute", name, trait, False, {})}


def test_reference_documents_jhplatform_settings_only(conf):
    names = documented(conf)
    assert {"security_mode", "shared_datasets", "gpu_pools", "gpu_user_limit", "shm_size_limit", "modify_pod_hook"} <= names
    assert not names & {"image", "cpu_limit", "profile_list", "storage_capacity", "cmd", "start_timeout"}
    own = {n for n in PlatformSpawner.class_traits(config=True) if n not in KubeSpawner.class_traits(config=True)}
    assert own <= names
    assert names - own == {"modify_pod_hook"}  # redefined to chain the security check after the admin's hook


def test_skip_hook_leaves_other_members_to_autodoc(conf):
    assert conf._skip_inherited_traits(None, "method", "start", PlatformSpawner.start, False, {}) is None


def test_every_documented_setting_has_help(conf):
    traits = PlatformSpawner.class_traits(config=True)
    assert all(isinstance(traits[n], TraitType) and (traits[n].help or "").strip() for n in documented(conf))


def test_changed_defaults_table_matches_the_code():
    text = (DOCS / "reference.md").read_text()
    rows = re.findall(r"^\| (`[a-z_]+`(?: / `[a-z_]+`)*) \| ([^|]+) \| ([^|]+) \|", text, flags=re.M)
    checked = 0
    ours = PlatformSpawner._all_trait_default_generators
    for names_cell, upstream_cell, ours_cell in rows:
        names = re.findall(r"`([a-z_]+)`", names_cell)
        if names == ["profile_form_template"]:
            continue
        values = [v.strip().split(" ")[0].strip("`") for v in ours_cell.split(" / ")]
        upstream = [v.strip().split(" ")[0].strip("`") for v in upstream_cell.split(" / ")]
        for name, value, before in zip(names, values, upstream, strict=True):
            assert repr(ours[name](None)) == value, name
            assert repr(KubeSpawner.class_traits()[name].default_value) == ("None" if before == "none" else before), name
            checked += 1
    assert checked == 5


def test_reference_and_index():
    assert ".. autoconfigurable:: jhplatform.spawner.PlatformSpawner" in (DOCS / "reference.md").read_text()
    index = (DOCS / "index.md").read_text()
    pages = sorted(p.stem for p in DOCS.glob("*.md") if p.stem != "index")
    assert [p for p in pages if f"({p}.md" not in index] == []

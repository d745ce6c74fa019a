"""The spawn form's template, compiled once, through KubeSpawner's own template settings.

We test these aspects:
- the default template is compiled once and reused by every render and every spawner;
  another ``profile_form_template`` text gets its own compiled template;
- a ``form.html`` on ``additional_profile_form_template_paths`` (``profile_form_template = ""``)
  is used, and a change to the file shows on the next render (Jinja's cache checks the file);
- saved ``user_options`` that no longer validate are not pre-selected: the form still renders,
  with a warning in the log, like stock KubeSpawner's.
"""

from __future__ import annotations

import logging
import os

from doubles import make_spawner
from jhplatform.spawner import PlatformSpawner
from jhplatform.spawner.form import FORM_TEMPLATE
from jhplatform.spawner.gpu import compiled_form_template

GPU = "nvidia.com/gpu"
PROFILES = [
    {"display_name": "CPU", "slug": "cpu", "default": True},
    {"display_name": "GPU", "slug": "gpu", "kubespawner_override": {"extra_resource_limits": {GPU: "1"}}},
]


def spawner(user="ada", **config):
    return make_spawner(PlatformSpawner, user=user, config={"PlatformSpawner": {"namespace": "default", "profile_list": PROFILES, **config}})


async def test_default_template_compiled_once(cluster):
    first, second = spawner("ada"), spawner("bob")
    template = compiled_form_template(FORM_TEMPLATE)
    assert compiled_form_template(FORM_TEMPLATE) is template
    for s in (first, second):
        html = s._render_options_form(await s._gpu_profile_list())
        assert 'id="gpu-availability-gpu"' in html
    assert compiled_form_template(FORM_TEMPLATE) is template, "rendering did not compile it again"
    other = compiled_form_template("<p>{{ profile_list|length }}</p>")
    assert other is not template
    assert spawner(profile_form_template="<p>{{ profile_list|length }}</p>")._render_options_form(PROFILES) == "<p>2</p>"


async def test_form_html_from_template_paths(cluster, tmp_path):
    form = tmp_path / "form.html"
    form.write_text("<p>v1 {% for p in profile_list %}{{ p.slug }}={{ p.gpu_view.gpu }} {% endfor %}</p>")
    s = spawner(profile_form_template="", additional_profile_form_template_paths=[str(tmp_path)])
    profiles = await s._gpu_profile_list()
    assert s._render_options_form(profiles) == "<p>v1 cpu=False gpu=True </p>"
    form.write_text("<p>v2</p>")
    stat = form.stat()
    os.utime(form, (stat.st_atime, stat.st_mtime + 5))  # a later mtime, whatever the clock's resolution
    assert s._render_options_form(profiles) == "<p>v2</p>"


async def test_stale_user_options_are_not_preselected(cluster, caplog):
    s = spawner()
    s.user_options = {"profile": "gone"}
    with caplog.at_level(logging.WARNING):
        html = s._render_options_form(await s._gpu_profile_list())
    assert 'id="profile-item-cpu"' in html
    assert "Not pre-selecting saved user_options" in caplog.text

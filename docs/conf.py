"""Sphinx configuration for jhplatform's documentation (``make docs``).

The guides are Markdown (MyST); the configuration reference (reference.md) is generated from
the traits' ``help=`` texts by autodoc-traits, so it always matches the code.
"""

project = "jhplatform"
author = "the jhplatform maintainers"
copyright = "jhplatform maintainers, BSD-3-Clause"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "autodoc_traits",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "build"]

# Links like [storage.md](storage.md#for-users) point at headings by their GitHub-style slug.
myst_heading_anchors = 4
myst_enable_extensions = ["colon_fence", "deflist"]

# The reference shows each trait's type, default and help text, in source order.
autodoc_member_order = "bysource"
autodoc_typehints = "none"

html_theme = "alabaster"
html_title = "jhplatform"


def _defined_by_jhplatform(cls: type, name: str) -> bool:
    """Whether trait ``name`` of ``cls`` is declared by a jhplatform class (not inherited)."""
    for klass in cls.__mro__:
        if name in vars(klass):
            return klass.__module__.startswith("jhplatform.")
    return False


def _skip_inherited_traits(app, what, name, obj, skip, options):
    # The reference documents the settings jhplatform adds or redefines. KubeSpawner's and
    # JupyterHub's own settings keep their upstream documentation (their help texts refer to
    # labels of those projects' docs, which this build does not have).
    from traitlets import TraitType

    if isinstance(obj, TraitType) and obj.this_class is not None:
        return skip or not _defined_by_jhplatform(_documented_class(obj), name)
    return None


def _documented_class(trait):
    from jhplatform.spawner import PlatformSpawner

    return PlatformSpawner if issubclass(PlatformSpawner, trait.this_class) else trait.this_class


def setup(app):
    app.connect("autodoc-skip-member", _skip_inherited_traits)

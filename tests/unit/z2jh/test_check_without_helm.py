"""`jhplatform check` where Helm's SDK is not installed (the hub image does not carry it).

We test these aspects:
- the schema source gives one line saying what is missing and how to install it, instead of a
  traceback, and the other problem sources still run.
"""

from __future__ import annotations

import argparse
import sys

from jhplatform.cli import values_check


def test_missing_helm_sdk_is_one_clear_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "helm_python", None)  # import helm_python raises ImportError
    monkeypatch.delitem(sys.modules, "jhplatform.z2jh.helm", raising=False)
    lines = values_check.helm_schema_problems(argparse.Namespace(values=[]))
    assert lines == [
        "helm: Helm's SDK is not installed (helm_python); install it with `pip install 'jhplatform[check]'` "
        "to check values against the chart's schema as `helm upgrade` does"
    ]

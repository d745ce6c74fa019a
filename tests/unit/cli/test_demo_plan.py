"""What `jhplatform demo` decides before it starts anything (jhplatform.cli.demo.plan_demo).

We test these aspects:
- the state directory keeps the hub's secrets (cookie secret, CryptKeeper key, the IdP client's
  secret) from one run to the next, so sign-ins and encrypted auth state survive a restart, and
  ``--reset`` empties it (homes, database, secrets);
- the hub pod's values end with the demo's runtime layer: the identity provider's and
  Prometheus' loopback URLs, the culler's port, the callback on the chosen public port;
- a missing values file or a public port in use is refused with one clear message.
"""

from __future__ import annotations

import argparse
import json
import socket

import pytest
import yaml

from jhplatform.cli import demo


def args(tmp_path, **kw):
    base = dict(values=[], port=0, state_dir=tmp_path / "state", reset=False, snippets=None, nodes=demo.DEMO_NODES)
    base.update(kw)
    return argparse.Namespace(**base)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_secrets_kept_across_runs_and_reset_empties_the_state(tmp_path):
    port = free_port()
    demo.plan_demo(args(tmp_path, port=port))
    first = json.loads((tmp_path / "state" / "secrets.json").read_text())
    (tmp_path / "state" / "cluster").mkdir()
    (tmp_path / "state" / "cluster" / "home-file").write_text("data")
    demo.plan_demo(args(tmp_path, port=port))
    assert json.loads((tmp_path / "state" / "secrets.json").read_text()) == first
    assert (tmp_path / "state" / "cluster" / "home-file").exists()
    demo.plan_demo(args(tmp_path, port=port, reset=True))
    assert not (tmp_path / "state" / "cluster" / "home-file").exists()
    assert json.loads((tmp_path / "state" / "secrets.json").read_text()) != first


def test_runtime_values_come_last(tmp_path):
    port = free_port()
    pod, plan = demo.plan_demo(args(tmp_path, port=port))
    merged = yaml.safe_load((pod.etc / "jupyterhub" / "secret" / "values.yaml").read_text())
    auth = merged["hub"]["config"]["PlatformAuthenticator"]
    assert auth["issuer"] == plan["idp_url"] and auth["oauth_callback_url"] == f"http://127.0.0.1:{port}/hub/oauth_callback"
    culler = merged["custom"]["jhplatform"]["culler"]
    assert culler["prometheus"]["url"] == plan["prometheus_url"] and culler["port"] == plan["ports"]["culler"]
    assert merged["scheduling"]["userScheduler"]["enabled"] is False
    assert plan["url"] == f"http://127.0.0.1:{port}"


def test_missing_values_file(tmp_path):
    with pytest.raises(demo.DemoError, match="no such values file: .*nope.yaml"):
        demo.plan_demo(args(tmp_path, values=[tmp_path / "nope.yaml"], port=free_port()))


def test_public_port_in_use(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        with pytest.raises(demo.DemoError, match=f"port {busy} on 127.0.0.1 is in use"):
            demo.plan_demo(args(tmp_path, port=busy))

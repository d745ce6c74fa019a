"""The culler service's configuration and its Prometheus client, error branches included.

We test these aspects:
- ``CullerService`` settings are validated at load with messages naming ``CullerService.<trait>``
  (negative limits, a threshold outside 0-100, a bad PromQL window, a non-http Prometheus URL,
  bad per-profile limits, JSON in ``$JHPLATFORM_CULLER_CONFIG`` that is not JSON); the command
  line wins over the environment; upstream's ``max_age`` is ignored with a warning;
- the command exits 1 with a clear message (no traceback) without a hub token, and with
  ``FATAL:`` for bad settings;
- the Prometheus client (against a small HTTP server on loopback): a result, series without
  ``namespace``/``pod`` or with a NaN left out; a 400 for a bad query, an answer that is not a
  query result, a ``status: error`` answer and an unreachable server each raise
  ``PrometheusUnavailable`` with a message saying what happened;
- ``server_facts`` reads GPUs and profile from the spawner state, and a server without state
  (a plain KubeSpawner server) counts as CPU.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timezone

import pytest
from aiohttp import web
from traitlets import TraitError

from hubstack import free_port
from jhplatform.culler.app import CONFIG_ENV, CullerService
from jhplatform.culler.cycle import CullerState, Settings, server_facts
from jhplatform.culler.prometheus import PrometheusUnavailable, gpu_utilisation
from jhplatform.policy.culling import CullPolicy


def load(argv=(), env=None, monkeypatch=None) -> CullerService:
    if env is not None:
        monkeypatch.setenv(CONFIG_ENV, env)
    app = CullerService()
    app.initialize(list(argv))
    return app


BAD = [
    ("negative-gpu-idle", {"gpu_idle_timeout": -1}, "CullerService.gpu_idle_timeout must be >= 0 seconds"),
    ("negative-warn", {"warn_before": -5}, "CullerService.warn_before must be >= 0 seconds"),
    ("threshold", {"gpu_util_threshold": 120}, "CullerService.gpu_util_threshold is a percentage (0-100), not 120"),
    ("window", {"prometheus_window": "ten minutes"}, "CullerService.prometheus_window must be a PromQL duration like '10m'"),
    ("url", {"prometheus_url": "prometheus:9090"}, "CullerService.prometheus_url must be an http(s) URL"),
    ("profile", {"profile_limits": {"a100": {"idle": 5}}}, "CullerService.profile_limits['a100'] has unknown key 'idle'"),
]


@pytest.mark.parametrize("values, message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_settings_are_refused_at_load(values, message, monkeypatch):
    import json

    with pytest.raises(TraitError) as e:
        load(env=json.dumps(values), monkeypatch=monkeypatch)
    assert message in str(e.value)


def test_environment_then_command_line(monkeypatch):
    app = load(["--CullerService.gpu_idle_timeout=900"], env='{"gpu_idle_timeout": 600, "cpu_max_age": 7200, "max_age": 5}',
               monkeypatch=monkeypatch)
    assert (app.gpu_idle_timeout, app.cpu_max_age, app.max_age) == (900, 7200, 0)
    policy = app.policy()
    assert (policy.gpu.idle_timeout, policy.cpu.max_age) == (900, 7200)


def test_max_age_is_ignored_with_a_warning(capfd):
    app = CullerService()
    app.max_age = 3600
    assert app.max_age == 0
    assert "CullerService.max_age=3600 is ignored" in capfd.readouterr().err


def test_not_json_in_the_environment(monkeypatch):
    with pytest.raises(TraitError, match=r"\$JHPLATFORM_CULLER_CONFIG is not JSON"):
        load(env="{oops", monkeypatch=monkeypatch)


def run_service(env: dict) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTERHUB_") and k != CONFIG_ENV}
    return subprocess.run([sys.executable, "-m", "jhplatform.culler"], env={**clean, **env},
                          capture_output=True, text=True, timeout=60)


def test_command_without_a_hub_token_says_what_to_do():
    result = run_service({"JUPYTERHUB_API_URL": "http://127.0.0.1:1/hub/api"})
    assert result.returncode == 1
    assert "The culler needs $JUPYTERHUB_API_TOKEN and $JUPYTERHUB_API_URL: run it as a hub service" in result.stderr
    assert "Traceback" not in result.stderr


def test_command_with_bad_settings_is_fatal():
    result = run_service({CONFIG_ENV: '{"cpu_max_age": -1}', "JUPYTERHUB_API_TOKEN": "x"})
    assert result.returncode == 1
    assert "FATAL: CullerService.cpu_max_age must be >= 0 seconds" in result.stderr


@pytest.fixture
async def fake_prometheus():
    answer = {"status": 200, "body": ""}

    async def query(request):
        return web.Response(status=answer["status"], text=answer["body"], content_type="application/json")

    app = web.Application()
    app.router.add_get("/api/v1/query", query)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield answer, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    await runner.cleanup()


async def test_prometheus_result(fake_prometheus):
    answer, url = fake_prometheus
    answer["body"] = ('{"status":"success","data":{"resultType":"vector","result":['
                      '{"metric":{"namespace":"gpu","pod":"jupyter-ada"},"value":[1,"3.5"]},'
                      '{"metric":{"namespace":"gpu","pod":"jupyter-nan"},"value":[1,"NaN"]},'
                      '{"metric":{"pod":"no-namespace"},"value":[1,"50"]},'
                      '{"metric":{"namespace":"gpu","pod":"bad-value"},"value":[1]}]}}')
    assert await gpu_utilisation(url, "q", 5) == {("gpu", "jupyter-ada"): 3.5}


PROM_ERRORS = [
    ("bad-query", 400, '{"status":"error","errorType":"bad_data","error":"parse error"}', "answered 400:"),
    ("not-a-result", 200, "<html>proxy login</html>", "sent an answer that is not a query result"),
    ("status-error", 200, '{"status":"error","error":"query timed out"}', "refused the query: query timed out"),
]


@pytest.mark.parametrize("status, body, message", [p[1:] for p in PROM_ERRORS], ids=[p[0] for p in PROM_ERRORS])
async def test_prometheus_errors(fake_prometheus, status, body, message):
    answer, url = fake_prometheus
    answer.update(status=status, body=body)
    with pytest.raises(PrometheusUnavailable) as e:
        await gpu_utilisation(url, "q", 5)
    assert str(e.value).startswith(f"Prometheus at {url} ")
    assert message in str(e.value)


async def test_prometheus_unreachable():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(PrometheusUnavailable, match=f"Prometheus at {url} is unreachable"):
        await gpu_utilisation(url, "q", 5)


def test_server_facts_from_state():
    at = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)
    settings = Settings(hub_api_url="", api_token="", policy=CullPolicy(), namespace="fallback-ns")
    gpu = {"name": "train", "started": "2026-01-01T10:00:00Z", "last_activity": "2026-01-01T11:00:00.5Z",
           "user_options": {"profile": "chosen"},
           "state": {"jhplatform_gpus": {"nvidia.com/gpu": 2, "nvidia.com/mig-1g.10gb": 1}, "jhplatform_profile": "a100",
                     "pod_name": "jupyter-ada--train", "namespace": "gpu"}}
    facts, ns, pod, missing = server_facts("ada", gpu, {("gpu", "jupyter-ada--train"): 1.0}, CullerState(), settings, at)
    assert (facts.gpus, facts.profile, facts.name, ns, pod, facts.gpu_util, missing) == (3, "a100", "ada/train", "gpu", "jupyter-ada--train", 1.0, None)
    assert facts.last_activity == datetime(2026, 1, 1, 11, 0, 0, 500000, tzinfo=timezone.utc)
    plain = {"name": "", "started": "2026-01-01T10:00:00Z", "last_activity": None, "user_options": {"profile": "cpu"}}
    facts, ns, pod, missing = server_facts("bob", plain, None, CullerState(), settings, at)
    assert (facts.gpus, facts.cls, facts.profile, ns, missing, facts.last_activity) == (0, "cpu", "cpu", "fallback-ns", None, None)

"""The culler's contract tests use tests/cullerstack.py: the hub, the clock, the fault proxy,
Prometheus and the exporter (fixtures), and the helpers the tests import from here."""

from cullerstack import (WINDOW, A100, CULLER_TOKEN, GPU, NS, POLICY, PROFILES, Clock, clock, culler_hub, exporter,  # noqa: F401
                         faulty_proxy, hub_config, make_cycle, prometheus, prometheus_process, running, sample, spawn, touch,
                         until_prometheus_shows)

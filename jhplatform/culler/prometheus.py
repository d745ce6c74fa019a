"""GPU utilisation per pod from Prometheus' HTTP API (one instant query per cull cycle)."""

from __future__ import annotations

import json
import logging
from urllib.parse import urlencode

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

log = logging.getLogger("jhplatform.culler")

#: DCGM exporter's utilisation gauge, per GPU; averaged over the window, then over a pod's GPUs.
DEFAULT_QUERY = "avg by (namespace, pod) (avg_over_time(DCGM_FI_DEV_GPU_UTIL[{window}]))"


class PrometheusUnavailable(Exception):
    """The query failed; the message says why (for the log and the admin page)."""


async def gpu_utilisation(url: str, query: str, timeout: float, headers: dict | None = None) -> dict[tuple[str, str], float]:
    """``{(namespace, pod): percent}`` for every series the query returns.

    Raises :class:`PrometheusUnavailable` when Prometheus cannot answer; series without a
    ``namespace`` or ``pod`` label, or whose value is not a number, are left out.
    """
    req = HTTPRequest(
        url=f"{url.rstrip('/')}/api/v1/query?{urlencode({'query': query})}",
        headers=headers or {},
        request_timeout=timeout,
        connect_timeout=timeout,
    )
    try:
        resp = await AsyncHTTPClient().fetch(req)
    except HTTPClientError as e:
        body = e.response.body.decode("utf8", "replace")[:300] if e.response is not None and e.response.body else ""
        raise PrometheusUnavailable(f"Prometheus at {url} answered {e.code}: {body or e.message}") from e
    except (OSError, TimeoutError) as e:
        raise PrometheusUnavailable(f"Prometheus at {url} is unreachable: {e}") from e
    try:
        data = json.loads(resp.body)
        if data.get("status") != "success":
            raise PrometheusUnavailable(f"Prometheus at {url} refused the query: {data.get('error', data)}")
        result = data["data"]["result"]
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise PrometheusUnavailable(f"Prometheus at {url} sent an answer that is not a query result: {e}") from e
    out: dict[tuple[str, str], float] = {}
    for series in result:
        metric = series.get("metric") or {}
        ns, pod = metric.get("namespace"), metric.get("pod")
        try:
            value = float(series["value"][1])
        except (KeyError, IndexError, TypeError, ValueError):
            continue
        if ns and pod and value == value:  # NaN: no reading
            out[(ns, pod)] = value
    return out

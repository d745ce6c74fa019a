"""The spawn path's treatment of Kubernetes API errors (jhplatform.policy.api_errors).

We test these aspects:
- which statuses are retried (429 and 5xx) and which are not (4xx answers, no status);
- the status text uses the standard phrase, falls back to the client's reason unless it is the
  placeholder "error", and says "no answer" without a status;
- the user's messages for an API that kept failing, one that refused, and one that did not
  answer: exact words, no raw client output;
- at the start timeout, what the spawn was waiting for (the API with no pod yet, a node for an
  unschedulable pod, the pod starting) and the message around it.
"""

import pytest

from jhplatform.policy.api_errors import (
    api_failure_message,
    api_timeout_message,
    is_transient,
    start_timeout_message,
    start_waiting_for,
    status_text,
)

TRANSIENT = [(429, True), (500, True), (502, True), (503, True), (504, True),
             (400, False), (403, False), (404, False), (409, False), (422, False), (None, False)]


@pytest.mark.parametrize("status, expected", TRANSIENT, ids=[str(s) for s, _ in TRANSIENT])
def test_is_transient(status, expected):
    assert is_transient(status) is expected


STATUS_TEXTS = [
    ("standard-phrase", 503, "error", "503 Service Unavailable"),
    ("client-reason", 422, "Unprocessable Entity", "422 Unprocessable Entity"),
    ("placeholder-reason", 418, "error", "418"),
    ("no-reason", 418, None, "418"),
    ("no-status", None, None, "no answer"),
]


@pytest.mark.parametrize("status, reason, expected", [s[1:] for s in STATUS_TEXTS], ids=[s[0] for s in STATUS_TEXTS])
def test_status_text(status, reason, expected):
    assert status_text(status, reason) == expected


AFTER = ("Nothing of this attempt is left running and your files are safe. "
         "Please try again in a minute; if it keeps happening, tell your hub admin.")


def test_kept_failing_message():
    assert api_failure_message("creating your server's pod", 503, "error") == (
        "Your server could not start because the cluster's Kubernetes API kept failing (503 Service Unavailable) "
        f"while creating your server's pod. {AFTER}")


def test_refused_message():
    assert api_failure_message("creating your home volume", 422, "Unprocessable Entity") == (
        "Your server could not start because the cluster's Kubernetes API refused creating your home volume "
        "(422 Unprocessable Entity). Nothing of this attempt is left running and your files are safe. "
        "Trying again will not help: tell your hub admin, who can read the reason in the hub log.")


def test_timeout_message():
    assert api_timeout_message("creating your server's service") == (
        "Your server could not start because the cluster's Kubernetes API did not answer in time "
        f"while creating your server's service. {AFTER}")


UNSCHEDULABLE = {"status": {"phase": "Pending", "conditions": [
    {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/4 nodes are available: 2 Insufficient cpu."}]}}
PENDING = {"status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]}}
WAITING_FOR = [
    ("no-pod", None, "it was still creating your server's pod"),
    ("unschedulable", UNSCHEDULABLE, "no node in the cluster had room for it"),
    ("starting", PENDING, "its pod was still starting"),
]


@pytest.mark.parametrize("pod, expected", [w[1:] for w in WAITING_FOR], ids=[w[0] for w in WAITING_FOR])
def test_start_waiting_for(pod, expected):
    assert start_waiting_for(pod, "creating your server's pod") == expected


def test_start_timeout_message():
    assert start_timeout_message(60, "its pod was still starting") == (
        "Your server did not start within 60 seconds (its pod was still starting), so it was stopped. "
        "Please try again in a few minutes; if it keeps happening, tell your hub admin.")

"""The finalizer patch: guarded by the copy it was computed from, sent as a JSON patch."""

from __future__ import annotations

import json

import pytest
from kubernetes.client import rest
from kubernetes.client.rest import ApiException

from zkregistry import api
from zkregistry.kube import Kube, finalizer_patch
from zkregistry.model import Registry

OTHER = "example.com/other"


def registry(finalizers: list[str] | None = None, resource_version: str = "41") -> Registry:
    meta = {"name": "web", "namespace": "ns", "uid": "u-1", "resourceVersion": resource_version}
    if finalizers is not None:
        meta["finalizers"] = finalizers
    return Registry.from_body({"metadata": meta, "spec": {}})


def test_patch_tests_uid_and_resource_version_before_replacing():
    patch = finalizer_patch(registry([OTHER]), [OTHER, api.FINALIZER])
    assert patch == [
        {"op": "test", "path": "/metadata/uid", "value": "u-1"},
        {"op": "test", "path": "/metadata/resourceVersion", "value": "41"},
        {"op": "replace", "path": "/metadata/finalizers", "value": [OTHER, api.FINALIZER]},
    ]


@pytest.mark.parametrize("finalizers", [None, []])
def test_patch_adds_the_list_to_an_object_without_finalizers(finalizers):
    # "replace" fails on a member that does not exist; "add" creates it.
    patch = finalizer_patch(registry(finalizers, resource_version="7"), [api.FINALIZER])
    assert patch[:2] == [
        {"op": "test", "path": "/metadata/uid", "value": "u-1"},
        {"op": "test", "path": "/metadata/resourceVersion", "value": "7"},
    ]
    assert patch[2] == {"op": "add", "path": "/metadata/finalizers", "value": [api.FINALIZER]}


def test_patch_removing_ours_keeps_the_others():
    patch = finalizer_patch(registry([OTHER, api.FINALIZER]), [OTHER])
    assert patch[-1] == {"op": "replace", "path": "/metadata/finalizers", "value": [OTHER]}
    assert finalizer_patch(registry([api.FINALIZER]), [])[-1]["value"] == []


def test_resource_version_is_carried_but_not_compared():
    a, b = registry([OTHER], resource_version="1"), registry([OTHER], resource_version="2")
    assert (a.resource_version, b.resource_version) == ("1", "2")
    assert a == b and hash(a) == hash(b)  # a status write alone changes nothing to reconcile


class FakeResponse:
    def __init__(self, status: int, body: dict | bytes) -> None:
        self.status, self.reason = status, "OK"
        self.data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.headers = {"content-type": "application/json"}
        self.released = False

    def drain_conn(self) -> None:
        pass

    def release_conn(self) -> None:
        self.released = True


class Sent(list):
    """The requests that a Kube's real client made: (method, url, headers, body)."""

    def __init__(self) -> None:
        super().__init__()
        self.kube = Kube()
        self.answer = 200  # the status code of every answer
        self.body: dict | bytes = {}  # the body of every answer
        self.responses: list[FakeResponse] = []


@pytest.fixture
def sent(monkeypatch) -> Sent:
    requests = Sent()

    def request(method, url, headers=None, body=None, post_params=None, _request_timeout=None):
        requests.append((method, url, dict(headers or {}), body))
        if requests.answer != 200:
            raise ApiException(status=requests.answer, reason="refused")
        requests.responses.append(FakeResponse(200, requests.body))
        return rest.RESTResponse(requests.responses[-1])

    monkeypatch.setattr(requests.kube.custom.api_client.rest_client, "request", request)
    return requests


def test_set_finalizers_sends_a_json_patch(sent):
    sent.kube.set_finalizers(registry([OTHER]), [OTHER, api.FINALIZER])
    [(method, url, headers, body)] = sent
    assert method == "PATCH" and url.endswith(f"/apis/{api.GROUP}/{api.VERSION}/namespaces/ns/{api.PLURAL}/web")
    # A list sent as a merge patch would replace the whole object; the API server refuses that.
    assert headers["Content-Type"] == "application/json-patch+json"
    assert body == finalizer_patch(registry([OTHER]), [OTHER, api.FINALIZER])


@pytest.mark.parametrize("status", [404, 409, 422])
def test_a_failed_test_op_or_a_gone_object_is_not_an_error(sent, status):
    sent.answer = status
    sent.kube.set_finalizers(registry(), [api.FINALIZER])  # the next report retries
    assert len(sent) == 1


@pytest.mark.parametrize("status", [403, 500])
def test_other_failures_are_raised(sent, status):
    sent.answer = status
    with pytest.raises(ApiException):
        sent.kube.set_finalizers(registry(), [api.FINALIZER])


def test_a_status_patch_sends_a_merge_patch_and_leaves_the_answer_unparsed(sent):
    sent.body = b"{not json: a parsed answer would raise"
    sent.kube.patch_status(registry(), {"memberCount": 3})
    [(method, url, headers, body)] = sent
    assert method == "PATCH" and url.endswith(f"/namespaces/ns/{api.PLURAL}/web/status")
    assert headers["Content-Type"] == "application/merge-patch+json" and body == {"status": {"memberCount": 3}}
    assert sent.responses[0].released, "the connection was not given back to the pool"


def test_a_refused_status_patch_is_raised(sent):
    sent.answer = 403
    with pytest.raises(ApiException):
        sent.kube.patch_status(registry(), {"memberCount": 3})

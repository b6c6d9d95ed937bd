"""The host's HTTP surface: trigger routing, keys, and the management API's status codes."""

from __future__ import annotations

import uuid

import requests

from .conftest import HostClient


def test_http_trigger_gets_route_params_query_headers_and_body(host: HostClient) -> None:
    r = host.http.post(
        f"{host.url}/api/echo/one/two",
        params={"q": "1"},
        headers={"x-test": "hdr"},
        data=b"payload",
        timeout=10,
    )
    assert r.status_code == 201
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json() == {
        "method": "POST",
        "route": {"a": "one", "b": "two"},
        "query": {"q": "1"},
        "header": "hdr",
        "body": "payload",
    }


def test_optional_route_parameter_may_be_absent(host: HostClient) -> None:
    r = host.http.get(f"{host.url}/api/echo/one", timeout=10)
    assert r.status_code == 201
    assert r.json()["route"] == {"a": "one"}


def test_unknown_route_and_wrong_method_are_404_with_empty_body(host: HostClient) -> None:
    assert host.http.get(f"{host.url}/api/nope", timeout=10).status_code == 404
    r = host.http.delete(f"{host.url}/api/echo/one", timeout=10)
    assert r.status_code == 404 and r.content == b""


def test_function_level_route_needs_a_key(host: HostClient) -> None:
    assert host.http.post(f"{host.url}/api/start/sequence", timeout=10).status_code == 401
    r = host.http.post(f"{host.url}/api/start/sequence", params={"code": "wrong"}, timeout=10)
    assert r.status_code == 401
    r = host.http.post(
        f"{host.url}/api/start/sequence",
        headers={"x-functions-key": host.keys["master"]},
        json=["k"],
        timeout=10,
    )
    assert r.status_code == 202


def test_exception_in_a_function_is_a_500_with_empty_body(host: HostClient) -> None:
    r = host.http.get(f"{host.url}/api/boom", timeout=10)
    assert r.status_code == 500 and r.content == b""


def test_start_with_an_id_already_running_is_refused_like_azure_storage(
    host: HostClient,
) -> None:
    instance_id = f"dup-{uuid.uuid4().hex}"
    spec = {"sleep": 30, "timeout": 30}
    r1 = requests.post(f"{host.rpc}orchestrators/timer_then_event/{instance_id}", json=spec)
    assert r1.status_code == 202
    assert r1.json()["id"] == instance_id
    assert r1.headers["Location"] == r1.json()["statusQueryGetUri"]
    # The extension answers 500 with OrchestrationAlreadyExistsException, not 409.
    r2 = requests.post(f"{host.rpc}orchestrators/timer_then_event/{instance_id}", json=spec)
    assert r2.status_code == 500
    assert "already exists" in r2.json()["ExceptionMessage"]
    assert r2.json()["ExceptionType"].endswith("OrchestrationAlreadyExistsException")
    requests.post(f"{host.rpc}instances/{instance_id}/terminate", params={"reason": "done"})


def test_start_of_an_unknown_orchestrator_is_400_and_creates_nothing(host: HostClient) -> None:
    r = requests.post(f"{host.rpc}orchestrators/no_such_thing/x-{uuid.uuid4().hex}", json=None)
    assert r.status_code == 400
    assert "'no_such_thing' doesn't exist" in r.json()["ExceptionMessage"]
    assert host.status(r.url.rsplit("/", 1)[-1]).status_code == 404


def test_start_with_an_invalid_instance_id_is_400(host: HostClient) -> None:
    for bad in ("@entity", "x" * 257):
        r = requests.post(f"{host.rpc}orchestrators/sequence/{bad}", json=["a"])
        assert r.status_code == 400, bad


def test_start_over_a_finished_instance_replaces_it(host: HostClient) -> None:
    instance_id = f"again-{uuid.uuid4().hex}"
    first = requests.post(f"{host.rpc}orchestrators/sequence/{instance_id}", json=["a"]).json()
    host.wait(first["id"])
    r = requests.post(f"{host.rpc}orchestrators/sequence/{instance_id}", json=["b"])
    assert r.status_code == 202
    assert host.wait(instance_id)["output"] == ["hello b"]


def test_status_is_202_while_running_200_when_done_404_when_unknown(host: HostClient) -> None:
    started = host.start("timer_then_event", {"sleep": 30, "timeout": 30})
    running = host.status(started["id"])
    assert running.status_code == 202
    assert running.json()["runtimeStatus"] in ("Pending", "Running")
    assert host.status(f"missing-{uuid.uuid4().hex}").status_code == 404

    r = requests.post(started["terminatePostUri"].replace("{text}", "operator said so"))
    assert r.status_code == 202
    final = host.wait(started["id"])
    assert final["runtimeStatus"] == "Terminated"
    assert final["output"] == "operator said so"
    assert host.status(started["id"]).status_code == 200
    # Terminating or raising an event on an ended instance: 410 Gone.
    assert requests.post(f"{host.rpc}instances/{started['id']}/terminate").status_code == 410
    r = requests.post(f"{host.rpc}instances/{started['id']}/raiseEvent/approve", json="x")
    assert r.status_code == 410


def test_failed_instance_status_is_200_unless_500_is_asked_for(host: HostClient) -> None:
    started = host.start("failing")
    host.wait(started["id"])
    assert host.status(started["id"]).status_code == 200
    r = host.status(started["id"], returnInternalServerErrorOnFailure="true")
    assert r.status_code == 500


def test_raise_event_and_terminate_on_unknown_instance_are_404(host: HostClient) -> None:
    missing = f"missing-{uuid.uuid4().hex}"
    assert requests.post(f"{host.rpc}instances/{missing}/raiseEvent/e", json=1).status_code == 404
    assert requests.post(f"{host.rpc}instances/{missing}/terminate").status_code == 404


def test_raise_event_needs_json_content(host: HostClient) -> None:
    started = host.start("timer_then_event", {"sleep": 30, "timeout": 30})
    r = requests.post(
        f"{host.rpc}instances/{started['id']}/raiseEvent/approve",
        data=b"yes",
        headers={"Content-Type": "text/plain"},
    )
    assert r.status_code == 400
    requests.post(f"{host.rpc}instances/{started['id']}/terminate")


def test_raise_event_with_malformed_json_is_400(host: HostClient) -> None:
    started = host.start("timer_then_event", {"sleep": 30, "timeout": 30})
    r = requests.post(
        f"{host.rpc}instances/{started['id']}/raiseEvent/approve",
        data=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 400
    requests.post(f"{host.rpc}instances/{started['id']}/terminate")


def test_purge_deletes_an_ended_instance_once(host: HostClient) -> None:
    started = host.start("sequence", ["p"])
    host.wait(started["id"])
    r = requests.delete(f"{host.rpc}instances/{started['id']}")
    assert r.status_code == 200 and r.json() == {"instancesDeleted": 1}
    assert requests.delete(f"{host.rpc}instances/{started['id']}").status_code == 404
    assert host.status(started["id"]).status_code == 404


def test_list_instances_filters_by_status_and_prefix(host: HostClient) -> None:
    prefix = f"list-{uuid.uuid4().hex}-"
    for i in range(3):
        requests.post(f"{host.rpc}orchestrators/sequence/{prefix}{i}", json=["l"])
    for i in range(3):
        host.wait(f"{prefix}{i}")
    r = requests.get(
        f"{host.rpc}instances/",
        params={"instanceIdPrefix": prefix, "runtimeStatus": "Completed"},
    )
    assert r.status_code == 200
    assert sorted(i["instanceId"] for i in r.json()) == [f"{prefix}{i}" for i in range(3)]


def test_webhooks_need_the_system_key(host: HostClient) -> None:
    base = f"{host.url}/runtime/webhooks/durabletask/instances/x"
    assert requests.get(base).status_code == 401
    assert requests.get(base, params={"code": host.keys["function"]}).status_code == 401
    r = requests.get(base, params={"code": host.keys["durabletask_extension"]})
    assert r.status_code == 404


def test_signal_entity_without_op_is_400(host: HostClient) -> None:
    assert requests.post(f"{host.rpc}entities/counter/k", json=1).status_code == 400

"""Turning an HTTP request into a validated MoveRequest, or a clear 4xx ApiError."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest

from mover.access import authorize_move
from mover.config import Limits, parse_config
from mover.intake import (
    MAX_BODY_BYTES,
    ApiError,
    MoveBody,
    build_move_request,
    is_retry_of,
    parse_ip,
    parse_move_body,
    parse_request_id,
)
from mover.records import Action, MoveRequest, RequestLimits

from .builders import (
    IP1,
    IP1_CONFIG,
    MEMBERS,
    SUB1,
    caller_for,
    config_dict,
    operator_caller,
    sample_config,
)

NOW = dt.datetime(2025, 6, 1, 12, 0, 0, tzinfo=dt.UTC)


def api_error(call, *args) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call(*args)
    return caught.value


def body(**fields) -> bytes:
    return json.dumps(fields).encode()


# -- parse_ip -----------------------------------------------------------------


def test_ip_is_returned_in_canonical_form():
    assert parse_ip("10.5.0.110") == "10.5.0.110"


@pytest.mark.parametrize(
    "text",
    ["", "abc", "10.5.0", "10.5.0.256", "10.5.0.110/32", " 10.5.0.110", "010.5.0.110", "::1"],
)
def test_malformed_ip_is_a_400(text):
    error = api_error(parse_ip, text)

    assert (error.status, error.code) == (400, "invalid_ip")
    assert error.message == f"{text!r} is not an IPv4 address"


def test_malformed_ip_message_is_cut_to_64_characters():
    error = api_error(parse_ip, "x" * 500)

    assert error.message == f"{'x' * 64!r} is not an IPv4 address"


# -- parse_request_id ---------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["a", "A" * 64, "req-1.2_3:4", "2f1c9a8e-5b7d-4e2a-9c3b-1d0e8f7a6b5c"]
)
def test_valid_request_id_is_returned_unchanged(text):
    assert parse_request_id(text) == text


@pytest.mark.parametrize("text", ["", "A" * 65, "a b", "a/b", "a?b", "ümlaut", "a\nb"])
def test_invalid_request_id_is_a_400(text):
    error = api_error(parse_request_id, text)

    assert (error.status, error.code) == (400, "invalid_request_id")


def test_request_id_with_trailing_newline_is_a_400():
    error = api_error(parse_request_id, "abc\n")

    assert (error.status, error.code) == (400, "invalid_request_id")


# -- parse_move_body: size and shape ------------------------------------------


@pytest.mark.parametrize("raw", [b"", b"   ", b"\r\n\t"])
def test_empty_body_means_all_defaults(raw):
    assert parse_move_body(raw) == MoveBody(None, None, {}, None)


def test_full_body_is_parsed():
    raw = body(
        requestId="req-42",
        deadline="2025-06-01T12:05:00Z",
        context={"event": "FAILOVER", "server": "server01", "group": "g1", "resource": "vip"},
        target="server02",
    )

    parsed = parse_move_body(raw)

    assert parsed.request_id == "req-42"
    assert parsed.deadline == dt.datetime(2025, 6, 1, 12, 5, tzinfo=dt.UTC)
    assert parsed.context == {
        "event": "FAILOVER",
        "server": "server01",
        "group": "g1",
        "resource": "vip",
    }
    assert parsed.target == "server02"


def test_body_of_exactly_16_kib_is_accepted():
    raw = body(requestId="r1")
    raw = raw + b" " * (MAX_BODY_BYTES - len(raw))
    assert len(raw) == 16 * 1024

    assert parse_move_body(raw).request_id == "r1"


def test_body_over_16_kib_is_a_413():
    raw = body(requestId="r1")
    raw = raw + b" " * (MAX_BODY_BYTES + 1 - len(raw))

    error = api_error(parse_move_body, raw)

    assert (error.status, error.code) == (413, "body_too_large")


@pytest.mark.parametrize("raw", [b"{", b"requestId=r1", b"{'requestId': 'r1'}", b"\xff\xfe{}"])
def test_body_that_is_not_json_is_a_400(raw):
    error = api_error(parse_move_body, raw)

    assert (error.status, error.code) == (400, "invalid_json")


@pytest.mark.parametrize("raw", [b"[]", b'"acquire"', b"42", b"null"])
def test_body_that_is_not_an_object_is_a_400(raw):
    error = api_error(parse_move_body, raw)

    assert (error.status, error.code) == (400, "invalid_body")
    assert error.message == "the body must be a JSON object"


def test_unknown_fields_are_refused_and_named():
    error = api_error(parse_move_body, body(requestId="r1", nic="nic-1", reason=True))

    assert (error.status, error.code) == (400, "invalid_body")
    assert error.message == "unknown fields: nic, reason"


# -- parse_move_body: fields --------------------------------------------------


@pytest.mark.parametrize("request_id", [42, ["r1"], {"id": "r1"}, "", "has space", "x" * 65])
def test_bad_request_id_in_body_is_a_400(request_id):
    error = api_error(parse_move_body, body(requestId=request_id))

    assert (error.status, error.code) == (400, "invalid_request_id")


def test_null_fields_mean_absent():
    parsed = parse_move_body(body(requestId=None, deadline=None, context=None, target=None))

    assert parsed == MoveBody()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-06-01T12:05:00Z", dt.datetime(2025, 6, 1, 12, 5, tzinfo=dt.UTC)),
        ("2025-06-01t12:05:00z", dt.datetime(2025, 6, 1, 12, 5, tzinfo=dt.UTC)),
        ("2025-06-01T14:05:00+02:00", dt.datetime(2025, 6, 1, 12, 5, tzinfo=dt.UTC)),
        ("2025-06-01T12:05:00.250Z", dt.datetime(2025, 6, 1, 12, 5, 0, 250000, tzinfo=dt.UTC)),
    ],
)
def test_deadline_is_read_as_utc(text, expected):
    deadline = parse_move_body(body(deadline=text)).deadline

    assert deadline == expected
    assert deadline.utcoffset() == dt.timedelta(0)


@pytest.mark.parametrize("text", ["2025-06-01T12:05:00", "2025-06-01", "tomorrow", "", 1748779500])
def test_deadline_without_zone_or_malformed_is_a_400(text):
    error = api_error(parse_move_body, body(deadline=text))

    assert (error.status, error.code) == (400, "invalid_deadline")


@pytest.mark.parametrize("key", ["event", "server", "group", "resource"])
def test_each_known_context_key_is_accepted(key):
    assert parse_move_body(body(context={key: "value"})).context == {key: "value"}


def test_context_value_of_256_characters_is_accepted():
    assert parse_move_body(body(context={"group": "g" * 256})).context == {"group": "g" * 256}


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"group": "g" * 257}, "context.group must be a string of at most 256 characters"),
        ({"event": 1}, "context.event must be a string of at most 256 characters"),
        ({"event": None}, "context.event must be a string of at most 256 characters"),
        (
            {"node": "server01"},
            "context.node is not one of ['event', 'group', 'resource', 'server']",
        ),
        (["FAILOVER"], "context must be an object"),
        ("FAILOVER", "context must be an object"),
    ],
)
def test_bad_context_is_a_400(context, message):
    error = api_error(parse_move_body, body(context=context))

    assert (error.status, error.code) == (400, "invalid_body")
    assert error.message == message


@pytest.mark.parametrize("target", [1, ["server02"], True])
def test_target_must_be_a_string(target):
    error = api_error(parse_move_body, body(target=target))

    assert (error.status, error.code) == (400, "invalid_body")
    assert error.message == "target must be a member name"


# -- build_move_request -------------------------------------------------------


@pytest.fixture
def config():
    return sample_config()


def build(config, move_body=None, *, action=Action.ACQUIRE, limits=None, caller=None):
    move_body = move_body or MoveBody()
    caller = caller or caller_for("server01")
    grant = authorize_move(config, caller, IP1, move_body.target)
    return build_move_request(
        action, grant, caller, move_body, NOW, limits or config.limits, "generated-id"
    )


def test_request_carries_the_grant_the_caller_and_the_time(config):
    request = build(config, MoveBody(context={"event": "FAILOVER"}), action=Action.RELEASE)

    assert request.action is Action.RELEASE
    assert request.ip == IP1
    assert request.ip_config_name == IP1_CONFIG
    assert request.cluster == "cluster1"
    assert request.subscription_id == SUB1
    assert request.resource_group == "TestGroup1"
    assert request.member == "server01"
    assert request.vm_id == MEMBERS["server01"].vm_id
    assert request.caller_principal == MEMBERS["server01"].principal_id
    assert request.by_operator is False
    assert request.created_at == "2025-06-01T12:00:00.000Z"
    assert request.context == {"event": "FAILOVER"}


def test_request_id_comes_from_the_body_when_given(config):
    assert build(config, MoveBody(request_id="client-7")).request_id == "client-7"


def test_request_id_is_generated_when_the_body_has_none(config):
    assert build(config).request_id == "generated-id"


def test_operator_request_records_the_operator_and_the_target(config):
    request = build(config, MoveBody(target="server02"), caller=operator_caller())

    assert request.member == "server02"
    assert request.vm_id == MEMBERS["server02"].vm_id
    assert request.caller_principal == operator_caller().principal_id
    assert request.by_operator is True


def test_deadline_defaults_to_now_plus_the_default(config):
    limits = Limits(default_deadline_seconds=300, max_deadline_seconds=1800)

    assert build(config, limits=limits).deadline == "2025-06-01T12:05:00.000Z"


def test_deadline_within_the_maximum_is_kept(config):
    deadline = NOW + dt.timedelta(seconds=90, milliseconds=500)

    assert build(config, MoveBody(deadline=deadline)).deadline == "2025-06-01T12:01:30.500Z"


def test_deadline_beyond_the_maximum_is_capped(config):
    limits = Limits(default_deadline_seconds=300, max_deadline_seconds=1800)
    deadline = NOW + dt.timedelta(days=1)

    assert build(config, MoveBody(deadline=deadline), limits=limits).deadline == (
        "2025-06-01T12:30:00.000Z"
    )


def test_deadline_exactly_at_the_maximum_is_kept(config):
    limits = Limits(default_deadline_seconds=60, max_deadline_seconds=600)
    deadline = NOW + dt.timedelta(seconds=600)

    assert build(config, MoveBody(deadline=deadline), limits=limits).deadline == (
        "2025-06-01T12:10:00.000Z"
    )


@pytest.mark.parametrize("seconds_ago", [0, 0.001, 3600])
def test_deadline_already_passed_is_refused(config, seconds_ago):
    deadline = NOW - dt.timedelta(seconds=seconds_ago)

    error = api_error(build, config, MoveBody(deadline=deadline))

    assert (error.status, error.code) == (400, "deadline_passed")
    assert "has already passed" in error.message


def test_deadline_in_another_zone_is_stored_as_utc(config):
    tz = dt.timezone(dt.timedelta(hours=9))
    deadline = dt.datetime(2025, 6, 1, 21, 2, tzinfo=tz)

    assert build(config, MoveBody(deadline=deadline)).deadline == "2025-06-01T12:02:00.000Z"


# -- retries of a POST --------------------------------------------------------


def _earlier(**changes):
    config = sample_config()
    grant = authorize_move(config, caller_for("server01"), IP1, None)
    request = build_move_request(
        Action.ACQUIRE,
        grant,
        caller_for("server01"),
        MoveBody(request_id="req-1"),
        NOW,
        config.limits,
        "unused",
    )
    return dataclasses.replace(request, **changes)


@pytest.mark.parametrize(
    "changes",
    [
        {"deadline": "2025-06-01T12:09:00.000Z"},
        {"created_at": "2025-06-01T12:00:03.000Z"},
        {"context": {"event": "MANUAL"}},
    ],
)
def test_a_retry_may_differ_in_times_and_context(changes):
    grant = authorize_move(sample_config(), caller_for("server01"), IP1, None)
    assert is_retry_of(_earlier(**changes), Action.ACQUIRE, grant, caller_for("server01"))


@pytest.mark.parametrize(
    "changes",
    [
        {"action": Action.RELEASE},
        {"ip": "10.5.0.111"},
        {"member": "server02"},
        {"caller_principal": MEMBERS["server02"].principal_id},
    ],
)
def test_a_different_action_ip_target_or_caller_is_another_request(changes):
    grant = authorize_move(sample_config(), caller_for("server01"), IP1, None)
    assert not is_retry_of(_earlier(**changes), Action.ACQUIRE, grant, caller_for("server01"))


def test_request_carries_the_lock_and_history_limits_of_the_moment_it_was_queued(config):
    limits = Limits(lock_lease_seconds=45.0, lock_poll_seconds=0.5, history_size=7)
    request = build(config, limits=limits)
    # The orchestration's input, as every replay reads it: settings changed
    # later cannot reach a request already queued.
    replayed = MoveRequest.from_dict(json.loads(json.dumps(request.to_dict())))

    assert replayed.limits == RequestLimits(
        lock_lease_seconds=45.0, lock_poll_seconds=0.5, history_size=7
    )
    assert replayed == request


def test_a_request_queued_before_limits_were_carried_gets_the_defaults(config):
    data = build(config).to_dict()
    del data["limits"]

    assert MoveRequest.from_dict(data).limits == RequestLimits()


@pytest.mark.parametrize("value", [1, "true", None, []])
def test_force_must_be_a_boolean(value):
    error = api_error(parse_move_body, body(force=value))
    assert (error.status, error.code) == (400, "invalid_body")


def test_only_an_operator_may_force_a_move(config):
    with pytest.raises(ApiError) as caught:
        build(config, MoveBody(force=True))
    assert (caught.value.status, caught.value.code) == (403, "forbidden")

    request = build(config, MoveBody(force=True, target="server02"), caller=operator_caller())
    assert request.force is True


def test_request_carries_the_clusters_member_vms(config):
    request = build(config)
    cluster = config.clusters[0]
    assert request.member_vm_ids == tuple(m.vm_id for m in cluster.members)
    assert MoveRequest.from_dict(json.loads(json.dumps(request.to_dict()))) == request


def test_request_carries_the_nics_the_configuration_names_for_members():
    raw = config_dict()
    named = raw["clusters"][0]["members"][1]
    named["nicId"] = named["vmResourceId"].replace(
        "Microsoft.Compute/virtualMachines/server02", "Microsoft.Network/networkInterfaces/nic2"
    )
    request = build(parse_config(raw))

    assert request.member_nic_ids == {named["vmResourceId"]: named["nicId"]}
    assert MoveRequest.from_dict(json.loads(json.dumps(request.to_dict()))) == request
    legacy = request.to_dict()
    del legacy["member_nic_ids"]
    assert MoveRequest.from_dict(legacy).member_nic_ids == {}

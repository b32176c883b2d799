"""engine.filters: Docker's `filters=` semantics, shared by every list and prune endpoint."""
from __future__ import annotations

import pytest

from engine.errors import InvalidParameter
from engine.filters import Filters


def test_both_json_forms_parse_alike() -> None:
    assert Filters.parse('{"label": ["a=1"]}').to_dict() == {"label": ["a=1"]}
    assert Filters.parse('{"label": {"a=1": true, "b": false}}').to_dict() == {"label": ["a=1"]}
    assert not Filters.parse("")


@pytest.mark.parametrize("raw", ["notjson", "[1]", '{"a": 1}', "[" * 100_000])
def test_malformed_filters_are_400(raw: str) -> None:
    with pytest.raises(InvalidParameter, match="invalid filter"):
        Filters.parse(raw)


def test_unknown_key_is_refused_by_name() -> None:
    with pytest.raises(InvalidParameter, match="invalid filter 'colour'"):
        Filters({"colour": ["red"]}).validate({"label", "name"})
    Filters({"name": ["x"]}).validate({"label", "name"})


def test_absent_key_matches_everything() -> None:
    f = Filters({"name": []})
    assert "name" not in f and not f
    assert f.exact("name", "x") and f.prefix("id", "abc") and f.search("name", "x") and f.labels("label", {})


def test_value_matchers() -> None:
    f = Filters({"driver": ["local"], "id": ["ab"], "name": ["^we", "[bad"], "net": ["front"]})
    assert f.exact("driver", "local") and not f.exact("driver", "nfs")
    assert f.prefix("id", "abcdef") and not f.prefix("id", "bcd")
    assert f.search("name", "web-1") and not f.search("name", "a-web")  # a bad pattern matches nothing
    assert f.contains("net", "my-frontend") and not f.contains("net", "back")


def test_labels_need_every_key_or_pair() -> None:
    f = Filters({"label": ["a", "b=2"], "label!": ["c"]})
    assert f.labels("label", {"a": "x", "b": "2"})
    assert not f.labels("label", {"a": "x", "b": "3"})
    assert not f.labels("label", None)
    assert f.no_labels("label!", {"a": "1"}) and not f.no_labels("label!", {"c": ""})


def test_boolean_reads_go_bools_and_refuses_the_rest() -> None:
    assert Filters({"dangling": ["true"]}).boolean("dangling", False)
    assert not Filters({"dangling": ["0"]}).boolean("dangling", True)
    assert Filters().boolean("dangling", True)
    with pytest.raises(InvalidParameter, match="invalid filter 'dangling=maybe'"):
        Filters({"dangling": ["maybe"]}).boolean("dangling", False)


def test_times_take_timestamps_and_durations() -> None:
    import time
    now = time.time_ns()
    ago, stamp = Filters({"until": ["1h", "1700000000"]}).times("until")
    assert abs(now - 3600 * 10**9 - ago) < 10**9 and stamp == 1_700_000_000 * 10**9
    with pytest.raises(InvalidParameter, match="invalid filter 'until=soon'"):
        Filters({"until": ["soon"]}).times("until")

"""Fault plans without HTTP: matching, count / skip / probability (seeded), and the defaults of a rule."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from georep.emulator.faults import LRO_ACTIONS, REQUEST_ACTIONS, FaultBook, FaultRule

PATH = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/r/replications/westeurope"
TRIALS = 200
SEED = 42


def fires(book: FaultBook, n: int, method: str = "GET", path: str = PATH) -> list[bool]:
    return [bool(book.take(method, path, REQUEST_ACTIONS)) for _ in range(n)]


def book_with(seed: int = 0, **rule: object) -> FaultBook:
    book = FaultBook(seed)
    book.add(FaultRule.model_validate({"action": "status", **rule}))
    return book


def test_count_limits_how_many_matches_fire() -> None:
    # given count=2; when five matching requests pass; then the first two fire
    assert fires(book_with(count=2), 5) == [True, True, False, False, False]


def test_count_none_fires_forever() -> None:
    assert all(fires(book_with(count=None), 20))


def test_default_rule_fires_once() -> None:
    assert fires(book_with(), 3) == [True, False, False]


def test_skip_lets_matches_through_first() -> None:
    # given skip=2, count=1; then the third match fires, nothing else
    assert fires(book_with(skip=2, count=1), 5) == [False, False, True, False, False]


def test_probability_is_seeded_and_reproducible() -> None:
    # given two books with the same seed and probability 0.5
    first = fires(book_with(SEED, probability=0.5, count=None), TRIALS)
    second = fires(book_with(SEED, probability=0.5, count=None), TRIALS)
    # then they fire on exactly the same requests, about half of them
    assert first == second
    assert 0.35 * TRIALS < sum(first) < 0.65 * TRIALS
    # and another seed gives another pattern
    assert fires(book_with(SEED + 1, probability=0.5, count=None), TRIALS) != first


def test_reseed_restarts_the_random_sequence() -> None:
    book = book_with(SEED, probability=0.5, count=None)
    first = fires(book, 50)
    book.reseed(SEED)
    assert fires(book, 50) == first


def test_probability_extremes() -> None:
    assert not any(fires(book_with(probability=0.0, count=None), 50))
    assert all(fires(book_with(probability=1.0, count=None), 50))


def test_probability_counts_matches_even_when_not_firing() -> None:
    # given probability 0; when it is matched three times; then matched counts 3 and fired 0
    book = book_with(probability=0.0, count=None)
    fires(book, 3)
    (rule,) = book.rules()
    assert (rule.matched, rule.fired) == (3, 0)


def test_method_and_path_filters() -> None:
    # given a DELETE rule on paths matching "replications/west" (case-insensitive regex)
    book = book_with(method="delete", path="Replications/WEST", count=None)
    # then other methods and paths do not match
    assert fires(book, 1, method="GET") == [False]
    assert fires(book, 1, method="DELETE", path=PATH.replace("westeurope", "eastus")) == [False]
    assert fires(book, 1, method="DELETE") == [True]


def test_actions_are_taken_by_their_own_phase() -> None:
    # given an lro_fail rule; then request-time lookups never take it, LRO-time lookups do
    book = FaultBook()
    book.add(FaultRule(action="lro_fail"))
    assert book.take("PUT", PATH, REQUEST_ACTIONS) == []
    assert [r.action for r in book.take("PUT", PATH, LRO_ACTIONS)] == ["lro_fail"]


def test_rules_are_copies_and_can_be_removed() -> None:
    book = FaultBook()
    rule = book.add(FaultRule(action="status", count=None))
    book.rules()[0].fired = 99
    assert book.rules()[0].fired == 0
    assert book.remove(rule.id) is True
    assert book.remove(rule.id) is False
    assert book.rules() == []


@pytest.mark.parametrize(
    ("status", "code", "retry_after"),
    [
        (409, "AnotherOperationInProgress", None),
        (429, "TooManyRequests", 1),
        (500, "InternalServerError", None),
        (503, "ServiceUnavailable", 1),
        (418, "InjectedFault", None),
    ],
)
def test_default_codes_and_retry_after(status: int, code: str, retry_after: int | None) -> None:
    # only 429 and 503 carry Retry-After by default: azure-core retries anything that has it
    rule = FaultRule(action="status", status=status)
    assert (rule.error_code(), rule.effective_retry_after()) == (code, retry_after)
    assert rule.error_message()


def test_explicit_retry_after_wins_and_zero_removes_it() -> None:
    assert FaultRule(action="status", status=409, retry_after=5).effective_retry_after() == 5
    assert FaultRule(action="status", status=503, retry_after=0).effective_retry_after() is None


def test_lro_fail_defaults() -> None:
    rule = FaultRule(action="lro_fail")
    assert rule.error_code() == "ReplicationProvisioningFailed"
    assert "recreate" in rule.error_message()


@pytest.mark.parametrize(
    "bad",
    [
        {"action": "explode"},
        {"action": "status", "path": "("},
        {"action": "status", "status": 200},
        {"action": "status", "x": 1},
    ],
    ids=["action", "regex", "status", "extra"],
)
def test_invalid_rules_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        FaultRule.model_validate(bad)

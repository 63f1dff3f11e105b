"""agent.device.consent: what scripts/mutation found unchecked by tests/unit/test_consent.py.

The limits of a grant's length (1 and 365 days are allowed, nothing beyond), what ``owners()``
returns (the key that verifies commands, when it was added), and that ``show`` reports the
grants in force now, expiring ones included.
"""

from __future__ import annotations

import pytest

from agent.device.consent import DAY_S, MAX_DAYS, ConsentError, ConsentStore, expiry_for
from tests.unit.test_consent import T0, db, new_party, store  # noqa: F401  (fixtures)


@pytest.mark.parametrize("days", [1, MAX_DAYS])
def test_the_limits_of_a_grants_length_are_allowed(days: int) -> None:
    assert expiry_for(days, False, T0) == T0 + days * DAY_S


@pytest.mark.parametrize("days", [0, MAX_DAYS + 1])
def test_beyond_the_limits_is_refused_with_the_allowed_range(days: int) -> None:
    with pytest.raises(ConsentError) as err:
        expiry_for(days, False, T0)
    assert str(err.value) == f"days must be an integer 1..365, got {days!r}"


def test_days_and_until_revoked_together_are_refused() -> None:
    with pytest.raises(ConsentError) as err:
        expiry_for(3, True, T0)
    assert str(err.value) == "give either days or until_revoked, not both"


def test_owners_returns_the_stored_key_and_time(store: ConsentStore) -> None:  # noqa: F811
    pk, rcpt = new_party()
    added = store.add_owner(pk, rcpt, "owner", T0 + 0.5)
    (got,) = store.owners()
    assert got == added
    assert got.public_key == pk and type(got.public_key) is bytes
    assert got.added_at == T0 + 0.5


def test_show_lists_expiring_grants_in_force_now(store: ConsentStore) -> None:  # noqa: F811
    store.grant(["events"], T0 + DAY_S, by="k-a", now=T0)
    store.grant(["clips"], None, by="k-a", now=T0)
    shown = store.show(T0 + 10)["grants"]
    assert [(g["scope"], g["expires_at"]) for g in shown] == [
        ("events", T0 + DAY_S), ("clips", None)]
    assert [g["scope"] for g in store.show(T0 + DAY_S)["grants"]] == ["clips"]

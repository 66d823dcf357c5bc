"""The role table and the policy lifecycle, checked as data."""

from __future__ import annotations

from mitra.access import RULES, Action, Reach
from mitra.models import PolicyStatus, Role
from mitra.policies import TRANSITIONS


def test_every_role_has_a_rule_for_every_action() -> None:
    assert set(RULES) == set(Role)
    for rules in RULES.values():
        assert set(rules) == set(Action)


def test_only_admins_delete_and_only_they_reach_the_whole_tenant() -> None:
    for role, rules in RULES.items():
        assert (rules[Action.DELETE] is Reach.TENANT) == role.is_admin
        assert (Reach.TENANT in rules.values()) == role.is_admin


def test_writes_never_reach_further_than_reads() -> None:
    order = [Reach.NONE, Reach.LINKED, Reach.OWN, Reach.TENANT]
    for rules in RULES.values():
        for action in (Action.CREATE, Action.UPDATE, Action.DELETE):
            if rules[action] is not Reach.NONE:
                assert order.index(rules[action]) <= order.index(rules[Action.READ])


def test_lifecycle_covers_every_status_and_every_status_is_reachable() -> None:
    assert set(TRANSITIONS) == set(PolicyStatus)
    reached = {PolicyStatus.PENDING}
    frontier = [PolicyStatus.PENDING]
    while frontier:
        for target in TRANSITIONS[frontier.pop()]:
            if target not in reached:
                reached.add(target)
                frontier.append(target)
    assert reached == set(PolicyStatus)
    assert TRANSITIONS[PolicyStatus.MATURED] == TRANSITIONS[PolicyStatus.SURRENDERED] == set()
    assert PolicyStatus.ACTIVE in TRANSITIONS[PolicyStatus.LAPSED]  # revival

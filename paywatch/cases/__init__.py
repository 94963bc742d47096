"""Cases, not lines: a run's findings grouped per staff member and root cause.

- `rules`: the "explains" rules (`[cases] explains` in the configuration) and their checks;
- `group`: the pure grouping (findings -> findings with `case_id`, cases);
- `due`: the due date from the payroll calendar.

The GROUP_CASES stage (paywatch/pipeline.py) puts them together with what the warehouse knows
(first seen, status); paywatch/warehouse/cases.py stores and reads the cases.
"""

from __future__ import annotations

from paywatch.cases.due import due_date, next_regular
from paywatch.cases.group import GROUPED_SCHEMA, case_id, group_cases, pay_order
from paywatch.cases.rules import EVERYTHING, Rule, Rules, parse_rules

__all__ = ["EVERYTHING", "GROUPED_SCHEMA", "Rule", "Rules", "case_id", "due_date", "group_cases",
           "known_categories", "next_regular", "pay_order", "parse_rules", "rules_of"]


def known_categories() -> set[str]:
    """Categories a rule may name: those some detector raises, and those the shipped rules
    name (a detector being added may raise them before it is registered here)."""
    from detectors.config import defaults
    from detectors.registry import ALL_DETECTORS

    raised = {c for d in ALL_DETECTORS for c in d.categories}
    return raised | parse_rules(defaults()["cases"]["explains"], where="defaults.toml: [cases] explains").names()


def rules_of(cfg: dict, where: str = "config: [cases] explains") -> Rules:
    """The checked rules of a loaded configuration."""
    return parse_rules(cfg["cases"]["explains"], known_categories(), where)

"""The "explains" rules of root-cause grouping, as data (after sqlfluff's rule configuration).

They live in the `[cases]` section of the configuration: `explains` is a list of lines

    "cause > effect, effect, ..."

each saying which finding categories a finding of category `cause` explains for the same
staff member in the same run (a wrong or duplicated line explains the wage types, totals and
net pay computed from it). `*` as an effect means everything of that staff member in the run
(pay during SLWOP or after separation). A cause may list itself: the same cause written on
several lines (a part-time rate ignored on 1000 and on 3000) is one case. The shipped rules are
in detectors/defaults.toml; an office's paywatch.toml may replace the whole list.

Checked at load (`parse_rules`, one-line `ConfigError`): the `>` form, names written as
categories are (lower case, digits, `_`), each cause once, no effect listed twice, no cycle
between two different categories (which one would be the cause?), and — when `known` is
given — every name a category some detector raises or the shipped rules name.
The order of the lines is the priority: when two causes could explain the same finding,
the one listed first takes it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from detectors.config import ConfigError

EVERYTHING = "*"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Rule:
    """One line of `explains`: a finding of category `cause` explains findings of the
    categories in `effects` (`*`: all) of the same staff member in the same run."""

    cause: str
    effects: frozenset[str]

    def covers(self, category: str) -> bool:
        return EVERYTHING in self.effects or category in self.effects

    def text(self) -> str:
        return f"{self.cause} > {', '.join(sorted(self.effects))}"


@dataclass(frozen=True)
class Rules:
    """The parsed `explains` rules, in priority order."""

    rules: tuple[Rule, ...] = ()
    _by_cause: dict[str, tuple[int, Rule]] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "_by_cause", {r.cause: (i, r) for i, r in enumerate(self.rules)})

    def explains(self, cause: str, effect: str) -> bool:
        """Does a finding of category `cause` explain one of category `effect`?"""
        hit = self._by_cause.get(cause)
        return hit is not None and hit[1].covers(effect)

    def rank(self, category: str) -> int:
        """Priority of a category as a cause (its line; categories without a rule come last)."""
        hit = self._by_cause.get(category)
        return hit[0] if hit is not None else len(self.rules)

    def names(self) -> set[str]:
        """Every category the rules name (causes and effects, `*` left out)."""
        return {r.cause for r in self.rules} | {e for r in self.rules for e in r.effects} - {EVERYTHING}


def parse_rules(lines: Sequence[str], known: Iterable[str] | None = None,
                where: str = "config: [cases] explains") -> Rules:
    """`explains` lines -> Rules; raises ConfigError (one line naming the offending rule)."""
    if isinstance(lines, str) or not isinstance(lines, Sequence):
        raise ConfigError(f"{where} must be a list of \"cause > effect, ...\" strings")
    known_set = set(known) if known is not None else None
    rules: list[Rule] = []
    seen: set[str] = set()
    for line in lines:
        if not isinstance(line, str) or line.count(">") != 1:
            raise ConfigError(f"{where}: {line!r} must read \"cause > effect, effect, ...\"")
        cause, _, rest = (part.strip() for part in line.partition(">"))
        effects = [e.strip() for e in rest.split(",")]
        if not cause or not rest.strip() or any(not e for e in effects):
            raise ConfigError(f"{where}: {line!r} must read \"cause > effect, effect, ...\"")
        names = [cause, *(e for e in effects if e != EVERYTHING)]
        for name in names:
            if not _NAME.match(name):
                raise ConfigError(f"{where}: {line!r}: {name!r} is not a category name")
            if known_set is not None and name not in known_set:
                raise ConfigError(f"{where}: {line!r}: no detector raises the category {name!r}")
        if cause in seen:
            raise ConfigError(f"{where}: {line!r}: the cause {cause!r} has a rule already")
        if len(set(effects)) != len(effects):
            raise ConfigError(f"{where}: {line!r}: an effect is listed twice")
        seen.add(cause)
        rules.append(Rule(cause, frozenset(effects)))
    _refuse_cycles(rules, where)
    return Rules(tuple(rules))


def _refuse_cycles(rules: list[Rule], where: str) -> None:
    """No chain of explicit rules may lead from a category back to itself through another
    (a > b and b > a: which one is the cause?). `*` and a cause listing itself are fine."""
    edges = {r.cause: {e for e in r.effects if e not in (EVERYTHING, r.cause)} for r in rules}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt]
                raise ConfigError(f"{where}: the rules explain in a circle: {' > '.join(cycle)}")
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for r in rules:
        if r.cause not in state:
            visit(r.cause, [r.cause])

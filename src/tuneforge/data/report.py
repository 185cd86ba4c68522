"""Validation reports: every problem with line number, JSON path, what is wrong and how to fix it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["error", "warning"]


def json_type(value: Any) -> str:
    """What kind of JSON value ``value`` is, as a report says it ("got an array")."""
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__
    )


@dataclass(frozen=True)
class Problem:
    severity: Severity
    message: str  # what is wrong; how to fix it
    line: int | None = None  # 1-based line of the file; None for whole-file problems
    path: str | None = None  # JSON path inside the line, e.g. messages[1].role
    source: str | None = None  # file or parameter the problem belongs to

    def __str__(self) -> str:
        where = []
        if self.source and self.line is None and not self.message.startswith(self.source):
            where.append(self.source)
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.path:
            where.append(self.path)
        prefix = ", ".join(where)
        return f"{prefix}: {self.message}" if prefix else self.message

    def to_json(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


LISTED = 100  # problems of each severity a report keeps; past that it counts them (a file of a million bad lines)


@dataclass
class Report:
    source: str = ""
    problems: list[Problem] = field(default_factory=list)
    info: dict = field(default_factory=dict)  # counts, detected format, limits, token figures
    unlisted: dict[str, int] = field(default_factory=dict)  # severity -> problems past the first LISTED

    def error(self, message: str, line: int | None = None, path: str | None = None) -> None:
        self._add(Problem("error", message, line, path, self.source))

    def warning(self, message: str, line: int | None = None, path: str | None = None) -> None:
        self._add(Problem("warning", message, line, path, self.source))

    def _add(self, problem: Problem) -> None:
        if problem.severity in self.unlisted or sum(p.severity == problem.severity for p in self.problems) >= LISTED:
            self.unlisted[problem.severity] = self.unlisted.get(problem.severity, 0) + 1
            return
        self.problems.append(problem)

    def _of(self, severity: Severity) -> list[Problem]:
        found = [p for p in self.problems if p.severity == severity]
        more = self.unlisted.get(severity, 0)
        if more:
            found.append(
                Problem(
                    severity, f"and {more:,} more {severity}(s) like those above, not listed", None, None, self.source
                )
            )
        return found

    def count(self, severity: Severity) -> int:
        """Every problem of ``severity``, listed or not."""
        return sum(p.severity == severity for p in self.problems) + self.unlisted.get(severity, 0)

    @property
    def errors(self) -> list[Problem]:
        return self._of("error")

    @property
    def warnings(self) -> list[Problem]:
        return self._of("warning")

    @property
    def ok(self) -> bool:
        return not self.errors

    def extend(self, other: Report) -> None:
        self.problems.extend(other.problems)
        for severity, more in other.unlisted.items():
            self.unlisted[severity] = self.unlisted.get(severity, 0) + more

    def to_json(self) -> dict:
        return {
            "source": self.source,
            "ok": self.ok,
            "errors": [p.to_json() for p in self.errors],
            "warnings": [p.to_json() for p in self.warnings],
            "info": self.info,
        }

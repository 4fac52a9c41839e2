"""Compile errors and warnings (what edgeroute_diagnostic_t carries).

A module of its own so that errors.py (RouteError holds diagnostics) and
core.py (which reads them from the C ABI) both import it and not each other.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Diagnostic:
    """One compile error or warning. Positions are 1-based (0 = unknown)."""

    severity: str  # "error" or "warning"
    message: str
    route_name: str
    line: int
    column: int
    end_column: int
    excerpt: str
    suggestion: str

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def __str__(self) -> str:
        where = "%s:%d:%d" % (self.route_name or "<route>", self.line,
                              self.column)
        text = "%s: %s: %s" % (where, self.severity, self.message)
        if self.excerpt:
            text += "\n" + self.excerpt
        if self.suggestion:
            text += "\nsuggestion: " + self.suggestion
        return text

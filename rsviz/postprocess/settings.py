"""The dict round trip every post-processing settings dataclass shares (a card stores settings as JSON)."""

from __future__ import annotations

from dataclasses import asdict, fields, is_dataclass
from typing import Any, ClassVar, Mapping, TypeVar

S = TypeVar("S", bound="CardSettings")


class CardSettings:
    """Mixin of the frozen settings dataclasses: ``from_dict`` (missing keys take the defaults) and ``to_dict``."""

    #: What the settings are, for error messages (``"road-graph"``).
    kind: ClassVar[str] = "post-processing"

    @classmethod
    def from_dict(cls: type[S], d: Mapping[str, Any] | None) -> S:
        """Settings from a card's dict; missing keys take the defaults.

        Raises:
            ValueError: A key that is not a setting (the message lists the valid ones).
        """
        assert is_dataclass(cls)
        values = dict(d or {})
        valid = {f.name for f in fields(cls)}
        bad = sorted(set(values) - valid)
        if bad:
            raise ValueError(f"unknown {cls.kind} setting(s) {bad}; valid: {', '.join(sorted(valid))}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (the card layout)."""
        assert is_dataclass(self) and not isinstance(self, type)
        return asdict(self)

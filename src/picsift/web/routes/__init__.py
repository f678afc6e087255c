"""One router per page group; each handler is a few look-ups and a template."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Pager:
    """Which slice of a long list a page shows, and the numbers for its links."""

    page: int
    size: int
    total: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.size

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    def window(self) -> list[int]:
        """Page numbers to link: first, last and a few around the current one."""
        shown = {1, self.pages, *range(max(1, self.page - 3), min(self.pages, self.page + 3) + 1)}
        return sorted(shown)


def pager(page: int, size: int, total: int) -> Pager:
    pages = max(1, -(-total // size))
    return Pager(min(max(1, page), pages), size, total)

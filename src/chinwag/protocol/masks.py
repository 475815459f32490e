"""Nick masks (``*`` any run, ``?`` any one character), as IRC and ``whois`` use them."""

from __future__ import annotations

__all__ = ["wildcard_match"]


def wildcard_match(mask: str, text: str) -> bool:
    """Whether ``text`` is ``mask`` with ``*`` any run and ``?`` any one character.

    Greedy, going back only to the last ``*``: at most len(mask) x len(text) steps,
    whatever the mask (a regular expression's backtracking is not bounded so).
    """
    m = t = 0
    star, mark = -1, 0
    while t < len(text):
        if m < len(mask) and mask[m] in ("?", text[t]):
            m += 1
            t += 1
        elif m < len(mask) and mask[m] == "*":
            star, mark = m, t
            m += 1
        elif star >= 0:
            m, mark = star + 1, mark + 1
            t = mark
        else:
            return False
    return all(c == "*" for c in mask[m:])

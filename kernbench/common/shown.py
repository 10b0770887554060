"""The user's text, shown as it is.

rich reads markup (``[bold]``) and emoji codes (``:cd:``) in the strings it prints, matplotlib
reads mathtext (``$x^2$``) in the strings it draws, and all of TeX under
``rcParams["text.usetex"]``. A hardware name, a kernel's name, its labels and file names, a path,
a swept value or a plot title the user chose is none of these: every place that hands such text
to rich or matplotlib goes through the two helpers below, so that ``mesh8 [HBM3e]``,
``a100-like $2/h`` and ``v2\\x`` come out character for character. (The HTML views use
``html.escape``; JSON needs nothing.)
"""
from __future__ import annotations

__all__ = ["rich_text", "plain_texts"]


def rich_text(text, style: str = ""):
    """``text`` as a rich ``Text``, which rich prints as it is: no markup, no emoji codes, no
    highlighting. ``style`` styles all of it (a ``Table``'s title given as a ``Text`` takes
    none of the table's: pass ``"table.title"``)."""
    from rich.text import Text

    return Text(str(text), style=style)


def plain_texts(*texts):
    """Make matplotlib ``Text`` artists (each argument one, a list of them, or None) draw their
    string as it is: mathtext and TeX off. Returns the first argument, so it wraps a call that
    makes one: ``plain_texts(ax.set_title(name))``."""
    for t in texts:
        for a in (t if isinstance(t, (list, tuple)) else () if t is None else (t,)):
            a.set_parse_math(False)
            a.set_usetex(False)
    return texts[0] if texts else None

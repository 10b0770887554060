"""A dict that refuses changes: tables kernbench checks once (at import) and reads after.

A plain dict with the methods that change it refused, so it is still a dict to everything that
reads one (``json.dumps``, ``dict(...)``, isinstance checks); a copy or a pickle of it is a
plain dict, free to change (a review found ``types.MappingProxyType`` refused by pickle,
``copy.deepcopy`` and ``json``).
"""
from __future__ import annotations

__all__ = ["ReadOnlyDict"]


class ReadOnlyDict(dict):
    """``dict(...)`` whose item assignment, deletion, ``update``, ``pop``, ``popitem``,
    ``setdefault``, ``clear`` and ``|=`` raise TypeError naming the table (``name``)."""

    __slots__ = ("name",)

    def __init__(self, name: str, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.name = name

    def _refuse(self, *_a, **_k):
        raise TypeError(f"{self.name} is read-only: copy it (dict({self.name})) to change it")

    __setitem__ = __delitem__ = update = pop = popitem = setdefault = clear = __ior__ = _refuse

    def __reduce__(self):  # (pickle, copy, deepcopy: a plain dict)
        return (dict, (dict(self),))

    def __copy__(self) -> dict:
        return dict(self)

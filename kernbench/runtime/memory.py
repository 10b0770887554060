"""Device memory: each PE's own space in its cube's memory, and the placement helpers.

An allocation (:class:`DeviceArray`) occupies the same address range in every PE's space, so a
pointer is an int valid on every PE and ``tl.load(q_ptr, ...)`` on each rank reads that rank's own
shard. The per-PE contents differ by placement: sharded over the PEs of a cube, over cubes, over
every PE, replicated, put on one PE, or left empty (unwritten: NaN, int32 -2**31, or zeros
with unwritten="zero"; no data at all in timing mode).

Addresses start at :data:`BASE_ADDR` and each allocation is followed by a guard gap, so a null or
overrunning pointer lands outside every allocation and is reported instead of silently reading
a neighbour. Addresses are never reused: a launch is deterministic in its inputs.
"""
from __future__ import annotations

import bisect
import math
import threading
import warnings
from typing import Any

import numpy as np

from ..common.errors import KernbenchError, pe_label, short_repr, user_stacklevel
from ..common.errors import is_whole as _whole
from ..hw.config import HardwareConfig
from ..language.builder import bytes_text as _bytes_text
from ..language.builder import host_memory, value_budget
from ..language.numerics import cast_value, round_once
from ..language.semantic import FLOAT_DTYPES, MAX_NDIM, NP_DTYPES, STORAGE_DTYPES, dtype_name

__all__ = ["DeviceArray", "DevicePointer", "DeviceMemory", "BASE_ADDR", "ALIGN", "to_numpy", "PlacementError"]

BASE_ADDR = 0x1000_0000  #: first allocation's address; smaller ints are never valid pointers
ALIGN = 4096  #: allocation alignment, and the guard gap after each allocation
MAX_ALLOCATION = 1 << 40  #: bytes per PE of one allocation
#: What never-written device memory holds: NaN (int32: its minimum, -2**31) so that reading it by
#: mistake shows, as NKI's and Pallas's simulators do; or zeros.
UNWRITTEN = ("nan", "zero")
INT32_POISON = -(2 ** 31)


class PlacementError(KernbenchError, ValueError):
    """A placement or read-back request that cannot be honoured (bad axis, PE, size)."""


def _masked_in(x, depth: int = 0) -> bool:
    # a masked array with masked elements, or a list or tuple holding one (np.asarray drops the
    # masks of the arrays in a list too: a review)
    if isinstance(x, np.ma.MaskedArray):
        return bool(np.ma.getmaskarray(x).any())
    if isinstance(x, (list, tuple)) and depth < 64:
        return any(_masked_in(e, depth + 1) for e in x if isinstance(e, (list, tuple, np.ndarray)))
    return False


def to_numpy(x) -> tuple[np.ndarray, str | None]:
    """Anything numpy can convert -> (array, its kernbench dtype or None).

    Accepts numpy arrays, lists, scalars and CPU torch tensors (detached; bf16 goes through f32,
    which is exact) without importing torch."""
    if hasattr(x, "detach") and hasattr(x, "cpu") and hasattr(x, "numpy"):
        try:
            t = x.detach().cpu()
            if "bfloat16" in str(getattr(t, "dtype", "")):
                return np.asarray(t.float().numpy()).astype(NP_DTYPES["bf16"]), "bf16"
            x = t.numpy()
        except Exception as e:  # noqa: BLE001 (an object answering every name: a review)
            raise PlacementError(f"{type(x).__name__} has detach, cpu and numpy, read as a torch "
                                 f"tensor's, and converting it failed ({type(e).__name__}: "
                                 f"{short_repr(str(e))}): pass a numpy array") from None
    _refuse_device(x, "is")
    if _missing(x):
        raise PlacementError("pandas data with missing values (<NA>) in an integer or boolean "
                             "column: they have no value to place (numpy makes them NaN); fill "
                             "them (x.fillna(value)) or pass a float array with NaN where you "
                             "mean it")
    if _masked_in(x):
        # (np.asarray drops the mask: the values under it would be placed without a word)
        raise PlacementError("a masked array with masked elements (or a list holding one): "
                             "placement takes values, and the mask would be dropped (the values "
                             "under it placed as they are); pass x.filled(value) to choose what "
                             "stands there, or x.data")
    try:
        a = np.asarray(x)
    except ValueError as e:  # a ragged nested list: numpy has no array for it
        if not isinstance(x, np.ndarray):
            _refuse_device_in(x)
        raise PlacementError(f"the data is not a rectangular array of numbers ({e})") from None
    if a.dtype.kind == "O" or (a.dtype.kind in "iu" and a.size <= 4096 and not isinstance(x, np.ndarray)):
        # (device arrays or pointers among the elements: `ctx.replicate([k_arr, v_arr])`; a
        # list of pointers is ints, which numpy places as their addresses without a word. A
        # table of pointers is short: a longer list of ints is data, not walked in Python)
        _refuse_device_in(a.ravel() if a.dtype.kind == "O" else x)
    if a.dtype.kind == "c":
        raise PlacementError(f"complex data ({a.dtype}) has no kernbench dtype: pass the real and "
                             f"imaginary parts as two arrays")
    # (only data that was not an array: lists; f16 never reaches 2**63, which numpy 2 would warn
    # of casting it to f16)
    if (not isinstance(x, np.ndarray) and (a.dtype.kind == "O" or (
            a.dtype.kind == "f" and a.dtype.itemsize >= 4 and a.size
            and bool(((np.abs(a) >= 2.0 ** 63) & np.isfinite(a)).any())))
            and _has_huge_int(x)):  # (a list of floats is walked only when it holds one so big)
        # (numpy keeps such ints as objects, or with a float among them rounds every one to a
        # float64: past int64 either way, no integer rule would see them)
        raise PlacementError("the data holds Python ints beyond int64: kernbench stores int32 and "
                             "floats (an int32 array refuses ints past int32, the default f32 "
                             "past 2**24); pass values in range")
    if a.dtype.kind not in "biufV":
        raise PlacementError(f"{a.dtype} data is not numbers: expected a numeric array")
    name = dtype_name(a.dtype) if a.dtype.kind in "fV" else None
    if a.dtype.kind == "V" and name is None:
        if a.dtype.names is None and a.dtype.type.__module__.startswith("ml_dtypes"):
            # (ml_dtypes' other number types, int4 or an fnuz fp8: float32 holds each exactly,
            # and converts by the float rules from there)
            a = a.astype(np.float32)
            return a, None
        # (a structured or raw-bytes dtype is not a number type: its fields skipped every rule)
        raise PlacementError(f"{a.dtype} data is a structured or raw-bytes array, not numbers: pass "
                             f"a field's array (a['name']) or a numeric array")
    if a.dtype.kind == "f" and a.dtype.itemsize > 8:  # (np.longdouble: numpy's casts from it
        # round through float32 or float64, twice)
        raise PlacementError(f"{a.dtype} data: kernbench rounds from float64 at most; convert it "
                             f"first (a.astype(np.float64)), which rounds it once")
    return a, name


def _int_past(x, lo: int, hi: int, _depth: int = 0):
    """The first integer of ``x`` outside ``[lo, hi]``, or None: ``x`` a Python or numpy int
    (bools aside), an integer array, a pandas integer column (a Series, or a DataFrame's
    columns), or lists and tuples of them. What numpy's conversion of a container may turn into
    floats: [np.int64(2**24 + 1), 0.5], a DataFrame of an int and a float column."""
    if isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_)):
        return None if lo <= int(x) <= hi else int(x)
    if isinstance(x, np.ndarray):
        if x.dtype.kind in "iu" and x.size and (int(x.max()) > hi or int(x.min()) < lo):
            return int(x.max()) if int(x.max()) > hi else int(x.min())
        return None
    if _is_pandas(x) and _depth < 32:
        if hasattr(x, "columns"):  # a DataFrame: each column
            return next((f for c in x.columns
                         if (f := _int_past(x[c], lo, hi, _depth + 1)) is not None), None)
        if getattr(getattr(x, "dtype", None), "kind", "") in "iu" and len(x):
            top, bottom = x.max(), x.min()  # (missing values skipped)
            if top is not None and int(top) > hi:
                return int(top)
            if bottom is not None and int(bottom) < lo:
                return int(bottom)
        return None
    if isinstance(x, (list, tuple)) and _depth < 32:
        for v in x:
            far = _int_past(v, lo, hi, _depth + 1)
            if far is not None:
                return far
    return None


def _is_pandas(x) -> bool:
    return type(x).__module__.partition(".")[0] == "pandas"


def _missing(x) -> bool:
    """Whether pandas data ``x`` holds a missing value of a column that has no NaN (pd.NA in a
    nullable integer or boolean column: numpy's conversion makes it a float NaN)."""
    if not _is_pandas(x):
        return False
    cols = [x[c] for c in x.columns] if hasattr(x, "columns") else [x]
    return any(not isinstance(c.dtype, np.dtype) and getattr(c.dtype, "kind", "f") in "iub"
               and bool(c.isna().any()) for c in cols)


def _is_device(x) -> bool:
    return isinstance(x, (DeviceArray, DevicePointer)) or type(x).__name__ == "TensorHandle"


def _refuse_device(x, verb: str) -> None:
    """Refuse device memory (a DeviceArray, a DevicePointer) or a kernel's tensor handle given as
    host data: numpy made an object array of it, and "object data is not numbers" told the user
    nothing of the mix-up (`ctx.put(device_array, data)` read as "write data into it")."""
    if not _is_device(x):
        return
    if type(x).__name__ == "TensorHandle":
        raise PlacementError(f"the data {verb} a TensorHandle (a tensor a kernel traced, not host "
                             f"data): after a functional launch its values are h.data, a numpy "
                             f"array, which placement takes (a timing-mode launch computes none)")
    what = (f"a DeviceArray ({short_repr(x.name)}, already on the device)" if isinstance(x, DeviceArray)
            else "a DevicePointer (a device address, not data: int(p) places it as a number)")
    raise PlacementError(f"the data {verb} {what}: put, shard and replicate allocate a new array "
                         f"from host data (a numpy array, list or CPU tensor), given first; to "
                         f"copy a device array's contents read them back with ctx.gather or "
                         f"ctx.read_all, and a kernel's stores write into an existing one")


def _refuse_device_in(x) -> None:
    """:func:`_refuse_device` of the first device object among the elements of ``x`` (an object
    array, or nested lists and tuples)."""
    todo = [x]
    while todo:
        v = todo.pop()
        if isinstance(v, np.ndarray) and v.dtype.kind == "O":
            todo.extend(v.ravel().tolist()[::-1])
        elif isinstance(v, (list, tuple)):
            todo.extend(reversed(v))
        else:
            _refuse_device(v, "holds")


def _has_huge_int(x) -> bool:
    """Whether nested lists or tuples ``x`` hold a Python int outside int64 (bools aside)."""
    return _int_past(x, -(1 << 63), (1 << 63) - 1) is not None


def _storage_dtype(name) -> str:
    d = dtype_name(name) if name is not None else None
    if d is None or d not in STORAGE_DTYPES:
        raise PlacementError(f"unknown dtype {short_repr(name)}: expected one of {', '.join(STORAGE_DTYPES)}")
    return d


def _pe_text(pe) -> str:
    """A placement's PE: "PE (p, c)", or as given when it is not a pair (a placement read back
    from a file written by hand)."""
    if isinstance(pe, (tuple, list)) and len(pe) == 2:
        try:
            return pe_label(pe)
        except (TypeError, ValueError):
            pass
    return f"PE {short_repr(pe)}"


class DeviceArray:
    """One allocation: ``shape``/``dtype`` per PE at byte address ``addr`` in every PE's space.

    Pass it to ``ctx.launch``: the kernel receives ``addr`` (an int). ``arr + nbytes`` is a
    pointer into it. Read back with :meth:`read`, :meth:`gather` or :meth:`read_all`."""

    __slots__ = ("name", "addr", "shape", "dtype", "itemsize", "numel", "nbytes", "placement",
                 "_memory", "_data", "_written", "_stored", "_writes", "freed", "timed")

    def __init__(self, memory: "DeviceMemory", name: str, addr: int, shape: tuple, dtype: str,
                 placement: dict):
        self._memory = memory
        self.name = name
        self.addr = addr
        self.shape = shape
        self.dtype = dtype
        self.itemsize = NP_DTYPES[dtype].itemsize
        self.numel = math.prod(shape)
        self.nbytes = self.numel * self.itemsize
        self.placement = placement  #: kind (shard/replicate/pe/empty), over, axis, parts, pe
        self._data: dict[int, np.ndarray] = {}  #: global PE -> flat contents (absent: unwritten)
        #: global PE -> what has been written: None = all of it, else a flat bool mask (absent:
        #: nothing). Functional replay reports a load of unwritten elements.
        self._written: dict[int, np.ndarray | None] = {}
        self._stored: set = set()  #: global PEs whose copy a launch has stored to
        #: global PE -> stores made into its copy (DeviceMemory.writable): a failed launch puts
        #: back the copies it made private only when no other thread's launch stored meanwhile
        self._writes: dict[int, int] = {}
        self.freed = False
        #: passed to a timing-mode launch (which computes no values): a read of a copy nothing
        #: has written warns that it is never-written memory, not a result
        self.timed = False

    @property
    def ptr(self) -> "DevicePointer":
        """The array's address as a :class:`DevicePointer`."""
        return DevicePointer(self.addr, self)

    def __int__(self) -> int:
        return self.addr

    # numpy's operators defer to the array's own (``np.array(4) + arr`` was numpy's add of an
    # object array, which let through what ``arr + np.array(4)`` refuses), and numpy's
    # functions refuse it: a device array is an address, not numbers
    __array_ufunc__ = None

    def __add__(self, nbytes: int) -> "DevicePointer":
        """The byte address ``nbytes`` past the array's start: an int (a
        :class:`DevicePointer`, which a load or store checks belongs to its Context)."""
        if not _whole(nbytes):
            raise TypeError(f"{short_repr(self.name)} + {short_repr(nbytes)}: a byte offset is an int")
        return DevicePointer(self.addr + int(nbytes), self)

    __radd__ = __add__

    def __sub__(self, nbytes: int) -> "DevicePointer":
        """The byte address ``nbytes`` before the array's start (a halo's, for a masked access)."""
        if not _whole(nbytes):
            raise TypeError(f"{short_repr(self.name)} - {short_repr(nbytes)}: a byte offset is an int")
        return DevicePointer(self.addr - int(nbytes), self)

    @property
    def has_data(self) -> bool:
        return bool(self._data)

    def placed(self) -> str:
        """How it is placed: 'sharded over pe axis 0', 'replicated', 'on PE (0, 1)' or 'empty'."""
        p = self.placement
        return {"shard": f"sharded over {p.get('over')} axis {p.get('axis')}", "replicate": "replicated",
                "pe": f"on {_pe_text(p.get('pe'))}", "empty": "empty"}[p["kind"]]

    def describe(self) -> str:
        """'f16(128, 64)' plus how it is placed (nothing when empty): for messages."""
        where = "" if self.placement["kind"] == "empty" else " " + self.placed()
        return f"{self.dtype}{tuple(self.shape)}{where}"

    def __repr__(self) -> str:
        return f"DeviceArray({short_repr(self.name)}, addr={self.addr:#x}, {self.describe()})"

    def read(self, pe) -> np.ndarray:
        """A copy of PE ``pe``'s contents ((pe, cube) or a global index), shaped ``self.shape``."""
        return self._memory.read(self, pe)

    def gather(self, **kw) -> np.ndarray:
        """The shards put back together (see DeviceMemory.gather)."""
        return self._memory.gather(self, **kw)

    def read_all(self) -> np.ndarray:
        """Every PE's contents: shape (n_cubes, pes_per_cube, *self.shape)."""
        return self._memory.read_all(self)


class DevicePointer(int):
    """A byte address into device array ``array`` (``arr + nbytes``, ``arr.ptr``): an int in
    every way, which remembers its array so that a load or store in another Context's launch
    is refused (semantic.region) instead of reading what that Context holds at the address.
    Adding or subtracting an int (a numpy integer on the right too) keeps it a DevicePointer;
    the difference of two is a plain int, and so is any other arithmetic (``p * 1``, ``p | 0``,
    ``np.int64(4) + p``). Pickled as a plain int. A launch gives a kernel its arguments' plain
    addresses."""

    def __new__(cls, addr: int, array: "DeviceArray"):
        p = super().__new__(cls, addr)
        p.array = array
        return p

    def __add__(self, other):
        if isinstance(other, np.timedelta64):  # (a numpy signed integer by class; no offset)
            return NotImplemented
        if isinstance(other, np.integer):  # (numpy's own add would make it an np.int64)
            other = int(other)
        r = int.__add__(self, other)
        return r if r is NotImplemented else DevicePointer(r, self.array)

    __radd__ = __add__

    def __sub__(self, other):
        if isinstance(other, np.timedelta64):
            return NotImplemented
        if isinstance(other, np.integer):
            other = int(other)
        r = int.__sub__(self, other)
        if r is NotImplemented or isinstance(other, DevicePointer):
            return r
        return DevicePointer(r, self.array)

    def __copy__(self):
        return self  # (an int: immutable)

    def __deepcopy__(self, memo):
        return self

    def __reduce__(self):
        return (int, (int(self),))


def _warn_timed(arr: DeviceArray, unwritten: str) -> None:
    holds = "zeros" if unwritten == "zero" else "NaN; int32 -2**31"
    warnings.warn(f"{short_repr(arr.name)} was passed to a timing-mode launch (or ctx.trace), which computes no values, and "
                  f"nothing has written the copy read: it reads as never-written memory ({holds}), "
                  f"not a result. Launch with mode='functional' (the default) to compute it",
                  UserWarning, stacklevel=user_stacklevel())


class DeviceMemory:
    """Every allocation of a Context, with the per-PE contents (functional mode).

    Threads may share it: the table of allocations changes and is searched under a lock (a
    review found four threads allocating at once giving two arrays one address)."""

    def __init__(self, hw: HardwareConfig, unwritten: str = "nan"):
        if not isinstance(unwritten, str) or unwritten not in UNWRITTEN:
            raise ValueError(f"unwritten must be one of {UNWRITTEN}, got {short_repr(unwritten)}")
        self.hw = hw
        #: what never-written memory holds: "nan" (floats NaN, int32 -2**31) or "zero"
        self.unwritten = unwritten
        self._arrays: list[DeviceArray] = []  #: live allocations by address
        self._bases: list[int] = []
        #: freed allocations by address (never reused): errors name what a pointer pointed into
        #: (addr, nbytes, name) of each freed allocation, by address: what an error names for a
        #: pointer into one (not the arrays: a review measured 900 B kept a free)
        self._freed: list[tuple] = []
        self._top = BASE_ADDR
        self._count = 0  # allocations made, for default names
        self._last: DeviceArray | None = None  # lookups repeat the same allocation
        self._lock = threading.Lock()

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # -- allocation ------------------------------------------------------------------------
    def allocate(self, shape, dtype, name: str | None = None, placement: dict | None = None) -> DeviceArray:
        """Reserve ``shape``/``dtype`` per PE at a fresh address (no data: unwritten memory)."""
        dims = shape if isinstance(shape, (tuple, list)) else (shape,)
        if not dims or not all(_whole(d) and d >= 1 for d in dims):
            raise PlacementError(f"shape must be a non-empty tuple of positive ints, got {short_repr(shape)}")
        shape = tuple(int(d) for d in dims)
        if len(shape) > MAX_NDIM - 2:  # (read_all adds the cube and PE axes)
            raise PlacementError(f"a device array has at most {MAX_NDIM - 2} axes (read_all adds two, "
                                 f"for {MAX_NDIM}: numpy 1.x's limit, and a kernel's), got {len(shape)}: "
                                 f"reshape it")
        # names are printed raw in reports, tables and Perfetto tracks: text on one line
        if name is not None and not (isinstance(name, str) and name.isprintable()):
            raise PlacementError(f"name must be a str of printable characters (or None: a0, a1, ...), "
                                 f"got {short_repr(name)}")
        dtype = _storage_dtype(dtype)
        nbytes = math.prod(shape) * NP_DTYPES[dtype].itemsize  # Python ints: no wrap-around
        if nbytes > MAX_ALLOCATION:
            raise PlacementError(f"an allocation of {short_repr(shape)} {dtype} is {short_repr(nbytes)} bytes per PE: at most "
                                 f"2**40 bytes (what the engine's byte counters and the address "
                                 f"space represent)")
        with self._lock:
            self._count += 1
            arr = DeviceArray(self, name or f"a{self._count - 1}", self._top, shape,
                              dtype, placement or {"kind": "empty"})
            self._top += (arr.nbytes + ALIGN - 1) // ALIGN * ALIGN + ALIGN
            self._arrays.append(arr)
            self._bases.append(arr.addr)
        return arr

    def free(self, arr: DeviceArray) -> None:
        """Release ``arr``; later pointers into it are out of bounds. Its address is not reused."""
        with self._lock:
            i = self._index(arr)
            del self._arrays[i], self._bases[i]
            # (freed in any order: kept sorted by address, for describe_near)
            bisect.insort(self._freed, (arr.addr, arr.nbytes, arr.name))  # (addresses unique)
            arr.freed = True
            self._last = None
        arr._data.clear()
        arr._written.clear()

    def _index(self, arr: DeviceArray) -> int:
        if not isinstance(arr, DeviceArray):
            raise PlacementError(f"expected a device array of this context, got {type(arr).__name__}")
        i = bisect.bisect_left(self._bases, arr.addr)
        if i >= len(self._arrays) or self._arrays[i] is not arr:
            raise PlacementError(f"{short_repr(arr)} is not a live allocation of this context")
        return i

    def find(self, ptr: int) -> DeviceArray | None:
        """The allocation whose range holds byte address ``ptr``, or None."""
        a = self._last
        if a is not None and a.addr <= ptr < a.addr + a.nbytes:
            return a
        with self._lock:  # (a free in another thread shifts the table)
            i = bisect.bisect_right(self._bases, ptr) - 1
            if i >= 0:
                a = self._arrays[i]
                if ptr < a.addr + a.nbytes:
                    self._last = a
                    return a
        return None

    def near(self, ptr: int) -> tuple:
        """(before, after): the allocations a masked access at ``ptr``, outside every one, may
        belong to (semantic.region picks): the one whose guard gap after it holds ``ptr`` (a
        block past the end, masked off) and the one ``ptr`` lies at most ALIGN bytes before
        (a halo: ``x_ptr - 4`` with the first element masked off); None where there is none."""
        with self._lock:
            i = bisect.bisect_right(self._bases, ptr) - 1
            before = after = None
            if i >= 0 and ptr <= self._arrays[i].addr + self._arrays[i].nbytes + ALIGN:
                before = self._arrays[i]  # (up to 4 KiB past its end, that byte included)
            if i + 1 < len(self._arrays) and self._arrays[i + 1].addr - ptr <= ALIGN:
                after = self._arrays[i + 1]
        return before, after

    def gap_owner(self, alloc: DeviceArray, ptr: int) -> DeviceArray | None:
        """The allocation before ``alloc`` when byte ``ptr`` of ``alloc`` is also at most ALIGN
        bytes past that one's end (its guard gap's end: a block masked off that starts exactly
        4 KiB past it lands on ``alloc``'s first byte); else None."""
        if ptr - alloc.addr > ALIGN:  # (the common case, without the lock)
            return None
        with self._lock:
            i = bisect.bisect_right(self._bases, alloc.addr) - 1
            if i >= 1 and self._arrays[i] is alloc:
                prev = self._arrays[i - 1]
                if ptr <= prev.addr + prev.nbytes + ALIGN:
                    return prev
        return None

    def not_here(self, arr) -> str | None:
        """Why device array ``arr`` (a kernel's pointer, passed as the array itself: inside a
        tuple or an object), or a :class:`DevicePointer` into one, cannot be read here: another
        Context's, or freed; None when it can."""
        if isinstance(arr, DevicePointer):
            if arr.array._memory is self:
                return None  # (freed: the address is outside every allocation, and says so)
            return (f"address {int(arr):#x}, into device array {short_repr(arr.array.name)} of another "
                    f"Context: its address means nothing in this one; expected a device array of "
                    f"this Context (from its put, shard, replicate, empty or empty_like)")
        if not isinstance(arr, DeviceArray):
            return None
        if arr._memory is not self:
            return (f"device array {short_repr(arr.name)} (at {arr.addr:#x}) belongs to another Context: "
                    f"its address means nothing in this one; expected a device array of this "
                    f"Context (from its put, shard, replicate, empty or empty_like)")
        if arr.freed:
            return f"device array {short_repr(arr.name)} (at {arr.addr:#x}) was freed"
        return None

    def used(self, ptr, functional: bool, reached: dict) -> None:
        """A kernel reached device array ``ptr`` (or a DevicePointer into one) as an object, not
        as a launch argument: its timing-read flag follows the launch as an argument's does, and
        it is put in ``reached`` (id -> array: the launch's, TraceStore.reached), for a trace
        that computes no values in either mode (ctx.trace)."""
        arr = ptr.array if isinstance(ptr, DevicePointer) else ptr
        if isinstance(arr, DeviceArray):
            arr.timed = not functional
            reached[id(arr)] = arr

    def describe_near(self, ptr: int) -> str:
        """Which allocation ``ptr`` is closest to, for error messages."""
        with self._lock:
            return self._describe_near(ptr)

    def _describe_near(self, ptr: int) -> str:
        j = bisect.bisect_right(self._freed, ptr, key=lambda f: f[0]) - 1
        if j >= 0 and ptr < self._freed[j][0] + self._freed[j][1]:
            addr, nbytes, name = self._freed[j]
            return f"{ptr - addr} bytes into {short_repr(name)} ({nbytes} bytes at {addr:#x}), which was freed"
        if not self._arrays:
            return "no device memory is allocated"
        i = bisect.bisect_right(self._bases, ptr) - 1
        if i >= 0:
            a = self._arrays[i]
            past = ptr - (a.addr + a.nbytes)
            how = "just past the end" if past == 0 else f"{past} bytes past the end"
            text = f"{how} of {short_repr(a.name)} ({a.nbytes} bytes at {a.addr:#x})"
            p = a.placement
            if p.get("kind") == "shard" and p.get("parts", 1) > 1 and past < a.nbytes * (p["parts"] - 1):
                # (within the whole array's size: a global offset, as Triton kernels index)
                text += (f"; {short_repr(a.name)} is sharded: each PE holds only its own part, "
                         f"{tuple(a.shape)}, at the array's address, so index it with the "
                         f"PE's local offsets, not the whole array's")
            return text
        a = self._arrays[0]
        return f"below the first allocation {short_repr(a.name)} at {a.addr:#x}"

    @property
    def arrays(self) -> tuple:
        return tuple(self._arrays)

    # -- per-PE contents --------------------------------------------------------------------
    def _g(self, pe) -> int:
        try:
            return self.hw.global_pe(pe)
        except ValueError as e:
            raise PlacementError(str(e)) from None

    def _fill(self, arr: DeviceArray):
        """What an element of ``arr`` nothing has written holds (see ``unwritten``)."""
        if self.unwritten == "zero":
            return 0
        return INT32_POISON if NP_DTYPES[arr.dtype].kind == "i" else np.nan

    def _within_budget(self, arr: DeviceArray, copies: int, what: str) -> None:
        """Refuse a read of ``copies`` copies of ``arr`` past :func:`value_budget` at once."""
        if copies * arr.nbytes > value_budget():
            raise PlacementError(
                f"{what} of {short_repr(arr.name)} would return {copies} copies of "
                f"{_bytes_text(arr.nbytes)} ({_bytes_text(copies * arr.nbytes)}): more than an "
                f"eighth of this host's memory ({_bytes_text(value_budget())}); read the PEs one at "
                f"a time (ctx.read(arr, pe))")

    def _fresh(self, arr: DeviceArray) -> np.ndarray:
        """The flat contents of memory nothing has written (see ``unwritten``): one PE's copy
        in host memory. Raises PlacementError for a copy past :func:`value_budget`."""
        if arr.nbytes > value_budget():
            raise PlacementError(
                f"{short_repr(arr.name)} takes {_bytes_text(arr.nbytes)} per PE: its values (what a "
                f"functional launch loads and stores, what a read returns) live in host memory, "
                f"one copy per PE, and a copy may take at most an eighth of this host's memory "
                f"({_bytes_text(value_budget())}); launch with mode='timing', which computes no "
                f"values, or allocate less")
        return np.full(arr.numel, self._fill(arr), NP_DTYPES[arr.dtype])

    def flat(self, arr: DeviceArray, g: int) -> np.ndarray:
        """PE ``g``'s contents, flat (read-only view; unwritten memory as ``unwritten`` says)."""
        d = arr._data.get(g)
        if d is None:
            d = self._fresh(arr)
            d.flags.writeable = False
        return d

    def written(self, arr: DeviceArray, g: int) -> np.ndarray | None:
        """Which of PE ``g``'s elements have been written: None when all, else a flat bool
        array (writable: stores mark what they write)."""
        w = arr._written.get(g, False)
        if w is False:
            with self._lock:  # (two threads storing at once make one mask, not one each)
                w = arr._written.setdefault(g, np.zeros(arr.numel, np.bool_))
        return w

    def writable(self, arr: DeviceArray, g: int) -> np.ndarray:
        """PE ``g``'s contents, flat and private to it (copied from a shared array on first write):
        what a launch's stores write to (functional replay)."""
        # under the lock: two threads storing into one array at once write one copy (each its
        # own, and the last one installed won: a review), and a failed launch's undo counts the
        # stores made meanwhile (replay._Undo) with the copy it would put back
        with self._lock:
            arr._stored.add(g)
            arr.timed = False  # (a functional launch wrote it, through a pointer too: no timing warning)
            arr._writes[g] = arr._writes.get(g, 0) + 1
            d = arr._data.get(g)
            if d is None:
                d = self._fresh(arr)
                arr._data[g] = d
            elif not d.flags.writeable:
                d = d.copy()
                arr._data[g] = d
        return d

    def _set(self, arr: DeviceArray, pes, values: np.ndarray) -> None:
        """Give ``pes`` the same contents (shared read-only until one of them is written)."""
        flat = np.ascontiguousarray(values, dtype=NP_DTYPES[arr.dtype]).reshape(-1)
        if flat.size != arr.numel:
            raise PlacementError(f"{arr.name}: {flat.size} elements for an allocation of {arr.numel}")
        flat = flat.copy()
        flat.flags.writeable = False
        for g in pes:
            arr._data[g] = flat
            arr._written[g] = None

    def read(self, arr: DeviceArray, pe) -> np.ndarray:
        self._check_live(arr)
        return self._read_warned(arr, self._g(pe))

    def _read_warned(self, arr: DeviceArray, g: int) -> np.ndarray:
        if arr.timed and g not in arr._data:
            _warn_timed(arr, self.unwritten)
        return self._read(arr, g)

    def _read(self, arr: DeviceArray, g: int) -> np.ndarray:
        return np.array(self.flat(arr, g)).reshape(arr.shape)

    def read_all(self, arr: DeviceArray) -> np.ndarray:
        self._check_live(arr)
        if arr.timed and len(arr._data) < self.hw.n_pes:  # (it reads every copy)
            _warn_timed(arr, self.unwritten)
        hw = self.hw
        self._within_budget(arr, hw.n_pes, "read_all")
        out = np.empty((hw.n_cubes, hw.pes_per_cube) + arr.shape, NP_DTYPES[arr.dtype])
        out.reshape(-1)[:] = self._fill(arr)
        for g, d in arr._data.items():
            out[g // hw.pes_per_cube, g % hw.pes_per_cube] = d.reshape(arr.shape)
        return out

    def _check_live(self, arr: DeviceArray) -> None:
        if not isinstance(arr, DeviceArray):
            raise PlacementError(f"expected a device array of this context, got {type(arr).__name__}")
        if arr._memory is not self:
            # its address and PE numbering mean nothing here (another machine's, perhaps)
            raise PlacementError(f"{short_repr(arr.name)} belongs to another Context: read it through that one")
        if arr.freed:
            raise PlacementError(f"{short_repr(arr.name)} was freed")

    # -- placement --------------------------------------------------------------------------
    def _prepare(self, x, dtype, parts: int = 1) -> tuple[np.ndarray, str]:
        """``x`` as an array of its storage dtype, for a placement in ``parts`` pieces (a shard's:
        one per PE's copy)."""
        a, inferred = to_numpy(x)
        name = _storage_dtype(dtype) if dtype is not None else (
            inferred if inferred in STORAGE_DTYPES else "f32")
        nbytes = a.size * NP_DTYPES[name].itemsize
        if -(-nbytes // parts) > value_budget() or nbytes > host_memory():
            # (a broadcast view of a scalar is a few bytes to the caller; a PE's copy of it is
            # not: numpy's own MemoryError once, from the conversion below)
            what = "a placement keeps one copy of it" if parts == 1 else \
                f"a shard in {parts} parts keeps {_bytes_text(-(-nbytes // parts))} a PE"
            raise PlacementError(
                f"{a.shape} {name} data takes {_bytes_text(nbytes)}: {what} in host memory, and a "
                f"PE's copy may take at most an eighth of this host's memory "
                f"({_bytes_text(value_budget())}), the whole at most the memory this process may "
                f"take ({_bytes_text(host_memory())}); for the cycles alone allocate it with "
                f"ctx.empty(shape, dtype) and launch with mode='timing'")
        far = None
        if dtype is None and a.dtype.kind in "iu" and a.size and (
                int(a.max()) > 2 ** 24 or int(a.min()) < -2 ** 24):  # (not abs: |-2**63| wraps)
            hi, lo = int(a.max()), int(a.min())
            far = hi if hi >= -lo else lo  # (the value furthest from 0, with its sign)
        elif (dtype is None and a.dtype.kind == "f" and a.dtype.itemsize >= 4  # (f16 never is)
              and not (isinstance(x, np.ndarray) and x.dtype.kind == "f") and a.size
              and bool((np.abs(a) > 2.0 ** 24).any())):
            # a list's ints beside a float: numpy made them float64, but they are ints (a review:
            # [16777217, 0.5] placed as 16777216 without a word); a list of floats is walked only
            # when it holds a value that far
            far = _int_past(x, -2 ** 24, 2 ** 24)
        if far is not None:
            what = a.dtype if a.dtype.kind in "iu" else "integer"
            raise PlacementError(f"{what} data becomes f32 by default, which holds integers exactly "
                                 f"only up to 2**24 in magnitude (this data reaches {far}): "
                                 f"pass dtype='int32' to keep them integers, or dtype='f32' to round")
        if a.ndim == 0:
            a = a.reshape(1)
        # as a kernel's cast: truncate, saturate, NaN -> 0 (bf16 and fp8 arrays are numpy kind "V")
        if name == "int32" and (a.dtype.kind == "f" or inferred in FLOAT_DTYPES):
            return cast_value(a, "int32"), name
        if name == "int32" and a.dtype.kind in "iu" and a.size and (
                int(a.min()) < -2 ** 31 or int(a.max()) > 2 ** 31 - 1):
            raise PlacementError(f"int32 array from {a.dtype} values outside the int32 range "
                                 f"(min {int(a.min())}, max {int(a.max())}): convert them on the host "
                                 f"as you mean them")
        try:
            # as a kernel's cast (docs/language.md): past the dtype's range is inf (NaN in
            # fp8e4m3), without numpy's warning from inside kernbench
            with np.errstate(over="ignore", invalid="ignore"):
                out = round_once(a, name)
        except (TypeError, ValueError) as e:
            raise PlacementError(f"cannot store {a.dtype} data as {name}: {e}") from None
        return out, name

    def _shard_targets(self, over: str, parts: int | None) -> list[list[int]]:
        """Global PEs holding each shard, by shard index."""
        hw = self.hw
        if not isinstance(over, str):  # (a numpy array's == is elementwise: numpy's own error)
            raise PlacementError(f"over must be 'pe', 'cube' or 'all', got {short_repr(over)}")
        if over == "pe":
            n = hw.pes_per_cube if parts is None else parts
            lim, what = hw.pes_per_cube, "PEs per cube"
            targets = lambda i: [c * hw.pes_per_cube + i for c in range(hw.n_cubes)]  # noqa: E731
        elif over == "cube":
            n = hw.n_cubes if parts is None else parts
            lim, what = hw.n_cubes, "cubes"
            targets = lambda i: list(range(i * hw.pes_per_cube, (i + 1) * hw.pes_per_cube))  # noqa: E731
        elif over == "all":
            n = hw.n_pes if parts is None else parts
            lim, what = hw.n_pes, "PEs"
            targets = lambda i: [i]  # noqa: E731
        else:
            raise PlacementError(f"over must be 'pe', 'cube' or 'all', got {short_repr(over)}")
        if not _whole(n) or not 1 <= n <= lim:
            raise PlacementError(f"parts must be an int in 1..{lim} ({what}), got {short_repr(n)}")
        return [targets(i) for i in range(int(n))]

    def shard(self, x, axis: int = 0, over: str = "pe", parts: int | None = None, dtype=None,
              name: str | None = None) -> DeviceArray:
        targets = self._shard_targets(over, parts)
        a, dt = self._prepare(x, dtype, len(targets))
        n = len(targets)
        if not _whole(axis):
            raise PlacementError(f"shard: axis must be an int, got {type(axis).__name__} {short_repr(axis)}")
        if not -a.ndim <= axis < a.ndim:
            raise PlacementError(f"axis {short_repr(axis)} is out of range for an array of shape {a.shape}")
        axis = int(axis) % a.ndim
        if a.shape[axis] % n:
            raise PlacementError(f"cannot shard axis {axis} of length {a.shape[axis]} evenly over "
                               f"{n} {over} shards (shape {a.shape})")
        pieces = np.split(a, n, axis=axis)
        arr = self.allocate(pieces[0].shape, dt, name, {"kind": "shard", "over": over, "axis": axis,
                                                        "parts": n, "global_shape": a.shape})
        for piece, pes in zip(pieces, targets):
            self._set(arr, pes, piece)
        # PEs without a slice hold zeros at the same address (a placement, written)
        rest = sorted(set(range(self.hw.n_pes)) - {g for pes in targets for g in pes})
        if rest:
            self._set(arr, rest, np.zeros_like(pieces[0]))
        return arr

    def replicate(self, x, dtype=None, name: str | None = None) -> DeviceArray:
        a, dt = self._prepare(x, dtype)
        arr = self.allocate(a.shape, dt, name, {"kind": "replicate", "global_shape": a.shape})
        self._set(arr, range(self.hw.n_pes), a)
        return arr

    def put(self, x, pe, dtype=None, name: str | None = None) -> DeviceArray:
        a, dt = self._prepare(x, dtype)
        g = self._g(pe)
        arr = self.allocate(a.shape, dt, name, {"kind": "pe", "pe": self.hw.pe_coords(g)})
        self._set(arr, [g], a)
        # the other PEs hold zeros (written: a placement, not forgotten memory)
        self._set(arr, [h for h in range(self.hw.n_pes) if h != g], np.zeros_like(a))
        return arr

    def empty_like(self, like: DeviceArray, dtype=None, name: str | None = None) -> DeviceArray:
        if not isinstance(like, DeviceArray):
            raise PlacementError(f"empty_like: expected a device array, got {type(like).__name__} "
                                 f"(for a numpy array: ctx.empty(a.shape, a.dtype))")
        self._check_live(like)  # (its placement names this machine's PEs)
        return self.allocate(like.shape, like.dtype if dtype is None else dtype, name,
                             dict(like.placement))

    def gather(self, arr: DeviceArray, over: str | None = None, axis: int | None = None,
               parts: int | None = None, pe: int | None = None, cube: int | None = None) -> np.ndarray:
        """Put shards back together: over "pe" concatenates PEs 0..parts-1 of ``cube`` (default
        0), over "cube" PE ``pe`` (default 0) of cubes 0..parts-1, over "all" global PEs
        0..parts-1, along ``axis``. Defaults come from how the array was placed; a replicated
        array reads back PE (0, 0)'s copy and one put on a PE that PE's (``pe=``, ``cube=``: the
        copy of another PE, the other coordinate defaulting to the default copy's). Read with the defaults, an array of which
        the machine holds several copies (a replicated one, shards over the PEs of every cube,
        one put on a PE: every PE addresses its own) warns (UserWarning) when another copy a
        launch stored to differs from the one read, or holds values where it was never written:
        a launch over several PEs or cubes wrote them (``gather(cube=c)``, ``read_all`` read the
        others)."""
        if over is not None and not isinstance(over, str):  # (as _shard_targets)
            raise PlacementError(f"over must be 'pe', 'cube' or 'all' (or None: as placed), got {short_repr(over)}")
        self._check_live(arr)
        p = arr.placement
        kind = p["kind"]
        chosen = pe is not None or cube is not None
        given_pe, given_cube = pe is not None, cube is not None
        for n, v in (("pe", pe), ("cube", cube)):  # (a pair in pe= read as ((1, 0), 0): a review)
            if v is not None and not _whole(v):
                raise PlacementError(f"gather: {n} must be an int (the PE in its cube with pe=, the "
                                     f"cube with cube=), got {type(v).__name__} {short_repr(v)}")
        home = p["pe"] if kind == "pe" and over is None else (0, 0)  # (put: the copy it was put on)
        pe, cube = (home[0] if pe is None else pe), (home[1] if cube is None else cube)
        if over is None:
            if kind == "shard":
                over, axis = p["over"], p["axis"] if axis is None else axis
                parts = p["parts"] if parts is None else parts
            elif kind in ("replicate", "pe") and (axis is not None or parts is not None):
                # (a review: ignored, the copy returned: they choose how shards are put together)
                what = "replicated (a copy on every PE)" if kind == "replicate" else "put on one PE"
                raise PlacementError(
                    f"gather: {short_repr(arr.name)} is {what}: {'axis=' if axis is not None else 'parts='} "
                    f"chooses how shards are put together, nothing here (read a copy with pe= and "
                    f"cube=, or give over= to put the copies of several PEs together)")
            elif kind == "replicate":
                out = self._read_warned(arr, self._g((pe, cube)))
                if not chosen:
                    self._copies_agree(arr, [[g] for g in range(self.hw.n_pes)], "the copy on PE (0, 0)",
                                       "cube= or pe=")
                return out
            elif kind == "pe":  # (pe=, cube=: another PE's copy, as for a replicated array)
                g = self._g((pe, cube))
                out = self._read_warned(arr, g)
                if not chosen:  # (a launch over several PEs writes each PE's copy: a breaker)
                    self._copies_agree(arr, [[g]] + [[h] for h in range(self.hw.n_pes) if h != g],
                                       f"the copy on {pe_label((pe, cube))}, where it was put",
                                       "pe= and cube=")
                return out
            elif chosen:  # (an empty array: pe= or cube= name the copy, as for a put one)
                if axis is not None or parts is not None:  # (a review: ignored, one copy read)
                    raise PlacementError(
                        f"gather: {short_repr(arr.name)} was allocated without a placement: "
                        f"{'axis=' if axis is not None else 'parts='} chooses how shards are put "
                        f"together, which over= names (gather(arr, over='pe', axis=0)); pe= and "
                        f"cube= alone read one PE's copy")
                return self._read_warned(arr, self._g((pe, cube)))
            else:
                raise PlacementError(f"{short_repr(arr.name)} was allocated without a placement: say how to "
                                     f"gather it, e.g. gather(arr, over='pe', axis=0), or which "
                                     f"PE's copy to read, gather(arr, pe=0, cube=0)")
        axis = 0 if axis is None else axis
        hw = self.hw
        for name, v, top in (("pe", pe, hw.pes_per_cube), ("cube", cube, hw.n_cubes)):
            if not _whole(v) or not 0 <= v < top:
                raise PlacementError(f"gather: {name} must be an int from 0 to {top - 1}, got {short_repr(v)}")
        if parts is not None and (not _whole(parts) or parts < 1):
            raise PlacementError(f"gather: parts must be a positive int, got {short_repr(parts)}")
        if not _whole(axis) or not -len(arr.shape) <= axis < len(arr.shape):
            raise PlacementError(f"gather: axis must be an int from {-len(arr.shape)} to "
                                 f"{len(arr.shape) - 1} (the array has shape {arr.shape}), got {short_repr(axis)}")
        # (Python ints: cube * pes_per_cube in a numpy uint8 wrapped to another cube's PEs)
        pe, cube, axis = int(pe), int(cube), int(axis)
        parts = None if parts is None else int(parts)
        # (the argument an over leaves no choice of is refused, not ignored: pe= of a shard over
        # the PEs of a cube, cube= of one over cubes, either of one over all PEs)
        unused = [n for n, g in (("pe", given_pe), ("cube", given_cube))
                  if g and (over == "all" or (over == "pe") == (n == "pe"))]
        if unused and over in ("pe", "cube", "all"):
            raise PlacementError(f"gather over {short_repr(over)} reads {'every PE of a cube' if over == 'pe' else 'one PE of every cube' if over == 'cube' else 'every PE'}: "
                                 f"{unused[0]}= chooses nothing there"
                                 + ("; cube= chooses the cube" if over == "pe" else
                                    "; pe= chooses the PE" if over == "cube" else ""))
        if over == "pe" and parts is not None and parts > hw.pes_per_cube:
            raise PlacementError(f"gather over 'pe': parts must be an int in 1..{hw.pes_per_cube} "
                                 f"(PEs per cube), got {short_repr(parts)}")
        if over == "cube" and parts is not None and parts > hw.n_cubes:
            raise PlacementError(f"gather over 'cube': parts must be an int in 1..{hw.n_cubes} "
                                 f"(cubes), got {short_repr(parts)}")
        if over == "pe":
            gs = [cube * hw.pes_per_cube + i for i in range(parts or hw.pes_per_cube)]
        elif over == "cube":
            gs = [c * hw.pes_per_cube + pe for c in range(parts or hw.n_cubes)]
        elif over == "all":
            gs = list(range(parts or hw.n_pes))
        else:
            raise PlacementError(f"over must be 'pe', 'cube' or 'all', got {short_repr(over)}")
        if any(g >= hw.n_pes for g in gs):
            raise PlacementError(f"gather over {over} reaches past the machine ({hw.n_pes} PEs)")
        if arr.timed and any(g not in arr._data for g in gs):
            _warn_timed(arr, self.unwritten)
        self._within_budget(arr, len(gs), "gather")
        out = np.concatenate([self.flat(arr, g).reshape(arr.shape) for g in gs], axis=axis)
        if not chosen:
            if over == "pe":  # the same PEs of every cube hold copies
                self._copies_agree(arr, [[c * hw.pes_per_cube + g for g in gs]
                                         for c in range(hw.n_cubes)], "the copy of cube 0", "cube=")
            elif over == "cube":  # every PE of a cube holds its cube's shard
                self._copies_agree(arr, [[g + q for g in gs] for q in range(hw.pes_per_cube)],
                                   "the copies on PE 0 of each cube", "pe=")
        return out

    def _copies_agree(self, arr: DeviceArray, copies: list, read: str, choose: str) -> None:
        """Warn when copy k (global PEs ``copies[k]``, one per shard) differs byte for byte from
        copy 0, the one gather read (``choose``: the gather arguments that read another), where
        a launch stored to copy k and both were written (a
        launch on one cube leaves the other cubes' copies as placed, or unwritten: not copies
        that differ), or holds elements a launch stored to that copy 0 left unwritten."""
        if not arr._stored:
            return

        def elements(g):  # (numel, itemsize) bytes, and which were written (None: all)
            return (self.flat(arr, g).view(np.uint8).reshape(arr.numel, -1),
                    arr._written.get(g, False))

        def mask(w):  # which elements were written, as a bool array
            return np.full(arr.numel, w is None) if w is None or w is False else w

        first = [elements(g) for g in copies[0]]
        for other in copies[1:]:
            differ = missing = False
            for g, (fb, fw) in zip(other, first):
                if g not in arr._stored:
                    continue
                ob, ow = elements(g)
                fm, om = mask(fw), mask(ow)
                # elements a launch stored to in copy k that the copy read does not hold (a
                # review: cube 0 idle, cube 1 storing, gather gave unwritten zeros silently)
                missing = bool((om & ~fm).any())
                both = fm & om
                differ = missing or not np.array_equal(ob[both], fb[both])
                if differ:
                    break
            if differ:
                where = pe_label(self.hw.pe_coords(other[0]))
                what = ("other copies hold values a launch stored where the copy read holds "
                        "none (unwritten)" if missing else "other copies differ")
                warnings.warn(f"gather({short_repr(arr.name)}) read {read}, but {what} (the "
                              f"first at {where}): a launch over several cubes or PEs wrote each; "
                              f"pass {choose} to read another, or read_all() for every one",
                              UserWarning, stacklevel=user_stacklevel())
                return

#: characters of an argument's repr kept in LaunchResult.args and its JSON
ARG_REPR_MAX = 1000


def arg_repr(v: Any) -> Any:
    """A launch argument as LaunchResult.args (and the JSON) shows it: numbers and strings as
    they are (numpy's as the Python numbers and strings they equal); a device array as {name,
    shape, dtype, placement, addr}; a numpy array as {shape, dtype}; anything else as its
    repr, cut to ARG_REPR_MAX characters (or, when that raises, a note naming its type)."""
    if isinstance(v, DeviceArray):
        return {"name": v.name, "shape": list(v.shape), "dtype": v.dtype, "placement": v.placed(),
                "addr": v.addr}
    if isinstance(v, np.ndarray):
        return {"shape": list(v.shape), "dtype": dtype_name(v.dtype) or str(v.dtype)}
    if isinstance(v, DevicePointer):
        return int(v)
    t = type(v)  # (by type: a proxy whose __class__ says int was kept as itself, and its
    # result's JSON failed: a review)
    if t in (int, float, str, bool, type(None)):
        return v
    if issubclass(t, (int, float, str)):  # (an IntEnum member, a str subclass: the value the
        # kernel computes with, by the base type's own conversion: a str-mixin Enum's __str__
        # says 'Color.RED' of "red", a review)
        return next(conv(v) for base, conv in ((int, int.__int__), (float, float.__float__), (str, str.__str__))
                    if issubclass(t, base))
    if issubclass(t, (np.bool_, np.integer, np.str_)) or (
            issubclass(t, np.floating) and v.dtype.itemsize <= 8):  # (a long double has no float)
        return v.item()  # (np.prod(shape) as a size: the number, as JSON's numbers are)
    try:
        r = repr(v)
    except Exception as e:  # (a repr reading a field that raises: the launch is not its to end)
        return f"<{type(v).__name__} object; its repr raised {type(e).__name__}>"
    # (a 10 MB repr was kept whole in the result and its JSON: a review)
    return r if len(r) <= ARG_REPR_MAX else r[:ARG_REPR_MAX - 3] + "..."

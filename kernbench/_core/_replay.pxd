# tl.range tilings read back without expanding them (kernbench/_core/_replay.pyx).
from libc.stdint cimport int64_t, uint8_t
from ._types cimport Command

cdef struct CmdSource:
    # A command array kept as its traced rows and the tilings that rebuild the rest
    # (kernbench.language.store.TiledCommands), read by C without expanding it.
    const Command* literal   # the traced rows, in order
    int64_t n                # rows of the whole array
    int64_t n_seg
    const int64_t* seg       # (n_seg, 4): lo, hi, tile index (-1: traced rows), offset in literal
    const int64_t* tile      # (n_tiles, 7): a, z, lo, R, D, made, offset of its flags in shift
    const uint8_t* shift     # every tiling's (z - a, 3) operand flags, one after the other

# Column indices of CmdSource.seg and CmdSource.tile.
cdef enum:
    SEG_LO = 0
    SEG_HI = 1
    SEG_TILE = 2
    SEG_AT = 3
    SEG_COLS = 4
    T_A = 0
    T_Z = 1
    T_LO = 2
    T_R = 3
    T_D = 4
    T_MADE = 5
    T_SHIFT = 6
    T_COLS = 7

cdef int fill_rows(const CmdSource* s, int64_t x, int64_t y, Command* out) noexcept nogil
cdef const Command* traced_rows(const CmdSource* s, int64_t x, int64_t y) noexcept nogil

cdef class CommandSource:
    cdef CmdSource src
    cdef object _keep        # the arrays src points into

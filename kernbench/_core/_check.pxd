# The program checks' fast path (api._prepare): one pass over the commands, no Python.
from libc.stdint cimport int32_t, int64_t, uint8_t
from ._types cimport Command

# 0 when every command passes every check of api._check_commands and api._check_reads (the
# results' producers and readers are then filled in as those would fill them); 1 at the first
# failure, the arrays then partly written.
cdef int check_program(const Command* cmds, const int64_t* cmd_off, const int64_t* t_off,
                       int64_t n_pes, const uint8_t* op_props, const int32_t* unit_base,
                       int64_t* producer, int64_t* readers, int64_t max_size,
                       double max_volume) noexcept nogil

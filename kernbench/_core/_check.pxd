# The program checks' fast path (api._prepare): one pass over the commands, no Python.
from libc.stdint cimport int32_t, int64_t, uint8_t
from ._types cimport Command, SignalPoll

# check_program on commands x..y only, cmds[0] being command x; g_io: a PE at or before
# command x's, left at the last command's PE.
cdef int check_rows(const Command* cmds, int64_t x, int64_t y, int64_t* g_io,
                    const int64_t* cmd_off, const int64_t* t_off, const uint8_t* op_props,
                    const int32_t* unit_base, uint8_t* made, int32_t* readers,
                    int64_t max_size, double max_volume, SignalPoll* poll) noexcept nogil

# 0 when every command passes every check of api._check_commands and api._check_reads (the
# tensors made and their readers are then filled in as those would fill them); 1 at the first
# failure, the arrays then partly written; ST_INTERRUPTED when a signal handler raised (poll: a
# started signal poll, counting one item per command; signal_poll_raise raises it).
cdef int check_program(const Command* cmds, const int64_t* cmd_off, const int64_t* t_off,
                       int64_t n_pes, const uint8_t* op_props, const int32_t* unit_base,
                       uint8_t* made, int32_t* readers, int64_t max_size,
                       double max_volume, SignalPoll* poll) noexcept nogil

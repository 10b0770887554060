cpdef object kernel_frame(set internal)
cpdef object frame_code(object f)
cpdef object frame_lasti(object f)
cpdef unsigned long this_thread() noexcept

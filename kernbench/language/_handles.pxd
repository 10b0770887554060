cpdef object new_handle(object id, object addr, object shape, object dtype, object nbytes,
                        bint pinned)
cpdef object handle_id(object h)
cpdef object handle_shape(object h)
cpdef object view_of(object h, object shape, object dtype, bint transposed)

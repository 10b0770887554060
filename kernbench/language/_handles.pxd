cpdef object new_handle(object id, object addr, object shape, object dtype, object nbytes,
                        bint pinned)

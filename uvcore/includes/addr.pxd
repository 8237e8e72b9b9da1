# Socket addresses between C and Python (uvcore_addr.h).
from .uv cimport sockaddr

cdef extern from "uvcore_addr.h":
    ctypedef union uvc_addr_t:
        sockaddr sa
    size_t uvc_addr_key_len(const sockaddr* sa) nogil
    object uvc_addr_to_py(const sockaddr* sa)
    int uvc_addr_from_py(object addr, int family, uvc_addr_t* out)

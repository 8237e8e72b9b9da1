# cython: language_level=3
# Temporary stub: replaced by the real loop core.
cdef extern from "uv.h":
    const char* uv_version_string()

def libuv_version():
    return uv_version_string().decode()

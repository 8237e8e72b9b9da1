from ._uvcore import libuv_version

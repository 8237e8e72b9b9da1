import asyncio
from typing import Any, Awaitable, Coroutine, TypeVar

from ._uvcore import libuv_version as libuv_version
from .loop import Loop as Loop

_T = TypeVar("_T")

__version__: str

def new_event_loop() -> Loop: ...
def run(main: Coroutine[Any, Any, _T], *, debug: bool | None = ..., **run_kwargs: Any) -> _T: ...
def install() -> None: ...

class EventLoopPolicy(asyncio.DefaultEventLoopPolicy): ...

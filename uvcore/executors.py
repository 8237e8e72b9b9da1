"""run_in_executor and the default executor of uvcore.Loop."""

import asyncio
import concurrent.futures
import sys
import threading
import warnings


class ExecutorMixin:
    """run_in_executor, set_default_executor, shutdown_default_executor."""

    _default_executor = None
    _executor_shutdown_called = False

    def run_in_executor(self, executor, func, *args):
        """Run func(*args) in executor (the default one if None)."""
        self._check_closed()
        if self.get_debug():
            self._check_callback(func, 'run_in_executor')
        if executor is None:
            if self._executor_shutdown_called:
                raise RuntimeError('Executor shutdown has been called')
            executor = self._default_executor
            if executor is None:
                executor = concurrent.futures.ThreadPoolExecutor(
                    thread_name_prefix='asyncio')
                self._default_executor = executor
        return asyncio.wrap_future(executor.submit(func, *args), loop=self)

    def set_default_executor(self, executor):
        """Use executor (a ThreadPoolExecutor) for run_in_executor(None, ...)."""
        if not isinstance(executor, concurrent.futures.ThreadPoolExecutor):
            if sys.version_info >= (3, 11):
                raise TypeError('executor must be ThreadPoolExecutor')
            # Python 3.10's asyncio still accepted other executors, with a warning.
            warnings.warn('Using the default executor that is not an instance '
                          'of ThreadPoolExecutor is deprecated',
                          DeprecationWarning, 2)
        self._default_executor = executor

    async def shutdown_default_executor(self, timeout=None):
        """Wait for the default executor's threads to finish (at most timeout
        seconds, then warn and leave them)."""
        self._executor_shutdown_called = True
        executor = self._default_executor
        if executor is None:
            return
        done = self.create_future()
        thread = threading.Thread(target=self._join_executor,
                                  args=(executor, done), daemon=True)
        thread.start()
        try:
            await asyncio.wait_for(asyncio.shield(done), timeout)
        except asyncio.TimeoutError:
            warnings.warn(f"The executor did not finishing joining its threads "
                          f"within {timeout} seconds.",
                          RuntimeWarning, stacklevel=2)
            executor.shutdown(wait=False)
        else:
            thread.join()

    def _join_executor(self, executor, done):
        # In a helper thread: a blocking shutdown, then wake the loop.
        try:
            executor.shutdown(wait=True)
        except Exception as exc:
            if not self.is_closed():
                self.call_soon_threadsafe(_set_exception_unless_done, done, exc)
        else:
            if not self.is_closed():
                self.call_soon_threadsafe(_set_result_unless_done, done, None)

    def _shutdown_executor_nowait(self):
        # close(): stop the default executor without waiting for it.
        self._executor_shutdown_called = True
        executor = self._default_executor
        if executor is not None:
            self._default_executor = None
            executor.shutdown(wait=False)


def _set_result_unless_done(fut, result):
    if not fut.done():
        fut.set_result(result)


def _set_exception_unless_done(fut, exc):
    if not fut.done():
        fut.set_exception(exc)

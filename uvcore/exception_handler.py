"""Exception handling for uvcore.Loop: asyncio's contract, message for message."""

import logging
import sys
import traceback

logger = logging.getLogger('asyncio')

_CALLS_HANDLER_IN_CONTEXT = sys.version_info >= (3, 12)


class ExceptionHandlerMixin:
    """get/set_exception_handler, default_exception_handler, call_exception_handler."""

    _exception_handler = None

    def get_exception_handler(self):
        """The current exception handler, or None for the default one."""
        return self._exception_handler

    def set_exception_handler(self, handler):
        """Set handler(loop, context) as the loop's exception handler, or None."""
        if handler is not None and not callable(handler):
            raise TypeError(f'A callable object or None is expected, '
                            f'got {handler!r}')
        self._exception_handler = handler

    def default_exception_handler(self, context):
        """Log the context on the 'asyncio' logger, as asyncio does."""
        message = context.get('message') or 'Unhandled exception in event loop'
        exception = context.get('exception')
        if exception is not None:
            exc_info = (type(exception), exception, exception.__traceback__)
        else:
            exc_info = False
        current = self._current_handle
        if ('source_traceback' not in context and current is not None
                and current._source_traceback):
            context['handle_traceback'] = current._source_traceback
        lines = [message]
        for key in sorted(context):
            if key in ('message', 'exception'):
                continue
            value = context[key]
            if key == 'source_traceback':
                value = ('Object created at (most recent call last):\n'
                         + ''.join(traceback.format_list(value)).rstrip())
            elif key == 'handle_traceback':
                value = ('Handle created at (most recent call last):\n'
                         + ''.join(traceback.format_list(value)).rstrip())
            else:
                value = repr(value)
            lines.append(f'{key}: {value}')
        logger.error('\n'.join(lines), exc_info=exc_info)

    def call_exception_handler(self, context):
        """Pass context to the exception handler; never raises (but for
        SystemExit and KeyboardInterrupt)."""
        handler = self._exception_handler
        if handler is None:
            try:
                self.default_exception_handler(context)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException:
                logger.error('Exception in default exception handler',
                             exc_info=True)
            return
        try:
            ctx = None
            if _CALLS_HANDLER_IN_CONTEXT:
                owner = (context.get('task') or context.get('future')
                         or context.get('handle'))
                get_context = getattr(owner, 'get_context', None)
                if get_context is not None:
                    ctx = get_context()
            if ctx is not None and hasattr(ctx, 'run'):
                ctx.run(handler, self, context)
            else:
                handler(self, context)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            try:
                self.default_exception_handler({
                    'message': 'Unhandled error in exception handler',
                    'exception': exc,
                    'context': context,
                })
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException:
                logger.error('Exception in default exception handler while '
                             'handling an unexpected error in custom exception '
                             'handler', exc_info=True)

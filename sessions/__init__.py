"""Everything that speaks FIX: sessions, codecs, the CLI and the venue simulator."""

import signal
import threading

import quickfix as _quickfix  # noqa: F401  (imported first, here: see below)

# Loading quickfix's extension resets SIGINT to the system default at the C level, while
# Python still believes its own handler is installed: Ctrl-C would then kill a gateway on
# the spot, with no logout, no receipts flushed and no summary. Every module of this
# package that uses quickfix is imported after this file, so putting Python's handler back
# here covers them all. A process that started with SIGINT ignored (a background job) is
# left as it was.
if (
    threading.current_thread() is threading.main_thread()
    and signal.getsignal(signal.SIGINT) is signal.default_int_handler
):
    signal.signal(signal.SIGINT, signal.default_int_handler)

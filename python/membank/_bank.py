"""The MemoryBank class of the original spec, over libmembank's C API."""

from __future__ import annotations   # hints are never evaluated: no typing import

import ctypes
import json
import os
import re      # json imports it already: no cost at import
import threading
import weakref

from . import _lib

TYPE_CHECKING = False    # type checkers take it as true; typing costs ~4 ms at import
if TYPE_CHECKING:
    from typing import Any, Dict, Iterator, Optional, Tuple, Type, Union
    from types import TracebackType
    JSONDict = Dict[str, Any]
    PathLike = Union[str, "os.PathLike[str]"]
    ErrorArg = Union[str, BaseException]

from ._lib import (MB_EINVAL, MB_ENOTFOUND, MB_EPERM, MB_MAX_TEXT_BYTES,
                   MB_MAX_TYPE_BYTES)


# --------------------------------------------------------------- exceptions

class Error(Exception):
    """A failure reported by libmembank.

    .code is the MB_E* code (a negative int; None for a failure found on the
    Python side, such as using a closed bank), .name its symbolic name
    ("MB_EINVAL"), .message the library's message naming the field, key or
    byte (mb_last_error), or mb_strerror() when it gave none.
    """

    def __init__(self, code, name, message):
        super().__init__(code, name, message)
        self.code = code
        self.name = name
        self.message = message

    def __str__(self):
        return "%s: %s" % (self.name, self.message) if self.name else self.message

    def __reduce__(self):
        return (type(self), (self.code, self.name, self.message))


Error.__module__ = "membank"


class InvalidInput(Error, ValueError):
    """MB_EINVAL: bad input (id, JSON, config key or type, option).  Nothing
    was changed.  Also a ValueError."""


class NotFound(Error, KeyError):
    """MB_ENOTFOUND: no such page.  Raised by delete_page(); get_page()
    returns None instead.  Also a KeyError, as for a dict."""

    __str__ = Error.__str__


class BankError(Error):
    """Every other MB_E* code (I/O, corruption, permission, ...), and using a
    closed bank (code None)."""


for _cls in (InvalidInput, NotFound, BankError):
    _cls.__module__ = "membank"


def _exception_for(code, message):
    lib = _lib.load()
    name = lib.mb_errname(code).decode()
    if not message:
        message = lib.mb_strerror(code).decode()
    elif "://" in message:
        message = redact(message)   # the library redacts; twice is cheap
    cls = {MB_EINVAL: InvalidInput, MB_ENOTFOUND: NotFound}.get(code, BankError)
    return cls(code, name, message)


def _invalid(message):
    return InvalidInput(MB_EINVAL, "MB_EINVAL", message)


# ------------------------------------------------------------ conversions

def _text(value, what, allow_none=False):
    """UTF-8 bytes of a str argument, checked before C sees it."""
    if value is None and allow_none:
        return None
    if not isinstance(value, str):
        raise TypeError("%s must be str, not %s" % (what, type(value).__name__))
    if "\0" in value:
        raise _invalid("%s: contains a NUL character" % what)
    try:
        return str.encode(value, "utf-8")  # a str subclass's encode() is not asked
    except UnicodeEncodeError as exc:
        raise _invalid("%s: not encodable as UTF-8 (%s)" % (what, exc.reason)) from None


# One encoder and decoder for every call: json.dumps() with options builds a
# new encoder each time, which costs more than the library call it feeds.
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"),
                           allow_nan=False).encode
_decode = json.JSONDecoder().decode


def _json_object(value, what):
    """Compact UTF-8 JSON text of a dict.  Whatever json refuses inside it
    (a set, a tuple key, NaN, a cycle, nesting deeper than the interpreter's
    recursion limit) is InvalidInput naming `what` and the reason; the
    library refuses nesting deeper than MB_MAX_DEPTH (64) the same way."""
    if not isinstance(value, dict):
        raise TypeError("%s must be a dict, not %s" % (what, type(value).__name__))
    try:
        text = _encode(value)
    except RecursionError:
        raise _invalid("%s: nested too deep (the library takes at most %d levels)"
                       % (what, _lib.MB_MAX_DEPTH)) from None
    except MemoryError:
        raise
    except Exception as exc:  # TypeError, ValueError, or a subclass's own
        raise _invalid("%s: %s" % (what, exc)) from exc
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _invalid("%s: not encodable as UTF-8 (%s)" % (what, exc.reason)) from None


def _clean_text(text, limit):
    """UTF-8 bytes of the str text that the library accepts whatever it
    holds: NUL and lone surrogates escaped, cut at limit bytes on a
    character boundary.  str's own methods, so a subclass cannot interfere."""
    text = str.replace(text, "\0", "\\x00")
    return _truncate_utf8(str.encode(text, "utf-8", "backslashreplace"), limit)


_UNPRINTABLE = "<exception str() failed>"   # as the traceback module says


_type_name = type.__dict__["__name__"].__get__   # not a metaclass's __name__
_type_mro = type.__dict__["__mro__"].__get__


def _exception_type(exc):
    """The name of exc's class for the library (1..128 bytes): the first
    non-empty name along its MRO (a class named "" logs as its base)."""
    for cls in _type_mro(type(exc)):
        name = _type_name(cls)
        if name:
            return _clean_text(name, MB_MAX_TYPE_BYTES)
    return b"BaseException"


_GENERIC_TYPE = b"error"     # log_error(message): the type of a plain message
_CAUSE_DEPTH = 4            # causes described after an exception's own text
_CAUSE_CHARS = 300          # characters kept of each cause's text


def _attr(obj, name):
    """getattr(obj, name, None) that never raises (a property may)."""
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


def _error_code(exc):
    """exc.code when it is a non-empty str (a str Enum member gives its
    value: str.__str__, never the member's own __str__, which for the Notion
    SDK's APIErrorCode reads "APIErrorCode.RateLimited"); else None."""
    code = _attr(exc, "code")
    if isinstance(code, str):
        code = str.__str__(code)
        if code:
            return code
    return None


def _http_status(exc):
    """exc.status or exc.status_code when it is an int (not a bool)."""
    for name in ("status", "status_code"):
        value = _attr(exc, name)
        if isinstance(value, int) and not isinstance(value, bool):
            return int.__int__(value)
    return None


def _plain_text(exc):
    """str(exc) as a plain str; _UNPRINTABLE when __str__ fails."""
    try:
        return str.__str__(str(exc))
    except MemoryError:
        raise
    except Exception:
        return _UNPRINTABLE


def _exception_message(exc, limit):
    """The message logged for exc: "HTTP <status>: " when it carries one,
    str(exc), then its causes, newest first, at most _CAUSE_DEPTH of
    _CAUSE_CHARS characters each ("; caused by T: text" for __cause__,
    "; while handling T: text" for an unsuppressed __context__); cleaned
    and cut at limit bytes as _clean_text."""
    status = _http_status(exc)
    parts = ["HTTP %d: " % status if status is not None else "", _plain_text(exc)]
    seen = {id(exc)}
    for _ in range(_CAUSE_DEPTH):
        cause = _attr(exc, "__cause__")
        how = "caused by"
        if cause is None and not _attr(exc, "__suppress_context__"):
            cause, how = _attr(exc, "__context__"), "while handling"
        if not isinstance(cause, BaseException) or id(cause) in seen:
            break
        seen.add(id(cause))
        text = _plain_text(cause)
        if len(text) > _CAUSE_CHARS:
            text = text[:_CAUSE_CHARS] + "..."
        name = _exception_type(cause).decode("utf-8", "replace")
        parts.append("; %s %s%s" % (how, name, ": " + text if text else ""))
        exc = cause
    return _clean_text("".join(parts), limit)


def _error_text(value, what, limit):
    """log_error/update_sync_status text: an exception's message
    (_exception_message), or a str escaped and cut as _clean_text (never
    refused for what it holds)."""
    if isinstance(value, BaseException):
        return _exception_message(value, limit)
    if not isinstance(value, str):
        raise TypeError("%s must be str or an exception, not %s"
                        % (what, type(value).__name__))
    return _clean_text(value, limit)


def _truncate_utf8(data, limit):
    """At most limit bytes of data, cut at a character boundary."""
    if len(data) <= limit:
        return data
    return data[:limit].decode("utf-8", "ignore").encode("utf-8")


# The C arguments of each mutation, checked as the library would (one
# place for the single calls and the batch's).

def _page_args(page_id, data):
    pid = _text(page_id, "page_id")
    body = _json_object(data, "data")
    return pid, body, len(body)


def _sync_args(status, error):
    err = None if error is None else _error_text(error, "error", MB_MAX_TEXT_BYTES)
    return _text(status, "status"), err


def _log_args(error, message):
    if isinstance(error, BaseException):
        if message is not None:
            raise TypeError("log_error(exception) takes no message")
        code = _error_code(error)
        etype = (_clean_text(code, MB_MAX_TYPE_BYTES) if code is not None
                 else _exception_type(error))
        return etype, _exception_message(error, MB_MAX_TEXT_BYTES)
    if not isinstance(error, str):
        raise TypeError("error must be an exception or a str, not %s"
                        % type(error).__name__)
    if message is None:         # log_error(message): the generic type
        return _GENERIC_TYPE, _clean_text(error, MB_MAX_TEXT_BYTES)
    return (_clean_text(error, MB_MAX_TYPE_BYTES),
            _error_text(message, "message", MB_MAX_TEXT_BYTES))


def _resolve_args(error_type, steps):
    return _text(error_type, "error_type"), _text(steps, "steps")


def _config_args(new_config):
    body = _json_object(new_config, "new_config")
    return body, len(body)


def _durability(value):
    if not isinstance(value, str):
        raise TypeError("durability must be 'full' or 'fast', not %s"
                        % type(value).__name__)
    try:
        return {"full": _lib.MB_DURABILITY_FULL, "fast": _lib.MB_DURABILITY_FAST}[value]
    except KeyError:
        raise _invalid("durability must be 'full' or 'fast', not %r" % value) from None


def _count(value, what, ceiling, floor=1):
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError("%s must be an int, not %s" % (what, type(value).__name__))
    if value < floor or value > ceiling:
        raise _invalid("%s must be %d..%d, not %d" % (what, floor, ceiling, value))
    return value


def _file(value, what):
    """A file option (str or os.PathLike of str) as bytes, or None."""
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError("%s must be str or os.PathLike of str, not %s"
                        % (what, type(value).__name__))
    value = os.fspath(value)
    if not isinstance(value, str):
        raise TypeError("%s must be str or os.PathLike of str" % what)
    if not value:
        raise _invalid("%s: empty" % what)
    return _text(value, what)


def _journal(value):
    """The journal URL as bytes (None: $MEMBANK_JOURNAL, else the bank's
    own).  Only its type is checked here: the library checks the URL and
    names the part that is wrong, without its credentials."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError("journal must be str, not %s" % type(value).__name__)
    if "\0" in value:
        raise _invalid("journal: contains a NUL character")
    return str.encode(value, "utf-8", "surrogateescape")


# "://" and a URL's user, password or token: up to its last "@" (a
# password may hold one; a host or a stream name never does).
_URL_AUTH = re.compile(r"://[^\s'\"]*@")


def redact(text):
    """text with the user, password or token of every URL in it replaced
    by "***", as the membank command prints URLs."""
    return _URL_AUTH.sub("://***@", text)


_JOURNAL_KEYS = ("journal", "journal_creds", "journal_tls_ca", "journal_tls_cert",
                 "journal_tls_key", "journal_replicas", "journal_timeout_ms")


def _options(lib, opts):
    """struct mb_options from the keyword options (already validated).  The
    strings are kept alive by the structure itself (ctypes' _objects)."""
    o = _lib.Options()
    lib.mb_options_init(ctypes.byref(o))
    o.durability = _durability(opts["durability"])
    o.group_shared = bool(opts["group_shared"])
    o.history_limit = opts["history_limit"] or 0
    o.max_json_bytes = opts["max_json_bytes"] or 0
    o.create = bool(opts["create"])
    o.no_auto_checkpoint = not opts.get("auto_checkpoint", True)
    o.journal_url = _journal(opts.get("journal"))
    o.journal_creds = _file(opts.get("journal_creds"), "journal_creds")
    o.journal_tls_ca = _file(opts.get("journal_tls_ca"), "journal_tls_ca")
    o.journal_tls_cert = _file(opts.get("journal_tls_cert"), "journal_tls_cert")
    o.journal_tls_key = _file(opts.get("journal_tls_key"), "journal_tls_key")
    o.journal_replicas = opts.get("journal_replicas") or 0
    o.journal_timeout_ms = opts.get("journal_timeout_ms") or 0
    return o


def _default_path():
    """The C library's default bank directory: $MEMBANK_DIR, else ./memory-bank."""
    return os.environ.get("MEMBANK_DIR") or "./memory-bank"


_getpid = os.getpid
_get_ident = threading.get_ident

# Every open MemoryBank of this process, so that a forked child can reset
# their locks (a thread may have held one at fork time) and restore() can
# refuse a bank this process holds open.
_instances = weakref.WeakSet()


# libmembank holds a process-wide mutex (its registry of LMDB environments)
# while a bank opens or closes.  A fork() during that leaves the child's copy
# locked forever, so every open, close and restore of this module runs under
# _fork_guard, and fork() waits for it (os.register_at_fork).  Reentrant: a
# garbage-collected MemoryBank may close inside another's open.
_fork_guard = threading.RLock()


def _before_fork():
    _fork_guard.acquire()


def _after_fork_in_parent():
    _fork_guard.release()


def _after_fork_in_child():
    global _fork_guard
    _fork_guard = threading.RLock()
    for bank in list(_instances):
        bank._new_locks()   # the parent's threads and their calls are not here


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                        after_in_child=_after_fork_in_child)


# --------------------------------------------------------------- the class

class MemoryBank:
    """The Memory Bank of the original Push Notion integration, shared by
    every process and thread that opens the same directory.

    MemoryBank(path=None, *, durability='full', group_shared=False,
               history_limit=None, max_json_bytes=None, create=True,
               auto_checkpoint=True, journal=None, journal_creds=None,
               journal_tls_ca=None, journal_tls_cert=None, journal_tls_key=None,
               journal_replicas=None, journal_timeout_ms=None)

    auto_checkpoint: writes through this object keep the four JSON files
    current by themselves (README "Automatic checkpoints"); False leaves
    that to `membank compactor` or snapshot().

    journal: the bank's journal on a NATS JetStream cluster, shared by the
    banks of every machine bound to it (docs/cluster.md):
    "nats://[user:pass@|token@]host:port[,host:port...]/STREAM" or
    "tls://...".  None: $MEMBANK_JOURNAL, else the URL the bank recorded
    at creation, else the local journal; "" the local journal.  A bank is
    bound to one journal for life.  journal_creds: a NATS credentials file
    (None: $MEMBANK_JOURNAL_CREDS); journal_tls_ca, journal_tls_cert,
    journal_tls_key: files for tls://; journal_replicas (1..5): the
    stream's replicas when this open creates it; journal_timeout_ms
    (100..3600000, default 15000): how long an open or a write waits for a
    cluster that does not answer (then BankError, code MB_EUNAVAIL).
    Credentials never appear in a message, in options or in repr().
    libnats cannot be used across fork(): a process forked after this one
    used the cluster cannot open such a bank (BankError, MB_EPERM, saying
    so); start workers with multiprocessing's "spawn" or "forkserver"
    context (pickling carries the options, credentials included).
    Reads serve this machine's cache: catch_up(), or fresh=True on a read,
    first applies what the stream holds; cluster_status() says how stale.

    path defaults to $MEMBANK_DIR, else ./memory-bank (as the C library);
    it is made absolute when the bank opens, so a later chdir() or a child
    process reopens the same bank.

    Concurrency: one object may be shared by threads.  After fork() the
    child's copy notices that os.getpid() changed and transparently opens the
    bank again on its first call (the parent's handle is only released, never
    used).  Pickling (multiprocessing's spawn and forkserver) carries the path
    and options; unpickling opens the bank in the receiving process.
    """

    def __init__(self, path: Optional[PathLike] = None, *, durability: str = "full",
                 group_shared: bool = False, history_limit: Optional[int] = None,
                 max_json_bytes: Optional[int] = None, create: bool = True,
                 auto_checkpoint: bool = True, journal: Optional[str] = None,
                 journal_creds: Optional[PathLike] = None,
                 journal_tls_ca: Optional[PathLike] = None,
                 journal_tls_cert: Optional[PathLike] = None,
                 journal_tls_key: Optional[PathLike] = None,
                 journal_replicas: Optional[int] = None,
                 journal_timeout_ms: Optional[int] = None) -> None:
        if path is None:
            path = _default_path()
        path = os.fspath(path)
        if not isinstance(path, str):
            raise TypeError("path must be str or os.PathLike of str")
        _durability(durability)
        self._opts = {
            "durability": durability,
            "group_shared": bool(group_shared),
            "history_limit": _count(history_limit, "history_limit", _lib.MB_MAX_HISTORY),
            "max_json_bytes": _count(max_json_bytes, "max_json_bytes",
                                     _lib.MB_MAX_JSON_BYTES, _lib.MB_MIN_JSON_BYTES),
            "create": bool(create),
            "auto_checkpoint": bool(auto_checkpoint),
            "journal": journal,
            "journal_creds": journal_creds,
            "journal_tls_ca": journal_tls_ca,
            "journal_tls_cert": journal_tls_cert,
            "journal_tls_key": journal_tls_key,
            "journal_replicas": _count(journal_replicas, "journal_replicas",
                                       _lib.MB_MAX_REPLICAS),
            "journal_timeout_ms": _count(journal_timeout_ms, "journal_timeout_ms",
                                         _lib.MB_MAX_JOURNAL_TIMEOUT_MS,
                                         _lib.MB_MIN_JOURNAL_TIMEOUT_MS),
        }
        _journal(journal)   # its type, before anything opens
        for key in _JOURNAL_KEYS[1:5]:
            _file(self._opts[key], key)
        self._path = os.path.abspath(path)
        self._handle = None
        self._opening = None            # see _open
        self._closed = False            # close() was called: no new calls
        self._close_on_last = False     # close() gave up waiting: see _leave
        self._pid = None
        self._new_locks()
        self._lib = _lib.load()
        _instances.add(self)            # before the handle exists: see fork
        self._open()

    def _new_locks(self):
        # _inflight maps a token per call in flight to its thread's ident.
        # A token (not a counter) so that leaving is idempotent: an exception
        # a signal handler raises at any point of _call, even before the
        # call was counted, cannot leave it counted (close() would wait for
        # it).  An RLock so that a signal handler may call close() while its
        # thread is inside _call.
        self._lock = threading.RLock()
        self._idle = threading.Condition(self._lock)   # notified when closing
        self._inflight = {}
        # The open Batch objects, aborted when the handle closes (the C batch
        # points to the handle).  A forked child starts with none: the
        # parent's are refused there (Batch._enter) and never freed.
        self._batches = set()

    # ---------------------------------------------------------- lifecycle

    def _open(self):
        lib = self._lib
        opts = _options(lib, self._opts)
        path = _text(self._path, "path")
        # mb_open() writes the handle into self._opening, so that it is
        # reachable from self (and closed by _close_handle) from the instant
        # it exists, whatever a signal handler raises after.
        self._opening = box = ctypes.c_void_p()
        with _fork_guard:
            rc = lib.mb_open(path, ctypes.byref(opts), ctypes.byref(box))
            msg = lib.mb_last_error(None) if rc else b""
        if rc:
            raise _exception_for(rc, msg.decode("utf-8", "replace"))
        self._handle = box.value
        self._opening = None
        self._pid = os.getpid()

    def _reopen_or_fail(self):
        """Under _lock: the slow path of _call (closed, or a forked child)."""
        if self._closed:
            raise BankError(None, None, "the bank is closed")
        if self._pid != os.getpid():
            # A forked child: the inherited handle may only be closed (that
            # frees its memory without touching the parent's files).
            self._close_handle()
            self._open()  # on failure the next call tries again
        return self._handle

    def _close_handle(self):
        """Under _lock: mb_close() the handle, taken out of self first (an
        exception in between leaks it rather than leaving it dangling)."""
        handle, self._handle = self._handle, None
        box, self._opening = self._opening, None
        if handle is None and box is not None:   # _open interrupted
            handle = box.value
        if handle is None:
            return 0
        batches, self._batches = self._batches, set()
        for batch in batches:
            batch._drop("the bank was closed before its end")
        with _fork_guard:
            return self._lib.mb_close(handle)

    def _call(self, fn, *args):
        """fn(handle, *args); an MB_E* code becomes an exception.

        The call is in _inflight while it runs, so close() never frees the
        handle under it.  Every step that may run a signal handler (a call)
        comes after the token is stored or inside the try, so whatever a
        handler raises, the finally removes what was stored.
        """
        lock = self._lock
        token = object()
        try:
            with lock:
                self._inflight[token] = _get_ident()
                if self._handle is None or self._closed or self._pid != _getpid():
                    self._reopen_or_fail()
                handle = self._handle
            rc = fn(handle, *args)
            if rc < 0:
                # thread-local in C: read it on this thread, before leaving
                msg = self._lib.mb_last_error(handle)
                raise _exception_for(rc, msg.decode("utf-8", "replace"))
            return rc
        finally:
            with lock:
                if self._inflight.pop(token, None) is not None and self._closed:
                    self._leave()

    def _leave(self):
        """Under _lock, a call of a closed bank ending: wake close(), or be
        the last call of a close() that stopped waiting and close the handle
        (its final-sync error has nobody to go to)."""
        if self._close_on_last and not self._inflight:
            self._close_on_last = False
            self._close_handle()
            _instances.discard(self)
        self._idle.notify_all()

    def _call_json(self, fn, *args):
        """fn(handle, *args, &out) returning a JSON document, as a dict."""
        out = ctypes.POINTER(ctypes.c_char)()
        try:  # out is freed whatever interrupts this (mb_free(NULL) is a no-op)
            self._call(fn, *args, ctypes.byref(out))
            return _decode(ctypes.string_at(out).decode("utf-8"))
        finally:
            self._lib.mb_free(out)

    #: close()'s default bound on waiting for calls in flight, seconds.
    close_timeout: float = 10.0

    def close(self, timeout: Optional[float] = None) -> None:
        """Close the bank.  Closing twice is allowed.  New calls raise
        BankError at once.  Calls other threads have in flight are waited
        for, at most timeout seconds (None: close_timeout); if some are still
        running then, close() returns and the last of them closes the handle
        as it ends.  BankError when the final sync failed."""
        if timeout is None:
            timeout = self.close_timeout
        me = _get_ident()

        def only_mine():  # a call of this thread cannot end while it waits
            return all(t == me for t in self._inflight.values())

        with self._lock:
            self._closed = True
            if self._pid == os.getpid() and not only_mine():
                self._idle.wait_for(only_mine, timeout)
            if self._inflight and self._pid == os.getpid():
                self._close_on_last = True      # _leave() closes
                return
            rc = self._close_handle()
        _instances.discard(self)
        if rc:
            raise _exception_for(rc, "")

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def path(self) -> str:
        """The bank directory (absolute)."""
        return self._path

    @property
    def options(self) -> Dict[str, Any]:
        """The keyword options the bank was opened with.  history_limit None
        means the bank's own (fixed when it was created: another value for
        an existing bank raises InvalidInput naming both).  The journal URL
        is given without its credentials ("nats://***@host:port/S")."""
        opts = dict(self._opts)
        if isinstance(opts["journal"], str):
            opts["journal"] = redact(opts["journal"])
        return opts

    def __enter__(self) -> MemoryBank:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self):
        try:
            if self.__dict__.get("_handle") or self.__dict__.get("_opening"):
                self._close_handle()   # no call can be in flight: they hold self
        except Exception:  # interpreter shutdown: the library may be gone
            pass

    def __reduce__(self):
        opts = dict(self._opts)
        opts["create"] = False
        return (_reopen, (self._path, opts))

    def __repr__(self):
        state = "closed" if self._closed else "open"
        return "<membank.MemoryBank %r %s>" % (self._path, state)

    def batch(self) -> Batch:
        """A batch of mutations, for a with-block:

            with bank.batch() as b:
                b.update_page("a", {...})
                b.delete_page("b")

        Its methods are the bank's mutations (update_page, merge_page,
        delete_page, update_sync_status, log_error, resolve_error,
        update_config), each checked at once and raising as the bank's own
        would (the batch is unchanged then).  The end of the block applies
        them all, in order, as one journal record and one transaction: all
        or none, seen by every process at the same instant, for the cost of
        one write.  An exception leaving the block applies none of them
        (and goes on).  A failed commit raises and applies none: NotFound
        for a delete of a page that is absent at its point of the batch,
        the message naming the operation.  See Batch."""
        return Batch(self)

    def journal_last_seq(self) -> int:
        """The sequence number of the last journal record (one per write,
        one per batch)."""
        seq = ctypes.c_uint64()
        self._call(self._lib.mb_journal_last_seq, ctypes.byref(seq))
        return seq.value

    # ------------------------------------------------------------ cluster

    def _lazy(self, name):
        fn = self._lib.lazy(name)
        if fn is None:
            raise BankError(None, None, "%s: not in %s (an older build)"
                            % (name, self._lib.path))
        return fn

    def catch_up(self) -> None:
        """Apply every record the bank's stream holds up to its last seq at
        the call (other machines' writes), so that the reads that follow see
        them; every read method also takes fresh=True for this.  Without it a
        read sees what this machine applied: its own writes at once, other
        machines' within the follow delay (docs/cluster.md).  A bank with a
        local journal: nothing to do.  BankError with code MB_EUNAVAIL when
        the cluster did not answer within journal_timeout_ms (the local
        state is unchanged and still readable)."""
        self._call(self._lazy("mb_catch_up"))

    def _fresh(self, fresh):
        if fresh:
            self.catch_up()

    def cluster_status(self) -> Dict[str, Any]:
        """The bank's stream as the cluster reports it and this machine's
        place in it, as `membank cluster status` prints it: {"url" (without
        credentials), "stream", "reachable", "error" (None when reachable),
        "replicas", "leader" (None when unknown), "first_seq", "last_seq",
        "applied_seq", "lag_records", "since_contact_ms" (None: never),
        "checkpoint_seq" (what the newest checkpoint kept in the cluster
        covers, whichever machine put it; None: the cluster keeps none, or
        it did not answer), "foreign_skipped", "diverged"}.  An unreachable
        cluster is not an exception: reachable is False and the figures
        are the last seen.  InvalidInput for a bank with a local journal."""
        info = _lib.ClusterInfo()
        self._call(self._lazy("mb_cluster_status"), ctypes.byref(info))

        def text(raw):
            return raw.decode("utf-8", "replace")
        return {
            "url": redact(text(info.url)),
            "stream": text(info.stream),
            "reachable": bool(info.reachable),
            "error": None if info.reachable else text(info.error),
            "replicas": info.replicas,
            "leader": text(info.leader) or None,
            "first_seq": info.first_seq,
            "last_seq": info.last_seq,
            "applied_seq": info.applied_seq,
            "lag_records": info.lag_records,
            "since_contact_ms": None if info.since_contact_ms < 0 else info.since_contact_ms,
            "checkpoint_seq": info.checkpoint_seq or None,
            "foreign_skipped": info.foreign_skipped,
            "diverged": bool(info.diverged),
        }

    # -------------------------------------------------------------- pages

    def update_page(self, page_id: str, data: JSONDict) -> None:
        """Replace the properties of page_id with the dict data (the page is
        created when absent).  Sets its last_updated."""
        self._call(self._lib.mb_page_put, *_page_args(page_id, data))

    def merge_page(self, page_id: str, data: JSONDict) -> None:
        """Shallow-merge the dict data into page_id's properties: each key
        replaces the stored one, a None value removes the key.  One atomic
        read-modify-write: processes merging different keys all win."""
        self._call(self._lib.mb_page_merge, *_page_args(page_id, data))

    def get_page(self, page_id: str, *, fresh: bool = False) -> Optional[JSONDict]:
        """{"properties": {...}, "last_updated": "..."}, or None when the
        page is absent (or expired by cache_settings.ttl_seconds).
        fresh=True: catch_up() first (a journal on a cluster)."""
        pid = _text(page_id, "page_id")
        self._fresh(fresh)
        out = ctypes.POINTER(ctypes.c_char)()
        size = ctypes.c_size_t()
        try:  # out is freed whatever interrupts this (mb_free(NULL) is a no-op)
            try:
                self._call(self._lib.mb_page_get, pid, ctypes.byref(out),
                           ctypes.byref(size))
            except NotFound:
                return None
            return _decode(out[:size.value].decode("utf-8"))
        finally:
            self._lib.mb_free(out)

    def delete_page(self, page_id: str) -> None:
        """Delete page_id; NotFound when it is absent."""
        self._call(self._lib.mb_page_delete, _text(page_id, "page_id"))

    def page_count(self, *, fresh: bool = False) -> int:
        """The number of pages stored (metadata.total_pages).  fresh=True:
        catch_up() first."""
        self._fresh(fresh)
        n = ctypes.c_uint64()
        self._call(self._lib.mb_page_count, ctypes.byref(n))
        return n.value

    def _iterate(self, after, flags, batch):
        """Batches of (id, page JSON or None) in id order.  Each batch is one
        consistent read snapshot; the walk as a whole is not.

        mb_page_iterate() calls back into Python for every page, and an
        exception that escapes a ctypes callback is only printed: the walk
        went on, or ended as if complete, with the C function returning
        garbage.  A signal handler (Ctrl-C, an alarm) runs in the main thread
        at the callback's first instruction, before any try could catch it.
        So the main thread's batches run in a helper thread (_Walk), where
        no signal handler ever runs; the main thread waits for it, and
        whatever a handler raises there, or the callback caught, is raised
        here.  Other threads never run signal handlers: they walk inline.
        """
        after = _text(after, "after", allow_none=True)
        while True:
            walk = _Walk(self, after, flags, batch)
            items = walk.run()
            if items:
                yield items
            if walk.rc != _Walk.FULL or not items:
                return
            after = items[-1][0]

    def page_ids(self, after: Optional[str] = None) -> Iterator[str]:
        """An iterator over the page ids in order, starting after `after`."""
        for items in self._iterate(after, _lib.MB_ITER_IDS, 1024):
            for pid, _ in items:
                yield pid.decode("utf-8")

    def iter_pages(self, after: Optional[str] = None) -> Iterator[Tuple[str, JSONDict]]:
        """An iterator of (page_id, page) in id order, page as get_page()."""
        for items in self._iterate(after, 0, 256):
            for pid, page in items:
                yield pid.decode("utf-8"), _decode(page.decode("utf-8"))

    # -------------------------------------------------------- sync status

    def update_sync_status(self, status: str, error: Optional[ErrorArg] = None) -> None:
        """Record a sync: status becomes current_status.  A failure is
        counted for an error (str or exception; "" counts too) or a status
        "failed", "failure" or "error" in any ASCII case (recorded with
        error ""); a success for status "success" exactly without an error;
        any other status counts neither (the rule of mb_sync_record in
        membank.h).  Appends to sync_history.  The error is recorded as
        log_error() records a message: never refused for what it holds."""
        self._call(self._lib.mb_sync_record, *_sync_args(status, error))

    def get_sync_status(self, *, fresh: bool = False) -> JSONDict:
        """The sync_status.json document of the spec, as a dict.
        fresh=True: catch_up() first."""
        self._fresh(fresh)
        return self._call_json(self._lib.mb_sync_status)

    # ------------------------------------------------------------- errors

    def log_error(self, error: ErrorArg, message: Optional[str] = None) -> None:
        """Log an error.

        log_error(exception): the type is exception.code when that is a
        non-empty str (the Notion SDK's "rate_limited", "object_not_found";
        a str Enum member gives its value), else the name of its class; the
        message is "HTTP <n>: " when it has an int status or status_code,
        then str(exception), then up to 4 causes ("; caused by T: text"
        for __cause__, "; while handling T: text" for __context__).
        log_error(message): a plain string is the message, of type "error".
        log_error(error_type, message): both given.

        An error handler never fails on what it logs: NUL and lone
        surrogates are escaped, the type cut at 128 bytes and the message at
        4096 (on a character boundary), a __str__ that raises or returns a
        non-str gives "<exception str() failed>", an attribute that raises
        is ignored, a class named "" logs as its nearest named base.  Only
        an empty error_type with a message (InvalidInput) and non-str
        arguments (TypeError) are refused."""
        self._call(self._lib.mb_error_log, *_log_args(error, message))

    def resolve_error(self, error_type: str, steps: str) -> None:
        """Record resolution steps for error_type and mark its unresolved
        errors resolved."""
        self._call(self._lib.mb_error_resolve, *_resolve_args(error_type, steps))

    def get_error_stats(self, *, fresh: bool = False) -> JSONDict:
        """{"total_errors", "resolved_errors", "patterns", "last_error"}.
        fresh=True: catch_up() first."""
        self._fresh(fresh)
        return self._call_json(self._lib.mb_error_stats)

    # ------------------------------------------------------------- config

    def update_config(self, new_config: JSONDict) -> None:
        """Deep-merge the dict new_config into the configuration.  An unknown
        key or a wrong type raises InvalidInput naming the dotted key, and
        nothing changes."""
        self._call(self._lib.mb_config_update, *_config_args(new_config))

    def get_config(self, *, fresh: bool = False) -> JSONDict:
        """The config_cache.json document, as a dict.  fresh=True:
        catch_up() first."""
        self._fresh(fresh)
        return self._call_json(self._lib.mb_config_get)

    # -------------------------------------------------------- maintenance

    def stats(self, *, fresh: bool = False) -> JSONDict:
        """Counters and sizes of the bank (mb_stats), as a dict; "cluster"
        says how stale this machine may be (None for a local journal).
        fresh=True: catch_up() first."""
        self._fresh(fresh)
        return self._call_json(self._lib.mb_stats)

    def snapshot(self, dir: Optional[PathLike] = None) -> Dict[str, Union[int, float]]:
        """Write the spec's four JSON files into dir (None: the bank
        directory, which makes it the checkpoint).  Returns a dict: seq,
        pages, bytes, purged, segments_removed, seconds."""
        fn = self._lib.lazy("mb_snapshot")
        if fn is None:
            raise BankError(None, None, "mb_snapshot: not in %s (an older build)"
                            % self._lib.path)
        target = None if dir is None else _text(os.fspath(dir), "dir")
        info = _lib.SnapshotInfo()
        self._call(fn, target, ctypes.byref(info))
        return {name: getattr(info, name) for name, _ in info._fields_}

    @staticmethod
    def restore(src_dir: PathLike, bank_path: Optional[PathLike] = None, *, force: bool = False,
                durability: str = "full", group_shared: bool = False,
                expired: Optional[str] = None) -> Optional[Dict[str, Any]]:
        """Build the bank at bank_path (None: $MEMBANK_DIR, else
        ./memory-bank) from the four JSON files in src_dir.

        Pages older than the files' ttl_seconds would be expired on arrival:
        then the restore raises InvalidInput saying how many, unless expired
        says what to do with them: "keep" (restored with ttl_seconds set to
        0) or "expire" (dropped).  No page is evicted: when more are kept
        than the files' max_entries, max_entries is set to 0 (no bound); an
        absent config_cache.json reads as a new bank's (cache_settings off).

        Returns what the restore did, as mb_restore_report() gives it
        ({"pages", "expired_pages", "expired_pages_kept",
        "expired_pages_dropped", "config_cache_json", "ttl_seconds_was",
        "ttl_seconds_now", "max_entries_was", "max_entries_now"}); None from
        a library without mb_restore_report.

        A static method: it never works on an open handle.  A non-empty bank
        is replaced only with force=True, and only while nobody has it open:
        an open MemoryBank of it in this process raises BankError (MB_EPERM)
        before the library is called; another process's is refused by the
        library.  Open the bank afterwards with MemoryBank(bank_path).
        """
        lib = _lib.load()
        fn = lib.lazy("mb_restore_report") or lib.lazy("mb_restore")
        if fn is None:
            raise BankError(None, None, "mb_restore: not in %s (an older build)" % lib.path)
        src = _text(os.fspath(src_dir), "src_dir")
        dest = os.path.abspath(_default_path() if bank_path is None else os.fspath(bank_path))
        for bank in list(_instances):
            if not bank.closed and bank._pid == os.getpid() and \
                    os.path.realpath(bank.path) == os.path.realpath(dest):
                raise BankError(MB_EPERM, "MB_EPERM", "%s: open in this process (%r); "
                                "close it before restore" % (dest, bank))
        opts = _options(lib, {"durability": durability, "group_shared": group_shared,
                              "history_limit": None, "max_json_bytes": None,
                              "create": True})
        flags = _lib.MB_RESTORE_FORCE if force else 0
        if expired not in (None, "keep", "expire"):
            raise _invalid("expired: must be None, 'keep' or 'expire', not %r" % (expired,))
        flags |= {None: 0, "keep": _lib.MB_RESTORE_KEEP_EXPIRED,
                  "expire": _lib.MB_RESTORE_EXPIRE}[expired]
        dest_b = _text(dest, "bank_path")
        out = ctypes.POINTER(ctypes.c_char)()
        reporting = fn is lib.lazy("mb_restore_report")
        try:  # out is freed whatever interrupts this (mb_free(NULL) is a no-op)
            with _fork_guard:
                rc = fn(src, dest_b, ctypes.byref(opts), flags,
                        *([ctypes.byref(out)] if reporting else []))
                msg = lib.mb_last_error(None) if rc else b""
            if rc:
                raise _exception_for(rc, msg.decode("utf-8", "replace"))
            return _decode(ctypes.string_at(out).decode("utf-8")) if reporting else None
        finally:
            lib.mb_free(out)


MemoryBank.__module__ = "membank"


class Batch:
    """The mutations of one with-block of MemoryBank.batch(), applied as one.

    Usable only inside its with-block: before it, after it (committed or
    aborted), after the bank closed (which drops a batch in progress), and
    in another process than the one that entered it (a forked child: the C
    batch belongs to the parent's handle), every call raises BankError.
    Its calls may come from any thread; they run one at a time.  At most
    100000 operations and 32 MiB of packed data (InvalidInput past that).
    len(batch) is the number of operations added so far.
    """

    def __init__(self, bank: MemoryBank) -> None:
        self._bank = bank
        self._ptr = None        # mb_batch *, while open
        self._state = "not entered (use it in a with-block)"
        self._pid = None
        self._lock = threading.RLock()  # one call at a time on the C batch

    def __repr__(self):
        return "<membank.Batch of %r, %s>" % (self._bank, "open" if self._ptr
                                             else self._state)

    def __enter__(self) -> Batch:
        bank = self._bank
        with self._lock:
            if self._state != "not entered (use it in a with-block)":
                raise BankError(None, None, "batch: %s; begin another" % self._state)
            box = ctypes.c_void_p()
            bank._call(bank._lib.mb_batch_begin, ctypes.byref(box))
            with bank._lock:
                if box.value is None:
                    raise BankError(None, None, "batch: mb_batch_begin gave no batch")
                if bank._closed:    # closed the instant begin returned
                    bank._lib.mb_batch_abort(box.value)
                    raise BankError(None, None, "the bank is closed")
                self._ptr, self._pid = box.value, _getpid()
                self._state = "open"
                bank._batches.add(self)
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]],
                 exc: Optional[BaseException], tb: Optional[TracebackType]) -> bool:
        if exc_type is not None:
            self._abort("aborted by %s" % _type_name(exc_type))
        else:
            self._commit()
        return False

    def __len__(self) -> int:
        with self._lock:
            ptr = self._usable()
            return self._bank._lib.mb_batch_count(ptr)

    def _drop(self, why):
        """Under the bank's _lock, the handle closing: abort the C batch."""
        ptr, self._ptr = self._ptr, None
        self._state = why
        if ptr is not None:
            self._bank._lib.mb_batch_abort(ptr)

    def _usable(self):
        """The C batch, or BankError saying why there is none (under _lock)."""
        if self._ptr is None:
            raise BankError(None, None, "batch: %s; a batch is used inside its "
                            "with-block only" % self._state)
        if self._pid != _getpid():
            raise BankError(None, None, "batch: begun in process %d; a batch "
                            "belongs to the process that began it" % self._pid)
        return self._ptr

    def _add(self, fn, *args):
        """fn(batch, *args) as one call in flight on the bank (so close()
        waits for it); an MB_E* code becomes the exception the bank's call
        would raise."""
        bank = self._bank
        with self._lock:
            token = object()
            try:
                with bank._lock:
                    bank._inflight[token] = _get_ident()
                    ptr = self._usable()
                    if bank._closed:
                        raise BankError(None, None, "the bank is closed")
                    handle = bank._handle
                rc = fn(ptr, *args)
                if rc < 0:
                    msg = bank._lib.mb_last_error(handle)
                    raise _exception_for(rc, msg.decode("utf-8", "replace"))
            finally:
                with bank._lock:
                    if bank._inflight.pop(token, None) is not None and bank._closed:
                        bank._leave()

    def _abort(self, state):
        """Free the C batch unapplied.  It needs no handle, so neither a
        closing bank nor a raising check gets in the way of the exception
        that ends the block.  In a forked child the parent's C batch is only
        forgotten (another thread may have been inside it at fork time)."""
        bank = self._bank
        with self._lock, bank._lock:
            ptr, self._ptr = self._ptr, None
            if ptr is None:
                return                  # dropped by close()
            self._state = state
            bank._batches.discard(self)
            if self._pid == _getpid():
                bank._lib.mb_batch_abort(ptr)

    def _commit(self):
        """Apply the C batch (mb_batch_commit frees it whatever the result,
        so it leaves the object first), as one call in flight on the bank."""
        bank = self._bank
        with self._lock:
            token = object()
            try:
                with bank._lock:
                    bank._inflight[token] = _get_ident()
                    ptr = self._usable()
                    if bank._closed:
                        raise BankError(None, None, "the bank is closed")
                    handle = bank._handle
                    self._ptr, self._state = None, "committed"
                    bank._batches.discard(self)
                rc = bank._lib.mb_batch_commit(ptr)
                if rc < 0:
                    self._state = "failed to commit"
                    msg = bank._lib.mb_last_error(handle)
                    raise _exception_for(rc, msg.decode("utf-8", "replace"))
            finally:
                with bank._lock:
                    if bank._inflight.pop(token, None) is not None and bank._closed:
                        bank._leave()

    def update_page(self, page_id: str, data: JSONDict) -> None:
        """MemoryBank.update_page, in the batch."""
        self._add(self._bank._lib.mb_batch_page_put, *_page_args(page_id, data))

    def merge_page(self, page_id: str, data: JSONDict) -> None:
        """MemoryBank.merge_page, in the batch."""
        self._add(self._bank._lib.mb_batch_page_merge, *_page_args(page_id, data))

    def delete_page(self, page_id: str) -> None:
        """MemoryBank.delete_page, in the batch: a page absent at this point
        of the batch fails the commit (NotFound), not this call."""
        self._add(self._bank._lib.mb_batch_page_delete, _text(page_id, "page_id"))

    def update_sync_status(self, status: str, error: Optional[ErrorArg] = None) -> None:
        """MemoryBank.update_sync_status, in the batch."""
        self._add(self._bank._lib.mb_batch_sync_record, *_sync_args(status, error))

    def log_error(self, error: ErrorArg, message: Optional[str] = None) -> None:
        """MemoryBank.log_error, in the batch."""
        self._add(self._bank._lib.mb_batch_error_log, *_log_args(error, message))

    def resolve_error(self, error_type: str, steps: str) -> None:
        """MemoryBank.resolve_error, in the batch."""
        self._add(self._bank._lib.mb_batch_error_resolve, *_resolve_args(error_type, steps))

    def update_config(self, new_config: JSONDict) -> None:
        """MemoryBank.update_config, in the batch."""
        self._add(self._bank._lib.mb_batch_config_update, *_config_args(new_config))


Batch.__module__ = "membank"


_main_thread = threading.main_thread
_helper = None      # (pid, queue) of the helper thread of _Walk.run


def _walk_helper():
    """The queue of the process's helper thread, started on first use (again
    in a forked child, which has no copy of the thread); None when no thread
    can be started (interpreter shutdown).  One long-lived thread: a Thread
    object per batch would die in the main thread, and its weakref callbacks
    (threading._dangling) are one more place where a signal handler's
    exception is only printed."""
    global _helper
    helper = _helper
    if helper is None or helper[0] != _getpid():    # none yet, or forked
        with _fork_guard:
            helper = _helper
            if helper is None or helper[0] != _getpid():
                import queue    # only for walks: kept off the import path
                jobs = queue.SimpleQueue()
                try:
                    threading.Thread(target=_walk_jobs, args=(jobs,), daemon=True,
                                     name="membank-walk").start()
                except RuntimeError:
                    return None
                helper = _helper = (_getpid(), jobs)
    return helper[1]


def _walk_jobs(jobs):
    while True:
        walk, done = jobs.get()
        try:
            walk._body()
        finally:
            walk = None
            done.release()


# Tests only: called with the number of pages collected so far, in the
# callback of every page a walk collects (it may raise, or block).
_walk_hook = None


class _Walk:
    """One batch of a page walk: mb_page_iterate() in a helper thread."""

    FULL = 1     # the callback's codes: the batch is full ...
    FAILED = 2   # ... the callback caught an exception (in .error)

    def __init__(self, bank, after, flags, batch):
        self.bank, self.after, self.flags, self.batch = bank, after, flags, batch
        self.items = []
        self.rc = None
        self.error = None

    def collect(self, _ctx, pid, page):
        try:
            self.items.append((pid, page))
            if _walk_hook is not None:
                _walk_hook(len(self.items))
            return self.FULL if len(self.items) >= self.batch else 0
        except BaseException as exc:  # ends the walk; run() raises it
            self.error = exc
            return self.FAILED

    def _body(self):
        try:
            self.rc = self.bank._call(self.bank._lib.mb_page_iterate, self.after,
                                      self.flags, _lib.PAGE_FN(self.collect), None)
        except BaseException as exc:
            if self.error is None:
                self.error = exc

    def run(self):
        """The batch's items; raises what the walk raised.  A signal handler
        raising while the main thread waits leaves the helper to finish the
        batch alone: it holds the bank as any call in flight does."""
        jobs = None
        if _get_ident() == _main_thread().ident:   # (after fork: the forking thread)
            jobs = _walk_helper()
        if jobs is not None:
            done = threading.Lock()
            done.acquire()
            jobs.put((self, done))
            done.acquire()      # interruptible: a handler's exception leaves here
        else:
            self._body()
        if self.error is not None:
            error, self.error = self.error, None
            try:
                raise error
            finally:
                error = None
        if self.rc not in (0, self.FULL):
            raise BankError(None, None, "page walk: mb_page_iterate returned %r"
                            % (self.rc,))
        return self.items


def _reopen(path, opts):
    """Unpickling: open the same bank in this process."""
    return MemoryBank(path, **opts)

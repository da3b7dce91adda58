"""The MemoryBank class of the original spec, over libmembank's C API."""

import ctypes
import json
import os
import threading
import time
import weakref

from . import _lib
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
        return value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _invalid("%s: not encodable as UTF-8 (%s)" % (what, exc.reason)) from None


# One encoder and decoder for every call: json.dumps() with options builds a
# new encoder each time, which costs more than the library call it feeds.
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"),
                           allow_nan=False).encode
_decode = json.JSONDecoder().decode


def _json_object(value, what):
    """Compact UTF-8 JSON text of a dict."""
    if not isinstance(value, dict):
        raise TypeError("%s must be a dict, not %s" % (what, type(value).__name__))
    try:
        text = _encode(value)
    except ValueError as exc:
        raise _invalid("%s: %s" % (what, exc)) from None
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _invalid("%s: not encodable as UTF-8 (%s)" % (what, exc.reason)) from None


def _exception_text(exc, limit):
    """UTF-8 bytes of str(exc) that the library accepts whatever the
    exception holds: NUL and lone surrogates escaped, cut at limit bytes."""
    text = str(exc).replace("\0", "\\x00")
    return _truncate_utf8(text.encode("utf-8", "backslashreplace"), limit)


def _truncate_utf8(data, limit):
    """At most limit bytes of data, cut at a character boundary."""
    if len(data) <= limit:
        return data
    return data[:limit].decode("utf-8", "ignore").encode("utf-8")


def _durability(value):
    if not isinstance(value, str):
        raise TypeError("durability must be 'full' or 'fast', not %s"
                        % type(value).__name__)
    try:
        return {"full": _lib.MB_DURABILITY_FULL, "fast": _lib.MB_DURABILITY_FAST}[value]
    except KeyError:
        raise _invalid("durability must be 'full' or 'fast', not %r" % value) from None


def _count(value, what, ceiling):
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError("%s must be an int, not %s" % (what, type(value).__name__))
    if value < 1 or value > ceiling:
        raise _invalid("%s must be 1..%d, not %d" % (what, ceiling, value))
    return value


def _options(lib, opts):
    """struct mb_options from the keyword options (already validated)."""
    o = _lib.Options()
    lib.mb_options_init(ctypes.byref(o))
    o.durability = _durability(opts["durability"])
    o.group_shared = bool(opts["group_shared"])
    o.history_limit = opts["history_limit"] or 0
    o.max_json_bytes = opts["max_json_bytes"] or 0
    o.create = bool(opts["create"])
    o.no_auto_checkpoint = not opts.get("auto_checkpoint", True)
    return o


def _default_path():
    """The C library's default bank directory: $MEMBANK_DIR, else ./memory-bank."""
    return os.environ.get("MEMBANK_DIR") or "./memory-bank"


_getpid = os.getpid

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
        bank._lock = threading.Lock()
        bank._busy = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                        after_in_child=_after_fork_in_child)


# --------------------------------------------------------------- the class

class MemoryBank:
    """The Memory Bank of the original Push Notion integration, shared by
    every process and thread that opens the same directory.

    MemoryBank(path=None, *, durability='full', group_shared=False,
               history_limit=None, max_json_bytes=None, create=True,
               auto_checkpoint=True)

    auto_checkpoint: writes through this object keep the four JSON files
    current by themselves (README "Automatic checkpoints"); False leaves
    that to `membank compactor` or snapshot().

    path defaults to $MEMBANK_DIR, else ./memory-bank (as the C library);
    it is made absolute when the bank opens, so a later chdir() or a child
    process reopens the same bank.

    Concurrency: one object may be shared by threads.  After fork() the
    child's copy notices that os.getpid() changed and transparently opens the
    bank again on its first call (the parent's handle is only released, never
    used).  Pickling (multiprocessing's spawn and forkserver) carries the path
    and options; unpickling opens the bank in the receiving process.
    """

    def __init__(self, path=None, *, durability="full", group_shared=False,
                 history_limit=None, max_json_bytes=None, create=True,
                 auto_checkpoint=True):
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
                                     _lib.MB_MAX_JSON_BYTES),
            "create": bool(create),
            "auto_checkpoint": bool(auto_checkpoint),
        }
        self._path = os.path.abspath(path)
        self._handle = None
        self._closed = False            # close() was called
        self._pid = None
        self._busy = 0                  # calls in flight, under _lock
        self._lock = threading.Lock()
        self._lib = _lib.load()
        self._open()
        _instances.add(self)

    # ---------------------------------------------------------- lifecycle

    def _open(self):
        lib = self._lib
        opts = _options(lib, self._opts)
        handle = ctypes.c_void_p()
        path = _text(self._path, "path")
        with _fork_guard:
            rc = lib.mb_open(path, ctypes.byref(opts), ctypes.byref(handle))
            msg = lib.mb_last_error(None) if rc else b""
        if rc:
            raise _exception_for(rc, msg.decode("utf-8", "replace"))
        self._handle = handle.value
        self._pid = os.getpid()

    def _reopen_or_fail(self):
        """Under _lock: the slow path of _call (closed, or a forked child)."""
        if self._closed:
            raise BankError(None, None, "the bank is closed")
        if self._pid != os.getpid():
            if self._handle is not None:
                # A forked child: the inherited handle may only be closed
                # (that frees its memory without touching the parent's files).
                with _fork_guard:
                    self._lib.mb_close(self._handle)
                self._handle = None
            self._open()  # on failure the next call tries again
        return self._handle

    def _call(self, fn, *args):
        """fn(handle, *args); an MB_E* code becomes an exception.

        _busy counts the calls in flight so that close() never frees the
        handle under one; a plain lock (not a Condition) keeps this cheap.
        """
        lock = self._lock
        with lock:
            handle = self._handle
            if handle is None or self._pid != _getpid():
                handle = self._reopen_or_fail()
            self._busy += 1
        try:
            rc = fn(handle, *args)
            if rc < 0:
                # thread-local in C: read it on this thread, before leaving
                msg = self._lib.mb_last_error(handle)
                raise _exception_for(rc, msg.decode("utf-8", "replace"))
            return rc
        finally:
            with lock:
                self._busy -= 1

    def _call_json(self, fn, *args):
        """fn(handle, *args, &out) returning a JSON document, as a dict."""
        out = ctypes.POINTER(ctypes.c_char)()
        self._call(fn, *args, ctypes.byref(out))
        try:
            return _decode(ctypes.string_at(out).decode("utf-8"))
        finally:
            self._lib.mb_free(out)

    def close(self):
        """Close the bank; waits for calls other threads have in flight.
        Closing twice is allowed.  BankError when the final sync failed."""
        while True:
            with self._lock:
                # calls in flight end within microseconds (or a sync): poll
                if not self._busy or self._pid != os.getpid():
                    handle, self._handle = self._handle, None
                    self._closed = True
                    break
            time.sleep(0.001)
        if handle is None:
            return
        with _fork_guard:
            rc = self._lib.mb_close(handle)
        _instances.discard(self)
        if rc:
            raise _exception_for(rc, "")

    @property
    def closed(self):
        return self._closed

    @property
    def path(self):
        """The bank directory (absolute)."""
        return self._path

    @property
    def options(self):
        """The keyword options the bank was opened with."""
        return dict(self._opts)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            handle = self.__dict__.get("_handle")
            if handle is not None:
                self._handle = None
                with _fork_guard:
                    self._lib.mb_close(handle)
        except Exception:  # interpreter shutdown: the library may be gone
            pass

    def __reduce__(self):
        opts = dict(self._opts)
        opts["create"] = False
        return (_reopen, (self._path, opts))

    def __repr__(self):
        state = "closed" if self._closed else "open"
        return "<membank.MemoryBank %r %s>" % (self._path, state)

    # -------------------------------------------------------------- pages

    def update_page(self, page_id, data):
        """Replace the properties of page_id with the dict data (the page is
        created when absent).  Sets its last_updated."""
        pid = _text(page_id, "page_id")
        body = _json_object(data, "data")
        self._call(self._lib.mb_page_put, pid, body, len(body))

    def merge_page(self, page_id, data):
        """Shallow-merge the dict data into page_id's properties: each key
        replaces the stored one, a None value removes the key.  One atomic
        read-modify-write: processes merging different keys all win."""
        pid = _text(page_id, "page_id")
        body = _json_object(data, "data")
        self._call(self._lib.mb_page_merge, pid, body, len(body))

    def get_page(self, page_id):
        """{"properties": {...}, "last_updated": "..."}, or None when the
        page is absent (or expired by cache_settings.ttl_seconds)."""
        pid = _text(page_id, "page_id")
        out = ctypes.POINTER(ctypes.c_char)()
        size = ctypes.c_size_t()
        try:
            self._call(self._lib.mb_page_get, pid, ctypes.byref(out), ctypes.byref(size))
        except NotFound:
            return None
        try:
            return _decode(out[:size.value].decode("utf-8"))
        finally:
            self._lib.mb_free(out)

    def delete_page(self, page_id):
        """Delete page_id; NotFound when it is absent."""
        self._call(self._lib.mb_page_delete, _text(page_id, "page_id"))

    def page_count(self):
        """The number of pages stored (metadata.total_pages)."""
        n = ctypes.c_uint64()
        self._call(self._lib.mb_page_count, ctypes.byref(n))
        return n.value

    def _iterate(self, after, flags, batch):
        """Batches of (id, page JSON or None) in id order.  Each batch is one
        consistent read snapshot; the walk as a whole is not."""
        after = _text(after, "after", allow_none=True)
        while True:
            items = []

            def collect(_ctx, pid, page):
                items.append((pid, page))
                return 1 if len(items) >= batch else 0

            rc = self._call(self._lib.mb_page_iterate, after, flags,
                            _lib.PAGE_FN(collect), None)
            if items:
                yield items
            if rc != 1 or not items:
                return
            after = items[-1][0]

    def page_ids(self, after=None):
        """An iterator over the page ids in order, starting after `after`."""
        for items in self._iterate(after, _lib.MB_ITER_IDS, 1024):
            for pid, _ in items:
                yield pid.decode("utf-8")

    def iter_pages(self, after=None):
        """An iterator of (page_id, page) in id order, page as get_page()."""
        for items in self._iterate(after, 0, 256):
            for pid, page in items:
                yield pid.decode("utf-8"), _decode(page.decode("utf-8"))

    # -------------------------------------------------------- sync status

    def update_sync_status(self, status, error=None):
        """Record a sync: status becomes current_status; an error (str or
        exception; "" counts too) counts a failure, status "success" without
        an error a success.  Appends to sync_history.  An exception is
        recorded as str(exception), made acceptable as log_error() does."""
        if isinstance(error, BaseException):
            err = _exception_text(error, MB_MAX_TEXT_BYTES)
        else:
            err = _text(error, "error", allow_none=True)
        self._call(self._lib.mb_sync_record, _text(status, "status"), err)

    def get_sync_status(self):
        """The sync_status.json document of the spec, as a dict."""
        return self._call_json(self._lib.mb_sync_status)

    # ------------------------------------------------------------- errors

    def log_error(self, error, message=None):
        """Log an error: log_error(exception) records type(exception).__name__
        and str(exception), cut at 4096 bytes with NUL and lone surrogates
        escaped, so an error handler never fails on what an exception holds;
        log_error(error_type, message="") records the strings as given (and
        raises InvalidInput for what the library refuses)."""
        if isinstance(error, BaseException):
            if message is not None:
                raise TypeError("log_error(exception) takes no message")
            etype = _truncate_utf8(_text(type(error).__name__, "error_type"),
                                   MB_MAX_TYPE_BYTES)
            msg = _exception_text(error, MB_MAX_TEXT_BYTES)
        else:
            etype = _text(error, "error_type")
            msg = _text("" if message is None else message, "message")
        self._call(self._lib.mb_error_log, etype, msg)

    def resolve_error(self, error_type, steps):
        """Record resolution steps for error_type and mark its unresolved
        errors resolved."""
        self._call(self._lib.mb_error_resolve, _text(error_type, "error_type"),
                   _text(steps, "steps"))

    def get_error_stats(self):
        """{"total_errors", "resolved_errors", "patterns", "last_error"}."""
        return self._call_json(self._lib.mb_error_stats)

    # ------------------------------------------------------------- config

    def update_config(self, new_config):
        """Deep-merge the dict new_config into the configuration.  An unknown
        key or a wrong type raises InvalidInput naming the dotted key, and
        nothing changes."""
        body = _json_object(new_config, "new_config")
        self._call(self._lib.mb_config_update, body, len(body))

    def get_config(self):
        """The config_cache.json document, as a dict."""
        return self._call_json(self._lib.mb_config_get)

    # -------------------------------------------------------- maintenance

    def stats(self):
        """Counters and sizes of the bank (mb_stats), as a dict."""
        return self._call_json(self._lib.mb_stats)

    def snapshot(self, dir=None):
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
    def restore(src_dir, bank_path=None, *, force=False, durability="full",
                group_shared=False):
        """Build the bank at bank_path (None: $MEMBANK_DIR, else
        ./memory-bank) from the four JSON files in src_dir.

        A static method: it never works on an open handle.  A non-empty bank
        is replaced only with force=True, and only while nobody has it open:
        an open MemoryBank of it in this process raises BankError (MB_EPERM)
        before the library is called; another process's is refused by the
        library.  Open the bank afterwards with MemoryBank(bank_path).
        """
        lib = _lib.load()
        fn = lib.lazy("mb_restore")
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
        dest_b = _text(dest, "bank_path")
        with _fork_guard:
            rc = fn(src, dest_b, ctypes.byref(opts), flags)
            msg = lib.mb_last_error(None) if rc else b""
        if rc:
            raise _exception_for(rc, msg.decode("utf-8", "replace"))


MemoryBank.__module__ = "membank"


def _reopen(path, opts):
    """Unpickling: open the same bank in this process."""
    return MemoryBank(path, **opts)

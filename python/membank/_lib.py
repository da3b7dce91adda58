"""Loading libmembank and declaring the C API (membank.h) for ctypes.

Search order for the shared library (the first that loads and has a
compatible version wins):

1. the ``MEMBANK_LIBRARY`` environment variable, when set: only that path is
   tried, so a typo never silently loads another build;
2. its soname ``libmembank.so.0`` through the dynamic loader (ld.so.cache,
   LD_LIBRARY_PATH, the DT_RUNPATH of the interpreter);
3. the library directory meson installed it to: the one recorded in
   ``_install_paths.py`` by ``meson install``, else meson's default
   (``/usr/local/lib/<multiarch>``, ``/usr/local/lib``);
4. the project's build tree: ``<project>/build*/libshm/libmembank.so``
   (``<project>`` is the parent of the ``python/`` folder holding this
   package), newest file first.

The library is loaded on first use, not at import, so ``import membank`` and
its exception classes work even where the library is missing.  Cold start:
nothing here imports ``ctypes.util`` (it pulls in subprocess, and
find_library runs ldconfig); the later steps import what they need only when
reached.
"""

import ctypes
import os
import threading

from ._version import ABI_VERSION

ENV_VAR = "MEMBANK_LIBRARY"

# Error codes and limits of membank.h.
MB_OK = 0
MB_EINVAL = -1
MB_ENOTFOUND = -2
MB_EFORKED = -8
MB_EPERM = -9
MB_EEXIST = -12
MB_ERESTORED = -15
MB_ECANCELED = -16

MB_MAX_ID_BYTES = 255
MB_MAX_DEPTH = 64
MB_MAX_TYPE_BYTES = 128
MB_MAX_TEXT_BYTES = 4096
MB_MIN_JSON_BYTES = 64
MB_MAX_JSON_BYTES = 16 << 20
MB_MAX_HISTORY = 100000

MB_DURABILITY_FULL = 0
MB_DURABILITY_FAST = 1
MB_ITER_IDS = 1
MB_RESTORE_FORCE = 1
MB_RESTORE_KEEP_EXPIRED = 2
MB_RESTORE_EXPIRE = 4


class LibraryNotFound(OSError):
    """No compatible libmembank.so could be loaded; .tried lists (path,
    reason) pairs (a reason names the version of a library refused)."""

    def __init__(self, tried):
        self.tried = list(tried)
        lines = ["cannot load libmembank; tried, in order:"]
        lines += ["  %s: %s" % (p, why) for p, why in self.tried]
        lines.append("set %s to the path of libmembank.so (e.g. build/libshm/"
                     "libmembank.so after `meson setup build && ninja -C build`)"
                     % ENV_VAR)
        super().__init__("\n".join(lines))


class Options(ctypes.Structure):
    """struct mb_options (membank.h); filled by mb_options_init()."""
    _fields_ = [
        ("durability", ctypes.c_int),      # enum mb_durability
        ("group_shared", ctypes.c_bool),
        ("create", ctypes.c_bool),
        ("allow_network_fs", ctypes.c_bool),
        ("map_size", ctypes.c_size_t),
        ("max_json_bytes", ctypes.c_size_t),
        ("history_limit", ctypes.c_uint32),
        ("segment_bytes", ctypes.c_uint64),
        ("journal_retention_s", ctypes.c_uint32),
        ("keep_reader_slots", ctypes.c_bool),
        ("checkpoint_min_bytes", ctypes.c_uint64),
        ("checkpoint_pct", ctypes.c_uint32),
        ("checkpoint_interval_s", ctypes.c_uint32),
        ("no_auto_checkpoint", ctypes.c_bool),
        ("defer_auto_checkpoint", ctypes.c_bool),
        ("progress", ctypes.c_void_p),     # mb_progress_fn (unused: NULL)
        ("progress_ctx", ctypes.c_void_p),
        # the journal on a NATS JetStream stream (issue 16): the layout only
        ("journal_url", ctypes.c_char_p),
        ("journal_creds", ctypes.c_char_p),
        ("journal_tls_ca", ctypes.c_char_p),
        ("journal_tls_cert", ctypes.c_char_p),
        ("journal_tls_key", ctypes.c_char_p),
        ("journal_replicas", ctypes.c_uint32),
        ("journal_timeout_ms", ctypes.c_uint32),
    ]


class SnapshotInfo(ctypes.Structure):
    """struct mb_snapshot_info (membank.h)."""
    _fields_ = [
        ("seq", ctypes.c_uint64),
        ("pages", ctypes.c_uint64),
        ("bytes", ctypes.c_uint64),
        ("purged", ctypes.c_uint64),
        ("segments_removed", ctypes.c_uint64),
        ("seconds", ctypes.c_double),
        ("pages_evicted", ctypes.c_uint64),
        ("pages_purged", ctypes.c_uint64),
        ("pages_expired", ctypes.c_uint64),
    ]


# typedef int (*mb_page_fn)(void *ctx, const char *id, const char *page_json);
PAGE_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p,
                           ctypes.c_char_p)

_bank_p = ctypes.c_void_p          # mb_bank * (opaque)
_batch_p = ctypes.c_void_p         # mb_batch * (opaque)
_out_str = ctypes.POINTER(ctypes.POINTER(ctypes.c_char))  # char ** (freed by mb_free)
_int = ctypes.c_int
_str = ctypes.c_char_p
_size = ctypes.c_size_t

# name: (restype, argtypes).  Every function the binding calls is here.
_SIGNATURES = {
    "mb_version": (_str, [ctypes.POINTER(_int)]),
    "mb_options_init": (None, [ctypes.POINTER(Options)]),
    "mb_open": (_int, [_str, ctypes.POINTER(Options), ctypes.POINTER(_bank_p)]),
    "mb_close": (_int, [_bank_p]),
    "mb_path": (_str, [_bank_p]),
    "mb_strerror": (_str, [_int]),
    "mb_errname": (_str, [_int]),
    "mb_last_error": (_str, [_bank_p]),
    "mb_free": (None, [ctypes.c_void_p]),
    "mb_page_put": (_int, [_bank_p, _str, _str, _size]),
    "mb_page_merge": (_int, [_bank_p, _str, _str, _size]),
    "mb_page_get": (_int, [_bank_p, _str, _out_str, ctypes.POINTER(_size)]),
    "mb_page_delete": (_int, [_bank_p, _str]),
    "mb_page_count": (_int, [_bank_p, ctypes.POINTER(ctypes.c_uint64)]),
    "mb_page_iterate": (_int, [_bank_p, _str, ctypes.c_uint, PAGE_FN, ctypes.c_void_p]),
    "mb_sync_record": (_int, [_bank_p, _str, _str]),
    "mb_sync_status": (_int, [_bank_p, _out_str]),
    "mb_error_log": (_int, [_bank_p, _str, _str]),
    "mb_error_resolve": (_int, [_bank_p, _str, _str]),
    "mb_error_stats": (_int, [_bank_p, _out_str]),
    "mb_config_update": (_int, [_bank_p, _str, _size]),
    "mb_config_get": (_int, [_bank_p, _out_str]),
    "mb_stats": (_int, [_bank_p, _out_str]),
    "mb_journal_last_seq": (_int, [_bank_p, ctypes.POINTER(ctypes.c_uint64)]),
    "mb_batch_begin": (_int, [_bank_p, ctypes.POINTER(_batch_p)]),
    "mb_batch_page_put": (_int, [_batch_p, _str, _str, _size]),
    "mb_batch_page_merge": (_int, [_batch_p, _str, _str, _size]),
    "mb_batch_page_delete": (_int, [_batch_p, _str]),
    "mb_batch_sync_record": (_int, [_batch_p, _str, _str]),
    "mb_batch_error_log": (_int, [_batch_p, _str, _str]),
    "mb_batch_error_resolve": (_int, [_batch_p, _str, _str]),
    "mb_batch_config_update": (_int, [_batch_p, _str, _size]),
    "mb_batch_count": (_size, [_batch_p]),
    "mb_batch_commit": (_int, [_batch_p]),
    "mb_batch_abort": (None, [_batch_p]),
}

# Bound on first call (see lazy()): they may be missing from an older build.
_LAZY_SIGNATURES = {
    "mb_snapshot": (_int, [_bank_p, _str, ctypes.POINTER(SnapshotInfo)]),
    "mb_restore": (_int, [_str, _str, ctypes.POINTER(Options), ctypes.c_uint]),
    "mb_restore_report": (_int, [_str, _str, ctypes.POINTER(Options), ctypes.c_uint,
                                 ctypes.POINTER(ctypes.POINTER(ctypes.c_char))]),
}


def package_root():
    """The project root: the parent of the python/ folder holding membank/."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


SONAME = "libmembank.so.0"


def _installed_dirs():
    """Step 3: the library directory of meson install."""
    try:
        from ._install_paths import LIBDIR   # written by meson install
        return [LIBDIR]
    except ImportError:
        import sysconfig
        multiarch = sysconfig.get_config_var("MULTIARCH")
        dirs = ["/usr/local/lib"]
        if multiarch:
            dirs.insert(0, "/usr/local/lib/" + multiarch)
        return dirs


def _build_tree(root):
    """Step 4: <root>/build*/libshm/libmembank.so, newest first."""
    import glob
    found = glob.glob(os.path.join(root, "build*", "libshm", "libmembank.so"))
    found.sort(key=lambda p: os.stat(p).st_mtime, reverse=True)
    return found


def iter_candidates(environ=None, root=None):
    """The library paths to try, in order (see the module docstring),
    computed step by step: the first that loads ends the search."""
    environ = os.environ if environ is None else environ
    explicit = environ.get(ENV_VAR)
    if explicit:
        yield explicit
        return
    yield SONAME
    for d in _installed_dirs():
        yield os.path.join(d, SONAME)
    yield from _build_tree(package_root() if root is None else root)


def candidates(environ=None, root=None):
    """Every path iter_candidates() gives, as a list."""
    return list(iter_candidates(environ, root))


def abi_problem(version, number, want=ABI_VERSION):
    """Why a library of this version (mb_version(): "M.m.p" and its
    MB_VERSION_NUMBER) cannot serve this binding, or None.  Compatible: the
    same major, and for major 0 the same minor (membank.h's rule)."""
    major, minor = number // 10000, number // 100 % 100
    wmajor, wminor = (int(x) for x in want.split(".")[:2])
    if major != wmajor or (major == 0 and minor != wminor):
        return ("libmembank %s, but this membank package (%s) needs %s"
                % (version, want, _needed(want)))
    return None


def _needed(want):
    """The library versions a binding of version want accepts: "0.2.x"."""
    major, minor = want.split(".")[:2]
    return "%s.%s.x" % (major, minor) if major == "0" else "%s.x" % major


def _declare(lib, table):
    for name, (restype, argtypes) in table.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes


class _Lib:
    """The loaded library: its functions as attributes, plus lazy ones."""

    def __init__(self, cdll, path):
        self.cdll = cdll
        self.path = path
        self._lazy = {}
        self._lazy_lock = threading.Lock()
        try:
            fn = cdll.mb_version
        except AttributeError:
            raise _Refused("no mb_version(): a libmembank older than 0.2, but this "
                           "membank package (%s) needs %s" % (ABI_VERSION, _needed(ABI_VERSION))) from None
        fn.restype, fn.argtypes = _SIGNATURES["mb_version"]
        number = ctypes.c_int()
        self.version = fn(ctypes.byref(number)).decode("ascii", "replace")
        problem = abi_problem(self.version, number.value)
        if problem:
            raise _Refused(problem)
        _declare(cdll, _SIGNATURES)
        for name in _SIGNATURES:
            setattr(self, name, getattr(cdll, name))

    def lazy(self, name):
        """A function bound on first use; None when the library lacks it."""
        with self._lazy_lock:
            if name not in self._lazy:
                try:
                    fn = getattr(self.cdll, name)
                except AttributeError:
                    fn = None
                else:
                    restype, argtypes = _LAZY_SIGNATURES[name]
                    fn.restype = restype
                    fn.argtypes = argtypes
                self._lazy[name] = fn
            return self._lazy[name]


class _Refused(Exception):
    """A library that loaded but cannot serve this binding (its version)."""


_loaded = None
_load_lock = threading.Lock()


def load():
    """The library, loaded once per process (LibraryNotFound on failure)."""
    global _loaded
    if _loaded is not None:
        return _loaded
    with _load_lock:
        if _loaded is None:
            tried = []
            for path in iter_candidates():
                try:
                    cdll = ctypes.CDLL(path)
                    _loaded = _Lib(cdll, path)
                    break
                except (OSError, AttributeError, _Refused) as exc:
                    tried.append((path, str(exc) or type(exc).__name__))
            else:
                raise LibraryNotFound(tried)
    return _loaded

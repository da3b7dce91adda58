"""membank: the Memory Bank of the Push Notion integration, shared safely by
many processes and threads, over libmembank (ctypes, standard library only).

    from membank import MemoryBank
    memory_bank = MemoryBank()             # $MEMBANK_DIR, else ./memory-bank
    memory_bank.update_page("page-1", {"title": "Hello"})
    memory_bank.get_page("page-1")         # {"properties": {...}, "last_updated": "..."}

See python/README.md for how libmembank.so is found and for fork/spawn.
"""

from ._bank import BankError, Batch, Error, InvalidInput, MemoryBank, NotFound
from ._lib import LibraryNotFound


def library_path() -> str:
    """The path of the libmembank loaded (loading it if needed)."""
    from . import _lib
    return _lib.load().path


def __getattr__(name: str) -> str:
    # __version__ is the loaded C library's mb_version() (loading it on
    # first use, so that importing never needs the library): the package
    # accepts only a library of its ABI, see python/README.md.
    if name == "__version__":
        from . import _lib
        return _lib.load().version
    raise AttributeError("module 'membank' has no attribute %r" % name)


__all__ = ["MemoryBank", "Batch", "Error", "InvalidInput", "NotFound", "BankError",
           "LibraryNotFound", "library_path"]

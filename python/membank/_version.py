"""The libmembank version this package is written for (MB_VERSION of
libshm/membank.h and meson.build's project version; a meson test checks all
three agree).  The package's own version on install, and the ABI it accepts
(membank.h: the same major, for 0.x the same minor too)."""

ABI_VERSION = "0.2.0"

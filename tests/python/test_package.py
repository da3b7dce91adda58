"""python/ as a package: pip installs it offline into a fresh venv (made
with --system-site-packages, so Debian's setuptools and wheel build it with
--no-build-isolation), and the installed `membank` finds and uses the built
library, by MEMBANK_LIBRARY and by its soname through the dynamic loader.

Environment: MEMBANK_LIBRARY (the built libmembank.so), PROJECT_VERSION
(meson's), MEMBANK_SOURCE (the project root).  Exit 77 (skipped) when this
Python cannot make a venv with pip or lacks setuptools/wheel."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

LIB = os.environ["MEMBANK_LIBRARY"]
VERSION = os.environ["PROJECT_VERSION"]
SOURCE = os.environ["MEMBANK_SOURCE"]
SKIP = 77


def plain_env(**extra):
    """The environment without the test harness's library and import paths
    (and without sanitizer preloads, which pip does not need)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MEMBANK_LIBRARY", "PYTHONPATH", "LD_PRELOAD", "LD_LIBRARY_PATH",
                        "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_CACHE_DIR="1")
    env.update(extra)
    return env


def run(args, env, cwd):
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)


USE = r'''
import os, sys, tempfile, membank
from membank import MemoryBank
here = os.path.dirname(membank.__file__)
assert here.startswith(sys.prefix), (here, sys.prefix)
assert os.path.exists(os.path.join(here, "py.typed"))
with MemoryBank(tempfile.mkdtemp(dir="."), durability="fast") as b:
    b.update_page("p", {"title": "Hello"})
    with b.batch() as t:
        t.update_page("q", {"n": 2})
        t.update_sync_status("failed")
    assert b.get_page("p")["properties"] == {"title": "Hello"}
    assert b.get_page("q")["properties"] == {"n": 2}
    assert b.get_sync_status()["error_count"] == 1
print(membank.__version__, membank.library_path())
'''


class Package(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="membank-pkg-")
        src = os.path.join(cls.tmp, "src")
        # a copy: an in-tree build would write build/ and *.egg-info there
        shutil.copytree(os.path.join(SOURCE, "python"), src,
                        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
        cls.venv = os.path.join(cls.tmp, "venv")
        cls.py = os.path.join(cls.venv, "bin", "python")
        r = run([sys.executable, "-m", "venv", "--system-site-packages", cls.venv],
                plain_env(), cls.tmp)
        if r.returncode:
            cls.skip = "cannot make a venv with pip (python3-venv missing?): " + r.stderr[-300:]
            return
        r = run([cls.py, "-c", "import setuptools, wheel, pip"], plain_env(), cls.tmp)
        if r.returncode:
            cls.skip = ("setuptools/wheel/pip missing (python3-setuptools, python3-wheel, "
                        "python3-pip): " + r.stderr.strip().splitlines()[-1])
            return
        cls.skip = None
        cls.pip = run([cls.py, "-m", "pip", "install", "--no-build-isolation", "--no-deps",
                       src], plain_env(), cls.tmp)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        if self.skip:
            self.skipTest(self.skip)
        self.assertEqual(self.pip.returncode, 0, self.pip.stdout + self.pip.stderr)

    def test_meson_install_puts_the_package_beside_the_library(self):
        meson, build = os.environ.get("MESON"), os.environ.get("MESON_BUILD")
        if not meson or not build:
            self.skipTest("MESON/MESON_BUILD not set")
        dest = os.path.join(self.tmp, "dest")
        r = run([meson, "install", "-C", build, "--no-rebuild", "--quiet",
                 "--destdir", dest], plain_env(), self.tmp)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        found = [os.path.join(d, "membank") for d, subdirs, _ in os.walk(dest)
                 if "membank" in subdirs and os.path.exists(os.path.join(d, "membank", "_bank.py"))]
        self.assertEqual(len(found), 1, found)
        pkg = found[0]
        for name in ("__init__.py", "_bank.py", "_lib.py", "_version.py", "py.typed",
                     "_install_paths.py"):
            self.assertTrue(os.path.exists(os.path.join(pkg, name)), name)
        code = ("import membank, membank._install_paths as p, membank._lib as l\n"
                "print(p.LIBDIR)\nprint(l.candidates()[1])\n")
        r = run([sys.executable, "-I", "-c", "import sys; sys.path.insert(0, %r)\n%s"
                 % (os.path.dirname(pkg), code)], plain_env(), self.tmp)
        self.assertEqual(r.returncode, 0, r.stderr)
        libdir, candidate = r.stdout.splitlines()
        self.assertTrue(os.path.exists(dest + os.path.join(libdir, "libmembank.so.0")), libdir)
        self.assertEqual(candidate, os.path.join(libdir, "libmembank.so.0"))

    def test_versions_agree(self):
        header = open(os.path.join(SOURCE, "libshm", "membank.h")).read()
        self.assertIn('#define MB_VERSION "%s"' % VERSION, header)
        r = run([self.py, "-m", "pip", "show", "membank"], plain_env(), self.tmp)
        self.assertIn("Version: %s\n" % VERSION, r.stdout)

    def test_installed_package_with_membank_library(self):
        env = plain_env(MEMBANK_LIBRARY=LIB)
        if os.environ.get("LD_PRELOAD"):     # a sanitized library
            env["LD_PRELOAD"] = os.environ["LD_PRELOAD"]
            env["ASAN_OPTIONS"] = os.environ.get("ASAN_OPTIONS", "")
        r = run([self.py, "-c", USE], env, self.tmp)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "%s %s\n" % (VERSION, LIB))

    def test_installed_package_finds_the_soname(self):
        env = plain_env(LD_LIBRARY_PATH=os.path.dirname(LIB))
        if os.environ.get("LD_PRELOAD"):
            env["LD_PRELOAD"] = os.environ["LD_PRELOAD"]
            env["ASAN_OPTIONS"] = os.environ.get("ASAN_OPTIONS", "")
        r = run([self.py, "-c", USE], env, self.tmp)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "%s libmembank.so.0\n" % VERSION)


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=2).result
    if result.failures or result.errors:
        sys.exit(1)
    sys.exit(SKIP if result.skipped and not result.testsRun - len(result.skipped) else 0)

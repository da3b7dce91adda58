"""What `meson install` puts beside the command: the manual page renders and
names every command; the bash completion loads and completes commands,
subcommands and options from the binary's own help.

Environment: MEMBANK (the binary), MEMBANK_MAN (the generated membank.1,
may be empty when help2man is missing: those tests are skipped),
MEMBANK_COMPLETION (cli/membank.bash)."""
import os
import re
import shutil
import subprocess
import unittest

MEMBANK = os.environ["MEMBANK"]
MAN = os.environ.get("MEMBANK_MAN", "")
COMPLETION = os.environ["MEMBANK_COMPLETION"]


def top_commands():
    out = subprocess.run([MEMBANK, "--help"], capture_output=True, text=True, check=True).stdout
    block = out.split("commands:\n", 1)[1].split("\n\n", 1)[0]
    return sorted({line.split()[0] for line in block.splitlines() if re.match(r"  \S", line)})


class ManPage(unittest.TestCase):
    def setUp(self):
        if not MAN or not os.path.exists(MAN):
            self.skipTest("help2man missing: no manual page was generated")
        if not shutil.which("man"):
            self.skipTest("man missing")

    def render(self):
        r = subprocess.run(["man", "-l", "-Tutf8", MAN], capture_output=True, text=True,
                           env=dict(os.environ, MANWIDTH="80", MAN_KEEP_FORMATTING="0"))
        self.assertEqual(r.returncode, 0, r.stderr)
        return re.sub(r".\x08", "", r.stdout)

    def test_renders_every_command(self):
        text = self.render()
        for section in ("NAME", "SYNOPSIS" if "SYNOPSIS" in text else "DESCRIPTION",
                        "COMMANDS", "ENVIRONMENT", "FILES"):
            self.assertIn(section, text)
        self.assertIn("MEMBANK_DIR", text)
        for c in top_commands():
            self.assertRegex(text, r"(?m)^ {3}%s\b" % c, "command %s has no section" % c)
        version = subprocess.run([MEMBANK, "--version"], capture_output=True, text=True).stdout
        self.assertIn(version.split()[-1], text)  # the footer names the version

    def test_no_troff_warnings(self):
        r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", MAN], capture_output=True,
                           text=True)
        self.assertEqual(r.returncode, 0)
        self.assertEqual(r.stderr, "")


class Completion(unittest.TestCase):
    def complete(self, *words):
        script = ('source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); '
                  '_membank; printf "%s\\n" "${COMPREPLY[@]}"')
        bindir = os.path.dirname(os.path.abspath(MEMBANK))
        r = subprocess.run(["bash", "--norc", "--noprofile", "-c", script, "bash", COMPLETION,
                            "membank"] + list(words), capture_output=True, text=True,
                           env=dict(os.environ, PATH=bindir + os.pathsep + os.environ["PATH"]))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")
        return sorted(x for x in r.stdout.split("\n") if x)

    def test_commands(self):
        self.assertEqual(self.complete(""), top_commands())
        self.assertEqual(self.complete("pa"), ["page"])

    def test_subcommands(self):
        self.assertEqual(self.complete("page", ""),
                         sorted(["put", "merge", "get", "rm", "list", "count"]))
        self.assertEqual(self.complete("journal", "v"), ["verify"])
        self.assertEqual(self.complete("-b", "/tmp", "sync", ""), ["record", "status"])

    def test_options(self):
        self.assertIn("--durability", self.complete("--d"))
        self.assertEqual(self.complete("--durability", "f"), ["fast", "full"])
        self.assertIn("--limit", self.complete("page", "list", "--"))
        self.assertIn("--every", self.complete("compactor", "--"))
        self.assertEqual(self.complete("--q"), ["--quiet"])
        self.assertEqual(self.complete("restore", "--q"), ["--quiet"])


if __name__ == "__main__":
    unittest.main(verbosity=2)

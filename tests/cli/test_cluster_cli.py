#!/usr/bin/env python3
"""The membank command on a journal on a NATS JetStream cluster: real
nats-server processes (tests/nats/cluster.py: 127.0.0.1, their own ports and
store directories, stopped by pid), bank directories standing for machines.

Skipped (exit 77) when nats-server is missing or the library has no journal
on a cluster.  Environment: MEMBANK (the binary).
"""
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "nats"))
import cluster  # noqa: E402  tests/nats/cluster.py

MEMBANK = os.path.abspath(os.environ.get("MEMBANK", "membank"))
FOUR = ("notion_pages.json", "sync_status.json", "error_log.json", "config_cache.json")
_streams = iter(range(1, 1 << 30))
# A command that must succeed waits this long for the cluster: the default
# (15 s) is a production bound, and a test machine running other suites
# beside this one has stalled a stream's create past it.
OPEN_MS = "60000"


def have_server():
    return os.access(cluster.NATS_SERVER, os.X_OK)


class ClusterTest(unittest.TestCase):
    """One 3-node cluster with a user and password for the whole class;
    each test has its own stream and bank directories."""

    nodes = 3
    auth = "user"

    @classmethod
    def setUpClass(cls):
        cls.c = cluster.Cluster(nodes=cls.nodes, auth=cls.auth)

    @classmethod
    def tearDownClass(cls):
        cls.c.close()

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="membank-cluster-cli-")
        self.stream = "t%d_%d" % (os.getpid(), next(_streams))
        self.url = self.c.url + "/" + self.stream
        self.secrets = [x.encode() for x in self.c.secrets()]   # what must never show

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def machine(self, name):
        return os.path.join(self.tmp, name)

    def mb(self, machine, *args, url=True, timeout=120, env=None):
        """membank -b MACHINE args, the URL (with its credentials) in
        MEMBANK_JOURNAL; checks that the password is in no output."""
        e = dict(os.environ if env is None else env)
        if url:
            e["MEMBANK_JOURNAL"] = self.url if url is True else url
        if machine and "--journal-timeout" not in args:
            args = ("--journal-timeout", OPEN_MS) + args
        argv = [MEMBANK] + (["-b", self.machine(machine)] if machine else []) + list(args)
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e,
                           timeout=timeout)
        for out in (p.stdout, p.stderr):
            for secret in self.secrets:
                self.assertNotIn(secret, out, args)
        return p

    def ok(self, machine, *args, **kw):
        p = self.mb(machine, *args, **kw)
        self.assertEqual(p.returncode, 0, "membank %s: %s" % (args, p.stderr.decode()))
        return p.stdout.decode()

    def doc(self, machine, *args, **kw):
        return json.loads(self.ok(machine, *args, "--format", "json", **kw))


class TwoMachines(ClusterTest):
    def test_init_replicas_3_then_two_machines_share_every_write(self):
        self.assertEqual(self.ok("a", "init", "--replicas", "3").strip(), self.machine("a"))
        with open(os.path.join(self.machine("a"), "membank.json")) as f:
            ident = f.read()
        self.assertIn(self.stream, ident)
        self.assertNotIn(self.c.password, ident)      # recorded without credentials
        self.ok("b", "init")                          # the second machine joins

        st = self.doc("a", "cluster", "status")
        self.assertEqual(st["stream"], self.stream)
        self.assertTrue(st["reachable"])
        self.assertIsNone(st["error"])
        self.assertEqual(st["replicas"], 3)
        self.assertIn(st["leader"], ("n1", "n2", "n3"))
        self.assertFalse(st["diverged"])
        self.assertNotIn("@", st["url"])
        self.assertTrue(st["url"].endswith("/" + self.stream), st["url"])
        self.assertEqual(st["applied_seq"], st["last_seq"])
        self.assertEqual(st["lag_records"], 0)
        self.assertIsInstance(st["since_contact_ms"], int)

        # every operation kind, from both machines
        self.ok("a", "page", "put", "p1", '{"title":"One","n":1}')
        self.ok("b", "page", "merge", "p1", '{"owner":"b"}')
        self.ok("b", "page", "put", "p2", '{"title":"Two"}')
        self.ok("a", "page", "rm", "p2")
        self.ok("b", "error", "log", "rate_limited", "HTTP 429")
        self.ok("a", "error", "resolve", "rate_limited", "back off")
        self.ok("a", "config", "set", '{"notion_settings":{"retry_attempts":7}}')
        ops = '{"op":"page.put","id":"p3","properties":{"v":3}}\n' \
              '{"op":"sync.record","status":"success","error":null}\n'
        p = subprocess.run([MEMBANK, "-b", self.machine("b"), "batch", "-"], input=ops.encode(),
                           capture_output=True, env=dict(os.environ, MEMBANK_JOURNAL=self.url),
                           timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)

        # concurrent writers on both machines: exact totals everywhere
        def work(args):
            machine, k = args
            for i in range(8):
                p = self.mb(machine, "sync", "record", "success")
                if p.returncode:
                    return p.stderr.decode()
                p = self.mb(machine, "page", "put", "w%s%d-%d" % (machine, k, i), '{"i":%d}' % i)
                if p.returncode:
                    return p.stderr.decode()
            return None
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            errors = [e for e in pool.map(work, [(m, k) for m in "ab" for k in range(3)]) if e]
        self.assertEqual(errors, [])

        docs = {}
        for m in "ab":
            docs[m] = {
                "p1": self.doc(m, "--fresh", "page", "get", "p1")["properties"],
                "count": int(self.ok(m, "--fresh", "page", "count")),
                "sync": self.doc(m, "sync", "status", "--fresh"),
                "errors": self.doc(m, "error", "stats", "--fresh"),
                "retry": self.ok(m, "config", "get", "notion_settings.retry_attempts", "--fresh"),
            }
            self.fails_absent(m, "p2")
        self.assertEqual(docs["a"], docs["b"])
        d = docs["a"]
        self.assertEqual(d["p1"], {"title": "One", "n": 1, "owner": "b"})
        self.assertEqual(d["count"], 2 + 2 * 3 * 8)   # p1, p3 and the workers' pages
        self.assertEqual(d["sync"]["success_count"], 1 + 2 * 3 * 8)
        self.assertEqual(d["errors"]["total_errors"], 1)
        self.assertEqual(d["errors"]["resolved_errors"], 1)
        self.assertEqual(d["retry"], "7\n")

        # both at the stream's last seq; stats says so; snapshots byte-identical
        sa, sb = self.doc("a", "cluster", "status"), self.doc("b", "cluster", "status")
        self.assertEqual(sa["applied_seq"], sb["applied_seq"])
        self.assertEqual(sa["applied_seq"], sa["last_seq"])
        stats = self.doc("b", "stats")
        cl = stats["cluster"]
        self.assertEqual(cl["stream"], self.stream)
        self.assertEqual(cl["applied_seq"], sa["last_seq"])
        self.assertEqual(stats["journal"]["last_seq"], sa["last_seq"])
        self.assertEqual(cl["lag_records"], 0)
        self.assertFalse(cl["diverged"])
        self.assertNotIn("@", cl["url"])
        for m in "ab":
            self.ok(m, "snapshot", "--out", os.path.join(self.tmp, "snap-" + m))
        for name in FOUR:
            with open(os.path.join(self.tmp, "snap-a", name), "rb") as fa, \
                    open(os.path.join(self.tmp, "snap-b", name), "rb") as fb:
                self.assertEqual(fa.read(), fb.read(), name)

    def fails_absent(self, m, page):
        p = self.mb(m, "page", "get", page)
        self.assertEqual(p.returncode, 1, p.stderr)

    def test_existing_stream_keeps_its_replicas(self):
        self.ok("a", "init", "--replicas", "1")
        p = self.mb("b", "init", "--replicas", "3")
        self.assertEqual(p.returncode, 3, p.stderr)
        self.assertIn(b"--replicas 3, but the stream %s has 1" % self.stream.encode(), p.stderr)
        self.assertEqual(self.doc("a", "cluster", "status")["replicas"], 1)

    def test_bound_to_one_journal_for_life(self):
        self.ok("a", "init")
        other = self.c.url + "/" + self.stream + "x"
        p = self.mb("a", "page", "count", url=other)
        self.assertEqual(p.returncode, 3, p.stderr)
        self.assertIn(b"bound to journal", p.stderr)
        self.assertIn(self.stream.encode() + b"x", p.stderr)
        self.ok("local", "init", url=False)
        p = self.mb("local", "page", "count")
        self.assertEqual(p.returncode, 3, p.stderr)
        self.assertIn(b"local journal", p.stderr)

    def test_credentials_are_needed_again_and_never_shown(self):
        """membank.json keeps the URL without credentials: an open without
        them is refused by the server (exit 4), saying so without them."""
        self.ok("a", "init")
        env = dict(os.environ)
        env.pop("MEMBANK_JOURNAL", None)
        p = self.mb("a", "--journal-timeout", "2000", "page", "put", "x", "{}", url=False,
                    env=env)
        self.assertEqual(p.returncode, 4, p.stderr)
        self.assertTrue(p.stderr.startswith(b"membank: page put: "), p.stderr)
        wrong = self.url.replace(self.c.password, "not-the-password")
        p = self.mb("a", "page", "put", "x", "{}", url=wrong)
        self.assertEqual(p.returncode, 4, p.stderr)
        self.assertNotIn(b"not-the-password", p.stderr)

    def test_fresh_sees_the_other_machine_at_once(self):
        self.ok("a", "init")
        self.ok("b", "init")
        for i in range(20):
            self.ok("a", "page", "put", "k", '{"i":%d}' % i)
            self.assertEqual(self.doc("b", "--fresh", "page", "get", "k")["properties"],
                             {"i": i})

    def test_demo_two_machines(self):
        p = self.mb(None, "demo", "--machines", "2", "--workers", "2", "--seconds", "2",
                    timeout=300)
        out = p.stdout.decode()
        self.assertEqual(p.returncode, 0, out + p.stderr.decode())
        self.assertIn("2 machines", out)
        self.assertIn("checks of machine-1", out)
        self.assertIn("checks of machine-2", out)
        self.assertIn("four files = machine-1's: 1", out)
        self.assertIn("stream %s: last seq" % self.stream, out)
        self.assertNotIn("DIFFERENT", out)
        self.assertIn("all checks passed", out)
        self.assertIn("temporary banks are removed", out)

    def test_new_machine_bootstraps_from_the_clusters_checkpoint(self):
        """A demo on one machine writes thousands of records and its
        compactor checkpoints (into the cluster, purging the stream before
        it); a machine created then starts from that checkpoint and the
        stream's tail, and holds exactly the same bank."""
        base = self.machine("demo")
        p = self.mb(base, "demo", "--machines", "1", "--workers", "2", "--seconds", "3",
                    timeout=300)
        self.assertEqual(p.returncode, 0, p.stdout.decode()[-2000:] + p.stderr.decode())
        first = os.path.join(base, "machine-1")
        # a checkpoint at the stream's end; the purge keeps 1000 records
        # before it, and (in a test, no) records of the last 2 minutes
        env = dict(os.environ, MEMBANK_TEST_CKPT_KEEP_S="0")
        self.ok(None, "-b", first, "snapshot", env=env)
        st = json.loads(self.ok(None, "-b", first, "cluster", "status", "--format", "json"))
        self.assertGreater(st["first_seq"], 1, st)    # purged: a new machine cannot replay
        self.ok("new", "init")                        # a new machine joins: bootstrap
        new = self.doc("new", "cluster", "status")
        self.assertEqual(new["applied_seq"], st["last_seq"])
        self.assertEqual(self.ok("new", "page", "count"),
                         self.ok(None, "-b", first, "page", "count"))
        for m, d in (("new", self.machine("new")), ("first", first)):
            self.ok(None, "-b", d, "snapshot", "--out", os.path.join(self.tmp, "snap-" + m))
        for name in FOUR:
            with open(os.path.join(self.tmp, "snap-new", name), "rb") as fa, \
                    open(os.path.join(self.tmp, "snap-first", name), "rb") as fb:
                self.assertEqual(fa.read(), fb.read(), name)

    def test_cluster_status_names_the_clusters_checkpoint(self):
        """checkpoint_seq is the newest checkpoint kept in the cluster,
        whichever machine or process put it (it was the status process's
        own: 0 in any other); null while there is none."""
        self.ok("a", "init")
        self.assertIsNone(self.doc("a", "cluster", "status")["checkpoint_seq"])
        self.ok("a", "page", "put", "p", "{}")
        seq = json.loads(self.ok("a", "snapshot", "--format", "json"))["seq"]
        self.assertEqual(self.doc("a", "cluster", "status")["checkpoint_seq"], seq)
        self.ok("b", "init")           # another machine (a new one starts from it)
        self.assertEqual(self.doc("b", "cluster", "status")["checkpoint_seq"], seq)
        self.ok("b", "page", "put", "q", "{}")
        seq2 = json.loads(self.ok("b", "snapshot", "--format", "json"))["seq"]
        self.assertGreater(seq2, seq)
        self.assertEqual(self.doc("a", "cluster", "status")["checkpoint_seq"], seq2)
        self.ok("a", "snapshot")       # the same seq again: nothing changes
        self.assertEqual(self.doc("a", "cluster", "status")["checkpoint_seq"], seq2)

    def test_demo_refuses_a_used_stream(self):
        self.ok("a", "page", "put", "x", "{}")
        p = self.mb(None, "demo", "--machines", "2", "--seconds", "1")
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn(b"not empty", p.stderr)


class Tls(ClusterTest):
    """tls:// with a private CA and a client certificate the server asks for
    (verify: true); a tls:// URL never falls back to a plain connection."""

    nodes = 1

    @classmethod
    def setUpClass(cls):
        cls.c = cluster.Cluster(nodes=1, auth="user", tls_verify=True)

    def tls_args(self, cert=True):
        certs = self.c.certs
        args = ["--journal-ca", certs["ca"]]
        if cert:
            args += ["--journal-cert", certs["client_cert"], "--journal-key",
                     certs["client_key"]]
        return args

    def test_tls_with_client_certificate(self):
        self.assertTrue(self.url.startswith("tls://"), self.url)
        self.ok("a", *self.tls_args(), "init")
        self.ok("a", *self.tls_args(), "page", "put", "p", '{"v":1}')
        self.ok("b", *self.tls_args(), "init")
        self.assertEqual(self.doc("b", *self.tls_args(), "--fresh", "page", "get", "p")
                         ["properties"], {"v": 1})
        st = self.doc("b", *self.tls_args(), "cluster", "status")
        self.assertTrue(st["reachable"])
        self.assertTrue(st["url"].startswith("tls://"), st["url"])

    def test_refused_without_the_client_certificate_or_ca(self):
        for args in (self.tls_args(cert=False), []):
            p = self.mb("a", *args, "--journal-timeout", "2000", "init")
            self.assertEqual(p.returncode, 4, (args, p.stderr))

    def test_plain_url_to_a_tls_server_and_tls_url_to_a_plain_one(self):
        plain = self.url.replace("tls://", "nats://", 1)
        p = self.mb("a", *self.tls_args(), "--journal-timeout", "2000", "init", url=plain)
        self.assertEqual(p.returncode, 4, p.stderr)
        with cluster.Cluster(nodes=1) as other:      # no TLS at all
            url = other.url_for(scheme="tls") + "/" + self.stream
            p = self.mb("b", "--journal-timeout", "2000", "init", url=url)
            self.assertEqual(p.returncode, 4, p.stderr)


class Creds(ClusterTest):
    """A server in operator mode (JWT accounts, made by tests/nats/jwtauth.py):
    the bank logs in with a .creds file (--journal-creds or
    MEMBANK_JOURNAL_CREDS); the user's seed and JWT show nowhere."""

    nodes = 1
    auth = "jwt"

    @classmethod
    def setUpClass(cls):
        if not cluster.have_jwt():
            raise unittest.SkipTest("python3-cryptography is missing")
        super().setUpClass()

    def creds_env(self, creds):
        e = dict(os.environ)
        e["MEMBANK_JOURNAL_CREDS"] = creds
        return e

    def assert_no_bank(self, machine):
        """A failed init left no bank (the open lock file at most)."""
        d = self.machine(machine)
        self.assertEqual([e for e in os.listdir(d) if e != "open.lock"]
                         if os.path.isdir(d) else [], [], machine)

    def assert_no_secret_in(self, root):
        """Every file under @root (membank.json, the journal, LMDB, the
        snapshot files) holds neither the seed nor the JWT."""
        seen = 0
        for d, _, names in os.walk(root):
            for n in names:
                with open(os.path.join(d, n), "rb") as f:
                    data = f.read()
                seen += 1
                for secret in self.secrets:
                    self.assertNotIn(secret, data, os.path.join(d, n))
        self.assertGreater(seen, 3, root)

    def test_creds_file_option_and_environment(self):
        creds = self.c.creds
        self.assertNotIn("@", self.url)                   # nothing else to log in with
        self.ok("a", "--journal-creds", creds, "init")
        self.ok("a", "--journal-creds", creds, "page", "put", "p1", '{"v":1}')
        env = self.creds_env(creds)
        self.ok("b", "init", env=env)                     # MEMBANK_JOURNAL_CREDS
        self.assertEqual(self.doc("b", "--fresh", "page", "get", "p1", env=env)["properties"],
                         {"v": 1})
        self.ok("b", "page", "merge", "p1", '{"w":2}', env=env)
        self.ok("b", "error", "log", "rate_limited", "HTTP 429", env=env)
        self.assertEqual(self.doc("a", "--journal-creds", creds, "--fresh", "page", "get",
                                  "p1")["properties"], {"v": 1, "w": 2})
        st = self.doc("a", "--journal-creds", creds, "cluster", "status")
        self.assertTrue(st["reachable"])
        self.assertEqual(st["applied_seq"], st["last_seq"])
        self.assertGreaterEqual(st["last_seq"], 3)
        self.ok("a", "--journal-creds", creds, "stats")
        self.ok("a", "--journal-creds", creds, "snapshot")
        for m in ("a", "b"):
            with open(os.path.join(self.machine(m), "membank.json")) as f:
                ident = f.read()
            self.assertIn(self.stream, ident)
            self.assertNotIn(creds, ident)                # the file is not recorded
        self.assert_no_secret_in(self.tmp)

    def test_refused_without_creds(self):
        self.ok("a", "--journal-creds", self.c.creds, "init")
        p = self.mb("a", "--journal-timeout", "2000", "page", "put", "x", "{}")
        self.assertEqual(p.returncode, 4, p.stderr)
        self.assertIn(b"Authentication Violation", p.stderr)
        p = self.mb("b", "--journal-timeout", "2000", "init")
        self.assertEqual(p.returncode, 4, p.stderr)
        self.assert_no_bank("b")

    def test_user_of_an_unknown_account_is_refused(self):
        stranger = self.c.creds_stranger
        for args, env in ((["--journal-creds", stranger], None),
                          ([], self.creds_env(stranger))):
            p = self.mb("a", *args, "--journal-timeout", "2000", "init", env=env)
            self.assertEqual(p.returncode, 4, p.stderr)
            self.assertIn(b"Authentication Violation", p.stderr)
            self.assertIn(b"(with the credentials file %s)" % stranger.encode(), p.stderr)
            self.assert_no_bank("a")
        with open(stranger, "rb") as f:
            text = f.read()
        for line in text.split(b"\n"):
            if line.startswith((b"SU", b"ey")):
                self.assertNotIn(line, p.stderr)

    def test_bad_creds_file_is_named(self):
        """A file that cannot be a .creds file is refused before any
        connection (exit 3), naming it and what is wrong."""
        d = os.path.join(self.tmp, "files")
        os.mkdir(d, 0o700)
        with open(self.c.creds) as f:
            good = f.read()
        user = self.c.jwt["user"]
        bad = {"missing": (None, b"No such file or directory"),
               "dir": (None, b"not a regular file"),
               "empty": ("", b"it is empty"),
               "garbage": ("hello\nnot a creds file\n", b"no user JWT in it"),
               "seed-only": (user.seed + "\n", b"no user JWT in it"),
               "jwt-only": (good.split("*****")[0], b"no user NKey seed in it"),
               "huge": ("x" * (65 << 10), b"larger than 64 KiB")}
        for name, (text, why) in bad.items():
            path = os.path.join(d, name)
            if name == "dir":
                os.mkdir(path)
            elif text is not None:
                with open(path, "w") as f:
                    f.write(text)
            for args, env in ((["--journal-creds", path], None), ([], self.creds_env(path))):
                p = self.mb("a", *args, "--journal-timeout", "2000", "init", env=env)
                self.assertEqual(p.returncode, 3, (name, p.stderr))
                self.assertIn(b"the credentials file %s: " % path.encode(), p.stderr, name)
                self.assertIn(why, p.stderr, name)
                self.assert_no_bank("a")
        if os.geteuid() != 0:                     # root reads a mode-0000 file
            path = os.path.join(d, "unreadable")
            with open(path, "w") as f:
                f.write(good)
            os.chmod(path, 0)
            p = self.mb("a", "--journal-creds", path, "init")
            self.assertEqual(p.returncode, 3, p.stderr)
            self.assertIn(b"%s: cannot read it: Permission denied" % path.encode(), p.stderr)


class Unreachable(ClusterTest):
    """A cluster of one node, stopped during the test: reads serve the
    cache, writes and --fresh fail within --journal-timeout, cluster status
    says why; nothing shows the password."""

    nodes = 1

    def test_reads_serve_the_cache_writes_fail_in_bounded_time(self):
        self.ok("a", "page", "put", "p", '{"v":1}')
        self.c.kill(0)
        try:
            self.assertEqual(self.doc("a", "page", "get", "p")["properties"], {"v": 1})
            stats = self.doc("a", "stats")
            self.assertIsNotNone(stats["cluster"])
            t0 = time.monotonic()
            p = self.mb("a", "--journal-timeout", "1000", "page", "put", "q", "{}")
            self.assertEqual(p.returncode, 4, p.stderr)
            self.assertIn(b"reads still serve", p.stderr)
            self.assertLess(time.monotonic() - t0, 60)
            p = self.mb("a", "--journal-timeout", "1000", "--fresh", "page", "get", "p")
            self.assertEqual(p.returncode, 4, p.stderr)
            self.assertIn(b"--fresh", p.stderr)
            self.assertEqual(p.stdout, b"")
            p = self.mb("a", "--journal-timeout", "1000", "cluster", "status", "--format",
                        "json")
            self.assertEqual(p.returncode, 4, p.stderr)
            st = json.loads(p.stdout)
            self.assertFalse(st["reachable"])
            self.assertTrue(st["error"])
            self.assertIn(b"did not answer", p.stderr)
            self.assertEqual(self.doc("a", "page", "get", "p")["properties"], {"v": 1})
            self.assertEqual(self.ok("a", "page", "count"), "1\n")   # q was not written
        finally:
            self.c.restart(0)
        self.ok("a", "page", "put", "q", "{}")
        self.assertEqual(self.ok("a", "--fresh", "page", "count"), "2\n")


class Diverged(ClusterTest):
    """The stream deleted (the servers' store wiped) and then created again
    by another machine: the old machine refuses writes instead of
    diverging, keeps serving reads, and says so in cluster status."""

    nodes = 1

    def wipe(self):
        self.c.kill(0)
        shutil.rmtree(os.path.join(self.c.dir, self.c.name(0), "js"))
        os.mkdir(os.path.join(self.c.dir, self.c.name(0), "js"), 0o700)
        self.c.restart(0)

    def test_deleted_then_recreated(self):
        self.ok("a", "page", "put", "p", '{"v":1}')
        self.ok("a", "page", "put", "q", '{"v":2}')
        self.wipe()
        for step in ("deleted", "recreated"):
            p = self.mb("a", "page", "put", "r", "{}")
            self.assertEqual(p.returncode, 4, (step, p.stderr))
            self.assertIn(b"writes are refused", p.stderr, step)
            self.assertEqual(self.doc("a", "page", "get", "p")["properties"], {"v": 1}, step)
            p = self.mb("a", "cluster", "status", "--format", "json")
            self.assertEqual(p.returncode, 4, (step, p.stderr))
            self.assertTrue(json.loads(p.stdout)["diverged"], step)
            self.assertTrue(self.doc("a", "stats")["cluster"]["diverged"], step)
            if step == "deleted":
                self.ok("b", "page", "put", "other", "{}")   # a new stream, same name
        self.assertEqual(self.ok("b", "page", "count"), "1\n")   # b never saw a's pages


def main():
    if not have_server():
        print("nats-server missing: skipped")
        return 77
    probe = tempfile.mkdtemp(prefix="membank-probe-")
    try:
        p = subprocess.run([MEMBANK, "-b", os.path.join(probe, "b"), "--journal",
                            "nats://127.0.0.1:1/PROBE", "--journal-timeout", "300", "init"],
                           capture_output=True, timeout=120)
    finally:
        shutil.rmtree(probe, ignore_errors=True)
    if p.returncode == 0:
        print("this libmembank has no journal on a cluster (a stub): skipped")
        return 77
    cluster.install_signal_handlers()
    result = unittest.main(verbosity=2, exit=False).result
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())

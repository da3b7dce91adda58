#!/usr/bin/env python3
"""test_cluster.py - the test harness of the NATS tests (cluster.py) itself:
servers answer, faults act on the chosen node, and no server outlives the
harness, whether it ends normally, by SIGTERM, or its program fails."""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import cluster  # noqa: E402

CLUSTER_PY = os.path.join(HERE, 'cluster.py')


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purpose
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().split(')')[-1].split()[0] != 'Z'
    except OSError:
        return False


def wait_gone(pids, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(pid_alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


@unittest.skipUnless(os.access(cluster.NATS_SERVER, os.X_OK), 'no nats-server')
class TestCluster(unittest.TestCase):
    def test_three_nodes_faults_and_cleanup(self):
        with cluster.Cluster(nodes=3) as c:
            d = c.dir
            self.assertEqual(os.stat(d).st_mode & 0o777, 0o700)
            pids = [p.pid for p in c.procs]
            self.assertTrue(all(pid_alive(p) for p in pids))
            meta = c._http(0, '/jsz').get('meta_cluster') or {}
            self.assertEqual(meta.get('cluster_size'), 3)
            self.assertTrue(meta.get('leader'))
            self.assertTrue(c.url.startswith('nats://127.0.0.1:'))
            self.assertEqual(c.url.count(','), 2)
            # kill -9 node 1: reaped; restart: same port, ready again
            c.kill(1)
            self.assertFalse(pid_alive(pids[1]))
            c.restart(1)
            self.assertTrue(c.alive(1))
            self.assertEqual(c._http(1, '/healthz').get('status'), 'ok')
            # SIGSTOP / SIGCONT
            c.stop_node(2)
            with open('/proc/%d/stat' % c.procs[2].pid) as f:
                self.assertEqual(f.read().split(')')[-1].split()[0], 'T')
            c.cont(2)
            c.wait_ready()
            pids = [p.pid for p in c.procs]
        # closed: every server gone, the directory removed
        self.assertTrue(wait_gone(pids))
        self.assertFalse(os.path.exists(d))

    def test_port_taken_before_the_server_binds_it(self):
        """A port that another process takes between the harness's check
        and the server's bind (two harnesses at once): the cluster starts
        again on new ports instead of failing."""
        taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        taken.bind(('127.0.0.1', 0))
        taken.listen(1)
        busy = taken.getsockname()[1]
        real, calls = cluster._free_port, []

        def first_busy():
            calls.append(1)
            return busy if len(calls) == 1 else real()
        cluster._free_port = first_busy
        try:
            with cluster.Cluster(nodes=3) as c:
                self.assertNotIn(busy, c.ports + c.cports + c.mports)
                self.assertTrue(all(c.alive(i) for i in range(3)))
                self.assertEqual(len(calls), 18)   # two starts of 3 x 3 ports
        finally:
            cluster._free_port = real
            taken.close()

    def test_free_ports_avoid_the_ephemeral_range(self):
        lo, hi = cluster._ephemeral_range()
        if lo - 10000 <= 1000 and 65535 - hi <= 1000:
            self.skipTest('the ephemeral range %d-%d leaves no room' % (lo, hi))
        for _ in range(50):
            self.assertFalse(lo <= cluster._free_port() <= hi)

    def test_auth_and_tls_config(self):
        with cluster.Cluster(nodes=1, auth='token', tls=True) as c:
            e = c.env()
            self.assertTrue(e['MEMBANK_TEST_NATS_URL'].startswith('tls://' + c.token + '@'))
            self.assertNotIn(c.token, e['MEMBANK_TEST_NATS_PLAIN'])
            for k in ('MEMBANK_TEST_NATS_CA', 'MEMBANK_TEST_NATS_CERT', 'MEMBANK_TEST_NATS_KEY'):
                self.assertTrue(os.path.isfile(e[k]))
                self.assertEqual(os.stat(e[k]).st_mode & 0o777, 0o600)
            with open(os.path.join(c.dir, 'n1', 'server.conf')) as f:
                conf = f.read()
            self.assertIn('max_payload: 64MB', conf)
            self.assertIn('tls {', conf)
            self.assertIn('listen: "127.0.0.1:', conf)

    @unittest.skipUnless(cluster.have_jwt(), 'no python3-cryptography')
    def test_jwt_operator_mode(self):
        """--auth jwt: a valid operator-mode configuration; keys, JWTs and
        the .creds file as nkeys / jwt v2 write them (checked here by
        decoding, CRC and signature); the login itself is stream-auth-creds."""
        import base64
        import re
        import jwtauth
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        def nkey_raw(s):
            raw = base64.b32decode(s + '=' * (-len(s) % 8))
            self.assertEqual(jwtauth.crc16(raw[:-2]), int.from_bytes(raw[-2:], 'little'), s)
            return raw[:-2]

        def verify(token, issuer_public):
            h, b, sig = token.split('.')
            self.assertEqual(json.loads(base64.urlsafe_b64decode(h + '=' * (-len(h) % 4))),
                             {'typ': 'JWT', 'alg': 'ed25519-nkey'})
            key = Ed25519PublicKey.from_public_bytes(nkey_raw(issuer_public)[1:])
            key.verify(base64.urlsafe_b64decode(sig + '=' * (-len(sig) % 4)),
                       (h + '.' + b).encode())          # raises if wrong
            return jwtauth.decode_jwt_claims(token)

        with cluster.Cluster(nodes=1, auth='jwt') as c:
            conf = os.path.join(c.dir, 'n1', 'server.conf')
            t = subprocess.run([cluster.NATS_SERVER, '-t', '-c', conf], capture_output=True)
            self.assertEqual(t.returncode, 0, t.stderr)
            e = c.env()
            self.assertNotIn('@', e['MEMBANK_TEST_NATS_URL'])
            for k in ('MEMBANK_TEST_NATS_CREDS', 'MEMBANK_TEST_NATS_CREDS_STRANGER'):
                self.assertEqual(os.stat(e[k]).st_mode & 0o777, 0o600)
            op, user = c.jwt['operator'], c.jwt['user']
            bank = op.accounts[1]
            self.assertEqual(nkey_raw(op.public)[0], 14 << 3)
            self.assertEqual(nkey_raw(bank.public)[0], 0)
            self.assertEqual(nkey_raw(user.public)[0], 20 << 3)
            raw = nkey_raw(user.seed)
            self.assertEqual(len(raw), 34)
            self.assertTrue(user.seed.startswith('SU'))
            oc = verify(op.jwt, op.public)
            self.assertEqual((oc['iss'], oc['sub']), (op.public, op.public))
            self.assertEqual(oc['nats']['system_account'], op.system.public)
            ac = verify(bank.jwt, op.public)
            self.assertEqual(ac['sub'], bank.public)
            self.assertEqual(ac['nats']['limits']['disk_storage'], -1)   # JetStream on
            uc = verify(user.jwt, bank.public)
            self.assertEqual((uc['sub'], uc['nats']['type']), (user.public, 'user'))
            with open(c.creds) as f:
                text = f.read()
            blocks = re.findall(r'-{3,}[^\n]*-{3,}\n([\w\-.=]+)\n-{3,}[^\n]*-{3,}', text)
            self.assertEqual(blocks, [user.jwt, user.seed])
            self.assertEqual(sorted(c.secrets()), sorted([user.seed, user.jwt]))
            with open(conf) as f:
                conf_text = f.read()
            for a in op.accounts:               # SYS and bank, preloaded
                self.assertIn('%s: "%s"' % (a.public, a.jwt), conf_text)
            stranger = jwtauth.decode_jwt_claims(c.jwt['stranger'].jwt)['iss']
            self.assertNotIn(stranger, conf_text)    # its account is unknown there

    @unittest.skipUnless(cluster.have_jwt(), 'no python3-cryptography')
    def test_jwt_user_keys_libnats_signs(self):
        """A user key of jwtauth.py is one libnats signs with (the client
        signs the server's nonce with the .creds seed): checked through
        libnats itself, initialised first, and a refused key is drawn
        again rather than handed to a test."""
        import jwtauth
        if jwtauth._nats() is None:
            self.skipTest('no libnats')
        # the check's first nats_Sign in a process: libnats 3.4.1 refuses
        # any seed there unless nats_Open ran first (the base32 table)
        first = subprocess.run(
            [sys.executable, '-c', 'import sys; sys.path.insert(0, %r); import jwtauth; '
             'print(jwtauth.libnats_signs(jwtauth.KeyPair(jwtauth.PREFIX_USER)))' % HERE],
            capture_output=True, text=True, timeout=60)
        self.assertEqual(first.stdout.strip(), 'True', first.stderr)
        # refused: a seed libnats cannot decode (its checksum broken), and a
        # seed that signs but is not this key's (another key's seed)
        bad_crc = jwtauth.KeyPair(jwtauth.PREFIX_USER)
        c = 'A' if bad_crc.seed[-1] != 'A' else 'Q'
        bad_crc.seed = bad_crc.seed[:-1] + c
        wrong = jwtauth.KeyPair(jwtauth.PREFIX_USER)
        wrong.seed = jwtauth.KeyPair(jwtauth.PREFIX_USER).seed
        self.assertFalse(jwtauth.libnats_signs(bad_crc))
        self.assertFalse(jwtauth.libnats_signs(wrong))
        drawn = [bad_crc, wrong]
        made = []

        def make(prefix):
            kp = drawn.pop(0) if drawn else jwtauth.KeyPair(prefix)
            made.append(kp)
            return kp
        kp = jwtauth.signing_keypair(jwtauth.PREFIX_USER, make)
        self.assertEqual(len(made), 3)
        self.assertIs(kp, made[2])
        self.assertTrue(jwtauth.libnats_signs(kp, b'another nonce'))
        # users made by the helper: all signed by libnats
        acc = jwtauth.Operator('t').account('a')
        for i in range(50):
            self.assertTrue(jwtauth.libnats_signs(acc.user('u%d' % i).kp, b'n%d' % i))

    def wrapper(self, prog, sig=None):
        """Run cluster.py as a wrapper around @prog; with @sig, send it to
        the wrapper once the program is running.  Returns (rc, server pids)."""
        with tempfile.TemporaryDirectory() as t:
            mark = os.path.join(t, 'started')
            script = 'pgrep -f "nats-server -c $(dirname $MEMBANK_TEST_NATS_CONTROL)/" > %s.tmp; ' \
                     'echo $$ > %s.prog; mv %s.tmp %s; exec %s' % (mark, mark, mark, mark, prog)
            p = subprocess.Popen([sys.executable, CLUSTER_PY, '--nodes', '3', '--', 'sh', '-c',
                                  script], start_new_session=True)
            deadline = time.monotonic() + 120
            while not os.path.exists(mark) and time.monotonic() < deadline:
                if p.poll() is not None:
                    break
                time.sleep(0.05)
            if sig:
                p.send_signal(sig)
            rc = p.wait(timeout=120)
            with open(mark) as f:
                pids = [int(x) for x in f.read().split()]
            with open(mark + '.prog') as f:
                self.prog_pid = int(f.read())
            return rc, pids

    def test_wrapper_status_and_cleanup(self):
        rc, pids = self.wrapper("sh -c 'exit 3'")
        self.assertEqual(rc, 3)
        self.assertEqual(len(pids), 3)
        self.assertTrue(wait_gone(pids))

    def test_wrapper_sigterm_stops_servers_and_program(self):
        rc, pids = self.wrapper('sleep 600', sig=signal.SIGTERM)
        self.assertEqual(rc, -signal.SIGTERM)
        self.assertEqual(len(pids), 3)
        self.assertTrue(wait_gone(pids + [self.prog_pid]))

    def test_wrapper_killed_9_servers_die_with_it(self):
        # no atexit, no handler: the servers' parent-death signal
        if not cluster.SETPRIV:
            self.skipTest('no setpriv')
        rc, pids = self.wrapper('sleep 600', sig=signal.SIGKILL)
        self.assertEqual(rc, -signal.SIGKILL)
        self.assertEqual(len(pids), 3)
        self.assertTrue(wait_gone(pids))
        os.kill(self.prog_pid, signal.SIGKILL)   # ours: the program left behind

    def test_wrapper_control_commands(self):
        # the program drives the faults through the FIFO, as the C tests do
        prog = ('sh -c \'ctl() { echo "$1" > $MEMBANK_TEST_NATS_CONTROL; '
                'read a < $MEMBANK_TEST_NATS_CONTROL_REPLY; echo "$a"; }; '
                'r=$(ctl "kill 1"; ctl "restart 1"; ctl "stop 2"; ctl "cont 2"; ctl wait; '
                'ctl "kill 9"; ctl "bogus 1"); '
                'test "$(echo $r | cut -c1-14)" = "ok ok ok ok ok" || exit 5; '
                'echo "$r" > /tmp/ctlr.txt; echo "$r" | grep -q "error kill needs a node index" || exit 6; '
                'echo "$r" | grep -q "error unknown command bogus" || exit 7\'')
        rc, pids = self.wrapper(prog)
        self.assertEqual(rc, 0)
        self.assertTrue(wait_gone(pids))


if __name__ == '__main__':
    unittest.main()

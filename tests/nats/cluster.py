#!/usr/bin/env python3
"""cluster.py - start N nats-server processes (JetStream) for a test, stop them by pid.

As a library:
    with Cluster(nodes=3, auth='user', tls=True) as c:
        c.url                # "tls://u:p@127.0.0.1:P1,127.0.0.1:P2,.../"  (no stream)
        c.kill(i); c.stop_node(i); c.cont(i); c.restart(i); c.wait_ready()
As a wrapper (meson tests):
    python3 tests/nats/cluster.py --nodes 3 [--auth user|token|jwt] [--tls] [--tls-verify]
                                  [--max-payload 64MB] -- PROGRAM ARGS
exports to PROGRAM:
    MEMBANK_TEST_NATS_URL   nats://[cred@]host:port,...  (tls:// with --tls)
    MEMBANK_TEST_NATS_PLAIN the same URL without credentials (auth tests)
    MEMBANK_TEST_NATS_USER / _PASS / _TOKEN  the credentials of the cluster
    MEMBANK_TEST_NATS_CREDS  with --auth jwt: a .creds file of a user of an
                            account the servers know (JetStream enabled)
    MEMBANK_TEST_NATS_CREDS_STRANGER  a .creds file of a user of an account
                            the servers do not know (signed by another operator)
    MEMBANK_TEST_NATS_SECRETS  with --auth jwt: the user's seed and JWT,
                            space separated (for checks that they leak nowhere)
    MEMBANK_TEST_NATS_CA / _CERT / _KEY  with --tls: the test CA, a client cert+key
    MEMBANK_TEST_NATS_TLS_VERIFY  1 when the servers require client certificates
    MEMBANK_TEST_NATS_CONTROL  a FIFO: write "kill I", "stop I", "cont I", "restart I"
                            (then waits until ready), "spawn I" (restart, no
                            wait), "wait"; then read one line ("ok" or "error ...") from
                            MEMBANK_TEST_NATS_CONTROL_REPLY.  How a C test kills the
                            leader at a chosen point.
    MEMBANK_TEST_NATS_NODES the number of nodes
and returns PROGRAM's exit status (77 = skipped when nats-server is missing).

Every server listens on 127.0.0.1 only, on free ports, with its store in a
private temp directory (0700) removed at the end.  max_payload is 64MB so a
32 MiB record plus framing fits.  Servers are stopped by pid (SIGTERM, then
SIGKILL after a bounded wait) at exit, on SIGINT/SIGTERM/SIGHUP, and when the
Cluster object is closed: a test never leaves a server running.

--auth jwt runs the servers in operator mode (resolver: MEMORY, the accounts
preloaded): the operator, accounts, users and .creds files are made by
jwtauth.py (no `nsc` needed).
"""
import atexit
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

NATS_SERVER = shutil.which('nats-server') or '/usr/sbin/nats-server'
PORT_TRIES = 5    # starts on new ports after a port was taken under us
# setpriv --pdeathsig KILL: a server dies with the thread that started it,
# even when this process is killed -9 (no atexit then).  Servers are started
# by the thread that made the Cluster (the wrapper's main thread).
SETPRIV = shutil.which('setpriv')
_LIVE = []          # every Cluster not yet closed (atexit / signals stop them)
_PROGRAM = []       # the wrapped program, stopped too on a signal


def have_jwt():
    """--auth jwt needs python3-cryptography (Ed25519)."""
    try:
        import cryptography.hazmat.primitives.asymmetric.ed25519  # noqa: F401
        return True
    except ImportError:
        return False


def _ephemeral_range():
    try:
        with open('/proc/sys/net/ipv4/ip_local_port_range') as f:
            lo, hi = (int(x) for x in f.read().split())
            return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def _free_port():
    """A port free now, outside the kernel's ephemeral range when it can
    (there every outgoing connection of the machine takes its own port, and
    one may take ours before the server binds it).  Another harness may still
    take it first: Cluster starts again on new ports then (PORT_TRIES)."""
    lo, hi = _ephemeral_range()
    spans = [(r0, r1) for r0, r1 in ((10000, lo - 1), (hi + 1, 65535)) if r1 - r0 > 1000]
    for _ in range(100 if spans else 0):
        r0, r1 = random.choice(spans)
        port = random.randint(r0, r1)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(('127.0.0.1', port))
                return port
            except OSError:
                continue
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _run(cmd, cwd):
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)


def make_certs(d):
    """A self-signed CA, a server cert for 127.0.0.1/localhost and a client
    cert, all made here with openssl.  Returns a dict of paths."""
    ext = os.path.join(d, 'san.ext')
    with open(ext, 'w') as f:
        f.write('subjectAltName=IP:127.0.0.1,DNS:localhost\n'
                'extendedKeyUsage=serverAuth,clientAuth\n')
    _run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
          '-keyout', 'ca.key', '-out', 'ca.pem', '-subj', '/CN=membank test CA'], d)
    for who in ('server', 'client'):
        _run(['openssl', 'req', '-newkey', 'rsa:2048', '-nodes', '-keyout', who + '.key',
              '-out', who + '.csr', '-subj', '/CN=' + ('localhost' if who == 'server'
                                                       else 'membank-client')], d)
        _run(['openssl', 'x509', '-req', '-in', who + '.csr', '-CA', 'ca.pem', '-CAkey',
              'ca.key', '-CAcreateserial', '-days', '2', '-out', who + '.pem',
              '-extfile', ext], d)
    for n in os.listdir(d):
        os.chmod(os.path.join(d, n), 0o600)
    return {k: os.path.join(d, v) for k, v in (
        ('ca', 'ca.pem'), ('server_cert', 'server.pem'), ('server_key', 'server.key'),
        ('client_cert', 'client.pem'), ('client_key', 'client.key'))}


class Cluster:
    def __init__(self, nodes=3, auth=None, tls=False, tls_verify=False,
                 ready_timeout=60.0, max_payload='64MB'):
        if nodes < 1:
            raise ValueError('nodes must be >= 1')
        if auth not in (None, 'user', 'token', 'jwt'):
            raise ValueError('auth is user, token, jwt or None')
        self.n = nodes
        self.auth = auth
        self.tls = tls or tls_verify
        self.tls_verify = tls_verify
        self.max_payload = max_payload
        self.ready_timeout = ready_timeout
        self.procs = [None] * nodes
        self.dir = tempfile.mkdtemp(prefix='mbnats-')   # 0700 by mkdtemp
        os.chmod(self.dir, 0o700)
        self.user = 'mbuser'
        self.password = 'pw-' + secrets.token_hex(8)
        self.token = 'tok-' + secrets.token_hex(8)
        self.certs = None
        self.jwt = None
        self.closed = False
        self.lock = threading.RLock()   # spawn vs close: no server after close
        _LIVE.append(self)
        try:
            if self.tls:
                cd = os.path.join(self.dir, 'certs')
                os.mkdir(cd, 0o700)
                self.certs = make_certs(cd)
            if auth == 'jwt':
                self._make_jwt()
            for attempt in range(PORT_TRIES):
                self.ports = [_free_port() for _ in range(nodes)]
                self.cports = [_free_port() for _ in range(nodes)]
                self.mports = [_free_port() for _ in range(nodes)]
                for i in range(nodes):
                    self._write_conf(i)
                for i in range(nodes):
                    self._spawn(i)
                try:
                    self.wait_ready()
                    break
                except RuntimeError as e:
                    # a port taken between our check and the server's bind
                    # (another harness): every server again, on new ports
                    if 'address already in use' not in str(e) or attempt + 1 == PORT_TRIES:
                        raise
                    sys.stderr.write('cluster.py: a port was taken, starting again\n')
                    for i in range(nodes):
                        self._terminate(i)
                        shutil.rmtree(os.path.join(self.dir, self.name(i)), ignore_errors=True)
        except BaseException:
            self.close()
            raise

    # --- configuration -------------------------------------------------
    def _private_file(self, name, text):
        path = os.path.join(self.dir, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, 'w') as f:
            f.write(text)
        return path

    def _make_jwt(self):
        """An operator the servers trust, its account 'bank' (JetStream)
        and user 'membank' (self.creds); a stranger: a user of an account of
        another operator, unknown to the servers (self.creds_stranger)."""
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import jwtauth
        op = jwtauth.Operator('mbtest')
        user = op.account('bank').user('membank')
        stranger = jwtauth.Operator('other').account('other').user('stranger')
        self.jwt = {'operator': op, 'user': user, 'stranger': stranger,
                    'operator_jwt': self._private_file('operator.jwt', op.jwt)}
        self.creds = self._private_file('membank.creds', user.creds())
        self.creds_stranger = self._private_file('stranger.creds', stranger.creds())

    def name(self, i):
        return 'n%d' % (i + 1)

    def _write_conf(self, i):
        nd = os.path.join(self.dir, self.name(i))
        os.makedirs(os.path.join(nd, 'js'), mode=0o700, exist_ok=True)
        lines = [
            'server_name: %s' % self.name(i),
            'listen: "127.0.0.1:%d"' % self.ports[i],
            'http: "127.0.0.1:%d"' % self.mports[i],
            'max_payload: %s' % self.max_payload,
            'max_pending: 128MB',
            'jetstream {',
            '  store_dir: "%s"' % os.path.join(nd, 'js'),
            '  max_memory_store: 256MB',
            '  max_file_store: 8GB',
            '}',
        ]
        if self.n > 1:
            routes = ', '.join('"nats-route://127.0.0.1:%d"' % p
                               for j, p in enumerate(self.cports) if j != i)
            lines += ['cluster {', '  name: mbtest',
                      '  listen: "127.0.0.1:%d"' % self.cports[i],
                      '  routes: [%s]' % routes, '}']
        if self.auth == 'user':
            lines += ['authorization {', '  user: "%s"' % self.user,
                      '  password: "%s"' % self.password, '}']
        elif self.auth == 'token':
            lines += ['authorization {', '  token: "%s"' % self.token, '}']
        elif self.auth == 'jwt':
            lines += self.jwt['operator'].server_conf(self.jwt['operator_jwt'])
        if self.tls:
            c = self.certs
            lines += ['tls {', '  cert_file: "%s"' % c['server_cert'],
                      '  key_file: "%s"' % c['server_key'],
                      '  ca_file: "%s"' % c['ca'],
                      '  verify: %s' % ('true' if self.tls_verify else 'false'),
                      '  timeout: 5', '}']
        conf = os.path.join(nd, 'server.conf')
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, 'w') as f:
            f.write('\n'.join(lines) + '\n')

    def _spawn(self, i):
        nd = os.path.join(self.dir, self.name(i))
        cmd = [NATS_SERVER, '-c', os.path.join(nd, 'server.conf')]
        if SETPRIV:
            cmd = [SETPRIV, '--pdeathsig', 'KILL', '--'] + cmd
        with self.lock:
            if self.closed:
                raise RuntimeError('cluster closed')
            log = open(os.path.join(nd, 'server.log'), 'ab')
            try:
                self.procs[i] = subprocess.Popen(
                    cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True)
            finally:
                log.close()

    # --- URLs ----------------------------------------------------------
    def url_for(self, nodes=None, creds=True, scheme=None):
        nodes = range(self.n) if nodes is None else nodes
        scheme = scheme or ('tls' if self.tls else 'nats')
        cred = ''
        if creds and self.auth == 'user':
            cred = '%s:%s@' % (self.user, self.password)
        elif creds and self.auth == 'token':
            cred = self.token + '@'
        hosts = ','.join('127.0.0.1:%d' % self.ports[i] for i in nodes)
        return '%s://%s%s' % (scheme, cred, hosts)

    @property
    def url(self):
        return self.url_for()

    def secrets(self):
        """What must never show: the password, the token, or (jwt) the
        user's seed and JWT."""
        if self.auth == 'user':
            return [self.password]
        if self.auth == 'token':
            return [self.token]
        if self.auth == 'jwt':
            return [self.jwt['user'].seed, self.jwt['user'].jwt]
        return []

    def env(self):
        e = {'MEMBANK_TEST_NATS_URL': self.url,
             'MEMBANK_TEST_NATS_PLAIN': self.url_for(creds=False),
             'MEMBANK_TEST_NATS_NODES': str(self.n)}
        if self.auth == 'user':
            e['MEMBANK_TEST_NATS_USER'] = self.user
            e['MEMBANK_TEST_NATS_PASS'] = self.password
        elif self.auth == 'token':
            e['MEMBANK_TEST_NATS_TOKEN'] = self.token
        elif self.auth == 'jwt':
            e['MEMBANK_TEST_NATS_CREDS'] = self.creds
            e['MEMBANK_TEST_NATS_CREDS_STRANGER'] = self.creds_stranger
            e['MEMBANK_TEST_NATS_SECRETS'] = ' '.join(self.secrets())
        if self.tls:
            e['MEMBANK_TEST_NATS_CA'] = self.certs['ca']
            e['MEMBANK_TEST_NATS_CERT'] = self.certs['client_cert']
            e['MEMBANK_TEST_NATS_KEY'] = self.certs['client_key']
            e['MEMBANK_TEST_NATS_TLS_VERIFY'] = '1' if self.tls_verify else '0'
        return e

    # --- readiness -----------------------------------------------------
    def _http(self, i, path):
        with urllib.request.urlopen('http://127.0.0.1:%d%s' % (self.mports[i], path),
                                    timeout=5) as r:
            return json.loads(r.read().decode())

    def _node_ready(self, i):
        try:
            h = self._http(i, '/healthz')
            if h.get('status') != 'ok':
                return False
            if self.n > 1:
                meta = self._http(i, '/jsz').get('meta_cluster') or {}
                return bool(meta.get('leader'))
            return True
        except (OSError, ValueError):
            return False

    def alive(self, i):
        p = self.procs[i]
        return p is not None and p.poll() is None

    def wait_ready(self, nodes=None, timeout=None):
        """Until every running node (or @nodes) answers /healthz ok and, in a
        cluster, knows the meta leader.  Bounded: raises TimeoutError."""
        nodes = [i for i in (range(self.n) if nodes is None else nodes)]
        deadline = time.monotonic() + (timeout or self.ready_timeout)
        pause = 0.02
        while True:
            for i in nodes:
                p = self.procs[i]
                if p is not None and p.poll() is not None:
                    raise RuntimeError('nats-server %s exited with %s; log: %s'
                                       % (self.name(i), p.returncode, self.log_tail(i)))
            pending = [i for i in nodes if self.alive(i) and not self._node_ready(i)]
            if not pending:
                return
            if time.monotonic() > deadline:
                raise TimeoutError('nats-server %s not ready; log: %s'
                                   % (self.name(pending[0]), self.log_tail(pending[0])))
            time.sleep(pause)
            pause = min(pause * 2, 0.25)

    def log_tail(self, i, n=2000):
        try:
            with open(os.path.join(self.dir, self.name(i), 'server.log'), 'rb') as f:
                return f.read()[-n:].decode(errors='replace')
        except OSError:
            return '(no log)'

    def stream_leader(self, stream):
        """The server name leading @stream (from the monitoring endpoint), or None."""
        for i in range(self.n):
            if not self.alive(i):
                continue
            try:
                j = self._http(i, '/jsz?accounts=true&streams=true')
            except (OSError, ValueError):
                continue
            for acc in j.get('account_details') or []:
                for s in acc.get('stream_detail') or []:
                    if s.get('name') == stream:
                        leader = (s.get('cluster') or {}).get('leader')
                        if leader:
                            return leader
        return None

    def index_of(self, name):
        return int(name[1:]) - 1

    # --- faults --------------------------------------------------------
    def kill(self, i):
        """kill -9 node i and reap it."""
        p = self.procs[i]
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGCONT)
            p.kill()
            p.wait()
        self.procs[i] = None

    def _state(self, i):
        try:
            with open('/proc/%d/stat' % self.procs[i].pid) as f:
                return f.read().rsplit(')', 1)[-1].split()[0]
        except OSError:
            return '?'

    def _await_state(self, i, stopped, timeout=30.0):
        """A signal is delivered asynchronously: return once node i is
        (not) stopped, so that the caller acts on a known state."""
        deadline = time.monotonic() + timeout
        while (self._state(i) in ('T', 't')) != stopped:
            if time.monotonic() > deadline:
                raise TimeoutError('%s: still %s' % (self.name(i), self._state(i)))
            time.sleep(0.005)

    def stop_node(self, i):
        """SIGSTOP node i (it keeps its sockets, answers nothing); returns
        once it is stopped."""
        self.procs[i].send_signal(signal.SIGSTOP)
        self._await_state(i, True)

    def cont(self, i):
        self.procs[i].send_signal(signal.SIGCONT)
        self._await_state(i, False)

    def restart(self, i, wait=True):
        """Start node i again (same ports, same store) after a kill."""
        with self.lock:
            if self.alive(i):
                self._terminate(i)
            self._spawn(i)
        if wait:
            self.wait_ready()

    def _terminate(self, i, grace=10.0):
        p = self.procs[i]
        if p is None:
            return
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGCONT)
                p.terminate()
                p.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs[i] = None

    def close(self):
        with self.lock:
            if self.closed:
                return
            self.closed = True
            for i in range(self.n):
                try:
                    self._terminate(i)
                except (OSError, ProcessLookupError):
                    pass
        if os.environ.get('MEMBANK_TEST_KEEP_NATS'):
            sys.stderr.write('cluster.py: kept %s\n' % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        if self in _LIVE:
            _LIVE.remove(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _close_all():
    for c in list(_LIVE):
        c.close()


atexit.register(_close_all)


def _on_signal(signum, frame):
    for p in _PROGRAM:
        try:
            p.terminate()
        except OSError:
            pass
    _close_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def install_signal_handlers():
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, _on_signal)


def _control_reader(ctl, reply, todo, done, stop):
    """Read the FIFO commands of a wrapped program (see the module doc) and
    hand each to the main thread (@todo), which starts and stops servers
    (their parent-death signal is tied to it); write its answer back.

    Both FIFOs stay open here (O_RDWR) for the whole run: a program's open
    never meets a writer that is about to close (an EOF read as an empty
    answer), and a command is never lost between two opens."""
    rfd = os.open(ctl, os.O_RDWR)
    wfd = os.open(reply, os.O_RDWR)
    buf = b''
    try:
        while not stop.is_set():
            chunk = os.read(rfd, 4096)
            if not chunk:
                return
            buf += chunk
            while b'\n' in buf:
                line, buf = buf.split(b'\n', 1)
                words = line.decode(errors='replace').split()
                if not words:
                    continue
                if words[0] == 'quit':
                    return
                todo.put(words)
                os.write(wfd, (done.get() + '\n').encode())
    finally:
        os.close(rfd)
        os.close(wfd)


def _control_do(c, words):
    """One command, in the main thread: 'ok' or 'error ...'."""
    try:
        cmd = words[0]
        i = int(words[1]) if len(words) > 1 and words[1].isdigit() else None
        if cmd in ('kill', 'stop', 'cont', 'restart', 'spawn') and (i is None or not 0 <= i < c.n):
            raise ValueError('%s needs a node index 0..%d' % (cmd, c.n - 1))
        if cmd == 'kill':
            c.kill(i)
        elif cmd == 'stop':
            c.stop_node(i)
        elif cmd == 'cont':
            c.cont(i)
        elif cmd == 'restart':
            c.restart(i)
        elif cmd == 'spawn':             # restart without waiting (no quorum yet)
            c.restart(i, wait=False)
        elif cmd == 'wait':
            c.wait_ready()
        else:
            raise ValueError('unknown command ' + cmd)
        return 'ok'
    except Exception as e:               # told to the program, not fatal
        return 'error ' + str(e).replace('\n', ' ')[:400]


def main(argv):
    import argparse
    if '--' not in argv:
        sys.stderr.write('usage: cluster.py --nodes N [--auth user|token|jwt] [--tls] '
                         '[--tls-verify] -- PROGRAM ARGS\n')
        return 2
    k = argv.index('--')
    ap = argparse.ArgumentParser()
    ap.add_argument('--nodes', type=int, default=3)
    ap.add_argument('--auth', choices=['user', 'token', 'jwt'])
    ap.add_argument('--tls', action='store_true')
    ap.add_argument('--tls-verify', action='store_true')
    ap.add_argument('--ready-timeout', type=float, default=90.0)
    ap.add_argument('--max-payload', default='64MB', help="the servers' max_payload")
    a = ap.parse_args(argv[:k])
    prog = argv[k + 1:]
    if not prog:
        sys.stderr.write('cluster.py: no program after --\n')
        return 2
    if not os.access(NATS_SERVER, os.X_OK):
        sys.stderr.write('cluster.py: nats-server not found: skipped\n')
        return 77
    if a.auth == 'jwt' and not have_jwt():
        sys.stderr.write('cluster.py: --auth jwt needs python3-cryptography: skipped\n')
        return 77
    install_signal_handlers()
    with Cluster(nodes=a.nodes, auth=a.auth, tls=a.tls, tls_verify=a.tls_verify,
                 ready_timeout=a.ready_timeout, max_payload=a.max_payload) as c:
        ctl = os.path.join(c.dir, 'control')
        reply = os.path.join(c.dir, 'control.reply')
        os.mkfifo(ctl, 0o600)
        os.mkfifo(reply, 0o600)
        env = dict(os.environ)
        env.update(c.env())
        env['MEMBANK_TEST_NATS_CONTROL'] = ctl
        env['MEMBANK_TEST_NATS_CONTROL_REPLY'] = reply
        import queue
        todo, done, stop = queue.Queue(), queue.Queue(), threading.Event()
        t = threading.Thread(target=_control_reader, args=(ctl, reply, todo, done, stop),
                             daemon=True)
        t.start()
        p = subprocess.Popen(prog, env=env)
        _PROGRAM.append(p)
        try:
            while True:
                try:
                    words = todo.get(timeout=0.05)
                except queue.Empty:
                    if p.poll() is not None:
                        break
                    continue
                done.put(_control_do(c, words))
            rc = p.wait()
        except BaseException:
            p.kill()
            p.wait()
            raise
        stop.set()
        try:      # wake the control thread (it holds the FIFO open)
            fd = os.open(ctl, os.O_WRONLY | os.O_NONBLOCK)
            os.write(fd, b'quit\n')
            os.close(fd)
        except OSError:
            pass
        t.join(timeout=10)
        if rc not in (0, 77):
            # what the servers said, for a failure seen only once (the
            # store directories go with the harness)
            for i in range(c.n):
                sys.stderr.write('--- nats-server %s log (tail):\n%s\n'
                                 % (c.name(i), c.log_tail(i)))
        return rc if rc >= 0 else 128 - rc


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))

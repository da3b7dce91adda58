#!/usr/bin/env python3
"""jwtauth.py - NATS operator / account / user identities for tests, made
without `nsc`: Ed25519 keys (python3-cryptography), NKey encoding and NATS
JWTs written here, after nats-io/nkeys (strkey.go) and nats-io/jwt v2
(claims.go, account_claims.go, user_claims.go, creds_utils.go).

NKey (public key):  base32(prefix byte + 32-byte key + CRC16 LE), no padding.
NKey seed:          base32(b1 b2 + 32-byte seed + CRC16 LE), where
                    b1 = 18<<3 | type>>5 and b2 = (type & 31)<<3 ("SO", "SA", "SU").
CRC16:              XMODEM (polynomial 0x1021, initial 0), over the bytes before it.
JWT:                base64url(header) "." base64url(claims) "." base64url(sig),
                    no padding; header {"typ":"JWT","alg":"ed25519-nkey"}; the
                    Ed25519 signature of the issuer over "header.claims";
                    jti = base32 (no padding) of SHA-512/256 of the claims'
                    standard fields without jti (as jwt v2 does).
.creds file:        the user JWT and the user seed between the BEGIN/END lines
                    of creds_utils.go's FormatUserConfig.

    op = Operator('test')                 # an operator and its system account
    acc = op.account('bank', jetstream=True)
    usr = acc.user('membank')
    usr.creds()                           # the text of a .creds file
    op.jwt, op.preload()                  # for the server's configuration
"""
import base64
import ctypes
import ctypes.util
import hashlib
import json
import time

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

PREFIX_SEED = 18 << 3
PREFIX_OPERATOR = 14 << 3
PREFIX_ACCOUNT = 0
PREFIX_USER = 20 << 3


def crc16(data):
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def _b32(raw):
    return base64.b32encode(raw).decode().rstrip('=')


def encode_public(prefix, key):
    raw = bytes([prefix]) + key
    return _b32(raw + crc16(raw).to_bytes(2, 'little'))


def encode_seed(prefix, seed):
    raw = bytes([PREFIX_SEED | (prefix >> 5), (prefix & 31) << 3]) + seed
    return _b32(raw + crc16(raw).to_bytes(2, 'little'))


def _b64url(raw):
    return base64.urlsafe_b64encode(raw).decode().rstrip('=')


_libnats = None


def _nats():
    """libnats, opened once and initialised (nats_Open) before any
    nats_Sign: libnats 3.4.1 builds its base32 decode table in nats_Open,
    so a nats_Sign called first in a process decodes every seed to zeros
    and refuses it (NATS_ERR, 'invalid seed'); its error path opens the
    library, so the next call works.  That, not the seed, was the "1 in
    15,000 seeds refused" measured with a probe that never called
    nats_Open (one refusal per probe process): once initialised, libnats
    signed 100,000 random seeds of this helper and produced the very
    signatures python3-cryptography does.  None when libnats is absent."""
    global _libnats
    if _libnats is None:
        name = ctypes.util.find_library('nats')
        if not name:
            return None
        lib = ctypes.CDLL(name)
        lib.nats_Open.argtypes = [ctypes.c_int64]
        lib.nats_Sign.argtypes = [ctypes.c_char_p, ctypes.c_char_p,
                                  ctypes.POINTER(ctypes.c_void_p),
                                  ctypes.POINTER(ctypes.c_int)]
        if lib.nats_Open(-1) != 0:
            raise RuntimeError('libnats: nats_Open failed')
        _libnats = lib
    return _libnats


def libnats_signs(kp, data=b'nonce'):
    """True when libnats' nats_Sign takes @kp's seed and signs @data with
    the signature python3-cryptography makes (Ed25519 is deterministic);
    True as well when libnats is not installed (nothing to check)."""
    lib = _nats()
    if lib is None:
        return True
    sig, n = ctypes.c_void_p(), ctypes.c_int()
    if lib.nats_Sign(kp.seed.encode(), data, ctypes.byref(sig), ctypes.byref(n)) != 0:
        return False
    got = ctypes.string_at(sig, n.value)
    ctypes.CDLL(None).free(sig)
    return got == kp.sign(data)


def signing_keypair(prefix, make=None):
    """A KeyPair that libnats signs with (users: the client signs the
    server's nonce with the .creds seed).  Keys are drawn again until
    libnats_signs() holds, so a key libnats cannot use never reaches a
    test; @make (tests) replaces the key maker."""
    make = make or KeyPair
    for _ in range(100):
        kp = make(prefix)
        if libnats_signs(kp):
            return kp
    raise RuntimeError('libnats refused 100 keys in a row')


class KeyPair:
    def __init__(self, prefix):
        self.priv = Ed25519PrivateKey.generate()
        seed = self.priv.private_bytes(serialization.Encoding.Raw,
                                       serialization.PrivateFormat.Raw,
                                       serialization.NoEncryption())
        pub = self.priv.public_key().public_bytes(serialization.Encoding.Raw,
                                                  serialization.PublicFormat.Raw)
        self.public = encode_public(prefix, pub)
        self.seed = encode_seed(prefix, seed)

    def sign(self, data):
        return self.priv.sign(data)


def encode_jwt(issuer, subject, name, nats):
    """A NATS v2 JWT of @subject (a public NKey) signed by @issuer (a
    KeyPair).  @nats: the claim type's "nats" object."""
    std = {'iat': int(time.time()), 'iss': issuer.public, 'name': name, 'sub': subject}
    # jwt v2 ClaimsData.hash(): the standard fields as Go marshals them
    # (their order, compact, jti empty hence omitted), SHA-512/256, base32
    # without padding.  (The server does not check it.)
    jti = _b32(hashlib.new('sha512_256', json.dumps(std, separators=(',', ':')).encode())
               .digest())
    claims = dict({'jti': jti}, **std)
    claims['nats'] = nats
    header = _b64url(json.dumps({'typ': 'JWT', 'alg': 'ed25519-nkey'},
                                separators=(',', ':')).encode())
    body = _b64url(json.dumps(claims, separators=(',', ':')).encode())
    to_sign = header + '.' + body
    return to_sign + '.' + _b64url(issuer.sign(to_sign.encode()))


def decode_jwt_claims(token):
    body = token.split('.')[1]
    return json.loads(base64.urlsafe_b64decode(body + '=' * (-len(body) % 4)))


UNLIMITED = -1


class User:
    def __init__(self, account, name):
        self.kp = signing_keypair(PREFIX_USER)
        self.public, self.seed = self.kp.public, self.kp.seed
        self.jwt = encode_jwt(account.kp, self.public, name, {
            'pub': {}, 'sub': {}, 'subs': UNLIMITED, 'data': UNLIMITED,
            'payload': UNLIMITED, 'type': 'user', 'version': 2})

    def creds(self):
        """The text of a .creds file (jwt creds_utils.go FormatUserConfig)."""
        return ('-----BEGIN NATS USER JWT-----\n%s\n------END NATS USER JWT------\n\n'
                '************************* IMPORTANT *************************\n'
                'NKEY Seed printed below can be used to sign and prove identity.\n'
                'NKEYs are sensitive and should be treated as secrets.\n\n'
                '-----BEGIN USER NKEY SEED-----\n%s\n------END USER NKEY SEED------\n\n'
                '*************************************************************\n'
                % (self.jwt, self.seed))


class Account:
    def __init__(self, operator, name, jetstream):
        self.kp = KeyPair(PREFIX_ACCOUNT)
        self.public, self.seed = self.kp.public, self.kp.seed
        limits = {'subs': UNLIMITED, 'data': UNLIMITED, 'payload': UNLIMITED,
                  'imports': UNLIMITED, 'exports': UNLIMITED, 'wildcards': True,
                  'conn': UNLIMITED, 'leaf': UNLIMITED}
        if jetstream:     # any storage limit other than 0 enables JetStream
            limits.update({'mem_storage': UNLIMITED, 'disk_storage': UNLIMITED,
                           'streams': UNLIMITED, 'consumer': UNLIMITED})
        self.jwt = encode_jwt(operator.kp, self.public, name, {
            'limits': limits, 'default_permissions': {'pub': {}, 'sub': {}},
            'type': 'account', 'version': 2})

    def user(self, name):
        return User(self, name)


class Operator:
    """An operator, its system account (SYS) and the accounts made by
    account(); jwt names the system account."""

    def __init__(self, name):
        self.kp = KeyPair(PREFIX_OPERATOR)
        self.public, self.seed = self.kp.public, self.kp.seed
        self.accounts = []
        self.system = self.account('SYS', jetstream=False)
        self.jwt = encode_jwt(self.kp, self.public, name, {
            'system_account': self.system.public, 'type': 'operator', 'version': 2})

    def account(self, name, jetstream=True):
        a = Account(self, name, jetstream)
        self.accounts.append(a)
        return a

    def server_conf(self, operator_jwt_path):
        """The lines of a server configuration that trust this operator
        and know its accounts (resolver: MEMORY, preloaded)."""
        lines = ['operator: "%s"' % operator_jwt_path,
                 'system_account: %s' % self.system.public,
                 'resolver: MEMORY',
                 'resolver_preload: {']
        lines += ['  %s: "%s"' % (a.public, a.jwt) for a in self.accounts]
        lines.append('}')
        return lines


if __name__ == '__main__':
    # A self-check: encodings decode back, signatures verify.
    op = Operator('check')
    acc = op.account('bank')
    u = acc.user('u')
    for s, first in ((op.public, 'O'), (acc.public, 'A'), (u.public, 'U'),
                     (op.seed, 'SO'), (acc.seed, 'SA'), (u.seed, 'SU')):
        assert s.startswith(first), s
        raw = base64.b32decode(s + '=' * (-len(s) % 8))
        assert crc16(raw[:-2]) == int.from_bytes(raw[-2:], 'little'), s
    c = decode_jwt_claims(u.jwt)
    assert c['iss'] == acc.public and c['sub'] == u.public, c
    print(u.creds())

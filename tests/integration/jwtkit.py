# SPDX-License-Identifier: Apache-2.0
"""
Keys, JWKS documents and signed JWTs for the tests, with the openssl command
and the Python standard library only (RS256 and ES256 sign through
`openssl dgst`, HS256 through hmac).
"""
import base64
import hashlib
import hmac
import json
import os
import subprocess
import time


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _openssl(*args, data=None):
    return subprocess.run(["openssl"] + list(args), input=data, check=True,
                          capture_output=True).stdout


class RsaKey:
    def __init__(self, dirpath, kid, bits=2048):
        self.kid = kid
        self.alg = "RS256"
        self.path = os.path.join(dirpath, "%s.pem" % kid)
        _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:%d" % bits,
                 "-out", self.path)
        mod = _openssl("rsa", "-in", self.path, "-noout", "-modulus").decode()
        self.n = bytes.fromhex(mod.strip().split("=", 1)[1])

    def jwk(self):
        return {"kty": "RSA", "kid": self.kid, "use": "sig", "alg": "RS256",
                "n": b64url(self.n), "e": b64url(b"\x01\x00\x01")}

    def sign(self, data):
        return _openssl("dgst", "-sha256", "-sign", self.path, data=data)


def _der_ints(der):
    """r and s of an ECDSA-Sig-Value (SEQUENCE of two INTEGERs)."""
    assert der[0] == 0x30
    i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7f)
    out = []
    for _ in range(2):
        assert der[i] == 0x02
        n = der[i + 1]
        out.append(int.from_bytes(der[i + 2:i + 2 + n], "big"))
        i += 2 + n
    return out


class EcKey:
    def __init__(self, dirpath, kid):
        self.kid = kid
        self.alg = "ES256"
        self.path = os.path.join(dirpath, "%s.pem" % kid)
        _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-out", self.path)
        pub = _openssl("pkey", "-in", self.path, "-pubout", "-outform", "DER")
        point = pub[-65:]
        assert point[0] == 4
        self.x, self.y = point[1:33], point[33:]

    def jwk(self):
        return {"kty": "EC", "kid": self.kid, "crv": "P-256", "use": "sig",
                "x": b64url(self.x), "y": b64url(self.y)}

    def sign(self, data):
        r, s = _der_ints(_openssl("dgst", "-sha256", "-sign", self.path, data=data))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


class HmacKey:
    def __init__(self, kid, secret=None):
        self.kid = kid
        self.alg = "HS256"
        self.secret = secret or os.urandom(32)

    def jwk(self):
        return {"kty": "oct", "kid": self.kid, "k": b64url(self.secret)}

    def sign(self, data):
        return hmac.new(self.secret, data, hashlib.sha256).digest()


def jwks(*keys):
    return json.dumps({"keys": [k.jwk() for k in keys]})


def token(key, claims=None, header=None, alg=None, ttl=300, sign=True):
    """A compact JWT signed by key; claims get exp/iat unless given."""
    now = int(time.time())
    body = {"iat": now, "exp": now + ttl}
    body.update(claims or {})
    head = {"alg": alg or key.alg, "typ": "JWT", "kid": key.kid}
    head.update(header or {})
    signing = ("%s.%s" % (b64url(json.dumps(head).encode()),
                          b64url(json.dumps(body).encode()))).encode()
    sig = key.sign(signing) if sign else b""
    return signing.decode() + "." + b64url(sig)

"""envelope.py - build, sign and verify lienthong envelopes.

Written from docs/protocol.md alone (section numbers in the comments are that document's):
  section 3   the envelope, the header and its field rules, agency ids, record types
  section 4   what is signed (domain || 0x00 || data), algorithms, key id, certificates
  section 5   batch signatures: the Merkle tree, BatchProof and its check
  section 8.6 what a consumer checks on every delivery, at the record's own time
Refusals are the NackCode names of section 10 (e.g. "BAD_SIGNATURE").
"""
import datetime
import hashlib
import os
import re
import time

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import NameOID

from lienthong.v1 import envelope_pb2 as pb
from lienthong.v1.records import (civil_status_pb2, dossier_pb2, edoc_pb2, enterprise_pb2,
                                  land_pb2, population_pb2, residence_pb2, task_pb2)

# section 4.1: the domains of the three uses of a signature
DOMAIN_ENVELOPE = b"lienthong/v1"
DOMAIN_BATCH = b"lienthong/v1 batch"
DOMAIN_AUTH = b"lienthong/v1 auth"

SCHEMA_VERSION = 1                     # section 3.2, field 10
HEADER_MAX = 16384                     # section 3.1
PAYLOAD_MAX = 4 * 1024 * 1024 - 64 * 1024
CERT_MAX = 16384                       # sections 3.1, 4.4
SIGNATURE_MAX = 1024
BATCH_MAX = 65536                      # section 5
PROOF_SIBLINGS_MAX = 32
CLOCK_SKEW_MS_DEFAULT = 300 * 1000     # section 11


class Refused(Exception):
    """A check failed: code is the NackCode name (section 10), reason is for people."""

    def __init__(self, code, reason):
        super().__init__("%s: %s" % (code, reason))
        self.code = code
        self.reason = reason


def sha256(b):
    return hashlib.sha256(b).digest()


def now_ms():
    return int(time.time() * 1000)


def signed_bytes(domain, data):
    """section 4.1: domain (ASCII) || one zero byte || data."""
    return domain + b"\x00" + data


def uuid7(at_ms=None):
    """section 3.2: bytes 0-5 the 48-bit big-endian time in ms, byte 6 = 0x70 | 4 random
    bits, byte 8 = 0x80 | 6 random bits, every other bit random."""
    t = now_ms() if at_ms is None else at_ms
    b = bytearray(os.urandom(16))
    b[0:6] = t.to_bytes(6, "big")
    b[6] = 0x70 | (b[6] & 0x0F)
    b[8] = 0x80 | (b[8] & 0x3F)
    return bytes(b)


# ---- agency ids and record types (sections 3.3, 3.4) ------------------------------------

_CODE = r"(?:[0-9]{3}\.[0-9]{2}\.[0-9]{2}\.[A-Z][0-9]{2}|[A-Z][0-9]{2})(?:\.[0-9A-Z]+)*"
_AGENCY = re.compile(r"VN:GOV:(" + _CODE + r"):([a-z0-9][a-z0-9_-]{0,63})")


def is_agency_id(s):
    """True when s is an agency id in normal form (section 3.3)."""
    m = _AGENCY.fullmatch(s)
    return bool(m) and len(m.group(1)) <= 35


_RECORD_MODULES = (population_pb2, civil_status_pb2, residence_pb2, enterprise_pb2, land_pb2,
                   dossier_pb2, edoc_pb2, task_pb2)
_RECORD_NAMES = ("PopulationRecord", "BirthRegistration", "ResidenceChange",
                 "EnterpriseRegistration", "LandParcel", "DossierStatusEvent", "EDocument",
                 "EDocumentStatus", "TaskAssignment")


def _record_classes():
    found = {}
    for mod in _RECORD_MODULES:
        for name in _RECORD_NAMES:
            cls = getattr(mod, name, None)
            if cls is not None:
                found[cls.DESCRIPTOR.full_name] = cls
    return found


RECORD_TYPES = _record_classes()  # "lienthong.v1.records.X" -> generated class


def _has_unknown_fields(msg):
    if len(msg.UnknownFields()):
        return True
    for field, value in msg.ListFields():
        if field.type != field.TYPE_MESSAGE:
            continue
        if field.message_type.GetOptions().map_entry:
            vf = field.message_type.fields_by_name["value"]
            vals = list(value.values()) if vf.type == vf.TYPE_MESSAGE else []
        elif field.label == field.LABEL_REPEATED:
            vals = value
        else:
            vals = [value]
        for v in vals:
            if _has_unknown_fields(v):
                return True
    return False


def check_record(record_type, schema_version, payload):
    """section 3.4 and row 20 of section 6.3: a known record type, schema version 1, and a
    payload that decodes as that type with no unknown fields at any depth and valid UTF-8."""
    cls = RECORD_TYPES.get(record_type)
    if cls is None:
        raise Refused("UNKNOWN_RECORD_TYPE", "record type %r is not in the contract"
                      % record_type)
    if schema_version != SCHEMA_VERSION:
        raise Refused("UNKNOWN_SCHEMA_VERSION", "schema version %d" % schema_version)
    msg = cls()
    try:
        msg.ParseFromString(payload)  # refuses invalid UTF-8 in proto3 strings
    except Exception as e:  # DecodeError, or RuntimeWarning-turned-error on bad UTF-8
        raise Refused("BAD_PAYLOAD", "payload does not decode as %s: %s" % (record_type, e))
    if _has_unknown_fields(msg):
        raise Refused("BAD_PAYLOAD", "payload of %s has unknown fields" % record_type)
    return msg


# ---- keys and certificates (section 4) ---------------------------------------------------

def _sign_with(key, data):
    """section 4.2: the algorithm follows from the key."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(hashes.SHA256()))  # DER, as section 4.2 requires
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    raise ValueError("unsupported key type %s" % type(key).__name__)


def _verify_with(pub, sig, data):
    """True when sig over data verifies with pub (section 4.2)."""
    try:
        if isinstance(pub, ec.EllipticCurvePublicKey):
            pub.verify(sig, data, ec.ECDSA(hashes.SHA256()))
        elif isinstance(pub, ed25519.Ed25519PublicKey):
            pub.verify(sig, data)
        elif isinstance(pub, rsa.RSAPublicKey):
            pub.verify(sig, data, padding.PKCS1v15(), hashes.SHA256())
        else:
            return False
        return True
    except (InvalidSignature, ValueError):
        return False


def _key_acceptable(pub):
    """section 4.2: ECDSA P-256, Ed25519, or RSA of 2048..8192 bits."""
    if isinstance(pub, ec.EllipticCurvePublicKey):
        return isinstance(pub.curve, ec.SECP256R1)
    if isinstance(pub, ed25519.Ed25519PublicKey):
        return True
    if isinstance(pub, rsa.RSAPublicKey):
        return 2048 <= pub.key_size <= 8192
    return False


class Signer:
    """An agency's private key and its certificate (DER)."""

    def __init__(self, key, cert_der):
        self.key = key
        self.cert_der = cert_der
        self.key_id = sha256(cert_der)  # section 4.3
        cert = x509.load_der_x509_certificate(cert_der)
        cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        self.agency = cns[0].value if len(cns) == 1 else None

    @classmethod
    def from_pem_files(cls, key_path, cert_path):
        with open(key_path, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
        with open(cert_path, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        return cls(key, cert.public_bytes(serialization.Encoding.DER))

    def sign(self, domain, data):
        return _sign_with(self.key, signed_bytes(domain, data))


# ---- building envelopes (sections 3, 4, 5) ----------------------------------------------

def build_header(signer, topic, record_type, payload, message_id=None, created_ms=None,
                 correlation_id=b"", causation_id=b""):
    """The serialized Header (section 3.2). Serialize once: these bytes are signed and carried
    unchanged. The protobuf encoder writes fields in ascending order and omits empty ones."""
    created = now_ms() if created_ms is None else created_ms
    h = pb.Header(message_id=message_id or uuid7(created), source=signer.agency, topic=topic,
                  record_type=record_type, created_unix_ms=created,
                  payload_sha256=sha256(payload), signer_key_id=signer.key_id,
                  correlation_id=correlation_id, causation_id=causation_id,
                  schema_version=SCHEMA_VERSION)
    return h.SerializeToString()


def seal(signer, topic, record_type, payload, **kw):
    """One envelope with its own signature (sections 3.1, 4.1). Returns its bytes."""
    header = build_header(signer, topic, record_type, payload, **kw)
    env = pb.Envelope(header=header, payload=payload,
                      signature=signer.sign(DOMAIN_ENVELOPE, header),
                      certificate=signer.cert_der)
    return env.SerializeToString()


def leaf_hash(header):
    return sha256(b"\x00" + header)


def node_hash(left, right):
    return sha256(b"\x01" + left + right)


def merkle_levels(leaves):
    """Every level of the tree of section 5, leaves first; an odd last node is promoted."""
    levels = [list(leaves)]
    while len(levels[-1]) > 1:
        cur = levels[-1]
        nxt = [node_hash(cur[i], cur[i + 1]) for i in range(0, len(cur) - 1, 2)]
        if len(cur) % 2:
            nxt.append(cur[-1])
        levels.append(nxt)
    return levels


def merkle_proof(levels, index):
    """The siblings of leaf index, from the leaf's level up; none where it is promoted."""
    siblings = []
    for level in levels[:-1]:
        sib = index ^ 1
        if sib < len(level):
            siblings.append(level[sib])
        index //= 2
    return siblings


def seal_batch(signer, items, created_ms=None):
    """n envelopes under one signature over the Merkle root of their headers (section 5).
    items: (topic, record_type, payload) tuples. Returns the envelopes' bytes, in order."""
    if not 1 <= len(items) <= BATCH_MAX:
        raise ValueError("a batch holds 1..%d envelopes" % BATCH_MAX)
    created = now_ms() if created_ms is None else created_ms
    headers = [build_header(signer, t, rt, p, created_ms=created) for t, rt, p in items]
    levels = merkle_levels([leaf_hash(h) for h in headers])
    root = levels[-1][0]
    sig = signer.sign(DOMAIN_BATCH, root)
    out = []
    for i, (h, (_, _, payload)) in enumerate(zip(headers, items)):
        proof = pb.BatchProof(leaf_index=i, leaf_count=len(headers),
                              siblings=merkle_proof(levels, i), root=root)
        out.append(pb.Envelope(header=h, payload=payload, signature=sig, batch=proof,
                               certificate=signer.cert_der).SerializeToString())
    return out


def check_proof(header, proof):
    """section 5, "Verification": True when the proof leads from header to proof.root."""
    h = leaf_hash(header)
    idx, cnt, used = proof.leaf_index, proof.leaf_count, 0
    sibs = list(proof.siblings)
    while cnt > 1:
        if idx % 2 == 1 or idx + 1 < cnt:
            if used >= len(sibs):
                return False
            s = sibs[used]
            used += 1
            h = node_hash(s, h) if idx % 2 == 1 else node_hash(h, s)
        idx //= 2
        cnt = (cnt + 1) // 2
    return used == len(sibs) and h == proof.root


# ---- decoding (sections 3.1, 3.2, 5) -----------------------------------------------------

def decode(env_bytes):
    """Envelope and Header of env_bytes with the shape checks of sections 3.1, 3.2 and 5;
    Refused (MALFORMED, TOO_LARGE, BAD_MESSAGE_ID, BAD_AGENCY_ID) otherwise."""
    env = pb.Envelope()
    try:
        env.ParseFromString(env_bytes)
    except Exception as e:
        raise Refused("MALFORMED", "not an Envelope: %s" % e)
    for name, size, lo in (("header", HEADER_MAX, 1), ("payload", PAYLOAD_MAX, 0),
                           ("signature", SIGNATURE_MAX, 1), ("certificate", CERT_MAX, 1)):
        n = len(getattr(env, name))
        if n > size:
            raise Refused("TOO_LARGE", "%s of %d bytes" % (name, n))
        if n < lo:
            raise Refused("MALFORMED", "%s is empty" % name)
    hdr = pb.Header()
    try:
        hdr.ParseFromString(env.header)
    except Exception as e:
        raise Refused("MALFORMED", "header is not a Header: %s" % e)
    if len(hdr.message_id) != 16:
        raise Refused("MALFORMED", "message_id of %d bytes" % len(hdr.message_id))
    if hdr.message_id == bytes(16):
        raise Refused("BAD_MESSAGE_ID", "all-zero message id")
    for name, n in (("payload_sha256", 32), ("signer_key_id", 32)):
        if len(getattr(hdr, name)) != n:
            raise Refused("MALFORMED", "%s is not %d bytes" % (name, n))
    if not 1 <= len(hdr.topic.encode()) <= 255 or not 1 <= len(hdr.record_type.encode()) <= 255:
        raise Refused("MALFORMED", "topic or record_type length")
    if len(hdr.correlation_id) > 64 or len(hdr.causation_id) not in (0, 16):
        raise Refused("MALFORMED", "correlation_id or causation_id length")
    if env.HasField("batch"):
        p = env.batch
        if (not 1 <= p.leaf_count <= BATCH_MAX or p.leaf_index >= p.leaf_count
                or len(p.root) != 32 or len(p.siblings) > PROOF_SIBLINGS_MAX
                or any(len(s) != 32 for s in p.siblings)):
            raise Refused("MALFORMED", "malformed batch proof")
    if not is_agency_id(hdr.source):
        raise Refused("BAD_AGENCY_ID", "source %r is not an agency id in normal form"
                      % hdr.source)
    return env, hdr


# ---- the trust root and verification (sections 4.4, 8.6) --------------------------------

def _ms(dt):
    return int(dt.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000)


def _verify_x509_signature(ca_cert, signature, tbs, hash_alg):
    """True when ca_cert's key signed tbs (a certificate's or a CRL's "to be signed" bytes)
    with the algorithm the signed object names (section 4.4). Done here rather than with
    the library's CRL check, which knows no Ed25519 issuer in some versions."""
    pub = ca_cert.public_key()
    try:
        if isinstance(pub, ec.EllipticCurvePublicKey):
            pub.verify(signature, tbs, ec.ECDSA(hash_alg))
        elif isinstance(pub, ed25519.Ed25519PublicKey):
            pub.verify(signature, tbs)
        elif isinstance(pub, rsa.RSAPublicKey):
            pub.verify(signature, tbs, padding.PKCS1v15(), hash_alg)
        else:
            return False
        return True
    except (InvalidSignature, ValueError, TypeError):
        return False


def _verify_issued_by(cert, ca_cert):
    return _verify_x509_signature(ca_cert, cert.signature, cert.tbs_certificate_bytes,
                                  cert.signature_hash_algorithm)


def _crl_signed_by(crl, ca_cert):
    return crl.issuer == ca_cert.subject and _verify_x509_signature(
        ca_cert, crl.signature, crl.tbs_certlist_bytes, crl.signature_hash_algorithm)


class Trust:
    """The trust root: the CA certificates (PEM, one or more) and their CRLs (PEM), the same
    files the broker uses; clock_skew_ms as the broker's trust.clock_skew_s."""

    def __init__(self, ca_pem, crl_pem=None, clock_skew_ms=CLOCK_SKEW_MS_DEFAULT):
        self.cas = [x509.load_pem_x509_certificate(block) for block in re.findall(
            rb"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", ca_pem, re.S)]
        if not self.cas:
            raise ValueError("no PEM certificate in the trust root")
        # section 4.4: with a CRL file, every CRL in it is signed by a trusted CA and every
        # issuing CA needs its CRL (else CRL_ERROR); without one, no revocation is checked
        self.check_crl = crl_pem is not None
        self.crls = []
        for block in re.findall(rb"-----BEGIN X509 CRL-----.*?-----END X509 CRL-----",
                                crl_pem or b"", re.S):
            crl = x509.load_pem_x509_crl(block)
            by = [ca for ca in self.cas if _crl_signed_by(crl, ca)]
            if not by:
                raise ValueError("a CRL in the CRL file is not signed by a trusted CA")
            self.crls.append((by[0], crl))
        if self.check_crl and not self.crls:
            raise ValueError("the CRL file holds no CRL")
        self.clock_skew_ms = clock_skew_ms

    @classmethod
    def from_files(cls, ca_path, crl_path=None, clock_skew_ms=CLOCK_SKEW_MS_DEFAULT):
        with open(ca_path, "rb") as f:
            ca = f.read()
        crl = None
        if crl_path:
            with open(crl_path, "rb") as f:
                crl = f.read()
        return cls(ca, crl, clock_skew_ms)

    def check_cert(self, der, t_ms):
        """section 4.4 at time t_ms: returns (certificate, agency id); Refused otherwise."""
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError as e:
            raise Refused("CERT_INVALID", "certificate does not parse: %s" % e)
        if cert.public_bytes(serialization.Encoding.DER) != der:
            raise Refused("CERT_INVALID", "certificate has trailing bytes")
        issuer = None
        for ca in self.cas:
            if ca.public_bytes(serialization.Encoding.DER) == der:
                raise Refused("CERT_INVALID", "the certificate is a trust anchor")
            if cert.issuer == ca.subject and _verify_issued_by(cert, ca):
                issuer = ca
                break
        if issuer is None:
            raise Refused("UNKNOWN_CA", "not issued by a trusted CA")
        try:
            bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
            is_ca = bc.ca
        except x509.ExtensionNotFound:
            is_ca = False
        try:
            ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        except x509.ExtensionNotFound:
            ku = None
        if is_ca or (ku is not None and ku.key_cert_sign):
            raise Refused("CERT_IS_CA", "the signer certificate is a CA")
        if ku is not None and not ku.digital_signature:
            raise Refused("CERT_INVALID", "keyUsage lacks digitalSignature")
        cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if len(cns) != 1 or not is_agency_id(cns[0].value):
            raise Refused("CERT_INVALID", "subject CN is not one agency id in normal form")
        if not _key_acceptable(cert.public_key()):
            raise Refused("CERT_INVALID", "key algorithm not accepted")
        crl = [c for ca, c in self.crls if ca is issuer]
        if self.check_crl:
            if not crl:
                raise Refused("CRL_ERROR", "no CRL from the certificate's CA")
            if crl[0].get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
                raise Refused("CERT_REVOKED", "certificate is revoked")
            if crl[0].next_update is not None and t_ms > _ms(crl[0].next_update):
                raise Refused("CRL_ERROR", "the CRL is past its nextUpdate")
        nb = max(_ms(cert.not_valid_before), _ms(issuer.not_valid_before))
        na = min(_ms(cert.not_valid_after), _ms(issuer.not_valid_after))
        if t_ms < nb:
            raise Refused("CERT_NOT_YET_VALID", "certificate not yet valid")
        if t_ms > na:
            raise Refused("CERT_EXPIRED", "certificate expired")
        return cert, cns[0].value, (nb, na)

    def verify(self, env_bytes, at_ms=None):
        """A delivered envelope, as section 8.6 says a consumer checks it: decode, then the
        checks of section 6.3 rows 10-17 at the record's time t = min(created, now) against
        today's CRL, then the record checks. Returns (Envelope, Header, record); raises
        Refused with the code."""
        env, hdr = decode(env_bytes)
        now = now_ms() if at_ms is None else at_ms
        t = min(hdr.created_unix_ms, now)
        if sha256(env.payload) != hdr.payload_sha256:
            raise Refused("BAD_PAYLOAD_HASH", "payload does not match payload_sha256")
        if sha256(env.certificate) != hdr.signer_key_id:
            raise Refused("KEY_ID_MISMATCH", "signer_key_id is not H(certificate)")
        cert, agency, (nb, na) = self.check_cert(env.certificate, t)
        if agency != hdr.source:
            raise Refused("AGENCY_MISMATCH", "signed by %s, not %s" % (agency, hdr.source))
        created = hdr.created_unix_ms
        if not t - self.clock_skew_ms <= created <= t + self.clock_skew_ms:
            raise Refused("CLOCK_SKEW", "created outside the clock skew")
        if created < nb:
            raise Refused("CERT_NOT_YET_VALID", "certificate not valid at the created time")
        if created > na:
            raise Refused("CERT_EXPIRED", "certificate not valid at the created time")
        pub = cert.public_key()
        if env.HasField("batch"):
            if not check_proof(env.header, env.batch):
                raise Refused("BAD_BATCH_PROOF", "the proof does not lead to its root")
            if not _verify_with(pub, env.signature, signed_bytes(DOMAIN_BATCH, env.batch.root)):
                raise Refused("BAD_SIGNATURE", "signature over the batch root does not verify")
        elif not _verify_with(pub, env.signature, signed_bytes(DOMAIN_ENVELOPE, env.header)):
            raise Refused("BAD_SIGNATURE", "signature over the header does not verify")
        record = check_record(hdr.record_type, hdr.schema_version, env.payload)
        return env, hdr, record

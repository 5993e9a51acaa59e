#!/usr/bin/python3
"""test_interop.py - the Python client against a real lienthongd and the C CLI, both ways.

  - the document's worked example (docs/protocol.md section 12) is reproduced byte for byte
    from its own text: payload, header, envelope, Ed25519 signature, AUTH signature, the
    batch tree and its proofs, the publish and ack frames;
  - what Python publishes, single-signed and batch-signed, `lienthong sub` receives with
    verified:true;
  - what `lienthong pub` publishes (single and --batch) Python receives with credit,
    verifies against the trust root and acks, until the broker's queue is empty;
  - each tampered or refused envelope from Python gets the NackCode the document names, and
    the Python verifier refuses the same envelope with the same code;
  - HELLO/AUTH refusals, consumer frames without a session, NAK and redelivery, replay,
    duplicates, PING/PONG;
  - batched answers (sections 6.1, 8.1): by default the client's publishes are answered in
    `acks` frames and its deliveries come in `delivers` frames, with batched_acks /
    batched_deliveries False in lone `ack` / `deliver` frames; either way every publish is
    answered once and every record delivered once;
  - each key type (ECDSA P-256, Ed25519, RSA-2048) both ways with `lienthong sign` and
    `lienthong verify`.

usage: test_interop.py --lienthongd PATH --lienthong PATH --source-dir DIR
(PYTHONPATH: the protoc-generated modules and clients/python; ctest sets it.)
A broker on free 127.0.0.1 ports, ready when its READY=1 arrives on NOTIFY_SOCKET; stopped
by its pid. Every wait is bounded.
"""
import argparse
import collections
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import yaml
from cryptography.hazmat.primitives.asymmetric import ed25519

import lienthong_client as lt
from lienthong_client import envelope as lte
from lienthong.v1 import envelope_pb2 as pb
from lienthong.v1.records import civil_status_pb2, edoc_pb2

ARGS = None
W = None  # the world: directory, broker, agencies


BIRTH = "lienthong.v1.records.BirthRegistration"

BROKER_YAML = """\
broker:
  name: it-python
  listen: tcp://127.0.0.1:{port}
  data_dir: data
  map_size_mb: 256
  verify_threads: 2
  admin:
    listen: 127.0.0.1:{admin}
    token_file: admin.token
trust:
  ca: ca/ca.cert.pem
  crl: ca/crl.pem
  clock_skew_s: 300
admins:
  - VN:GOV:000.00.00.H29:vanphong
acl:
  - agency: VN:GOV:000.00.00.H29.760:hotich
    publish: ["79.760.>"]
  - agency: VN:GOV:000.00.00.H29.770:hotich
    publish: ["79.770.>"]
  - agency: VN:GOV:000.00.00.G01:csdldancu
    publish: []
queues:
  - name: py.single
    owner: VN:GOV:000.00.00.G01:csdldancu
    bind: ["79.*.hotich.pysingle"]
  - name: py.batch
    owner: VN:GOV:000.00.00.G01:csdldancu
    bind: ["79.*.hotich.pybatch"]
  - name: c.pub
    owner: VN:GOV:000.00.00.G01:csdldancu
    bind: ["79.*.hotich.cpub"]
  - name: py.nak
    owner: VN:GOV:000.00.00.G01:csdldancu
    bind: ["79.*.hotich.nak"]
    backoff_s: [0]
  - name: py.misc
    owner: VN:GOV:000.00.00.G01:csdldancu
    bind: ["79.*.hotich.misc", "79.770.>"]
  - name: py.sched
    owner: VN:GOV:000.00.00.G01:csdldancu
    bind: ["79.*.hotich.sched"]
  - name: py.batched
    owner: VN:GOV:000.00.00.G01:csdldancu
    bind: ["79.*.hotich.pybatched"]
  - name: py.lone
    owner: VN:GOV:000.00.00.G01:csdldancu
    bind: ["79.*.hotich.pylone"]
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Agency:
    """A dev-init agency: its config file, Signer, and trust root."""

    def __init__(self, path):
        self.path = path
        with open(path) as f:
            c = yaml.safe_load(f)
        d = os.path.dirname(path)
        self.id = c["agency"]["id"]
        self.signer = lt.Signer.from_pem_files(os.path.join(d, c["agency"]["key"]),
                                               os.path.join(d, c["agency"]["cert"]))
        self.trust = lt.Trust.from_files(os.path.join(d, c["trust"]["ca"]),
                                         os.path.join(d, c["trust"]["crl"]),
                                         c["trust"]["clock_skew_s"] * 1000)


class World:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="lt-python-")
        self.port, self.admin = free_port(), free_port()
        while self.admin == self.port:
            self.admin = free_port()
        self.endpoint = "tcp://127.0.0.1:%d" % self.port
        r = self.cli(["dev-init", self.dir, "--test-certs"], timeout=120)
        assert r.returncode == 0, r.stderr
        with open(os.path.join(self.dir, "broker.yaml"), "w") as f:
            f.write(BROKER_YAML.format(port=self.port, admin=self.admin))
        ag = os.path.join(self.dir, "agencies")
        for name in os.listdir(ag):  # the C CLI reads the endpoint from the agency config
            p = os.path.join(ag, name)
            with open(p) as f:
                t = re.sub(r"endpoint: tcp://127\.0\.0\.1:\d+", "endpoint: " + self.endpoint,
                           f.read())
            with open(p, "w") as f:
                f.write(t)
        self.agencies = {n[:-5]: Agency(os.path.join(ag, n)) for n in os.listdir(ag)}
        self.broker = None
        self.start_broker()

    def cli(self, args, timeout=60):
        return subprocess.run([ARGS.lienthong] + args, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def start_broker(self):
        sock_path = os.path.join(self.dir, "notify.sock")
        note = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        note.bind(sock_path)
        note.settimeout(60)
        self.log = os.path.join(self.dir, "lienthongd.log")
        with open(self.log, "a") as log:
            self.broker = subprocess.Popen(
                [ARGS.lienthongd, "-c", os.path.join(self.dir, "broker.yaml")],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                env=dict(os.environ, NOTIFY_SOCKET=sock_path))
        try:
            msg = note.recv(64)
        except socket.timeout:
            msg = b""
        finally:
            note.close()
            os.unlink(sock_path)
        if msg != b"READY=1":
            self.stop()
            with open(self.log) as f:
                raise RuntimeError("lienthongd not ready within 60 s:\n" + f.read()[-3000:])

    def stop(self):
        if self.broker and self.broker.poll() is None:
            self.broker.send_signal(signal.SIGTERM)
            try:
                self.broker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.broker.kill()
                self.broker.wait(timeout=30)
        if not self.dir:
            return
        if os.environ.get("LT_IT_KEEP"):
            print("kept", self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def client(self):
        return lt.Client(self.endpoint)


def setUpModule():
    global W
    W = World.__new__(World)
    W.dir, W.broker = None, None
    try:
        W.__init__()
    except BaseException:
        W.stop()  # the directory and any broker started, even when setting up failed
        W = None
        raise


def tearDownModule():
    if W:
        W.stop()


def birth(n, note=""):
    """A BirthRegistration record (payload bytes) numbered n."""
    r = civil_status_pb2.BirthRegistration(
        registration_number=str(n), book_number="01/2026", registration_date="2026-01-15",
        registering_agency_code="000.00.00.H29.760", registering_agency_name="UBND phường Sài Gòn",
        declarant_name="Nguyễn Văn An", note=note)
    return r.SerializeToString()


def c_sub(queue, n, agency="dancu"):
    """`lienthong sub` of n records; their JSON lines."""
    r = W.cli(["sub", "-c", W.agencies[agency].path, "-q", queue, "-n", str(n),
               "--timeout", "30"], timeout=90)
    assert r.returncode == 0, r.stderr
    return [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]


def wait_queue_empty(test, c, queue, timeout_s=15):
    """Poll the ADMIN "queues" reply (section 9) on c until queue has nothing unacked and
    nothing waiting; a failure of test after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        reply = c.admin("queues", queue=queue)
        test.assertEqual(reply.code, 0, reply.reason)
        q = json.loads(reply.json)[0]
        if q["unacked"] == 0 and q["depth"] == 0:
            return
        test.assertLess(time.monotonic(), deadline, q)
        c.poll(100)


# ---------------------------------------------------------------------------------------------

class WorkedExample(unittest.TestCase):
    """docs/protocol.md section 12, read from the document itself."""

    @classmethod
    def setUpClass(cls):
        with open(os.path.join(ARGS.source_dir, "docs/protocol.md"), encoding="utf-8") as f:
            cls.doc = f.read()

    def section(self, start, end):
        return self.doc[self.doc.index(start):self.doc.index(end)]

    def hexblock(self, text):
        return bytes.fromhex("".join(x.strip() for x in text.splitlines()
                                     if re.fullmatch(r"    [0-9a-f]+", x)))

    def hexafter(self, label, text):
        return bytes.fromhex(re.search(re.escape(label) + r"\s*([0-9a-f]{64})", text).group(1))

    def test_the_documents_envelope_is_reproduced_byte_for_byte(self):
        env_bytes = self.hexblock(self.section("### 12.3", "### 12.4"))
        m = re.search(r"### 12\.3 The envelope \((\d+) bytes\)", self.doc)
        self.assertEqual(len(env_bytes), int(m.group(1)))
        seed = re.search(r"32-byte seed, RFC 8032\):\s*([0-9a-f]{64})", self.doc).group(1)
        key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed))
        env = pb.Envelope()
        env.ParseFromString(env_bytes)
        hdr = pb.Header()
        hdr.ParseFromString(env.header)
        signer = lt.Signer(key, env.certificate)
        # 12.1: the payload
        payload = edoc_pb2.EDocumentStatus(status_code=3, description="Đã tiếp nhận")
        payload = payload.SerializeToString()
        self.assertEqual(payload, env.payload)
        self.assertEqual(hashlib.sha256(payload).digest(),
                         self.hexafter("H(payload) =", self.doc))
        # 12.2 / 12.3: our seal of the same fields is the same envelope, signature included
        ours = lt.seal(signer, hdr.topic, hdr.record_type, payload, message_id=hdr.message_id,
                       created_ms=hdr.created_unix_ms)
        self.assertEqual(ours, env_bytes)
        sig = bytes.fromhex("".join(self.section("Signature (Ed25519, 64 bytes):",
                                                 "### 12.3").split()[4:6]))
        self.assertEqual(env.signature, sig)
        self.assertEqual(hashlib.sha256(lt.signed_bytes(lt.DOMAIN_ENVELOPE, env.header))
                         .hexdigest(),
                         re.search(r"Their SHA-256 is `([0-9a-f]{64})`", self.doc).group(1))
        # the publish frame and the broker's answers, as section 12.3 spells them
        frame = pb.Frame(publish=pb.Publish(tag=1, envelope=env_bytes)).SerializeToString()
        self.assertTrue(frame.startswith(bytes.fromhex("0aac06080112a706")))
        m = re.search(r"\(envelope (\d+) bytes, frame (\d+) bytes\)", self.doc)
        self.assertEqual((len(env_bytes), len(frame)), (int(m.group(1)), int(m.group(2))))
        self.assertEqual(pb.Frame(ack=pb.Ack(tag=1, seq=1)).SerializeToString().hex(),
                         "120408011001")
        self.assertEqual(pb.Frame(ack=pb.Ack(tag=1, seq=1, duplicate=True))
                         .SerializeToString().hex(), "1206080110011801")
        # 12.4: the AUTH signature over nonce 00..1f
        auth = "".join(self.section("### 12.4", "### 12.5").split("signs them as")[1].split()[:2])
        self.assertEqual(signer.sign(lt.DOMAIN_AUTH, bytes(range(32))).hex(), auth)

    def test_the_documents_batch_tree_and_proofs(self):
        text = self.section("### 12.5", "\n## ") if "\n## " in self.doc[
            self.doc.index("### 12.5"):] else self.doc[self.doc.index("### 12.5"):]
        leaves = [self.hexafter("leaf%d = H(00 || header%d) =" % (i, i), text)
                  for i in range(3)]
        levels = lt.merkle_levels(leaves)
        self.assertEqual(levels[1][0], self.hexafter("N01   = H(01 || leaf0 || leaf1) =", text))
        root = levels[-1][0]
        self.assertEqual(root, self.hexafter("root  = H(01 || N01 || leaf2)   =", text))
        n01 = levels[1][0]
        names = {"leaf0": leaves[0], "leaf1": leaves[1], "leaf2": leaves[2], "N01": n01,
                 "root": root}
        rows = list(re.finditer(r"^\| (\d) \| .*?\| `([^`]+)` \|$", text, re.M))
        self.assertEqual(len(rows), 3)
        for row in rows:
            i = int(row.group(1))
            want = re.sub(r"<(\w+)>", lambda m: names[m.group(1)].hex(),
                          row.group(2).replace(" ", ""))
            proof = pb.BatchProof(leaf_index=i, leaf_count=3,
                                  siblings=lt.merkle_proof(levels, i), root=root)
            self.assertEqual(proof.SerializeToString().hex(), want, "proof %d" % i)


class PythonPublishes(unittest.TestCase):
    def test_single_signed_records_reach_the_c_subscriber_verified(self):
        q1 = W.agencies["quan1"]
        envs = [lt.seal(q1.signer, "79.760.hotich.pysingle", BIRTH, birth(i)) for i in range(3)]
        with W.client() as c:
            answers = c.publish(envs)
        self.assertTrue(all(a.ok for a in answers), answers)
        ids = {lte.decode(e)[1].message_id.hex() for e in envs}
        got = c_sub("py.single", 3)
        self.assertEqual(len(got), 3)
        for rec in got:
            self.assertTrue(rec["verified"], rec)
            self.assertIn(rec["message_id"], ids)
            self.assertEqual(rec["source"], q1.id)

    def test_batch_signed_records_reach_the_c_subscriber_verified(self):
        q1 = W.agencies["quan1"]
        envs = lt.seal_batch(q1.signer, [("79.760.hotich.pybatch", BIRTH, birth(10 + i))
                                         for i in range(5)])
        envs += lt.seal_batch(q1.signer, [("79.760.hotich.pybatch", BIRTH, birth(20))])
        for e in envs:  # our own verifier agrees before the broker sees them
            q1.trust.verify(e)
        with W.client() as c:
            answers = c.publish(envs)
        self.assertTrue(all(a.ok for a in answers), answers)
        got = c_sub("py.batch", 6)
        self.assertEqual(len(got), 6)
        self.assertTrue(all(r["verified"] for r in got), got)

    def test_the_same_envelope_again_is_a_duplicate_with_the_first_seq(self):
        e = lt.seal(W.agencies["quan1"].signer, "79.760.hotich.misc", BIRTH, birth(30))
        with W.client() as c:
            first, again = c.publish([e]), c.publish([e])
        self.assertTrue(first[0].ok and again[0].ok)
        self.assertFalse(first[0].duplicate)
        self.assertTrue(again[0].duplicate)
        self.assertEqual(first[0].seq, again[0].seq)

    def test_ping_is_answered_with_the_same_nonce(self):
        with W.client() as c:
            c.ping(0xDEADBEEF)


class PythonConsumes(unittest.TestCase):
    def test_what_the_c_cli_publishes_python_verifies_and_acks(self):
        data = os.path.join(ARGS.source_dir, "scripts/demo-data/khaisinh-quan1.jsonl")
        for extra in ([], ["--batch", "3"]):
            r = W.cli(["pub", "-c", W.agencies["quan1"].path, "-t", "79.760.hotich.cpub",
                       "--type", BIRTH, "-f", data] + extra)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        dancu = W.agencies["dancu"]
        credit, seen, batched = 3, [], 0
        with W.client() as c:
            self.assertEqual(c.authenticate(dancu.signer), dancu.id)
            c.subscribe("c.pub", credit)
            while len(seen) < 8:
                d = c.receive(30)
                self.assertIsNotNone(d, "only %d of 8 deliveries" % len(seen))
                env, hdr, record = dancu.trust.verify(d.envelope)
                self.assertEqual(hdr.source, W.agencies["quan1"].id)
                self.assertTrue(record.registration_number)
                batched += env.HasField("batch")
                seen.append(d.seq)
                c.ack("c.pub", [d.seq])
                c.add_credit("c.pub", 1)  # acks give no credit back (section 8.1)
            self.assertEqual(batched, 4)
            # the broker took the acks: nothing left unacked or waiting in the queue
            wait_queue_empty(self, c, "c.pub")

    def test_replay_streams_acked_history_marked_replay(self):
        # section 8.1: replay_from_seq streams retained history, acked messages included,
        # with replay: true, and needs no ack
        e = lt.seal(W.agencies["quan1"].signer, "79.760.hotich.misc", BIRTH, birth(60))
        with W.client() as c:
            a = c.publish([e])[0]
            self.assertTrue(a.ok)
            c.authenticate(W.agencies["dancu"].signer)
            c.subscribe("py.misc", 100)
            while True:  # drain and ack the live queue, ours last or among them
                d = c.receive(5)
                if d is None:
                    break
                c.ack("py.misc", [d.seq])
            c.subscribe("py.misc", 100, replay_from_seq=a.seq)
            d = c.receive(30)
            self.assertIsNotNone(d)
            self.assertTrue(d.replay)
            self.assertEqual((d.seq, d.envelope), (a.seq, e))

    def test_a_nak_redelivers_with_the_next_delivery_count(self):
        e = lt.seal(W.agencies["quan1"].signer, "79.760.hotich.nak", BIRTH, birth(40))
        with W.client() as c:
            self.assertTrue(c.publish([e])[0].ok)
        with W.client() as c:
            c.authenticate(W.agencies["dancu"].signer)
            c.subscribe("py.nak", 2)
            d = c.receive(30)
            self.assertEqual(d.delivery_count, 1)
            c.nak("py.nak", d.seq, delay_ms=0, reason="try again")
            d2 = c.receive(30)
            self.assertIsNotNone(d2)
            self.assertEqual((d2.seq, d2.delivery_count), (d.seq, 2))
            self.assertEqual(d2.envelope, e)
            c.ack("py.nak", [d2.seq])


class PythonSchedules(unittest.TestCase):
    def test_a_scheduled_record_comes_when_due_and_a_cancelled_one_never(self):
        import time
        q1 = W.agencies["quan1"]
        due = int(time.time() * 1000) + 2000
        later = lt.seal(q1.signer, "79.760.hotich.sched", BIRTH, birth(60))
        never = lt.seal(q1.signer, "79.760.hotich.sched", BIRTH, birth(61))
        with W.client() as c:
            c.authenticate(q1.signer)
            a = c.publish([later, never], deliver_at_unix_ms=due)
            self.assertTrue(all(x.ok for x in a), a)
            gone = c.cancel(lte.decode(never)[1].message_id)
            self.assertTrue(gone.ok, gone)
            again = c.cancel(lte.decode(never)[1].message_id)
            self.assertEqual(again.code, "NOT_SCHEDULED")
        with W.client() as c:
            c.authenticate(W.agencies["dancu"].signer)
            c.subscribe("py.sched", 10)
            self.assertIsNone(c.receive(1.0))  # not before its time
            d = c.receive(10)
            self.assertIsNotNone(d)
            self.assertGreaterEqual(int(time.time() * 1000), due)
            self.assertEqual(d.envelope, later)
            c.ack("py.sched", [d.seq])
            self.assertIsNone(c.receive(1.5))  # the cancelled one never comes


class Refusals(unittest.TestCase):
    def envelope(self, signer=None, topic="79.760.hotich.misc", record_type=BIRTH,
                 payload=None, **kw):
        return lt.seal(signer or W.agencies["quan1"].signer, topic, record_type,
                       payload if payload is not None else birth(50), **kw)

    def rebuild(self, env_bytes, header=None, **fields):
        env = pb.Envelope()
        env.ParseFromString(env_bytes)
        if header is not None:
            env.header = header
        for k, v in fields.items():
            setattr(env, k, v)
        return env.SerializeToString()

    def probes(self):
        q1 = W.agencies["quan1"]
        ok = self.envelope()
        env, hdr = lte.decode(ok)
        yield "altered payload", self.rebuild(ok, payload=birth(51)), "BAD_PAYLOAD_HASH", True
        sig = bytearray(env.signature)
        sig[-1] ^= 1
        yield "altered signature", self.rebuild(ok, signature=bytes(sig)), "BAD_SIGNATURE", True
        # a header changed after signing (the topic), its signature unchanged
        h2 = pb.Header()
        h2.ParseFromString(env.header)
        h2.topic = "79.760.hotich.pysingle"
        yield "re-encoded header", self.rebuild(ok, header=h2.SerializeToString()), \
            "BAD_SIGNATURE", True
        other = W.agencies["quan3"].signer
        yield "another certificate", self.rebuild(ok, certificate=other.cert_der), \
            "KEY_ID_MISMATCH", True
        batch = lt.seal_batch(q1.signer, [("79.760.hotich.misc", BIRTH, birth(52 + i))
                                          for i in range(3)])
        b = pb.Envelope()
        b.ParseFromString(batch[1])
        b.batch.siblings[0] = hashlib.sha256(b"not a sibling").digest()
        yield "altered batch proof", b.SerializeToString(), "BAD_BATCH_PROOF", True
        b.ParseFromString(batch[2])
        b.batch.root = hashlib.sha256(b"not the root").digest()
        b.batch.siblings[0] = hashlib.sha256(b"not a sibling either").digest()
        yield "proof to a root nobody signed", b.SerializeToString(), "BAD_BATCH_PROOF", True
        yield "source of another agency", self.rebuild(
            ok, header=self.resigned_header(env, source=W.agencies["quan3"].id)), \
            "AGENCY_MISMATCH", True
        yield "all-zero message id", self.envelope(message_id=bytes(16)), "BAD_MESSAGE_ID", True
        yield "unknown record type", self.envelope(record_type="lienthong.v1.records.Nope"), \
            "UNKNOWN_RECORD_TYPE", True
        yield "unknown field in the payload", self.envelope(payload=birth(53) + b"\xb8\x3e\x01"), \
            "BAD_PAYLOAD", True
        yield "revoked certificate", self.envelope(signer=W.agencies["quan1-revoked"].signer), \
            "CERT_REVOKED", True
        yield "expired certificate", self.envelope(signer=W.agencies["quan1-expired"].signer), \
            "CERT_EXPIRED", True
        yield "unknown CA", self.envelope(signer=W.agencies["quan1-otherca"].signer), \
            "UNKNOWN_CA", True
        # refused by the broker, yet a consumer verifies it at the record's own time (8.6)
        yield "created 10 minutes ago", self.envelope(created_ms=lte.now_ms() - 600000), \
            "CLOCK_SKEW", False
        yield "topic outside the ACL", self.envelope(topic="79.770.hotich.misc"), \
            "ACL_DENIED", False
        yield "no queue bound", self.envelope(topic="79.760.hotich.nowhere"), "NO_ROUTE", False

    def resigned_header(self, env, **fields):
        h = pb.Header()
        h.ParseFromString(env.header)
        for k, v in fields.items():
            setattr(h, k, v)
        return h.SerializeToString()

    def test_each_tampered_envelope_is_refused_with_its_code_by_both_sides(self):
        probes = list(self.probes())
        with W.client() as c:
            answers = c.publish([p[1] for p in probes])
        self.assertEqual(len(answers), len(probes))
        for (what, env_bytes, code, local), a in zip(probes, answers):
            self.assertEqual(a.code, code, "%s: broker said %r" % (what, a))
            self.assertTrue(a.reason, what)
            trust = W.agencies["dancu"].trust
            if local:
                with self.assertRaises(lt.Refused, msg=what) as cm:
                    trust.verify(env_bytes)
                self.assertEqual(cm.exception.code, code, what)
            else:
                trust.verify(env_bytes)

    def test_auth_refusals_and_consumer_frames_without_a_session(self):
        dancu, q1 = W.agencies["dancu"], W.agencies["quan1"]
        with W.client() as c:  # no session
            c.subscribe("py.misc", 1)
            with self.assertRaises(lt.SessionRefused) as cm:
                c.receive(10)
            self.assertEqual(cm.exception.code, "NOT_AUTHENTICATED")
        with W.client() as c:  # HELLO as one agency, AUTH with another's certificate
            impostor = lt.Signer(q1.signer.key, q1.signer.cert_der)
            impostor.agency = dancu.id
            with self.assertRaises(lt.SessionRefused) as cm:
                c.authenticate(impostor)
            self.assertEqual(cm.exception.code, "AGENCY_MISMATCH")
        with W.client() as c:  # a signature over something else than the nonce
            bad = lt.Signer(dancu.signer.key, dancu.signer.cert_der)
            bad.sign = lambda domain, data: dancu.signer.sign(lt.DOMAIN_ENVELOPE, data)
            with self.assertRaises(lt.SessionRefused) as cm:
                c.authenticate(bad)
            self.assertEqual(cm.exception.code, "BAD_SIGNATURE")
        with W.client() as c:  # authenticated, but not the owner / no such queue
            c.authenticate(q1.signer)
            c.subscribe("py.misc", 1)
            with self.assertRaises(lt.SessionRefused) as cm:
                c.receive(10)
            self.assertEqual(cm.exception.code, "ACL_DENIED")
            c.subscribe("no.such.queue", 1)
            with self.assertRaises(lt.SessionRefused) as cm:
                c.receive(10)
            self.assertEqual(cm.exception.code, "UNKNOWN_QUEUE")

    def test_consumer_frames_on_queues_not_held_are_refused_with_their_codes(self):
        # section 2.1: consumer_ack / consumer_nak answer only for an unknown queue or one
        # that is not the session's; credit only for a queue not subscribed
        dancu, q1 = W.agencies["dancu"], W.agencies["quan1"]
        cases = [
            (dancu, lambda c: c.ack("no.such.queue", [1]), "UNKNOWN_QUEUE"),
            (dancu, lambda c: c.nak("no.such.queue", 1), "UNKNOWN_QUEUE"),
            (q1, lambda c: c.ack("py.misc", [1]), "ACL_DENIED"),
            (q1, lambda c: c.nak("py.misc", 1), "ACL_DENIED"),
            (dancu, lambda c: c.add_credit("py.misc", 1), "UNKNOWN_QUEUE"),
        ]
        for who, act, code in cases:
            with W.client() as c:
                c.authenticate(who.signer)
                act(c)
                with self.assertRaises(lt.SessionRefused) as cm:
                    c.receive(10)
                self.assertEqual(cm.exception.code, code)
        with W.client() as c:  # an ack of a seq the broker does not track: no answer at all
            c.authenticate(dancu.signer)
            c.ack("py.misc", [10 ** 12])
            c.ping(7)
            self.assertFalse(c.session_nacks)


def spy(c):
    """What client c reads from now on, by frame kind: for ack/acks the tags, for
    deliver/delivers the seqs, one list per frame. The client still dispatches every frame."""
    seen = collections.defaultdict(list)
    dispatch = c._dispatch

    def spying(data):
        f = pb.Frame()
        f.ParseFromString(data)
        kind = f.WhichOneof("kind")
        if kind == "ack":
            seen[kind].append([f.ack.tag])
        elif kind == "acks":
            seen[kind].append([a.tag for a in f.acks.acks])
        elif kind == "deliver":
            seen[kind].append([f.deliver.seq])
        elif kind == "delivers":
            seen[kind].append([d.seq for d in f.delivers.delivers])
        dispatch(data)

    c._dispatch = spying
    return seen


class BatchedFrames(unittest.TestCase):
    """Sections 6.1 and 8.1: Publish.batched_ack and Subscribe.batched_deliver, set by
    default, and the lone frames of a client made with batched_acks / batched_deliveries
    False."""

    N = 40

    def round_trip(self, batched, topic, queue):
        """Publish N records and consume them with clients of that mode; the spies' frames."""
        q1, dancu = W.agencies["quan1"], W.agencies["dancu"]
        envs = [lt.seal(q1.signer, topic, BIRTH, birth(1000 + i)) for i in range(self.N)]
        with lt.Client(W.endpoint, batched_acks=batched, batched_deliveries=batched) as c:
            pub = spy(c)
            answers = c.publish(envs)
            c.ping(1)  # an answer the broker sent twice would have arrived by now
        self.assertTrue(all(a.ok and not a.duplicate for a in answers), answers)
        tags = [t for k in ("ack", "acks") for frame in pub[k] for t in frame]
        self.assertEqual(sorted(tags), [a.tag for a in answers])  # each publish answered once
        seqs = sorted(a.seq for a in answers)
        self.assertEqual(len(set(seqs)), self.N)
        with lt.Client(W.endpoint, batched_acks=batched, batched_deliveries=batched) as c:
            c.authenticate(dancu.signer)
            sub = spy(c)
            c.subscribe(queue, self.N)
            got = []
            while len(got) < self.N:
                d = c.receive(30)
                self.assertIsNotNone(d, "only %d of %d deliveries" % (len(got), self.N))
                self.assertEqual((d.queue, d.delivery_count, d.replay), (queue, 1, False))
                dancu.trust.verify(d.envelope)
                got.append(d.seq)
                c.ack(queue, [d.seq])
            c.add_credit(queue, self.N)  # room for a record delivered twice to show itself
            self.assertIsNone(c.receive(1.0))
            self.assertEqual(sorted(got), seqs)  # each record delivered once
            framed = [q for k in ("deliver", "delivers") for frame in sub[k] for q in frame]
            self.assertEqual(sorted(framed), seqs)
            wait_queue_empty(self, c, queue)  # the acks were taken
        return pub, sub

    def test_by_default_answers_come_in_acks_and_deliveries_in_delivers_frames(self):
        pub, sub = self.round_trip(True, "79.760.hotich.pybatched", "py.batched")
        self.assertTrue(pub["acks"], dict(pub))
        self.assertTrue(sub["delivers"], dict(sub))
        print("\n  %d publishes answered in %d acks frames (widest %d), %d deliveries in %d "
              "delivers frames (widest %d)" % (
                  self.N, len(pub["acks"]), max(map(len, pub["acks"])), self.N,
                  len(sub["delivers"]), max(map(len, sub["delivers"]))), file=sys.stderr)

    def test_a_client_that_asks_for_lone_frames_gets_them(self):
        pub, sub = self.round_trip(False, "79.760.hotich.pylone", "py.lone")
        self.assertEqual((len(pub["ack"]), len(pub["acks"])), (self.N, 0))
        self.assertEqual((len(sub["deliver"]), len(sub["delivers"])), (self.N, 0))


def read_envfile(data):
    """Envelopes of a `lienthong sign` file: each behind a varint length (section 12)."""
    out, i = [], 0
    while i < len(data):
        n, shift = 0, 0
        while True:
            b = data[i]
            i += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        out.append(data[i:i + n])
        i += n
    return out


def write_envfile(envs):
    out = bytearray()
    for e in envs:
        n = len(e)
        while n >= 0x80:
            out.append(0x80 | (n & 0x7F))
            n >>= 7
        out.append(n)
        out += e
    return bytes(out)


class KeyAlgorithms(unittest.TestCase):
    """Each key type of section 4.2, both ways, offline: `lienthong sign` -> Python verifies;
    Python seals (single and batch) -> `lienthong verify` says ok; a tampered one is refused
    by both with the same code."""

    def one_algorithm(self, alg):
        d = os.path.join(W.dir, "alg-" + alg)
        r = W.cli(["dev-init", d, "--alg", alg], timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        ag = Agency(os.path.join(d, "agencies", "vanphong.yaml"))
        rec = '{"statusCode":"E_DOCUMENT_STATUS_CODE_ACCEPTED","description":"Đã tiếp nhận"}'
        jsonl = os.path.join(d, "records.jsonl")
        with open(jsonl, "w", encoding="utf-8") as f:
            f.write((rec + "\n") * 3)
        topic, rtype = "79.vp.vanban.trangthai", "lienthong.v1.records.EDocumentStatus"
        for extra, batched in (([], 0), (["--batch", "2"], 3)):
            out = os.path.join(d, "c.env")
            r = W.cli(["sign", "-c", ag.path, "-t", topic, "--type", rtype, "-f", jsonl,
                       "-o", out] + extra)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(out, "rb") as f:
                envs = read_envfile(f.read())
            self.assertEqual(len(envs), 3)
            got = [ag.trust.verify(e)[0].HasField("batch") for e in envs]
            self.assertEqual(sum(got), batched, alg)

        payload = edoc_pb2.EDocumentStatus(status_code=3, description="Đã tiếp nhận")
        payload = payload.SerializeToString()
        envs = [lt.seal(ag.signer, topic, rtype, payload)]
        envs += lt.seal_batch(ag.signer, [(topic, rtype, payload)] * 3)
        bad = pb.Envelope()
        bad.ParseFromString(envs[0])
        sig = bytearray(bad.signature)
        sig[len(sig) // 2] ^= 0x40
        bad.signature = bytes(sig)
        envs.append(bad.SerializeToString())
        path = os.path.join(d, "py.env")
        with open(path, "wb") as f:
            f.write(write_envfile(envs))
        r = W.cli(["verify", "-c", ag.path, path])
        verdicts = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
        self.assertEqual([v["verdict"] for v in verdicts], ["ok"] * 4 + ["rejected"],
                         r.stdout + r.stderr)
        self.assertEqual(verdicts[4]["code"], "BAD_SIGNATURE")
        with self.assertRaises(lt.Refused) as cm:
            ag.trust.verify(envs[4])
        self.assertEqual(cm.exception.code, "BAD_SIGNATURE")

    def test_ecdsa_p256(self):
        self.one_algorithm("ecdsa-p256")

    def test_ed25519(self):
        self.one_algorithm("ed25519")

    def test_rsa2048(self):
        self.one_algorithm("rsa2048")


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--lienthongd", required=True)
    ap.add_argument("--lienthong", required=True)
    ap.add_argument("--source-dir", required=True)
    ARGS, rest = ap.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()

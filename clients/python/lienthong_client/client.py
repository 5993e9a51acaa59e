"""client.py - a connection to a lienthong broker.

Written from docs/protocol.md alone:
  section 1   one ZeroMQ DEALER socket, one message part = one serialized Frame; ZMTP
              heartbeats; receive HWM 0; the broker drops what it cannot queue
  section 2   the frames each way; unknown kinds are ignored
  section 6   publish: tags != 0 chosen by the client, one ack or nack per publish, matched
              by tag, never by order; with batched_ack (6.1) the acks of several publishes
              may come in one `acks` frame
  section 7   HELLO / CHALLENGE / AUTH / WELCOME, refusals as nack{tag 0}
  section 8   SUBSCRIBE with credit (sets it), DELIVER (with batched_deliver, 8.1, several
              in one `delivers` frame), CONSUMER_ACK (batched seqs), CONSUMER_NAK, CREDIT
              (adds)
  section 9   ADMIN / ADMIN_REPLY
Single-threaded: one thread owns a Client (a ZeroMQ socket is not thread-safe).
"""
import collections
import time

import zmq

from lienthong.v1 import envelope_pb2 as pb

from .envelope import DOMAIN_AUTH

ADMIN_TAG_BIT = 1 << 63  # section 6.2: the reference client's admin tags, 2^63 | n


def code_name(code):
    """The NackCode name of a wire number (section 10); unknown numbers as "CODE_<n>"."""
    try:
        return pb.NackCode.Name(code)
    except ValueError:
        return "CODE_%d" % code


class Answer:
    """The broker's answer to one publish: ok (ack) or code/reason (nack)."""

    def __init__(self, tag, ack=None, nack=None):
        self.tag = tag
        self.ok = ack is not None
        self.seq = ack.seq if ack is not None else None
        self.duplicate = ack.duplicate if ack is not None else False
        self.code = None if nack is None else code_name(nack.code)
        self.reason = None if nack is None else nack.reason

    def __repr__(self):
        if self.ok:
            return "Answer(tag=%d, seq=%d, duplicate=%s)" % (self.tag, self.seq, self.duplicate)
        return "Answer(tag=%d, %s: %s)" % (self.tag, self.code, self.reason)


class SessionRefused(Exception):
    """A session-level nack{tag 0} (section 2.2), e.g. during AUTH or to a SUBSCRIBE."""

    def __init__(self, code, reason):
        super().__init__("%s: %s" % (code, reason))
        self.code = code
        self.reason = reason


class Client:
    """A connection to the broker at endpoint.

    batched_acks (default True): every publish sets Publish.batched_ack (section 6.1), so the
    broker may answer several of them in one `acks` frame. False: the publishes leave the
    field unset and each ACK comes in a frame of its own, as for a client written before it.
    batched_deliveries (default True): every SUBSCRIBE sets Subscribe.batched_deliver
    (section 8.1), so live deliveries may come several to a `delivers` frame. False: each
    delivery comes alone.

    Either way both forms are read (a frame kind one did not ask for still means what it
    says): each Ack inside `acks` completes its publish exactly as a lone `ack`, each Deliver
    inside `delivers` is queued for receive() exactly as a lone `deliver`.
    """

    def __init__(self, endpoint, ctx=None, batched_acks=True, batched_deliveries=True):
        self.ctx = ctx or zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.DEALER)
        # section 1: answer ZMTP PINGs; read continuously (receive HWM 0); queue nothing
        # while disconnected; reconnect backing off
        self.sock.setsockopt(zmq.HEARTBEAT_IVL, 2000)
        self.sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 6000)
        self.sock.setsockopt(zmq.RCVHWM, 0)
        self.sock.setsockopt(zmq.IMMEDIATE, 1)
        self.sock.setsockopt(zmq.RECONNECT_IVL, 100)
        self.sock.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.batched_acks = batched_acks
        self.batched_deliveries = batched_deliveries
        self.next_tag = 1
        self.answers = {}                     # tag -> Answer (publishes)
        self.admin_replies = {}               # tag -> AdminReply
        self.deliveries = collections.deque()  # Deliver frames not yet taken
        self.session_nacks = collections.deque()  # nack{tag 0}
        self.challenge = None
        self.welcome = None
        self.pongs = set()

    def close(self):
        self.sock.close(0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- sending and receiving frames ---------------------------------------------------

    def send(self, frame):
        """One Frame as one single-part message (section 1, "framing")."""
        self.sock.send(frame.SerializeToString())

    def _dispatch(self, data):
        f = pb.Frame()
        try:
            f.ParseFromString(data)
        except Exception:
            return  # a broken frame: nothing to match it with
        kind = f.WhichOneof("kind")
        if kind == "ack":
            self.answers[f.ack.tag] = Answer(f.ack.tag, ack=f.ack)
        elif kind == "acks":  # section 6.1: each Ack means what a lone ack means
            for a in f.acks.acks:
                self.answers[a.tag] = Answer(a.tag, ack=a)
        elif kind == "nack":
            if f.nack.tag == 0:
                self.session_nacks.append(f.nack)
            elif f.nack.tag & ADMIN_TAG_BIT:
                # section 9: an unparsable admin frame is answered nack{its tag}
                r = pb.AdminReply(tag=f.nack.tag, code=f.nack.code, reason=f.nack.reason)
                self.admin_replies[f.nack.tag] = r
            else:
                self.answers[f.nack.tag] = Answer(f.nack.tag, nack=f.nack)
        elif kind == "challenge":
            self.challenge = f.challenge.nonce
        elif kind == "welcome":
            self.welcome = f.welcome
        elif kind == "deliver":
            self.deliveries.append(f.deliver)
        elif kind == "delivers":  # section 8.1: each Deliver means what a lone deliver means
            self.deliveries.extend(f.delivers.delivers)
        elif kind == "admin_reply":
            self.admin_replies[f.admin_reply.tag] = f.admin_reply
        elif kind == "ping":
            # the broker's idle probe needs no answer; answering is harmless (section 1)
            self.send(pb.Frame(pong=pb.Pong(nonce=f.ping.nonce)))
        elif kind == "pong":
            self.pongs.add(f.pong.nonce)
        # other kinds: ignored (section 2.2)

    def poll(self, timeout_ms):
        """Read every frame that arrives within timeout_ms (at least what is pending)."""
        if self.sock.poll(timeout_ms, zmq.POLLIN):
            while True:
                try:
                    parts = self.sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                if len(parts) == 1:  # section 1: a client drops multipart messages
                    self._dispatch(parts[0])

    def wait(self, cond, timeout_s, what):
        deadline = time.monotonic() + timeout_s
        while not cond():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no %s within %.1f s" % (what, timeout_s))
            self.poll(int(min(left, 0.2) * 1000) + 1)

    def _session_nack(self):
        if self.session_nacks:
            n = self.session_nacks.popleft()
            raise SessionRefused(code_name(n.code), n.reason)

    # ---- section 1: application-level ping --------------------------------------------------

    def ping(self, nonce, timeout_s=10):
        self.send(pb.Frame(ping=pb.Ping(nonce=nonce)))
        self.wait(lambda: nonce in self.pongs, timeout_s, "PONG")

    # ---- section 7: authentication ----------------------------------------------------------

    def authenticate(self, signer, timeout_s=30):
        """HELLO as signer's agency, sign the CHALLENGE nonce, AUTH. Returns the WELCOME's
        agency; SessionRefused with the code on a nack{tag 0}."""
        self.challenge = None
        self.welcome = None
        self.send(pb.Frame(hello=pb.Hello(agency=signer.agency, client="lienthong-python/1")))
        self.wait(lambda: self.challenge is not None or self.session_nacks, timeout_s,
                  "CHALLENGE")
        self._session_nack()
        sig = signer.sign(DOMAIN_AUTH, self.challenge)
        self.send(pb.Frame(auth=pb.Auth(certificate=signer.cert_der, signature=sig)))
        self.wait(lambda: self.welcome is not None or self.session_nacks, timeout_s, "WELCOME")
        self._session_nack()
        return self.welcome.agency

    # ---- section 6: publishing --------------------------------------------------------------

    def publish_async(self, envelope, deliver_at_unix_ms=0):
        """Send one PUBLISH; returns its tag (never 0). The answer arrives in answers[tag].
        deliver_at_unix_ms > 0: scheduled delivery (section 8.7)."""
        tag = self.next_tag
        self.next_tag += 1
        self.send(pb.Frame(publish=pb.Publish(tag=tag, envelope=envelope,
                                              deliver_at_unix_ms=deliver_at_unix_ms,
                                              batched_ack=self.batched_acks)))
        return tag

    def publish(self, envelopes, timeout_s=30, deliver_at_unix_ms=0):
        """Publish every envelope (pipelined) and wait for each answer; Answers in order of
        the envelopes (matched by tag: the broker's order is not a guarantee)."""
        tags = [self.publish_async(e, deliver_at_unix_ms) for e in envelopes]
        self.wait(lambda: all(t in self.answers for t in tags), timeout_s, "ACK/NACK")
        return [self.answers.pop(t) for t in tags]

    def cancel(self, message_id, timeout_s=30):
        """CANCEL a scheduled record of this session's agency (section 8.7): its Answer, ok
        with the record's seq, or code NOT_SCHEDULED."""
        tag = self.next_tag
        self.next_tag += 1
        self.send(pb.Frame(cancel=pb.Cancel(tag=tag, message_id=message_id)))
        self.wait(lambda: tag in self.answers, timeout_s, "ACK/NACK of a cancel")
        return self.answers.pop(tag)

    # ---- section 8: consuming ---------------------------------------------------------------

    def subscribe(self, queue, credit, replay_from_seq=0, replay_from_unix_ms=0):
        """SUBSCRIBE; no positive answer exists (section 8.1): refusals come as nack{tag 0}
        and are raised by the next receive(). batched_deliver as the client was made."""
        self.send(pb.Frame(subscribe=pb.Subscribe(queue=queue, credit=credit,
                                                   replay_from_seq=replay_from_seq,
                                                   replay_from_unix_ms=replay_from_unix_ms,
                                                   batched_deliver=self.batched_deliveries)))

    def add_credit(self, queue, n):
        self.send(pb.Frame(credit=pb.Credit(queue=queue, credit=n)))

    def receive(self, timeout_s):
        """The next Deliver, or None after timeout_s; SessionRefused on a nack{tag 0}."""
        try:
            self.wait(lambda: self.deliveries or self.session_nacks, timeout_s, "DELIVER")
        except TimeoutError:
            return None
        self._session_nack()
        return self.deliveries.popleft()

    def ack(self, queue, seqs):
        """CONSUMER_ACK; many seqs in one frame (section 8.3). No answer either way."""
        self.send(pb.Frame(consumer_ack=pb.ConsumerAck(queue=queue, seqs=list(seqs))))

    def nak(self, queue, seq, delay_ms=0, reason=""):
        self.send(pb.Frame(consumer_nak=pb.ConsumerNak(queue=queue, seq=seq,
                                                        delay_ms=delay_ms, reason=reason)))

    # ---- section 9: admin requests ----------------------------------------------------------

    def admin(self, op, queue="", seqs=(), limit=0, timeout_s=30):
        """One ADMIN request; returns the AdminReply (code 0 = success, json the answer)."""
        tag = ADMIN_TAG_BIT | self.next_tag
        self.next_tag += 1
        self.send(pb.Frame(admin=pb.AdminRequest(tag=tag, op=op, queue=queue, seqs=list(seqs),
                                                 limit=limit)))
        self.wait(lambda: tag in self.admin_replies, timeout_s, "ADMIN_REPLY")
        return self.admin_replies.pop(tag)

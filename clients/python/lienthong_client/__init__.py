"""lienthong_client - a Python client of the lienthong broker, written from docs/protocol.md.

Needs Debian's python3-zmq, python3-protobuf and python3-cryptography, and the Python
modules protoc generates from proto/ (lienthong.v1.envelope_pb2, lienthong.v1.records.*) on
sys.path: the build puts them in <build>/clients/python/gen (clients/python/README.md).
"""
from .client import Answer, Client, SessionRefused, code_name
from .envelope import (DOMAIN_AUTH, DOMAIN_BATCH, DOMAIN_ENVELOPE, RECORD_TYPES, Refused,
                       Signer, Trust, check_proof, decode, merkle_levels, merkle_proof, seal,
                       seal_batch, signed_bytes, uuid7)

__all__ = ["Answer", "Client", "SessionRefused", "code_name", "DOMAIN_AUTH", "DOMAIN_BATCH",
           "DOMAIN_ENVELOPE", "RECORD_TYPES", "Refused", "Signer", "Trust", "check_proof",
           "decode", "merkle_levels", "merkle_proof", "seal", "seal_batch", "signed_bytes",
           "uuid7"]

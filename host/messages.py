"""Classical-channel messages of key distillation: types, versioned wire format, size limits.

Every message type is declared once in :data:`MESSAGE_TYPES` (field name -> type). A message is
a :data:`~tbqkd.host.protocol.Message` dict; its *body* is the msgpack map of the dict. On the
wire each body travels in a frame::

    offset  size  field
    0       2     magic b"TQ"
    2       1     wire version (:data:`WIRE_VERSION`)
    3       1     direction (0: Alice -> Bob, 1: Bob -> Alice)
    4       8     message counter of that direction (big-endian)
    12      4     body length in bytes (big-endian)
    16      L     body (msgpack)
    16+L    16    authentication tag (see :mod:`tbqkd.host.auth`)

A frame is at most :data:`MAX_FRAME_BYTES`. Parsing checks the size before anything else, the
header next, the tag (in :mod:`~tbqkd.host.auth`) before the body is decoded, and the body
against its schema last; any failure raises :class:`MessageError` naming what is wrong.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import msgpack

from .protocol import Message, ProtocolError

__all__ = ["WIRE_VERSION", "MAX_FRAME_BYTES", "HEADER_BYTES", "TAG_BYTES", "MESSAGE_TYPES",
           "DEFERRED_TYPES",
           "MessageError", "Frame", "validate_message", "encode_body", "decode_body",
           "pack_frame", "unpack_frame"]

WIRE_VERSION = 5   # 2: link messages (sync, announce, answer, block_ready), deferred tags;
                   # 3: slot synchronisation by a public sample (sync, sync_result);
                   # 4: LDPC rescue steps (ldpc_syndromes: rescue_steps, rescue_checks;
                   #    ldpc_status: target_counts, targets);
                   # 5: announced slots Rice-coded instead of zlib (tbqkd.host.slot_code)
MAX_FRAME_BYTES = 64 * 2**20
MAX_STR_BYTES = 1024
MAGIC = b"TQ"
_HEADER = struct.Struct(">2sBBQI")
HEADER_BYTES = _HEADER.size
TAG_BYTES = 16

MESSAGE_TYPES: dict[str, dict[str, type]] = {
    # Alice -> Bob: opens block ``block_id``; Bob checks the sizes and statistics against his.
    "block_start": {"block_id": int, "n_z": int, "n_x": int, "e_x": int, "pulses": int,
                    "qber_prior": float, "method": str, "ec_seed": int},
    # Either way: one error-correction message (the reconciler's own dict) for the block.
    "ec": {"block_id": int, "body": dict},
    # Bob -> Alice: EC outcome and the verification hash (public seed and Bob's tag).
    "verify": {"block_id": int, "ec_success": bool, "errors_corrected": int, "hash_seed": bytes,
               "tag": bytes},
    # Alice -> Bob: privacy amplification with a fresh Toeplitz seed of n + key_bits - 1 bits.
    "pa": {"block_id": int, "key_bits": int, "seed": bytes},
    # Either way: the block is abandoned, with a reason (no key material in it).
    "abort": {"block_id": int, "reason": str},
    # Bob -> Alice: Bob has stored the block's key.
    "ack": {"block_id": int, "key_bits": int},
    # --- the link (tbqkd.host.link) ---
    # Bob -> Alice: Bob's slot s is Alice's slot s + slot_offset + k * divider for some
    # |k| <= search (from the reference alignment and his time base); Alice finds k from the
    # public sample of Bob's Z detections (slots packed as in "announce", bits packed), which
    # never becomes key (tbqkd.host.slot_sync). qber_estimate: Bob's Z error-rate estimate from
    # his histograms, a prior for the first block's error correction (public).
    "sync": {"slot_offset": int, "divider": int, "search": int, "qber_estimate": float,
             "count": int, "first_slot": int, "slots": bytes, "bits": bytes},
    # Alice -> Bob: the offset found (Alice's slot = Bob's + slot_offset), or found = False with
    # the reason; the comparisons and disagreements at that offset.
    "sync_result": {"found": bool, "slot_offset": int, "compared": int, "errors": int,
                    "reason": str},
    # Bob -> Alice: the detections of one batch: slots (differences from ``first_slot``,
    # Rice-coded: tbqkd.host.slot_code) and bases (packed bits, 1 = X).
    "announce": {"batch": int, "count": int, "first_slot": int, "slots": bytes,
                 "bases": bytes},
    # Alice -> Bob: Alice's basis for every announced slot of the batch (packed bits, 1 = X).
    "answer": {"batch": int, "count": int, "bases": bytes},
    # Bob -> Alice: block ``block_id`` is the sifted Z bits of batches [first_batch, end_batch)
    # (n_z of them) with the X-basis statistics and effective Z-basis pulses of that span.
    "block_ready": {"block_id": int, "first_batch": int, "end_batch": int, "n_z": int,
                    "n_x": int, "e_x": int, "pulses": int},
}

#: Message types that may travel with a deferred tag (:mod:`tbqkd.host.auth`): the high-rate
#: sifting exchange, authenticated by the sender's next ordinary frame.
DEFERRED_TYPES = frozenset({"announce", "answer"})


class MessageError(ProtocolError):
    """A frame or message body is malformed, oversized, of an unknown type or version."""


@dataclass(frozen=True)
class Frame:
    """A parsed frame: header fields, the body bytes, and the tag (not yet checked)."""

    direction: int
    counter: int
    body: bytes
    tag: bytes

    @property
    def signed_bytes(self) -> bytes:
        """The bytes the tag authenticates: header and body."""
        return _HEADER.pack(MAGIC, WIRE_VERSION, self.direction, self.counter,
                            len(self.body)) + self.body


def _type_ok(value: Any, expected: type) -> bool:
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, expected)


def validate_message(message: Message) -> None:
    """Check a message dict against its declared type.

    Raises
    ------
    MessageError
        If the type is unknown, a field is missing, extra or of the wrong type, an integer is
        negative, or a string is too long.
    """
    if not isinstance(message, dict):
        raise MessageError(f"message must be a map, got {type(message).__name__}")
    kind = message.get("type")
    if kind not in MESSAGE_TYPES:
        raise MessageError(f"unknown message type {kind!r}")
    fields = MESSAGE_TYPES[kind]
    names = set(message) - {"type"}
    if names != set(fields):
        missing = sorted(set(fields) - names)
        extra = sorted(names - set(fields))
        raise MessageError(f"{kind} message: missing fields {missing}, unexpected {extra}")
    for name, expected in fields.items():
        value = message[name]
        if not _type_ok(value, expected):
            raise MessageError(f"{kind}.{name} must be {expected.__name__}, "
                               f"got {type(value).__name__}")
        if expected is int and value < 0:
            raise MessageError(f"{kind}.{name} must not be negative")
        if expected is str and len(value.encode()) > MAX_STR_BYTES:
            raise MessageError(f"{kind}.{name} longer than {MAX_STR_BYTES} bytes")
    if kind == "ec" and not isinstance(message["body"].get("type"), str):
        raise MessageError("ec.body must be a message with a string 'type'")


def encode_body(message: Message) -> bytes:
    """Validate and serialise a message to its msgpack body.

    Raises
    ------
    MessageError
        If the message does not match its type, or is too large for one frame.
    """
    validate_message(message)
    try:
        body = msgpack.packb(message, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as error:
        raise MessageError(f"{message['type']} message cannot be serialised: "
                           f"{type(error).__name__}") from None
    if len(body) + HEADER_BYTES + TAG_BYTES > MAX_FRAME_BYTES:
        raise MessageError(f"{message['type']} message of {len(body)} bytes exceeds the "
                           f"{MAX_FRAME_BYTES}-byte frame limit")
    return body


def decode_body(body: bytes) -> Message:
    """Parse and validate a msgpack body.

    Raises
    ------
    MessageError
        If the body is not one well-formed msgpack map of a declared message type.
    """
    limit = MAX_FRAME_BYTES
    try:
        message = msgpack.unpackb(body, raw=False, strict_map_key=True, max_str_len=limit,
                                  max_bin_len=limit, max_array_len=limit, max_map_len=limit,
                                  max_ext_len=0)
    except (ValueError, TypeError, msgpack.UnpackException) as error:
        raise MessageError(f"message body is not valid msgpack ({type(error).__name__})") from None
    validate_message(message)
    return message


def pack_frame(direction: int, counter: int, body: bytes, tag: bytes) -> bytes:
    """Assemble a frame from its parts (the tag covers :attr:`Frame.signed_bytes`)."""
    return Frame(direction, counter, body, tag).signed_bytes + tag


def unpack_frame(data: bytes) -> Frame:
    """Split a frame into header fields, body and tag (the tag is not checked here).

    Raises
    ------
    MessageError
        If the frame is oversized, truncated, has trailing bytes, a bad magic or an unsupported
        version.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MessageError(f"a frame must be bytes, got {type(data).__name__}")
    if len(data) > MAX_FRAME_BYTES:
        raise MessageError(f"frame of {len(data)} bytes exceeds the {MAX_FRAME_BYTES}-byte limit")
    if len(data) < HEADER_BYTES + TAG_BYTES:
        raise MessageError(f"truncated frame: {len(data)} bytes, header and tag need "
                           f"{HEADER_BYTES + TAG_BYTES}")
    magic, version, direction, counter, length = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise MessageError("not a tbqkd frame (bad magic)")
    if version != WIRE_VERSION:
        raise MessageError(f"unsupported wire version {version} (this side speaks {WIRE_VERSION})")
    if direction not in (0, 1):
        raise MessageError(f"bad direction {direction}")
    expected = HEADER_BYTES + length + TAG_BYTES
    if len(data) != expected:
        kind = "truncated" if len(data) < expected else "over-long"
        raise MessageError(f"{kind} frame: {len(data)} bytes, header announces {expected}")
    body = bytes(data[HEADER_BYTES:HEADER_BYTES + length])
    return Frame(direction, counter, body, bytes(data[HEADER_BYTES + length:]))

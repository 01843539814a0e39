"""Read-only rosbag2 access (sqlite3 and mcap) with topic -> modality binding.

The bag is opened with ``rosbags`` ``AnyReader``; sqlite3 bags are opened immutable and
read-only, mcap files only for reading, so nothing here can modify an input bag.

Message types come from the definitions the bag carries (rosbag2 since Iron stores them);
bags without definitions fall back to the ROS 2 Kilted type store plus the audio_common_msgs
``.msg`` text shipped under ``sensorysync_ros/msg/``. Two incompatible packages are both called
audio_common_msgs: for such a bag each audio_common type is deserialised with the variant that
reads its first message.

Stamps: each message is placed in time by its ``header.stamp`` and, where a message has no
header (``std_msgs/Float32MultiArray`` audio chunks) or an all-zero stamp, by the bag's
receive time. When header stamps and receive times live in different clock domains (a bag
recorded with wall-clock receive times from a robot publishing sim-time stamps), unstamped
messages are shifted by the median offset between the two so all events share one time base.
"""

from __future__ import annotations

import heapq
import itertools
import statistics
import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from rosbags.highlevel import AnyReader
from rosbags.interfaces import Connection
from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.store import Typestore

from ..closing import Closing
from ..codecs import AUDIO_COMMON_VARIANTS, register_audio_common_types
from ..manifest import ModalitySpec
from .errors import BagError

__all__ = [
    "ACCEPTED_MSG_TYPES",
    "REORDER_LOOKAHEAD_NS",
    "BagMessage",
    "BagReader",
    "TopicBinding",
    "base_typestore",
    "header_stamp_ns",
    "parse_topic_remaps",
    "time_ordered",
]

# Message types each modality kind can be decoded from (the codecs decide by fields).
ACCEPTED_MSG_TYPES: dict[str, frozenset[str]] = {
    "image": frozenset({"sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage"}),
    "vector": frozenset({"sensor_msgs/msg/JointState"}),
    "audio": frozenset(
        {
            "std_msgs/msg/Float32MultiArray",
            "std_msgs/msg/Int16MultiArray",
            "audio_common_msgs/msg/AudioData",
            "audio_common_msgs/msg/AudioDataStamped",
            "audio_common_msgs/msg/AudioStamped",
        }
    ),
    "categorical": frozenset(
        {"std_msgs/msg/Float32MultiArray", "std_msgs/msg/Int32", "std_msgs/msg/UInt8"}
    ),
}

# How far a message's stamp may trail a later-stamped message in receive order (latency jitter).
REORDER_LOOKAHEAD_NS = 500_000_000
# A header/receive-time offset below this is transport latency, not a second clock domain.
CLOCK_DOMAIN_OFFSET_NS = 1_000_000_000


@dataclass(frozen=True)
class TopicBinding:
    """One modality read from one bag topic."""

    modality: str
    topic: str
    msgtype: str


class BagMessage:
    """One message, placed in time; deserialised on first access of ``msg``.

    ``stamp_ns``: header stamp (or the receive time mapped into the header clock domain when
    the message has no header); ``recv_ns``: the bag's receive time; ``raw``: the CDR bytes.
    """

    __slots__ = ("_conn", "_msg", "_reader", "modality", "raw", "recv_ns", "stamp_ns")

    def __init__(
        self,
        modality: str,
        stamp_ns: int,
        recv_ns: int,
        raw: bytes,
        *,
        msg: Any = None,
        reader: BagReader | None = None,
        conn: Connection | None = None,
    ) -> None:
        self.modality = modality
        self.stamp_ns = stamp_ns
        self.recv_ns = recv_ns
        self.raw = raw
        self._msg = msg
        self._reader = reader
        self._conn = conn

    @property
    def msg(self) -> Any:
        """The rosbags message object (BagError when the bytes are malformed)."""
        if self._msg is None and self._reader is not None and self._conn is not None:
            self._msg = self._reader.deserialize(self.raw, self._conn, self.recv_ns)
        return self._msg


_CDR_LE = b"\x00\x01"
_STAMP = struct.Struct("<iI")


def header_stamp_ns(msg: Any) -> int | None:
    """``header.stamp`` in nanoseconds, or None when the message has no (or an all-zero) stamp."""
    header = getattr(msg, "header", None)
    if header is None:
        return None
    stamp_ns = int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)
    return stamp_ns or None


def base_typestore(audio_variant: str = "ros_drivers") -> Typestore:
    """ROS 2 Kilted types plus one audio_common_msgs variant from the shipped ``.msg`` text."""
    store = get_typestore(Stores.ROS2_KILTED)
    register_audio_common_types(store, audio_variant)
    return store


def _header_first(store: Typestore, msgtype: str) -> bool:
    """Whether ``msgtype`` starts with a std_msgs/Header (its stamp is then at a fixed offset)."""
    fields = store.fielddefs.get(msgtype, ((), []))[1]
    return bool(fields) and fields[0][0] == "header" and fields[0][1][1] == "std_msgs/msg/Header"


def parse_topic_remaps(items: Iterable[str]) -> dict[str, str]:
    """``["camera=/front/image", ...]`` -> ``{"camera": "/front/image"}``."""
    remaps: dict[str, str] = {}
    for item in items:
        modality, sep, topic = item.partition("=")
        if not sep or not modality.strip() or not topic.strip():
            raise BagError(f"topic remap {item!r} is not MODALITY=/topic, e.g. camera=/cam/image")
        remaps[modality.strip()] = topic.strip()
    return remaps


def _absolute(topic: str) -> str:
    return topic if topic.startswith("/") else f"/{topic}"


def _storage_of(path: Path) -> str:
    """'sqlite3' or 'mcap', from the bag's metadata.yaml."""
    try:
        meta = yaml.safe_load((path / "metadata.yaml").read_text())
        return str(meta["rosbag2_bagfile_information"]["storage_identifier"])
    except (OSError, yaml.YAMLError, KeyError, TypeError) as err:
        raise BagError(f"bag {str(path)!r} has no readable metadata.yaml: {err}") from err


class BagReader(Closing):
    """A rosbag2 opened read-only. Use as a context manager."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise BagError(f"bag {str(self.path)!r} does not exist; pass a rosbag2 directory")
        if not self.path.is_dir():
            raise BagError(f"bag {str(self.path)!r} is not a rosbag2 directory")
        self.storage = _storage_of(self.path)
        try:
            self._reader = AnyReader([self.path], default_typestore=base_typestore())
            self._reader.open()
        except Exception as err:  # rosbags raises many types for corrupt files
            raise BagError(f"bag {str(self.path)!r} cannot be opened: {err}") from err
        self.typestore: Typestore = self._reader.typestore
        self.has_definitions = any(c.msgdef.data for c in self._reader.connections)
        self._stores: dict[str, list[Typestore]] = {}


    def close(self) -> None:
        if self._reader.stack is not None:
            self._reader.close()

    @property
    def start_ns(self) -> int:
        """Receive time of the first message."""
        return int(self._reader.start_time)

    @property
    def end_ns(self) -> int:
        """Receive time just after the last message."""
        return int(self._reader.end_time)

    @property
    def connections(self) -> list[Connection]:
        return list(self._reader.connections)

    @property
    def topics(self) -> dict[str, str]:
        """Topic -> message type of every topic in the bag."""
        return {c.topic: c.msgtype for c in self._reader.connections}

    def bind(
        self, specs: Sequence[ModalitySpec], remaps: Mapping[str, str] | None = None
    ) -> list[TopicBinding]:
        """Find each modality's topic: the remap, else the spec's default topic, else the one
        bag topic ending with it (a namespaced robot). Checks the message type."""
        remaps = dict(remaps or {})
        names = [s.name for s in specs]
        unknown = sorted(set(remaps) - set(names))
        if unknown:
            raise BagError(f"topic remap names unknown modality {unknown}; the model has {names}")
        topics = self.topics
        bindings = []
        for spec in specs:
            wanted = _absolute(remaps.get(spec.name, spec.ros.topic))
            topic = wanted if wanted in topics else None
            if topic is None and spec.name not in remaps:
                suffix = [t for t in topics if t.endswith(wanted)]
                topic = suffix[0] if len(suffix) == 1 else None
            if topic is None:
                raise BagError(
                    f"bag {str(self.path)!r} has no topic {wanted!r} for modality "
                    f"{spec.name!r} (topics: {sorted(topics)}); "
                    f"remap it with --topic {spec.name}=/your/topic"
                )
            msgtype = topics[topic]
            accepted = ACCEPTED_MSG_TYPES[spec.kind]
            if msgtype not in accepted:
                raise BagError(
                    f"topic {topic!r} in bag {str(self.path)!r} carries {msgtype!r}; modality "
                    f"{spec.name!r} ({spec.kind}) needs one of {sorted(accepted)}"
                )
            bindings.append(TopicBinding(spec.name, topic, msgtype))
        return bindings

    def _stores_for(self, msgtype: str) -> list[Typestore]:
        """Type stores to try for ``msgtype``: the bag's own; for audio_common types in a bag
        without definitions, one per shipped variant (the first that works is kept)."""
        if msgtype not in self._stores:
            stores = [self.typestore]
            if msgtype.startswith("audio_common_msgs/") and not self.has_definitions:
                name = msgtype.rsplit("/", 1)[-1]
                variants = [v for v, names in AUDIO_COMMON_VARIANTS.items() if name in names]
                stores = [base_typestore(v) for v in variants] or stores
            self._stores[msgtype] = stores
        return self._stores[msgtype]

    def store_for(self, msgtype: str) -> Typestore:
        """The type store that reads ``msgtype`` in this bag (for building messages of it)."""
        return self._stores_for(msgtype)[0]

    def deserialize(self, raw: bytes, conn: Connection, recv_ns: int) -> Any:
        """One message of ``conn`` as a rosbags message object; BagError when malformed."""
        stores = self._stores_for(conn.msgtype)
        for k, store in enumerate(stores):
            try:
                msg = store.deserialize_cdr(raw, conn.msgtype)
            except Exception as err:  # serde raises several types for malformed CDR
                if k + 1 < len(stores):
                    continue
                raise BagError(
                    f"bag {str(self.path)!r}: message on {conn.topic!r} at receive time "
                    f"{recv_ns} ns cannot be deserialised as {conn.msgtype!r}: {err}"
                ) from err
            self._stores[conn.msgtype] = [store]
            return msg
        raise AssertionError("unreachable: at least one type store")

    def raw_messages(
        self, connections: Sequence[Connection] = ()
    ) -> Iterator[tuple[Connection, int, bytes]]:
        """``(connection, receive time ns, CDR bytes)`` in receive order (all topics when
        ``connections`` is empty)."""
        try:
            for conn, recv_ns, raw in self._reader.messages(connections=connections):
                yield conn, int(recv_ns), bytes(raw)
        except Exception as err:  # corrupt storage surfaces as sqlite/mcap errors mid-read
            raise BagError(
                f"bag {str(self.path)!r} cannot be read: {type(err).__name__}: {err}"
            ) from err

    def _decoded(
        self, bindings: Sequence[TopicBinding]
    ) -> Iterator[tuple[TopicBinding, int, Any, bytes]]:
        by_topic = {b.topic: b for b in bindings}
        conns = [c for c in self._reader.connections if c.topic in by_topic]
        for conn, recv_ns, raw in self.raw_messages(conns):
            yield by_topic[conn.topic], recv_ns, self.deserialize(raw, conn, recv_ns), raw

    def clock_offset_ns(self, bindings: Sequence[TopicBinding], probe: int = 64) -> int:
        """Receive time minus header stamp (median over the first ``probe`` stamped messages)
        when the two are in different clock domains (|offset| > 1 s), else 0."""
        diffs = [
            recv_ns - stamp_ns
            for _, recv_ns, msg, _ in itertools.islice(self._decoded(bindings), probe * 4)
            if (stamp_ns := header_stamp_ns(msg)) is not None
        ][:probe]
        if not diffs:
            return 0
        offset_ns = int(statistics.median(diffs))
        return offset_ns if abs(offset_ns) > CLOCK_DOMAIN_OFFSET_NS else 0

    def messages(
        self, bindings: Sequence[TopicBinding], *, clock_offset_ns: int = 0
    ) -> Iterator[BagMessage]:
        """Messages of the bound topics in receive order, each with its stamp (module doc).

        The header stamp is read straight from the CDR bytes where the type starts with a
        header (little-endian CDR); the message itself is deserialised only when used."""
        by_topic = {b.topic: b for b in bindings}
        conns = [c for c in self._reader.connections if c.topic in by_topic]
        peek = {c.id: _header_first(self._stores_for(c.msgtype)[0], c.msgtype) for c in conns}
        for conn, recv_ns, raw in self.raw_messages(conns):
            modality = by_topic[conn.topic].modality
            if peek[conn.id] and raw[:2] == _CDR_LE:
                sec, nanosec = _STAMP.unpack_from(raw, 4)
                stamp_ns = sec * 1_000_000_000 + nanosec
                message = BagMessage(modality, stamp_ns, recv_ns, raw, reader=self, conn=conn)
            else:
                msg = self.deserialize(raw, conn, recv_ns)
                stamp_ns = header_stamp_ns(msg) or 0
                message = BagMessage(modality, stamp_ns, recv_ns, raw, msg=msg)
            if not stamp_ns:
                message.stamp_ns = recv_ns - clock_offset_ns
            yield message


def time_ordered(messages: Iterable[BagMessage], lookahead_ns: int) -> Iterator[BagMessage]:
    """Re-order messages from receive order into stamp order.

    A message is released once a stamp ``lookahead_ns`` later has been seen, so a message may
    arrive up to ``lookahead_ns`` (of transport latency jitter) behind a later-stamped one.
    Ties keep receive order.
    """
    heap: list[tuple[int, int, BagMessage]] = []
    newest_ns = -(2**63)
    for seq, message in enumerate(messages):
        heapq.heappush(heap, (message.stamp_ns, seq, message))
        newest_ns = max(newest_ns, message.stamp_ns)
        while heap and heap[0][0] <= newest_ns - lookahead_ns:
            yield heapq.heappop(heap)[2]
    while heap:
        yield heapq.heappop(heap)[2]

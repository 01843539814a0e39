"""``--write-bag``: a new bag with every original message plus the evaluator's outputs.

The originals are copied byte for byte (same topics, types, definitions and receive times);
``sensorysync/core`` and ``sensorysync/<modality>/reconstruction`` are added in the layout the
node publishes (``sensorysync_ros.core_msg``), stamped with the tick time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rosbags.interfaces import Connection
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.store import Typestore

from .bagio import BagReader
from .errors import BagError

__all__ = ["OutputBag"]

_PLUGINS = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}


class OutputBag:
    """A rosbag2 being written beside (never over) the input bag. Use as a context manager."""

    def __init__(self, path: Path, source: BagReader) -> None:
        self.path = path
        self.source = source
        # Plain Kilted (no user types): registering user types in another store would rebind
        # the module the input bag's audio_common classes resolve their nested types through.
        self._store = get_typestore(Stores.ROS2_KILTED)
        try:
            self._writer = Writer(path, version=9, storage_plugin=_PLUGINS[source.storage])
            self._writer.open()
        except Exception as err:  # rosbags raises WriterError / OSError
            raise BagError(f"cannot create output bag {str(path)!r}: {err}") from err
        self._added: dict[str, tuple[Connection, str, Any]] = {}

    def __enter__(self) -> OutputBag:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._writer.close()

    def copy_originals(self) -> int:
        """Copy every message of the input bag; returns the count. Called after the pass, so a
        bag without type definitions gets those of the audio_common variant that read it."""
        by_id = {
            conn.id: self._writer.add_connection(
                conn.topic,
                conn.msgtype,
                msgdef=conn.msgdef.data or None,
                rihs01=conn.digest or None,
                typestore=self.source.store_for(conn.msgtype),
            )
            for conn in self.source.connections
        }
        count = 0
        for conn, recv_ns, raw in self.source.raw_messages():
            self._writer.write(by_id[conn.id], recv_ns, raw)
            count += 1
        return count

    def _store_of(self, msgtype: str) -> Typestore:
        """The input bag's store for its own types (the audio_common variant it carries), the
        ROS 2 Kilted store for the rest (the core Image)."""
        store = self.source.store_for(msgtype)
        return store if msgtype in store.types else self._store

    def msg_class(self, msgtype: str) -> type:
        """The class to build an output message of ``msgtype`` with."""
        return self._store_of(msgtype).types[msgtype]

    def header(self, stamp_ns: int, frame_id: str) -> Any:
        time_cls = self._store.types["builtin_interfaces/msg/Time"]
        stamp = time_cls(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)
        return self._store.types["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)

    def write(self, topic: str, msgtype: str, t_ns: int, msg: Any) -> None:
        """Serialise ``msg`` onto ``topic`` (added on first use) at receive time ``t_ns``."""
        if topic not in self._added:
            store = self._store_of(msgtype)
            if any(c.topic == topic for c in self.source.connections):
                raise BagError(
                    f"input bag {str(self.source.path)!r} already has topic {topic!r}; "
                    f"evaluate a bag without sensorysync outputs"
                )
            conn = self._writer.add_connection(topic, msgtype, typestore=store)
            self._added[topic] = (conn, msgtype, store)
        conn, msgtype, store = self._added[topic]
        self._writer.write(conn, t_ns, store.serialize_cdr(msg, msgtype))

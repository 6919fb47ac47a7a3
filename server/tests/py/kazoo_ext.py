"""Requests kazoo 2.11 lacks, sent through kazoo's own connection.

What it is: request records for createContainer (19), createTTL (21) and
addWatch (106) in kazoo's request-object shape (a `type`, `serialize()`,
`deserialize()`), queued with `KazooClient._call`, so they travel on the
same socket, xid sequence and error mapping as kazoo's own requests; plus a
hook that delivers persistent and persistent-recursive watch events to
callbacks (kazoo's reader only knows one-shot watches) and records the wire
order of events and replies.

What it is not: a fork of kazoo. Only these opcodes and the event hook.

Invariant it keeps: the hook never consumes an event kazoo's own one-shot
watchers are waiting for; it looks at each event and then hands the same
bytes to kazoo's original handler.
"""

import collections
import struct
import threading

from kazoo.protocol import connection as kz_connection
from kazoo.protocol.serialization import Watch, read_string, write_buffer, write_string
from kazoo.protocol.states import WatchedEvent, ZnodeStat, EventType as KzEventType
from kazoo.security import OPEN_ACL_UNSAFE

_int = struct.Struct("!i")
_long = struct.Struct("!q")
_stat = struct.Struct("!qqqqiiiqiiq")

EVENT_NAMES = {1: KzEventType.CREATED, 2: KzEventType.DELETED, 3: KzEventType.CHANGED,
               4: KzEventType.CHILD}


def _acl_bytes(acl):
    b = bytearray(_int.pack(len(acl)))
    for a in acl:
        b += _int.pack(a.perms) + write_string(a.id.scheme) + write_string(a.id.id)
    return b


def _write_str(s):
    # kazoo's write_string turns "" into a null string; we want it literal.
    data = s.encode("utf-8")
    return _int.pack(len(data)) + data


class CreateContainer(collections.namedtuple("CreateContainer", "path data acl flags")):
    type = 19

    def serialize(self):
        return (_write_str(self.path) + write_buffer(self.data) + _acl_bytes(self.acl)
                + _int.pack(self.flags))

    @classmethod
    def deserialize(cls, buf, offset):
        path, offset = read_string(buf, offset)
        return path, ZnodeStat._make(_stat.unpack_from(buf, offset))


class CreateTTL(collections.namedtuple("CreateTTL", "path data acl flags ttl")):
    type = 21

    def serialize(self):
        return (_write_str(self.path) + write_buffer(self.data) + _acl_bytes(self.acl)
                + _int.pack(self.flags) + _long.pack(self.ttl))

    @classmethod
    def deserialize(cls, buf, offset):
        path, offset = read_string(buf, offset)
        return path, ZnodeStat._make(_stat.unpack_from(buf, offset))


class AddWatch(collections.namedtuple("AddWatch", "path mode")):
    type = 106

    def serialize(self):
        return _write_str(self.path) + _int.pack(self.mode)

    @classmethod
    def deserialize(cls, buf, offset):
        return True


class RemoveWatches(collections.namedtuple("RemoveWatches", "path watcher_type")):
    type = 18

    def serialize(self):
        return _write_str(self.path) + _int.pack(self.watcher_type)

    @classmethod
    def deserialize(cls, buf, offset):
        return True


def _call(client, request):
    result = client.handler.async_result()
    client._call(request, result)
    return result.get(timeout=15)


def _acl(client, acl):
    return acl or client.default_acl or OPEN_ACL_UNSAFE


def create_container(client, path, value=b"", acl=None):
    """createContainer; returns (path, ZnodeStat)."""
    return _call(client, CreateContainer(path, value, _acl(client, acl), 4))


def create_ttl(client, path, ttl_ms, value=b"", acl=None, sequence=False):
    """createTTL (mode 5, or 6 with sequence); returns (path, ZnodeStat)."""
    return _call(client, CreateTTL(path, value, _acl(client, acl), 6 if sequence else 5, ttl_ms))


PERSISTENT = 0
PERSISTENT_RECURSIVE = 1


class EventTap:
    """Persistent-watch delivery and a wire-order log for one KazooClient.

    `log` holds ("event", type, path) and ("reply", xid) tuples in the order
    kazoo's reader thread took them off the socket."""

    def __init__(self, client):
        self.client = client
        self.lock = threading.Lock()
        self.persistent = collections.defaultdict(list)  # path -> [callback]
        self.recursive = collections.defaultdict(list)
        self.log = []
        conn = client._connection
        original_event = conn._read_watch_event
        original_response = conn._read_response

        def read_watch_event(buffer, offset):
            watch, _ = Watch.deserialize(buffer, offset)
            with self.lock:
                self.log.append(("event", watch.type, watch.path))
                callbacks = list(self.persistent.get(watch.path, ()))
                for root, cbs in self.recursive.items():
                    if watch.path == root or watch.path.startswith(root.rstrip("/") + "/"):
                        callbacks.extend(cbs)
            if callbacks:
                ev = WatchedEvent(EVENT_NAMES.get(watch.type, watch.type), client._state,
                                  watch.path)
                for cb in callbacks:
                    client.handler.dispatch_callback(
                        kz_connection.Callback("watch", cb, (ev,)))
            return original_event(buffer, offset)

        def read_response(header, buffer, offset):
            with self.lock:
                self.log.append(("reply", header.xid))
            return original_response(header, buffer, offset)

        conn._read_watch_event = read_watch_event
        conn._read_response = read_response

    def add_watch(self, path, callback, mode=PERSISTENT):
        """addWatch (106) and remember the callback for its events."""
        _call(self.client, AddWatch(path, mode))
        with self.lock:
            (self.recursive if mode == PERSISTENT_RECURSIVE else self.persistent)[path].append(
                callback)

    def remove_watches(self, path, watcher_type=3):
        """removeWatches (18); type ANY (3) also removes persistent ones."""
        _call(self.client, RemoveWatches(path, watcher_type))
        with self.lock:
            self.persistent.pop(path, None)
            self.recursive.pop(path, None)

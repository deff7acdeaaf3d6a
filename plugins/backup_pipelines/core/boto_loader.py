"""One botocore data loader per process, shared by this package's AWS hooks.

botocore parses the S3 service model and its endpoint rules (about 1 MB of JSON) for every new
session; a shared loader keeps what it has read, so every client after the first is built in
milliseconds instead of ~0.1 s (0.4 s on a loaded machine). A task, the Backups page or a drill
builds several.

The provider also names the calling operator in each client's user agent by walking the call
stack with ``inspect.stack()``, which resolves the source file of every frame's module: 0.16 s
for a task's first client (measured in the snapshot task). The caller of this package's hooks is
always this package, so it is named without the walk.

And botocore parses every timestamp of a response (each listed object's ``LastModified``) with
dateutil, about 25 us a key (more on a loaded machine): seconds of a 100,000-object listing.
S3's timestamps are ISO 8601 with a zone, which ``datetime.fromisoformat`` reads in well under a
microsecond; anything else (an HTTP date in a header) still goes to botocore's parser.

Each listed object then still cost about 12 us in botocore's generic XML walk (for each of the
``Object`` shape's nine members: its XML name worked out again, a dict of the node's children
built, a handler looked up by type): 0.12 s of a backup task's 10,000-object listing, more than
the listing's own wait. ``ListingParser`` reads an ``Object`` in one pass over its children with
the shape's members resolved once; the result is botocore's, the same dict (tested against
botocore's own parser), and every other shape is botocore's.
"""

from __future__ import annotations

import threading
import weakref
from datetime import datetime
from typing import Any

from botocore.parsers import ResponseParserFactory, RestXMLParser

_SHARED_LOADER: Any = None
_SHARED_LOADER_LOCK = threading.Lock()


def shared_data_loader() -> Any:
    """The process's botocore data loader (built once, under a lock)."""
    global _SHARED_LOADER  # noqa: PLW0603 - a process-wide cache, built once under the lock
    with _SHARED_LOADER_LOCK:
        if _SHARED_LOADER is None:
            from botocore.loaders import create_loader

            _SHARED_LOADER = create_loader()
        return _SHARED_LOADER


def parse_timestamp(value: Any) -> datetime:
    """A response timestamp as botocore would parse it, ISO 8601 with a zone without dateutil."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is not None:  # S3's form; one without a zone is botocore's to read
                return parsed
    from botocore.utils import parse_timestamp as botocore_parse

    return botocore_parse(value)


# botocore's type stubs declare the parsers' public methods only; these subclasses build on the
# private ones (``_handle_structure``, ``_parse_shape``, ``_member_key_name``, ``_defaults``).
_RestXMLParser: Any = RestXMLParser
_ResponseParserFactory: Any = ResponseParserFactory

#: Structures read by ``ListingParser``'s direct path: a listing's objects (ListObjectsV2's Contents).
DIRECT_SHAPES = frozenset({"Object"})
#: Scalar member types read straight from a node's text, and how; any other member is botocore's.
_READ_AS = {"string": "text", "integer": "integer", "long": "integer", "timestamp": "timestamp"}


class ListingParser(_RestXMLParser):
    """botocore's REST-XML parser, with a direct path for the objects of a listing (module doc)."""

    #: shape -> its plan: botocore builds a parser per response, so plans are kept here, each as
    #: long as its shape (every client has shapes of its own: a process building clients all day
    #: keeps only the live ones).
    _plans: weakref.WeakKeyDictionary[Any, dict[str, tuple[str, Any, str]]] = weakref.WeakKeyDictionary()

    def _handle_structure(self, shape: Any, node: Any) -> Any:
        if shape.name not in DIRECT_SHAPES or isinstance(node, list):
            return super()._handle_structure(shape, node)
        plan = self._plan(shape)
        parsed: dict[str, Any] = {}
        for child in node:
            tag = child.tag
            entry = plan.get(tag.rpartition("}")[2] if tag[0] == "{" else tag)
            if entry is None:
                continue
            name, member, how = entry
            if how == "text":
                parsed[name] = child.text or ""
            elif how == "integer":
                parsed[name] = int(child.text)
            elif how == "timestamp":
                parsed[name] = self._timestamp_parser(child.text)
            elif how == "flattened":  # repeated elements, one list (botocore aggregates them)
                parsed.setdefault(name, []).append(self._parse_shape(member.member, child))
            else:
                parsed[name] = self._parse_shape(member, child)
        return parsed

    def _plan(self, shape: Any) -> dict[str, tuple[str, Any, str]]:
        """XML name -> (member, its shape, how it is read), worked out once per shape."""
        kept = self._plans.get(shape)
        if kept is not None:
            return kept
        plan: dict[str, tuple[str, Any, str]] = {}
        for name, member in shape.members.items():
            kind = member.type_name
            if kind == "list" and member.serialization.get("flattened"):
                how = "flattened"
            elif member.serialization.get("xmlAttribute"):
                how = "shape"
            else:
                how = _READ_AS.get(kind, "shape")
            plan[self._member_key_name(member, name)] = (name, member, how)
        self._plans[shape] = plan
        return plan


class ResponseParsers(_ResponseParserFactory):
    """The session's parser factory: ``ListingParser`` for REST-XML (S3), botocore's otherwise."""

    def create_parser(self, protocol_name: str) -> Any:
        if protocol_name == "rest-xml":
            return ListingParser(**self._defaults)
        return super().create_parser(protocol_name)


def response_parsers() -> ResponseParsers:
    """A parser factory with this module's timestamp parser."""
    factory = ResponseParsers()
    factory.set_parser_defaults(timestamp_parser=parse_timestamp)
    return factory


#: The ``Caller/`` part of the user agent of this package's AWS clients.
USER_AGENT_CALLER = "backup_pipelines"


class SharedServiceModel:
    """Mixin for a provider ``AwsBaseHook``: its sessions use the process's shared data loader,
    and its clients' user agent names this package as the caller without walking the stack."""

    def _get_caller(self, target_function_name: str = "execute") -> str:
        return USER_AGENT_CALLER

    def get_session(self, region_name: str | None = None, deferrable: bool = False) -> Any:
        session = super().get_session(region_name=region_name, deferrable=deferrable)  # type: ignore[misc]
        core = getattr(session, "_session", None)  # boto3.Session's botocore session
        if core is not None and hasattr(core, "register_component"):
            core.register_component("data_loader", shared_data_loader())
            core.register_component("response_parser_factory", response_parsers())
        return session

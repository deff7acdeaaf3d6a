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
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

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
            core.get_component("response_parser_factory").set_parser_defaults(
                timestamp_parser=parse_timestamp
            )
        return session

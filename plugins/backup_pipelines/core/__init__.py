"""The shared core: config, catalog and manifests, the S3 gateway, email, run params, errors.

See docs/architecture.md for where it sits and what it may import.
"""

from __future__ import annotations

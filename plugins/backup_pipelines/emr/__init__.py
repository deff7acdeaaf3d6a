"""Daily EMR output archives: verified server-side copies and the archive bucket's lifecycle rule.

See docs/architecture.md for where it sits and what it may import.
"""

from __future__ import annotations

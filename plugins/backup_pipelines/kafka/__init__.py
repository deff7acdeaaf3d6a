"""Weekly Kafka archives to Glacier with gap-free offset coverage, and the replay of archived events.

See docs/architecture.md for where it sits and what it may import.
"""

from __future__ import annotations

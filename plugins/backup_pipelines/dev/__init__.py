"""The embedded stack, the demo, sample data, the config reference: never imported by the product.

See docs/architecture.md for where it sits and what it may import.
"""

from __future__ import annotations

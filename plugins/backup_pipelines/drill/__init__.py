"""The weekly DR drill: pick a recovery point per dataset, restore and check it, report.

See docs/architecture.md for where it sits and what it may import.
"""

from __future__ import annotations

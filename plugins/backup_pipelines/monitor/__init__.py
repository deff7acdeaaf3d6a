"""RPO monitoring: ages of the newest verified points, breach emails, deadline alerts, the freshness sensor.

See docs/architecture.md for where it sits and what it may import.
"""

from __future__ import annotations

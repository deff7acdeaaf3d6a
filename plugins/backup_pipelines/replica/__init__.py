"""The DR region: every recovery point copied there and checked, a DR catalog, retention in step."""

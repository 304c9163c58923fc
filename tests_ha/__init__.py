"""Tests of the Home Assistant integration (run by scripts/test-ha)."""

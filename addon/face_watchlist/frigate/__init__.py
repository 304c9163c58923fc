"""Frigate: its MQTT event stream, per-object tracking and (to come) its HTTP API."""

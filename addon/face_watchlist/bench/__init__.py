"""Benchmarks: accuracy on LFW, face size curves, pipeline speed. They print figures; tests don't time."""

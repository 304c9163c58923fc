"""Face Watchlist for Frigate: match faces in Frigate's person events against a school's lists."""

__version__ = "0.1.0"

"""Allow ``python -m face_watchlist``."""

from face_watchlist.cli import main

raise SystemExit(main())

"""``python -m labkit.replay``: see :mod:`labkit.replay.command`."""

from labkit.replay.command import main

raise SystemExit(main())

"""pytest settings for ``pytest --nbval notebooks/``.

``replay/`` holds a recorded run (its executed notebook and session) that
``07_replay.ipynb`` replays; its notebook is a record of what happened, not an
experiment to run live, so nbval does not collect it.
"""

collect_ignore_glob = ["replay/*"]

"""Tidings' launcher: `python bot.py` runs the application built in app.py.

Nothing is imported at module level on purpose. The parser processes are started by
forkserver, which re-runs the main module in each of them: a launcher that imported the
application would load python-telegram-bot, openai and the rest into every parser.
"""

if __name__ == "__main__":
    import os

    # numpy's BLAS (news.semantic's matrix products) on one thread: its threads would fight
    # the event loop, the database thread and the parser processes for the cores, and small
    # products then run 10x slower than on one thread (bench/matching.py --semantic).
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from app import main

    main()

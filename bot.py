"""Tidings' launcher: `python bot.py` runs the application built in app.py.

Nothing is imported at module level on purpose. The parser processes are started by
forkserver, which re-runs the main module in each of them: a launcher that imported the
application would load python-telegram-bot, openai and the rest into every parser.
"""

if __name__ == "__main__":
    from app import main

    main()

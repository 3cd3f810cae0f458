"""A capacity replica's main module (`bench/capacity.py` starts it with `--child`).

Import-free until it runs, like bot.py: forkserver re-runs the main module in every parser
process, so a replica started as `bench/capacity.py` would load the benchmark's own imports
(SQLAlchemy, the storage layer, the test fakes) into its parsers, which the bot's never have.
"""

if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench.capacity import main

    main()

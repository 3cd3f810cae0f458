"""Replicas started at once on a new PostgreSQL database (`docker compose up --scale bot=3`)
must all find the schema migrated, none failing on a table another one just created."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.conftest import REPO

MIGRATE_AT = """
import sys, time
from storage.db import make_engine, migrate
engine = make_engine(sys.argv[1])
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))  # all start the migration together
migrate(engine)
"""


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_replicas_migrating_a_new_database_together_all_succeed(database_url: str) -> None:
    start = time.time() + 6  # past every process's imports, even on a loaded machine
    processes = [
        subprocess.Popen([sys.executable, "-c", MIGRATE_AT, database_url, str(start)],
                         cwd=REPO, stderr=subprocess.PIPE)
        for _ in range(8)
    ]
    failures = [err.decode()[-800:] for p in processes
                if (err := p.communicate(timeout=60)[1]) is not None and p.returncode != 0]
    assert failures == []

"""Both stores implement the pipeline's declared Storage interface (sen.gateway.storage):
every member it names, and commit_batch takes every keyword the pipeline passes."""
import inspect

import pytest

from sen.gateway.storage import Storage
from sen.gateway.store import Store
from sen.ingest.postgres_store import PgStore

MEMBERS = [m for m in vars(Storage) if not m.startswith("_")] + list(Storage.__annotations__)


@pytest.mark.parametrize("cls", [Store, PgStore])
def test_store_has_every_storage_member(cls, tmp_path):
    have = set(dir(cls))
    if cls is Store:  # next_reading_id is set per instance, from the readings table
        have |= set(vars(Store(tmp_path / "s.db")))
    assert sorted(set(MEMBERS) - have) == []


@pytest.mark.parametrize("cls", [Store, PgStore])
def test_commit_batch_takes_the_pipelines_keywords(cls):
    want = set(inspect.signature(Storage.commit_batch).parameters) - {"self"}
    assert want <= set(inspect.signature(cls.commit_batch).parameters)

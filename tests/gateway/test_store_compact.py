"""The store's compact insert (SQLite expands single-sample frames into reading rows and
computes their physical values) stores exactly what full rows from Python store."""
from sen.gateway.key_store import KeyStore
from sen.gateway.pipeline import Pipeline
from sen.gateway.store import Store
from sen.testkit.synthetic import Fleet


class RowsOnlyStore(Store):
    compact_readings = False  # as the PostgreSQL store: the Pipeline hands it full rows


def test_compact_and_full_rows_store_the_same_readings(tmp_path):
    fleet = Fleet(7, seed=3)
    keys = KeyStore(tmp_path / "keys.json", create=True)
    fleet.write_keys(keys)
    items = list(fleet.frames(500))
    # other channel sets too: water-quality and rain frames, one reading, all registry edges
    fr = fleet.framers[1]
    extra = [fr.encode(1000 + i, 8, [(0, [(8, 2512 + i, 0), (9, 701, 0), (10, 1500, 0), (11, 12, 0), (12, -3, 0),
                                          (13, 812, 0)])]) for i in range(20)]
    extra += [fr.encode(2000, 8, [(0, [(14, 2147483647, 0)])]), fr.encode(2001, 8, [(0, [(1, -400, 0)])]),
              fr.encode(2002, 8, [(0, [(7, 300, 0), (41, 65535, 0), (42, 0, 0)])])]
    items += [(f, items[0][1]) for f in extra]
    got = {}
    for name, cls in (("compact", Store), ("rows", RowsOnlyStore)):
        store = cls(tmp_path / f"{name}.db")
        res = Pipeline(store, keys).process([(i, i + 1, f, m) for i, (f, m) in enumerate(items)])
        assert not res.rejections and res.readings > 3000
        got[name] = store.con.execute("SELECT * FROM readings ORDER BY id").fetchall()
        got[name + " frames"] = store.con.execute("SELECT first_reading, n_readings FROM frames ORDER BY rowid").fetchall()
        store.close()
    assert got["compact"] == got["rows"]
    assert got["compact frames"] == got["rows frames"]
    assert [type(r[6]) for r in got["compact"]] == [float] * len(got["compact"])

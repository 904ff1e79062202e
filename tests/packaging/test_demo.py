"""`sen demo` runs the data path end to end and stores every frame it made."""
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

SEN = str(Path(sys.executable).with_name("sen"))


def test_demo_stores_every_frame(tmp_path):
    out = subprocess.run([SEN, "demo", "--out", str(tmp_path), "--hours", "6"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["rejected"] == 0 and summary["frames"] > 0
    db = sqlite3.connect(tmp_path / "sen-demo.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    frames = db.execute("SELECT COUNT(*) FROM (SELECT DISTINCT node, counter FROM readings)").fetchone()[0]
    assert frames == summary["frames"]

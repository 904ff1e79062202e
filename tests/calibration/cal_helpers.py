import json
from pathlib import Path


def read_json(path):
    return json.loads(Path(path).read_text())


def one_error_line(err):
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("sen: error: ") and " — " in lines[0], lines[0]
    return lines[0]

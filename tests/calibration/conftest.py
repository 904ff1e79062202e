import sys
from pathlib import Path

import numpy as np
import pytest

from sen.testkit import cal_synthetic as synthetic
from sen.host_tools.cli import main

sys.path.insert(0, str(Path(__file__).parent))  # cal_helpers


@pytest.fixture
def sen(capsys):
    """Run `sen …` in-process; returns (exit code, stdout, stderr)."""
    def run(*argv):
        with pytest.raises(SystemExit) as exc:
            main([str(a) for a in argv])
        out = capsys.readouterr()
        return exc.value.code or 0, out.out, out.err
    return run


@pytest.fixture
def epa_csv(tmp_path):
    t, cols = synthetic.epa_colocation(np.random.default_rng(20261123))
    return synthetic.write_csv(tmp_path / "colocation.csv", t, cols)


@pytest.fixture
def ph_csv(tmp_path):
    t, cols = synthetic.ph_two_point(np.random.default_rng(7))
    return synthetic.write_csv(tmp_path / "buffers.csv", t, cols)

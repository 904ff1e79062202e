"""Class 11: node config. `sen node flash --set` with a typo or a wrong type is refused by the
firmware's own loader (run on the host) before any board is touched: one line naming the key,
exit 2. The firmware's loader refuses the same on the node."""
import pytest

from sen.firmware_modules import load
from tests.faults.helpers import one_line_error, sen


@pytest.mark.parametrize("setting, says", [
    ("intervl_s=600", "intervl_s"),
    ("confirmed=yes", "confirmed"),
    ("radio.sff=10", "radio.sff"),
    ("radio.sf=fast", "radio.sf"),
    ("interval_s=5", "interval_s"),
])
def test_bad_set_is_refused_before_the_board_is_touched(tmp_path, setting, says):
    r = sen("node", "flash", "--port", tmp_path / "no-such-port", "--node-id", "5", "--board", "ttgo-lora32-v21",
            "--kind", "air", "--set", setting, cwd=tmp_path, timeout=120)
    assert one_line_error(r) and says in r.stderr, r.stderr
    assert "no-such-port" not in r.stderr  # judged before any attempt to open the port


def test_the_firmware_loader_refuses_unknown_keys_and_non_booleans():
    cfg = load("config")
    base = {"node_id": 5, "kind": "air", "key": "00" * 16}
    cfg.check_node(dict(base, interval_s=600, confirmed=True))
    for bad in ({"intervl_s": 600}, {"confirmed": "yes"}, {"radio": {"sff": 10}}):
        with pytest.raises(cfg.ConfigError):
            cfg.check_node(dict(base, **bad))

"""Class 7 (keys): `sen gateway keys import` refuses malformed files, duplicate nodes and key
files readable by others, each with one line (exit 2) and nothing imported."""
import json

import pytest

from tests.faults.helpers import one_line_error, sen

KEY = "00112233445566778899aabbccddeeff"
KEY2 = "ffeeddccbbaa99887766554433221100"


@pytest.mark.parametrize("name, body, says", [
    ("list.json", "[1, 2]", "JSON object"),
    ("nokey.json", '{"5": {"status": "active"}}', "hex string"),
    ("num.json", '{"5": 12345}', "hex string"),
    ("broken.json", '{"5": "00', "not valid JSON"),
    ("binary.txt", b"\xff\xfe\x00junk", "not a text file"),
    ("words.txt", "5 " + KEY + " extra\n", "expected `node_id key_hex`"),
    ("short.txt", "5 0011\n", "16 bytes"),
    ("badid.txt", "x5 " + KEY + "\n", "not a number"),
    ("dupe.txt", f"5 {KEY}\n6 {KEY}\n5 {KEY2}\n", "appears twice"),
    ("dupe.json", json.dumps({"5": KEY}).rstrip("}") + f', "5": "{KEY2}"}}', "appears twice"),
    ("dupe-forms.txt", f"5 {KEY}\n005 {KEY2}\n", "appears twice"),
])
def test_bad_import_files_are_one_line_and_import_nothing(tmp_path, name, body, says):
    (tmp_path / "keys.json").write_text('{"nodes": {}}')
    f = tmp_path / name
    f.write_bytes(body if isinstance(body, bytes) else body.encode())
    f.chmod(0o600)
    r = sen("gateway", "keys", "import", f, "--keys", tmp_path / "keys.json")
    assert one_line_error(r) and says in r.stderr, r.stderr
    assert json.loads((tmp_path / "keys.json").read_text()) == {"nodes": {}}


def test_key_file_readable_by_others_is_refused_with_the_chmod_fix(tmp_path):
    (tmp_path / "keys.json").write_text('{"nodes": {}}')
    f = tmp_path / "keys.txt"
    f.write_text(f"5 {KEY}\n")
    f.chmod(0o644)
    r = sen("gateway", "keys", "import", f, "--keys", tmp_path / "keys.json")
    assert one_line_error(r) and "readable by others" in r.stderr and f"chmod 600 {f}" in r.stderr, r.stderr
    f.chmod(0o600)
    r = sen("gateway", "keys", "import", f, "--keys", tmp_path / "keys.json")
    assert r.returncode == 0 and "imported 1 keys" in r.stdout

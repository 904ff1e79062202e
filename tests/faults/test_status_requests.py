"""Class 9: the status page of a running `sen gateway run`. A malformed Content-Length (-1,
abc) gets 400 at once, with no traceback; a client that resets its connection mid-request is
one quiet log line."""
import socket
import struct

from sen.bench.gateway_receivers import free_port
from sen.gateway.key_store import KeyStore
from sen.testkit.synthetic import Fleet
from tests.faults.helpers import GatewayProcess, http_get, write_toml


def _request(port, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(raw)
        out = b""
        while b"\r\n\r\n" not in out:
            b = s.recv(4096)
            if not b:
                break
            out += b
        return out


def test_bad_content_length_is_400_and_a_reset_client_is_one_quiet_line(tmp_path):
    Fleet(1).write_keys(KeyStore(tmp_path / "keys.json", create=True))
    write_toml(tmp_path)
    port = free_port()
    gw = GatewayProcess(tmp_path, f"\n[status]\nport = {port}\n")
    try:
        assert gw.wait_log("status page listening", 60), gw.log()
        http_get(f"http://127.0.0.1:{port}/")
        for value in (b"-1", b"abc"):
            reply = _request(port, b"POST /api/actions/approve HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                                   b"Content-Type: application/json\r\nContent-Length: %s\r\n\r\n{}" % (port, value))
            assert reply.startswith(b"HTTP/1.1 400"), (value, reply[:200])
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1")  # half a request, then a reset
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        assert gw.wait_log("went away", 30), gw.log()
        http_get(f"http://127.0.0.1:{port}/")  # still serving
    finally:
        code = gw.stop()
    log = gw.log()
    assert code == 0 and "Traceback" not in log and "ConnectionResetError:" not in log, log
    assert log.count("went away") == 1

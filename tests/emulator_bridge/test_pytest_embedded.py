"""pytest-embedded's serial service opens the emulator's port and sees the boot banner."""
import subprocess
import sys
import textwrap

from .emu import Emulator

INNER = textwrap.dedent('''\
    import re

    BANNER = re.compile(rb"MicroPython v1\\.27\\.0 on \\d{4}-\\d\\d-\\d\\d; LILYGO TTGO LoRa32 V2\\.1 \\(T3 V1\\.6\\.1\\) with ESP32")


    def test_banner_after_soft_and_hard_reset(dut):
        dut.write("\\x03")           # serial opened with input flushed: get a prompt first
        dut.expect_exact(">>> ", timeout=10)
        dut.write("\\x04")           # Ctrl-D on an empty line: soft reboot
        dut.expect_exact("MPY: soft reboot", timeout=10)
        dut.expect(BANNER, timeout=10)
        dut.expect_exact(">>> ", timeout=10)
        dut.write("import machine; machine.reset()\\r")  # MicroPython's readline enters on CR
        dut.expect_exact("rst:0xc (SW_CPU_RESET)", timeout=10)
        dut.expect(BANNER, timeout=10)
        dut.write("print(6 * 7)\\r")
        dut.expect_exact("42", timeout=10)
    ''')


def test_pytest_embedded_serial_expects_banner(tmp_path):
    (tmp_path / "test_inner.py").write_text(INNER)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    e = Emulator("--board", "ttgo-lora32-v21")
    try:
        r = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--embedded-services", "serial",
             "--port", e.port, "--baud", "115200", str(tmp_path / "test_inner.py")],
            cwd=tmp_path, capture_output=True, text=True, timeout=90)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
        assert "1 passed" in r.stdout
        assert e.alive()
    finally:
        e.stop()

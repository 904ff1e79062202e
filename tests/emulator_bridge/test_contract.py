"""The bridge <-> board host contract (emulator/board_signals.py), through a stub board
(fixtures/stub_board.py) so each signal is exercised on its own."""
import time

import pytest

from .emu import Emulator, read_until, stub_env


@pytest.fixture(scope="module")
def stub(tmp_path_factory):
    flash = tmp_path_factory.mktemp("stubflash")
    e = Emulator("--board", "esp32-rfm95", "--flash", str(flash), env=stub_env())
    e.flash = flash
    yield e
    e.stop()


def test_bytes_and_values_cross_both_ways(stub):
    out = stub.mp("exec", "import _sen; r = _sen.call('echo', b=b'\\x00\\xffab', n=[1, 2.5, None], s='ü')\n"
                          "print(sorted(r.items()))")
    assert out == "[('b', b'\\x00\\xffab'), ('n', [1, 2.5, None]), ('s', '\\xfc')]\n"


def test_oserror_and_model_bug_reach_the_firmware_and_repl_survives(stub):
    out = stub.mp("exec", "import _sen\ntry:\n _sen.call('i2c_fail')\nexcept OSError as e:\n print('errno', e.errno)")
    assert out == "errno 19\n"
    out = stub.mp("exec", "import _sen; _sen.call('crash')", check=False)
    assert "RuntimeError: board: ZeroDivisionError: model bug" in out
    assert stub.alive()
    assert stub.mp("eval", "1 + 1") == "2\n"


def test_host_bug_outside_a_call_power_cycles_only_that_board(stub):
    with stub.serial() as s:
        s.write(b"\r\x03")
        read_until(s, b">>> ")
        s.write(b"import _sen; _sen.call('break_next_boot')\r")
        read_until(s, b">>> ")
        s.write(b"\x04")  # soft reset: the board's on_boot raises
        out = read_until(s, b">>> ")
    assert b"emulator: host error, power-cycling the board" in out
    assert b"rst:0x1 (POWERON_RESET)" in out
    assert stub.alive()
    assert stub.mp("eval", "2 + 2") == "4\n"


def test_wait_is_virtual_time_at_max_speed(stub):
    t0 = time.monotonic()
    out = stub.mp("exec", "import time; t = time.ticks_ms(); time.sleep(3600); print(time.ticks_ms() - t)")
    assert out == "3600000\n"
    assert time.monotonic() - t0 < 20  # an hour of sleep did not take an hour


def test_power_cut_from_a_clock_timer_reboots_with_pwron(stub):
    with stub.serial() as s:
        s.write(b"\r\x03")
        read_until(s, b">>> ")
        s.write(b"import _sen, time; _sen.call('power_cut_in', ms=50, off_ms=1000); time.sleep_ms(10000); print('not reached')\r")
        out = read_until(s, b">>> ")
    assert b"\r\nnot reached\r\n" not in out
    assert b"rst:0x1 (POWERON_RESET)" in out
    assert stub.mp("exec", "import machine; print(machine.reset_cause())") == "5\n"  # mpremote soft-resets first
    # on_boot causes, latest last: the cut's power-on, then one soft reset per mpremote run
    assert stub.mp("exec", "import _sen; print(_sen.call('boots')[-3:])") == "[1, 5, 5]\n"


def test_speed_paces_virtual_time_against_wall_time(tmp_path):
    e = Emulator("--board", "esp32-rfm95", "--speed", "4", env=stub_env())
    try:
        t0 = time.monotonic()
        out = e.mp("exec", "import time; t = time.ticks_ms(); time.sleep_ms(2000); print(time.ticks_ms() - t)")
        wall = time.monotonic() - t0
        assert out == "2000\n"
        assert wall >= 0.5  # 2 virtual seconds at 4x real time take at least 0.5 s
        # a Ctrl-C while the firmware is blocked in a long sleep ends it at once
        with e.serial() as s:
            s.write(b"\r\x03")
            read_until(s, b">>> ")
            s.write(b"import time; time.sleep(3600)\r")
            time.sleep(0.5)
            t0 = time.monotonic()
            s.write(b"\x03")
            out = read_until(s, b">>> ")
            assert b"KeyboardInterrupt: \r\n" in out
            assert time.monotonic() - t0 < 5
    finally:
        e.stop()

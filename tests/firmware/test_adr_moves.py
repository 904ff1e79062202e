"""ADR end to end: the real firmware (MicroPython in the emulator) on a confirmed water node,
the real gateway behind an emulated SX1302 concentrator (Semtech UDP on loopback), 20 % loss.
The node starts 500 m out, moves to 4.75 km (where SF7 and SF8 no longer reach), and comes
back. ADR must move it to the fast setting within 20 frames of each move closer, and the node
must regain its link on its own after ADR over-reached (its fast setting went out of reach)."""
from functools import partial
from pathlib import Path
from types import SimpleNamespace

from sen.emulator.board import load_world
from sen.emulator.city_run import CityRun
from sen.emulator.clock import VirtualClock
from sen.emulator.radio_medium import world_medium
from sen.gateway.key_store import KeyStore
from sen.host_tools import emulated_gateway
from sen.host_tools.bundle import build as build_bundle

SCEN = Path(__file__).parent / "scenarios" / "adr_moves.toml"
KEY = bytes(range(32, 48))
NODE_ID = 131
INTERVAL_S = 900
FAR_AT_H, NEAR_AT_H, END_H = 12.0, 30.0, 44.0


def _frames(medium):
    return [(f["t_start_us"] / 3600e6, f["sf"], f["receivers"]) for f in medium.frames if f["sender"] == "water-1"]


def test_adr_follows_a_moving_node_and_the_node_recovers_from_over_reach(tmp_path):
    clock = VirtualClock()
    world = load_world(str(SCEN), clock)
    gw_dir = tmp_path / "gw"
    gw_dir.mkdir()
    KeyStore(gw_dir / "keys.json", create=True).add(NODE_ID, KEY)
    (gw_dir / "gateway.toml").write_text("\n".join([
        '[gateway]', 'id = "gw"', 'data_dir = "data"', '[keys]', 'file = "keys.json"',
        '[[radio]]', 'backend = "semtech_udp"', 'name = "udp"', 'bind = "127.0.0.1:0"']) + "\n")
    nodes = [{"name": "water-1", "station": "water", "cfg": {
        "node_id": NODE_ID, "kind": "water", "key": KEY.hex(), "interval_s": INTERVAL_S, "confirmed": True,
        "ack_every": 4, "radio": {"channels": "as923-2"}}}]
    hooks = SimpleNamespace(start_gateway=partial(emulated_gateway.start_gateway, virtual_time=True),
                            stop_gateway=emulated_gateway.stop_gateway, kill_gateway=emulated_gateway.kill_gateway)
    run = CityRun(world, clock, tmp_path / "boards", gw_dir / "gateway.toml", nodes, gateway=hooks,
                  build_bundle=build_bundle)
    medium = world_medium(world, clock)
    port = next(p for p in medium._ports.values() if p.name == "water-1")

    def move(x_m):
        port.position = (x_m, 0.0)
    clock.call_at(int(FAR_AT_H * 3600e6), lambda: move(4750.0))
    clock.call_at(int(NEAR_AT_H * 3600e6), lambda: move(500.0))
    try:
        run.run(END_H)
    finally:
        run.close()

    frames = _frames(medium)
    near1 = [f for f in frames if f[0] < FAR_AT_H]
    far = [f for f in frames if FAR_AT_H <= f[0] < NEAR_AT_H]
    near2 = [f for f in frames if f[0] >= NEAR_AT_H]
    heard = lambda f: any(r["outcome"] == "ok" for r in f[2].values())  # noqa: E731

    # 1. From the provisioned SF9 to SF7 within 20 frames of the start, and it stays there.
    first7 = next(i for i, f in enumerate(near1) if f[1] == 7)
    assert first7 <= 20, [f[1] for f in near1]
    assert all(f[1] == 7 for f in near1[first7:]), [f[1] for f in near1]
    # 2. Moved out of SF7's reach: ADR over-reached. The node backs off on its own to an SF
    #    that answered before (SF9, its first), is heard again, and ADR keeps it robust.
    regained = next(i for i, f in enumerate(far) if heard(f))
    assert far[regained][1] >= 9
    assert regained <= 24, [(round(t, 2), sf, heard(f)) for f in far for t, sf in [(f[0], f[1])]]
    tail = far[regained + 8:]
    assert tail and all(f[1] >= 9 for f in tail), [f[1] for f in far]
    assert sum(heard(f) for f in tail) >= 0.6 * len(tail)  # 20 % random loss, nothing more
    # 3. Back near: SF7 again within 20 frames of the move.
    back7 = next(i for i, f in enumerate(near2) if f[1] == 7)
    print(f"ADR: SF7 after {first7} frames; over-reach: heard again after {regained} frames at SF{far[regained][1]}; "
          f"back near: SF7 after {back7} frames")
    assert back7 <= 20, [f[1] for f in near2]

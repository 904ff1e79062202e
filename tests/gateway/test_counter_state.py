"""Counter rules of docs/frame-format.md section 6, end to end through the pipeline with
frames made by the firmware encoder."""
from sen.firmware_modules import load
from sen.gateway.rx_meta import RxMeta

frame = load("frame")
READ = [(0, [(5, 35, 0), (7, 198, 0)])]


def mk(rig, node, counter, flags=0, readings=READ):
    return rig.fleet.framers[node].encode(counter, flags, readings)


def meta(t=1_795_000_000.0, gw="gw-a", rssi=-90.0, snr=3.0, radio="r0"):
    return RxMeta(gw, t, 921_400_000, 7, 125_000, rssi, snr, radio)


def state(rig, node):
    return rig.q("SELECT last, reboots, lost, accepted, late, duplicates FROM nodes WHERE node_id=?", node)[0]


def test_first_frame_needs_full_counter(rig):
    res = rig.feed([(mk(rig, 1, 5), meta())])  # counter 5: 16-bit only
    assert res.rejections == {"counter_unknown": 1}
    res = rig.feed([(mk(rig, 1, 6, frame.UP_BOOT), meta()), (mk(rig, 1, 7), meta())])
    assert not res.rejections and [a.counter for a in res.accepted] == [6, 7]
    assert state(rig, 1)[:2] == (7, 1)


def test_16_bit_reconstruction_across_wrap(rig):
    rig.feed([(mk(rig, 1, 65530, frame.UP_FULLCNT), meta())])
    res = rig.feed([(mk(rig, 1, c), meta()) for c in range(65531, 65540)])
    assert [a.counter for a in res.accepted] == list(range(65531, 65540))
    assert rig.q("SELECT MAX(counter) FROM frames")[0][0] == 65539


def test_duplicate_copy_merges_rssi_and_stores_once(rig):
    f = mk(rig, 2, 100, frame.UP_BOOT)
    res = rig.feed([(f, meta(rssi=-100, radio="r0")), (f, meta(gw="gw-b", rssi=-70, radio="r1"))])
    assert len(res.accepted) == 1 and res.duplicates == 1 and not res.rejections
    assert rig.q("SELECT COUNT(*) FROM readings WHERE node_id=2")[0][0] == 2
    copies = "SELECT gateway_id, rssi FROM frames WHERE node_id=2 UNION ALL SELECT gateway_id, rssi FROM rx WHERE node_id=2"
    assert sorted(rig.q(copies)) == [("gw-a", -100.0), ("gw-b", -70.0)]
    # a copy arriving in a later batch is still a duplicate
    res = rig.feed([(f, meta(gw="gw-c", rssi=-80))])
    assert res.duplicates == 1 and len(rig.q(copies)) == 3


def test_counter_reused_with_different_bytes(rig):
    rig.feed([(mk(rig, 3, 10, frame.UP_BOOT), meta())])
    other = mk(rig, 3, 10, frame.UP_BOOT, [(0, [(5, 36, 0)])])
    res = rig.feed([(other, meta())])
    assert res.rejections == {"counter_reused": 1}


def test_replays_and_late_frames(rig):
    rig.feed([(mk(rig, 1, 1000, frame.UP_BOOT), meta())])
    old = [mk(rig, 1, c) for c in (990, 995)]  # inside the window, never seen: late copies
    res = rig.feed([(mk(rig, 1, 1100), meta())])  # jump: 99 lost
    assert state(rig, 1)[2] == 99
    res = rig.feed([(f, meta()) for f in old])
    assert res.rejections == {"replay": 2}  # 990/995 are now <= 1100 - 64
    res = rig.feed([(mk(rig, 1, 1030), meta()), (mk(rig, 1, 1090), meta())])
    assert res.rejections == {"replay": 1} and [a.kind for a in res.accepted] == ["late"]
    assert state(rig, 1)[2] == 98 and state(rig, 1)[4] == 1
    # replay of an accepted frame far in the past: rejected
    rig.feed([(mk(rig, 1, 1200), meta())])
    first = mk(rig, 1, 1100)
    assert rig.feed([(first, meta())]).rejections == {"replay": 1}


def test_reboot_jump_is_not_loss_and_nvs_loss_is_replay(rig):
    rig.feed([(mk(rig, 4, 200, frame.UP_BOOT), meta())])
    res = rig.feed([(mk(rig, 4, 264, frame.UP_BOOT), meta())])  # skipped counter block
    assert not res.rejections and state(rig, 4)[1:3] == (2, 0)
    res = rig.feed([(mk(rig, 4, 3, frame.UP_BOOT), meta())])  # NVS lost: counter went back
    assert res.rejections == {"replay": 1}


def test_forged_mics_all_rejected(rig):
    import random
    rng = random.Random(5)
    rig.feed([(mk(rig, 1, 0, frame.UP_BOOT), meta())])
    forged = []
    for c in range(1, 301):
        f = bytearray(mk(rig, 1, c))
        f[-1 - rng.randrange(4)] ^= 1 << rng.randrange(8)  # wrong MIC
        forged.append((bytes(f), meta()))
    wrong_key = [(load("frame").Framer(1, bytes(16)).encode(c, 0, READ), meta()) for c in range(301, 401)]
    res = rig.feed(forged + wrong_key)
    assert res.rejections == {"bad_mic": 400} and not res.accepted
    assert rig.q("SELECT mic_failures FROM nodes WHERE node_id=1") == [(400,)]
    # replays of genuine frames: every one rejected
    genuine = [(mk(rig, 1, c), meta()) for c in range(401, 501)]
    rig.feed(genuine)
    res = rig.feed(genuine[-30:])  # within the window: duplicates (copies), never new readings
    assert res.duplicates == 30 and not res.accepted
    rig.feed([(mk(rig, 1, 600), meta())])
    res = rig.feed(genuine)
    assert res.rejections == {"replay": 100} and not res.accepted


def test_unknown_and_revoked_nodes(rig):
    from sen.testkit.synthetic import Fleet
    stranger = Fleet(1, seed=9, first_node=900)
    f, m = next(stranger.frames(1))
    assert rig.feed([(f, m)]).rejections == {"unknown_node": 1}
    rig.keys.revoke(1)
    assert rig.feed([(mk(rig, 1, 0, frame.UP_BOOT), meta())]).rejections == {"unknown_node": 1}

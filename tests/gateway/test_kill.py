"""kill -9 at random moments during an ingest; restart each time; nothing received is lost
or doubled, in the store or at any forwarder's receiver. CI size: 6,000 frames, 5 kills;
`sen bench gateway --kill-test` runs 100,000 frames with 20 kills."""
from sen.bench.gateway_kill import run_kill_test


def test_kill_9_loses_nothing_and_doubles_nothing(tmp_path):
    # 1,000 nodes at 800 frames/s: each node sends at most once a second, as Circular 10 file
    # names (one per station and second) assume
    # drain_timeout bounds the wait for the last run to catch up, nothing is timed: with three
    # test workers on two cores the forwarders once needed 124 s after the feed ended
    r = run_kill_test(n_frames=6000, kills=5, n_nodes=1000, rate=800.0, workdir=tmp_path, drain_timeout=300,
                      log=print)
    print(r)
    assert r["kills"] == 5 and r["frames_sent"] == 6000
    assert r["sigterm_exit"] == 0
    assert r["received_not_sent"] == 0
    # frames still in the loopback socket buffers at a kill never reached the gateway
    assert r["frames_received"] + r["lost_in_flight"] == 6000 and r["frames_received"] > 3000
    assert r["missing_from_store"] == 0 and r["extra_in_store"] == 0
    assert r["frames_stored"] > 0 and r["readings_stored"] == 6 * r["frames_stored"]
    assert r["duplicate_readings_in_store"] == 0 and r["readings_match_reference"]
    for k in ("mqtt_missing", "mqtt_unknown", "sensorthings_missing", "sensorthings_unknown",
              "ngsi_ld_missing_samples", "ngsi_ld_unknown", "circular10_missing", "circular10_unknown",
              "circular10_incomplete_files"):
        assert r[k] == 0, (k, r)

"""The SensorThings forwarder as its own process over a gateway store, so a test can kill it
(SIGKILL) mid-batch and start it again: `python -m tests.gateway.sta_server.forward_proc DB URL N`.
Runs until the outbox is empty, then prints its figures as one JSON line."""
import json
import sys
import time

from sen.gateway.forwarders.base import ForwarderRunner
from sen.gateway.forwarders.sensorthings import SensorThingsForwarder
from sen.gateway.outbox import Outbox


def main(db, url, batch):
    fw = SensorThingsForwarder(url, nodes={}, gateway_location=(108.22, 16.07))
    fw.batch_readings = int(batch)
    runner = ForwarderRunner(fw, db, backoff_min=0.5, backoff_max=2.0).start()
    watch = Outbox(db, "sensorthings")
    while watch.depth() > 0:
        time.sleep(0.1)
    runner.stop()
    watch.close()
    print(json.dumps({"skipped_present": fw.skipped_present, "sent_samples": runner.sent}), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])

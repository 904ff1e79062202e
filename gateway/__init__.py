"""sen.gateway: receive, verify, decode, dedupe, calibrate, store and forward frames."""

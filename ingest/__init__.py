"""sen.ingest: the central ingest behind an MQTT broker cluster (city scale)."""

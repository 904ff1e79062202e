"""Test support: fixtures and doubles for the tests and the benches, never imported by the
product at run time (the gateway, ingest, emulator and tools run without it).

    synthetic   a fleet of nodes framing readings as the firmware does (gateway tests, benches)
    city_sim    a city of emulated gateways publishing to ingest (ingest tests, bench)
    loopback    local Mosquitto / PostgreSQL / ingest worker processes for loopback tests
    pi_doubles  spidev and RPi.GPIO doubles backed by the emulator's SX1276 model

It ships in the wheel because `sen bench` uses synthetic, city_sim and loopback.
"""

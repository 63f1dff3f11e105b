"""Everything that leaves the device: sealing (age), signing, and (later) MQTT and S3 adapters.

``uplink`` imports nothing from ``agent`` or ``motion``.
"""

"""The requester's tool: a third party (police, an insurer, a neighbour) asks an owner for footage.

It imports ``uplink`` and ``agent.errors`` only (an import-linter contract keeps it so): a
requester runs none of the device's or the owner's code. Modules:

    identity   the requester's keys in ``--requester-dir`` (Ed25519 signing key, age identity)
    ask        build, sign and send a request to a device over MQTT
    fetch      receive the owner's sealed answer, download and check each clip, write the bundle
    bundle     the bundle's layout and ``doorward verify-bundle`` (offline, for a court)
    cli        the ``doorward requester`` and ``doorward verify-bundle`` commands
"""

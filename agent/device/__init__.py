"""The device's trust and control: identity, its database, consent, the ledger, pairing, the
owner's signed commands, buttons and LED, the control plane."""

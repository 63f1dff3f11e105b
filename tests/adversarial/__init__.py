"""Adversarial tests: the privacy promises against someone trying to break them (issue 12)."""

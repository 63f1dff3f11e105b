"""The owner's tool (``doorward owner ...``), run on the owner's computer: keys, pairing, consent.
"""

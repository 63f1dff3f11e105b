"""Delivery: the outbox and its lanes, what is sent to the broker and the bucket, and when."""

"""Bluesky documents: safe serialization for the 0MQ stream."""

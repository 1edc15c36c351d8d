"""Test support: a real certplane server on loopback, hand-built JWS, challenge responders."""

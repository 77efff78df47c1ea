"""Decoding: probing videos, frame times on one clock, audio at 16 kHz."""

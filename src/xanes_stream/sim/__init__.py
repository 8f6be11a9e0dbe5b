"""Simulation: phantom samples and a simulated TXM beamline."""

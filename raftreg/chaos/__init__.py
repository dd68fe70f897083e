"""Chaos testing: fault injection, the recorded client history, and the checkers that judge it."""

"""Engines: how PE instances are laid out over processes (simple, static, dynamic, hybrid).
An engine does not know which transport carries its tasks."""

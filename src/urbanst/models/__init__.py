"""The model zoo: every model is a named preset over shared parts (see docs/design.md); the names are in
:mod:`urbanst.models.registry`."""

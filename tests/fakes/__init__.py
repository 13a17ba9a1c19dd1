"""The project's own fake platform servers, served over real HTTP on 127.0.0.1 inside tests."""

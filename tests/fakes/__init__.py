"""The project's own fake platform servers (real HTTP on 127.0.0.1) for channel tests."""

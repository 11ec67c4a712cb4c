"""Docker-sandboxed code execution with unfakeable verdicts (see sandbox/README.md).

Client side: :mod:`sandbox.client` (``SandboxClient``, ``AsyncSandboxClient``); service:
``rlvr sandbox serve`` (:mod:`sandbox.server` over :mod:`sandbox.pool`); tests and development:
:func:`sandbox.testing.running_server`.
"""

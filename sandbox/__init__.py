"""Docker-sandboxed code execution with unfakeable verdicts (see sandbox/README.md).

Client side: :mod:`rlvr.sandbox.client` (``SandboxClient``, ``AsyncSandboxClient``); service:
``rlvr sandbox serve`` (:mod:`rlvr.sandbox.server` over :mod:`rlvr.sandbox.pool`); tests and development:
:func:`rlvr.sandbox.testing.running_server`.
"""

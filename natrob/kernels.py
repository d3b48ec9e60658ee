"""Notebook kernels that talk over unix sockets instead of localhost TCP.

A kernel started the default way listens on localhost TCP ports without encryption: on a shared GPU node any
other user can connect to it and run code as us. Over IPC the sockets are files inside a fresh directory only
we can open (``mkdtemp`` creates it with mode 0700), and they are removed with the kernel.
"""
from __future__ import annotations

import os
import shutil
import tempfile

from jupyter_client.manager import AsyncKernelManager


class IPCKernelManager(AsyncKernelManager):
    """An ``AsyncKernelManager`` whose kernels use the ``ipc`` transport in a private directory."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._socket_dir = tempfile.mkdtemp(prefix="natrob-kernel-")
        self.transport = "ipc"
        self.ip = os.path.join(self._socket_dir, "kernel")

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await AsyncKernelManager._async_cleanup_resources(self, restart=restart)
        if not restart:
            shutil.rmtree(self._socket_dir, ignore_errors=True)

    cleanup_resources = _async_cleanup_resources  # AsyncKernelManager aliases the base method directly

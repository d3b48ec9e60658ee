"""Notebook kernels that talk over unix sockets instead of localhost TCP, and a client that never waits on a
socket without looking again.

A kernel started the default way listens on localhost TCP ports without encryption: on a shared GPU node any
other user can connect to it and run code as us. Over IPC the sockets are files inside a fresh directory only
we can open (``mkdtemp`` creates it with mode 0700), and they are removed with the kernel.

Why the client polls in slices: jupyter_client's asyncio channels wait for a message with ``socket.poll(None)``,
which wakes on the edge-triggered ZMQ_FD. A wake-up consumed elsewhere (the widget cell of notebook 03 sends many
messages at once; seen on a loaded 2-core machine: the kernel had run the cell and was idle, the runner waited for
its reply for 15 minutes, the same hang as nbclient#312) leaves a message that has arrived unread until the next
poll. Each new ``poll`` first asks the socket directly whether a message is waiting, so polling in slices of
:data:`POLL_SLICE_S` finds such a message within that time; the wait as a whole still ends at the caller's timeout.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from queue import Empty

from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.channels import AsyncZMQSocketChannel
from jupyter_client.manager import AsyncKernelManager
from traitlets import DottedObjectName, Type

POLL_SLICE_S = 1.0


class SlicedChannel(AsyncZMQSocketChannel):
    """A channel whose ``get_msg(timeout)`` polls in slices of :data:`POLL_SLICE_S` until ``timeout`` (None:
    forever), so a message whose wake-up was lost is read within a slice."""

    async def get_msg(self, timeout: float | None = None) -> dict:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = POLL_SLICE_S if deadline is None else max(0.0, min(POLL_SLICE_S, deadline - time.monotonic()))
            try:
                return await super().get_msg(timeout=wait)
            except Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise


class SlicedKernelClient(AsyncKernelClient):
    """An ``AsyncKernelClient`` whose shell and iopub channels poll in slices (:class:`SlicedChannel`)."""
    shell_channel_class = Type(SlicedChannel)
    iopub_channel_class = Type(SlicedChannel)


class IPCKernelManager(AsyncKernelManager):
    """An ``AsyncKernelManager`` whose kernels use the ``ipc`` transport in a private directory, and whose clients
    poll in slices (:class:`SlicedKernelClient`)."""
    client_class = DottedObjectName("natrob.run.kernels.SlicedKernelClient")
    client_factory = Type(klass="jupyter_client.asynchronous.AsyncKernelClient")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.client_factory = SlicedKernelClient
        self._socket_dir = tempfile.mkdtemp(prefix="natrob-kernel-")
        self.transport = "ipc"
        self.ip = os.path.join(self._socket_dir, "kernel")

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await AsyncKernelManager._async_cleanup_resources(self, restart=restart)
        if not restart:
            shutil.rmtree(self._socket_dir, ignore_errors=True)

    cleanup_resources = _async_cleanup_resources  # AsyncKernelManager aliases the base method directly


class PlainClientKernelManager(IPCKernelManager):
    """:class:`IPCKernelManager` with jupyter_client's own client (a wait on a socket has no slices): what the
    runner used before, kept for ``bench/kernel_hang.py``'s comparison."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.client_factory = AsyncKernelClient

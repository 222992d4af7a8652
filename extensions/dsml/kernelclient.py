"""A kernel client for notebook runners (Voila pages, Papermill jobs) that never hangs on a reply.

Both the app server and the scheduler's worker run notebooks through nbclient; both give their
kernel managers this client (`STEADY_KERNEL_CLIENT`, a traitlets import string), so the fix for
ZeroMQ's lost wake-up lives in one place.
"""

from __future__ import annotations

import time
from typing import Any

from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.channels import AsyncZMQSocketChannel
from jupyter_client.manager import AsyncKernelManager
from traitlets import DottedObjectName, Type

STEADY_KERNEL_CLIENT = "dsml.kernelclient.SteadyKernelClient"
"""`KernelManager.client_class` value that gives a manager's clients `SteadyChannel`s."""

POLL_SLICE_MS = 100
"""How long the notebook's runner waits on a kernel socket before it looks again."""


class SteadyChannel(AsyncZMQSocketChannel):
    """A kernel channel whose wait for a message cannot miss one that has arrived.

    A ZeroMQ socket tells asyncio about new messages by an edge-triggered descriptor. nbclient
    sends the Output widget's updates on the shell socket while it waits on that same socket for
    the cell's reply, and a send can take the edge the reply raised: the wait then never wakes,
    though the kernel is idle with the reply delivered. Measured with Voila alone on the corpus
    notebook `output.ipynb`, up to one page in two hung that way. Waiting in short slices, each
    starting with a real check of the socket, picks such a reply up within POLL_SLICE_MS.
    """

    async def get_msg(self, timeout: float | None = None) -> dict[str, Any]:  # type: ignore[override]
        """The next message, waiting up to `timeout` seconds (None: for ever); Empty if none."""
        from queue import Empty

        assert self.socket is not None
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if await self.socket.poll(0):
                return await self._recv()
            wait = POLL_SLICE_MS
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Empty
                wait = min(wait, max(1, int(left * 1000)))
            if await self.socket.poll(wait):
                return await self._recv()


class SteadyKernelClient(AsyncKernelClient):
    """An async kernel client whose shell and IOPub waits cannot miss a message."""

    shell_channel_class = Type(SteadyChannel)  # type: ignore[assignment]
    iopub_channel_class = Type(SteadyChannel)  # type: ignore[assignment]


class SteadyKernelManager(AsyncKernelManager):
    """An async kernel manager whose clients are `SteadyKernelClient`s (nbclient's
    `kernel_manager_class`, for Papermill runs that start their own kernel)."""

    client_class = DottedObjectName(STEADY_KERNEL_CLIENT)  # type: ignore[assignment]

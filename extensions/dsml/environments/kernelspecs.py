"""The kernelspec manager user servers run with: it offers the curated environments only.

The platform's own Python (which runs JupyterLab) is not a place for user code: packages
installed there are not what scheduled jobs and apps run with.
"""

from __future__ import annotations

from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from traitlets import Bool, Unicode

from dsml import kernels


class CuratedKernelSpecManager(KernelSpecManager):
    """Offer only kernelspecs whose name starts with `prefix` (the curated environments)."""

    prefix = Unicode(
        kernels.PREFIX, config=True, help="Kernelspec name prefix of curated environments."
    )
    ensure_native_kernel = Bool(False, config=True, help="Never add the server's own Python.")

    def find_kernel_specs(self) -> dict[str, str]:
        """Return {name: resource dir} of the curated kernelspecs only."""
        specs = super().find_kernel_specs()
        # `dsml-NAME--VERSION` kernels exist for jobs pinned to an older version; people get
        # the current one only
        return {
            name: path
            for name, path in specs.items()
            if name.startswith(self.prefix) and not kernels.is_pinned(name)
        }

    def get_kernel_spec(self, kernel_name: str):  # type: ignore[no-untyped-def]
        """Return a curated kernelspec; any other name is NoSuchKernel."""
        if not kernel_name.startswith(self.prefix):
            raise NoSuchKernel(kernel_name)
        return super().get_kernel_spec(kernel_name)

"""dsml-platform on Zero to JupyterHub: z2jh's jupyterhub_config.py executes this file last.

It runs in z2jh's config namespace (`c` is the hub's config, z2jh's settings are applied
already) and adds the platform: services, roles, spawner traits (dsml.hub.kubernetes). The
settings come from /usr/local/etc/dsml/ (the dsml settings Secret the chart mounts).
"""

from dsml.hub import kubernetes as dsml_kubernetes

dsml_kubernetes.configure(c)  # noqa: F821 - z2jh's config defines c before it loads this file

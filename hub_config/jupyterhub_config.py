"""JupyterHub configuration for dsml-platform: thin on purpose, all logic lives in dsml.hub.config.

`dsml up` starts JupyterHub with this file; on Kubernetes the hub pod loads it the same way.
The settings come from hub_config/settings.yaml (or the file DSML_SETTINGS names).
"""

from dsml.hub import config as hubconfig

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file
hubconfig.update_all(c, hubconfig.load_settings())

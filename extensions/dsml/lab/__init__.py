"""What user servers (JupyterLab) load: the environment check and the scheduler bridge."""

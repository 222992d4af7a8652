"""IPython extensions that curated kernels load; this folder is put on the kernels' PYTHONPATH.

Its modules run inside each environment's own Python and import nothing from dsml. The file
exists so that the folder ships with the dsml package (setuptools finds packages only).
"""

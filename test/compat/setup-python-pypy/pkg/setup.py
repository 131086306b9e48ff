from setuptools import setup

setup(name="kiln-demo", version="1.0", py_modules=["kiln_demo"])

"""Packaging glue that pyproject.toml cannot express: the top-level themes/ folder (the theme
files users read and copy) is installed as the package data directory ``tcpview/_themes``.
Everything else is in pyproject.toml."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["tcpview*"]), "tcpview._themes"],
    package_dir={"tcpview._themes": "themes"},
)

"""labkit: a Jupyter-native research lab kit for closed-loop rTMS experiments."""

__version__ = "0.1.0"
